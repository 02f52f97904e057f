"""One run end to end: training, the run folder, resume after SIGKILL, skip when complete."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pandas as pd

from scaling.accounting import gpt_flops_per_token
from scaling.plan import plan_run
from scaling.store import RunFolder, load_runs
from scaling.train import lr_factor, train
from tests.conftest import TINY_CNN, TINY_GPT, tiny, wait_for


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert factors[0] == 0.1 and factors[9] == 1.0
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert math.isclose(lr_factor(100, 100, 10, 0.1), 0.1)


def test_gpt_run_records_everything(runs_root):
    cfg = tiny(TINY_GPT, runs_root, "data.name=pystdlib", "budget.tokens=20000")
    spec = plan_run(cfg)
    record = train(spec)
    folder = RunFolder(spec.path)
    assert record["status"] == "completed" and folder.read_record()["status"] == "completed"
    assert abs(record["D"] - 20000) <= 8 * 32  # within one batch of the budget
    assert record["N"] == spec.N and record["C"] == spec.C
    assert record["flops_per_unit"] == gpt_flops_per_token(32, 1, 32, 256)
    assert record["loss"] < math.log(256)
    metrics = pd.read_csv(folder.metrics_path)
    assert metrics["step"].iloc[-1] == spec.steps and metrics["val_loss"].notna().sum() >= 2
    assert metrics["D_seen"].iloc[-1] == spec.D
    assert (folder.path / "config.yaml").read_text().count("width: 32") == 1
    assert folder.last_checkpoint.exists()
    table = load_runs(runs_root)
    assert list(table["run_id"]) == [spec.run_id] and table["loss"].iloc[0] == record["loss"]
    again = train(spec)  # the same config in the same place does nothing
    assert again["finished"] == record["finished"]


def test_cnn_on_digits_learns(runs_root):
    cfg = tiny(TINY_CNN, runs_root, "budget.samples=12000", "model.width=8")
    record = train(plan_run(cfg))
    assert record["status"] == "completed"
    assert record["val_accuracy"] > 0.6  # chance is 0.1


def test_sigkill_then_resume_from_checkpoint(runs_root, tmp_path):
    overrides = [*TINY_GPT, f"run.root={runs_root}", "budget.tokens=150000", "trainer.checkpoint_every=20",
                 "trainer.threads=1"]
    command = [sys.executable, "-m", "scaling.cli", "train", *overrides]
    spec = plan_run(tiny(TINY_GPT, runs_root, "budget.tokens=150000"))
    folder = RunFolder(spec.path)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(folder.last_checkpoint.exists, 120, "the run's first checkpoint")
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = json.loads(folder.record_path.read_text())  # always parses
    assert killed["status"] == "running" and killed["step"] < spec.steps
    from scaling.commands.status import status_table

    shown = status_table(folder.path.parent)  # the owner is gone: not shown as running
    assert f"{spec.run_id} interrupted" in shown and f"last step {killed['step']} at" in shown
    pd.read_csv(folder.metrics_path)  # always parses
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = folder.read_record()
    assert record["status"] == "completed" and record["resumed_from_step"] >= 20
    assert record["attempts"] == 2
    steps = pd.read_csv(folder.metrics_path)["step"]
    assert steps.is_monotonic_increasing and steps.iloc[-1] == spec.steps  # no duplicated rows


def test_gradient_accumulation_keeps_the_global_batch(runs_root):
    cfg = tiny(TINY_GPT, runs_root, "data.name=pystdlib", "budget.tokens=8192", "optim.grad_accum=2")
    spec = plan_run(cfg)
    assert spec.steps == 8192 // (8 * 32) and spec.units_per_step == 8 * 32
    record = train(spec)
    assert record["status"] == "completed" and record["step"] == spec.steps
    assert pd.read_csv(RunFolder(spec.path).metrics_path)["D_seen"].iloc[-1] == spec.D
