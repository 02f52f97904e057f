"""One live process owns a run (issue 14): concurrent sweeps train each run once, a killed sweep
leaves no training behind, signals end in the right state and exit code, and a worker that fails
before training records why."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from scaling.launch.local import launch
from scaling.plan import plan_sweep
from scaling.store import RunFolder, Status, load_runs
from tests.conftest import TINY_GPT, wait_for

GRID = [*TINY_GPT, "sweep=grid", "sweep.name=own", "++sweep.axes={model.width:[16,32,48]}", "budget.tokens=20480",
        "trainer.threads=1"]


def sweep_command(root: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "scaling.cli", "sweep", *GRID, f"run.root={root}", *more]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")  # a zombie has stopped training


def running_record(root: Path) -> dict:
    folders = [RunFolder(p.parent) for p in (root / "own").glob("*/record.json")]
    return next((f.read_record() for f in folders if f.read_record().get("status") == "running"), {})


def test_two_sweeps_at_once_train_every_run_once(runs_root):
    first = subprocess.Popen(sweep_command(runs_root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(sweep_command(runs_root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert all("sweep own: 3/3 completed" in out for out in outputs), outputs
    table = load_runs(runs_root / "own")
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    assert list(table["attempts"]) == [1, 1, 1]


def test_sigkill_on_a_sweep_leaves_no_training_behind(runs_root):
    process = subprocess.Popen(sweep_command(runs_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = wait_for(lambda: running_record(runs_root), 120, "a run to start training")
    worker = record["owner"]["pid"]
    assert worker != process.pid and alive(worker)
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: not alive(worker), 60, f"the sweep's worker {worker} to end with its sweep")
    statuses = {RunFolder(p.parent).live_status() for p in (runs_root / "own").glob("*/record.json")}
    assert Status.RUNNING not in statuses
    again = subprocess.run(sweep_command(runs_root), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    table = load_runs(runs_root / "own")
    assert set(table["status"]) == {"completed"}


def test_sigterm_on_train_records_interrupted_and_exits_143(runs_root):
    command = [sys.executable, "-m", "scaling.cli", "train", *TINY_GPT, f"run.root={runs_root}",
               "budget.tokens=400000", "trainer.threads=1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = wait_for(lambda: next((RunFolder(p.parent) for p in runs_root.glob("*/*/metrics.csv")), None), 120,
                      "the run to log its first steps")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 143, out
    record = folder.read_record()
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"]


def test_a_worker_failing_before_training_records_the_failure(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    plan = plan_sweep([*TINY_GPT, "data.name=files", f"data.paths=[{corpus}]", "data.glob=*.txt", "budget.tokens=4096",
                       "data.val_tokens=1024", f"run.root={tmp_path / 'runs'}", "trainer.threads=1"])
    (corpus / "a.txt").unlink()  # the data goes away between planning and training
    out = io.StringIO()
    assert launch(plan, out=out) == 1
    record = RunFolder(plan.runs[0].path).read_record()
    assert record["status"] == "failed" and record["error"], record
    assert "0/1 completed" in out.getvalue() and record["error"].splitlines()[0][:40] in out.getvalue()
