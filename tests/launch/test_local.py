"""launcher=local: a sweep runs, skips what completed, records failures, resumes after Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

from scaling.store import RunFolder, load_runs
from tests.conftest import TINY_GPT, wait_for

SMALL_SWEEP = [*TINY_GPT, "sweep=grid", "sweep.name=tiny", "++sweep.axes={model.width:[16,32]}",
               "++sweep.axes={budget.tokens:[6000,12000]}", "trainer.threads=1"]


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
    # SIG_DFL in the child: under a background job of a non-interactive shell (a CI script run with &) SIGINT is
    # ignored and the sweep would inherit that; a terminal's Ctrl-C is what this test sends
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def a_long_one_checkpointed_mid_way():  # the launcher starts the most expensive runs first
        ckpts = list((runs_root / "tiny").glob("*/checkpoints/last.ckpt")) if (runs_root / "tiny").exists() else []
        return any(RunFolder(c.parent.parent).read_record().get("D", 0) > 50000
                   and RunFolder(c.parent.parent).read_record().get("status") == "running" for c in ckpts)

    wait_for(a_long_one_checkpointed_mid_way, 180, "a checkpoint of a long run still training")
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
