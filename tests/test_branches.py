"""Cooldown branches (issue 12): one constant-rate trunk per model, a wsd cooldown per data size."""

from __future__ import annotations

import io
import math
import signal
import subprocess
import sys

import pytest

from scaling.branches import savings
from scaling.launch.local import launch
from scaling.plan import plan_run, plan_sweep
from scaling.store import RunFolder, load_runs
from scaling.train import train
from tests.conftest import TINY_GPT, tiny, wait_for
from tests.traces import TRACE, batch_trace

BRANCHES = [*TINY_GPT, "sweep=data", "sweep.mode=branches", "sweep.name=br", "trainer.threads=1",
            "trainer.checkpoint_every=5"]


def test_a_branches_plan_costs_at_most_0_6_of_independent_runs():
    plan = plan_sweep([*BRANCHES, "sweep.models=[16,32,48]", "sweep.data_sizes=[10240,20480,30720,40960]"])
    trunks = [r for r in plan.runs if r.cfg.trainer.keep_steps]
    branches = [r for r in plan.runs if r.cfg.trainer.branch_of]
    assert len(trunks) == 3 and len(branches) == 12 and plan.runs[:3] == trunks  # trunks start first
    for branch in branches:
        trunk = next(t for t in trunks if t.run_id == branch.cfg.trainer.branch_of)
        assert branch.cfg.trainer.branch_step in trunk.cfg.trainer.keep_steps
        assert branch.cfg.optim.schedule == "wsd" and trunk.cfg.optim.schedule == "constant"
        assert branch.cfg.optim.warmup_steps == trunk.cfg.optim.warmup_steps
    assert savings(plan.runs)["ratio"] <= 0.6



def test_data_sizes_of_the_same_length_plan_one_branch_and_say_so():
    """Two data sizes that round to the same number of steps are one run: the second is reported, not dropped."""
    plan = plan_sweep([*BRANCHES, "sweep.models=[16]", "sweep.data_sizes=[10240,10250,20480]"])
    assert len([r for r in plan.runs if r.cfg.trainer.branch_of]) == 2
    (skipped,) = plan.skipped
    assert skipped.point["budget.tokens"] == 10250 and "one branch covers both" in skipped.reason

def test_a_branch_is_the_independent_wsd_run(runs_root, tmp_path):
    # the trunk validates at its last step (32), where the long branch starts: that checkpoint says the trunk's
    # stream ended, and the branch must go on with its own (not start a second pass)
    plan = plan_sweep([*BRANCHES, *TRACE, "sweep.models=[32]", "sweep.data_sizes=[5120,10240]",
                       "trainer.val_every=16", f"run.root={runs_root}"])
    assert launch(plan, out=io.StringIO()) == 0
    trunk, short, long = (RunFolder(r.path) for r in plan.runs)
    record = long.read_record()
    assert record["parent"] == trunk.path.name and record["branch_step"] == 32 and record["attempts"] == 1
    assert math.isclose(record["cost"], record["C"] * (1 - 32 / 40))
    assert "resumed_from_step" not in record
    table = load_runs(runs_root / "br")
    assert set(table["status"]) == {"completed"} and table["trunk"].fillna(False).sum() == 1
    # the same wsd run at D, trained from scratch on its own: the same batches and the same loss
    spec = plan.runs[2]
    alone = plan_run(tiny(TINY_GPT, tmp_path / "alone", *TRACE, "optim.schedule=wsd", "budget.tokens=10240",
                          f"optim.warmup_steps={spec.cfg.optim.warmup_steps}", "trainer.threads=1"))
    assert alone.run_id == spec.run_id  # a branch has the identity of the run it stands for
    train(alone)
    whole, trunk_trace, branch_trace = (batch_trace(f) for f in (RunFolder(alone.path), trunk, long))
    assert {k: v for k, v in whole.items() if k[0] < 32} == {k: v for k, v in trunk_trace.items() if k[0] < 32}
    assert {k: v for k, v in whole.items() if k[0] >= 32} == branch_trace
    assert math.isclose(record["loss"], RunFolder(alone.path).read_record()["loss"], rel_tol=1e-5)
    curve = long.read_metrics()  # the branch's curve starts at step 0 (the trunk's rows up to 32)
    assert curve[0]["step"] <= 5 and curve[-1]["step"] == 40


