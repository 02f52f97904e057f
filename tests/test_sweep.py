"""Sweeps: planning (grid, data, isoflop), running, skipping, failing, resuming."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from scaling.cli import main
from scaling.config import ConfigError, load_config
from scaling.data import build_data
from scaling.models import build_model
from scaling.plan import grid_points, plan_sweep
from scaling.store import RunFolder, load_runs
from tests.conftest import TINY_GPT

SMALL_SWEEP = [*TINY_GPT, "sweep=grid", "sweep.name=tiny", "++sweep.axes={model.width:[16,32]}",
               "++sweep.axes={budget.tokens:[6000,12000]}", "trainer.threads=1"]


def test_grid_zip_and_exclusions():
    axes = {"a": [1, 2], "b": [10, 20], "c": ["x", "y"]}
    points = grid_points(axes, [["a", "b"]], [{"a": 2, "c": "y"}])
    assert points == [{"a": 1, "b": 10, "c": "x"}, {"a": 1, "b": 10, "c": "y"}, {"a": 2, "b": 20, "c": "x"}]
    with pytest.raises(ConfigError, match="sweep.zip"):
        grid_points(axes, [["a", "nope"]], [])


def test_isoflop_plan_matches_budgets_and_accounting(capsys):
    assert main(["plan", "experiment=gpt_isoflop", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    budgets = {}
    for run in plan["runs"]:
        cfg = load_config(["experiment=gpt_isoflop", f"model.width={run['width']}", f"model.depth={run['depth']}"])
        info = build_data(cfg.data).info
        with torch.device("meta"):
            model = build_model(cfg.model, info)
        assert run["N"] == model.num_params()
        assert run["C"] == pytest.approx(model.flops_per_unit() * run["D"])
        budget = min((1e13 * k for k in (3, 10, 30)), key=lambda b: abs(run["C"] / b - 1))
        assert abs(run["C"] / budget - 1) <= 0.05
        budgets.setdefault(budget, []).append(run["N"])
    assert len(budgets) >= 3 and all(len(sizes) >= 5 for sizes in budgets.values())
    assert plan["skipped"] and all(s["reason"] for s in plan["skipped"])
    assert plan["totals"]["runs"] == len(plan["runs"]) and plan["totals"]["gpu_hours"] > 0


def test_plan_is_deterministic_and_rules_apply():
    first = plan_sweep(["experiment=quickstart"])
    second = plan_sweep(["experiment=quickstart"])
    assert [r.run_id for r in first.runs] == [r.run_id for r in second.runs]
    assert len(first.runs) == 18 and len({r.N for r in first.runs}) >= 6 and len({r.D for r in first.runs}) >= 2
    assert max(r.N for r in first.runs) / min(r.N for r in first.runs) >= 10
    depths = {r.cfg.model.width: r.cfg.model.depth for r in first.runs}
    assert depths[32] == 1 and depths[64] == 2 and depths[96] == 3


def _sweep(runs_root, *more):
    return subprocess.run([sys.executable, "-m", "scaling.cli", "sweep", *SMALL_SWEEP, f"run.root={runs_root}", *more],
                          capture_output=True, text=True, timeout=600)


def test_sweep_runs_once_then_skips_and_recovers_a_failure(runs_root):
    fail = '++sweep.rules={trainer.fail_at_step: "3 if width == 32 and D > 10000 else None", trainer.fail_attempts: 99}'
    first = _sweep(runs_root, fail)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "3/4 completed" in first.stdout and "injected failure" in first.stdout
    table = load_runs(runs_root / "tiny")
    assert sorted(table["status"]) == ["completed", "completed", "completed", "failed"]
    failed = table[table["status"] == "failed"].iloc[0]
    assert "injected failure" in failed["error"] and failed["width"] == 32
    second = _sweep(runs_root)  # the cause removed: only the failed run trains
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 already completed, 1 to run" in second.stdout
    table = load_runs(runs_root / "tiny")
    assert set(table["status"]) == {"completed"} and len(table) == 4
    third = _sweep(runs_root)
    assert third.returncode == 0 and "nothing to train" in third.stdout


def test_ctrl_c_then_resume(runs_root):
    command = [sys.executable, "-m", "scaling.cli", "sweep", *SMALL_SWEEP, f"run.root={runs_root}",
               "++sweep.axes={budget.tokens:[6000,60000]}", "trainer.checkpoint_every=10"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # wait until one run completed and a long one has a checkpoint
        table = load_runs(runs_root / "tiny") if (runs_root / "tiny").exists() else None
        ckpts = list((runs_root / "tiny").glob("*/checkpoints/last.ckpt")) if table is not None else []
        if table is not None and (table["status"] == "completed").any() and any(
                RunFolder(c.parent.parent).read_record().get("D", 0) > 50000 for c in ckpts):
            break
        time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "interrupted" in out
    statuses = load_runs(runs_root / "tiny")["status"]
    assert "interrupted" in set(statuses) and (statuses == "completed").sum() < 4
    done_before = (statuses == "completed").sum()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{done_before} already completed" in again.stdout
    table = load_runs(runs_root / "tiny")
    assert set(table["status"]) == {"completed"}
    assert table["resumed_from_step"].fillna(0).max() > 0  # the interrupted run resumed, not restarted
