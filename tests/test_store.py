"""The run folder: one writer of record.json, locked updates, damaged records, run ownership."""

from __future__ import annotations

import json
import multiprocessing
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scaling.store import DamagedRecord, RunBusy, RunFolder, Status

PACKAGE = Path(__file__).resolve().parents[1] / "scaling"


def _bump(path: str, worker: int, times: int) -> None:
    folder = RunFolder(path)
    for i in range(times):
        folder.change(lambda record: {**record, "count": record.get("count", 0) + 1, f"w{worker}": i + 1})


def test_concurrent_updates_lose_nothing(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_record({"status": "running"})
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump, args=(str(folder.path), w, 125)) for w in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert all(p.exitcode == 0 for p in workers)
    record = folder.read_record()
    assert record["count"] == 1000 and all(record[f"w{w}"] == 125 for w in range(8))
    assert record["status"] == "running"


def test_only_the_store_writes_record_json():
    """No other module names the record's path where it writes a file, or imports the writer."""
    writes = re.compile(r"(record\.json|record_path).*(write_text|write_bytes|open\(|replace\(|atomic_write)"
                        r"|atomic_write_text\(.*record|json\.dump\(.*record")
    writers = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py") if path.name != "store.py"
               for number, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
    assert writers == []
    assert "record.json" in (PACKAGE / "store.py").read_text()


@pytest.mark.parametrize("content,problem", [("", "is empty"), ('{"status": "compl', "is not valid JSON"),
                                             ("[1, 2]", "holds a list")])
def test_a_damaged_record_is_named(tmp_path, content, problem):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.record_path.write_text(content)
    with pytest.raises(DamagedRecord, match=re.escape(str(folder.record_path)) + ".*" + problem):
        folder.read_record()


def test_status_transitions(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_record({"status": "planned"})
    assert folder.status is Status.PLANNED
    folder.end_unfinished(Status.FAILED, "worker died")
    assert folder.read_record()["error"] == "worker died"
    folder.finish(Status.COMPLETED, loss=1.5)
    assert folder.end_unfinished(Status.FAILED, "late verdict")["status"] == "completed"  # an ended run keeps it
    assert json.loads(folder.record_path.read_text())["status"] == "completed"


HOLD = """
import sys, time
from scaling.store import RunFolder
with RunFolder(sys.argv[1]).own():
    print("owned", flush=True)
    time.sleep(60)
"""


def test_a_run_is_owned_by_one_live_process(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_record({"status": "running"})
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "owned"
        assert folder.owner()["pid"] == holder.pid
        assert folder.live_status() is Status.RUNNING
        with pytest.raises(RunBusy, match=f"pid {holder.pid} on "):
            with folder.own(wait=False):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert folder.owner() is None  # the lock died with its holder
    assert folder.live_status() is Status.INTERRUPTED
    with folder.own(wait=False):
        assert folder.owner()["pid"] != holder.pid