def test_a_killed_trunk_resumes_and_no_branch_trains_twice(runs_root):
    command = [sys.executable, "-m", "scaling.cli", "sweep", *BRANCHES, "sweep.models=[32]",
               "sweep.data_sizes=[10240,20480,30720]", f"run.root={runs_root}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trunk = wait_for(lambda: next((RunFolder(p.parent.parent) for p in (runs_root / "br").glob("*/checkpoints/step-*")),
                                  None), 240, "the trunk's first branch point")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert trunk.read_record()["step"] < trunk.read_record()["steps"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    table = load_runs(runs_root / "br").set_index("run_id")
    assert set(table["status"]) == {"completed"} and len(table) == 4
    assert table.loc[trunk.path.name, "resumed_from_step"] > 0
    branches = table[table["parent"].notna()]
    assert len(branches) == 3 and set(branches["attempts"]) == {1}


def test_the_bootstrap_draws_a_trunk_with_its_branches():
    import numpy as np
    import pandas as pd

    from scaling.analysis import fit

    rows = [{"run_id": f"r{i}{j}", "parent": f"t{i}", "N": n, "D": d, "C": 6 * n * d, "status": "completed",
             "loss": (1.8 + 400 / n ** 0.34 + 2000 / d ** 0.36) * (1 + 0.002 * np.sin(7 * i + j))}
            for i, n in enumerate([1e6, 2e6, 4e6, 8e6]) for j, d in enumerate([2e7, 4e7, 8e7, 1.6e8])]
    result = fit(pd.DataFrame(rows), law="chinchilla", bootstrap=20)
    assert result.bootstrap["clusters"] == "run_cluster"  # 4 clusters of 4 branches, not 16 independent runs
    assert result.ci["alpha"][0] < 0.34 < result.ci["alpha"][1]


def test_a_ladder_of_branches_trains_and_its_fit_scores_the_target(runs_root, capsys):
    """sweep.branches in a ladder: trunks and cooldowns train; the fit sees the fitted budgets' branches only
    (no trunk, no target) and scores the held-out budget's best branch."""
    from scaling.cli import main

    plan = plan_sweep(["experiment=quickstart_v1", "sweep.name=lb", "sweep.branches=true", "sweep.budgets=[2e8,3e8,4.5e8,6.75e8,1.5e9]",
                       "sweep.sizes_per_budget=2", "sweep.span=0.15", "sweep.min_steps=20",
                       "sweep.tokens_per_param_prior=10", "sweep.batch_rule='256'", "data.seq_len=32",
                       "data.val_tokens=4096", "trainer.val_every=10", "trainer.log_every=5",
                       "trainer.checkpoint_every=10", "trainer.progress=false", f"run.root={runs_root}"])
    assert launch(plan, out=io.StringIO()) == 0
    table = load_runs(runs_root / "lb")
    branches = table[table["parent"].notna()]
    assert len(table) == len(plan.runs) and set(table["status"]) == {"completed"}
    assert len(branches) == 10 and branches["budget_flops"].notna().all()
    assert all(r["attempts"] == 1 for r in (RunFolder(s.path).read_record() for s in plan.runs))  # none twice
    assert main(["fit", str(runs_root / "lb"), "--law", "compute", "--frontier", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["n_points"] == 4  # the best branch of each fitted budget
    scored = result["details"]["targets"]["runs"]
    assert len(scored) == 1 and scored[0]["run"] in set(branches["run_id"])
    fitted = branches[branches["budget_flops"] < 1.4e9]
    top_fitted = fitted.loc[fitted.groupby("budget_flops")["loss"].idxmin(), "C"].max()  # a trunk runs past it
    assert result["details"]["targets"]["decades"] == pytest.approx(math.log10(scored[0]["C"] / top_fitted))
