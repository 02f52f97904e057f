"""The run folder: one writer of record.json, locked updates, damaged records, run ownership."""

from __future__ import annotations

import json
import multiprocessing
import re
import signal
import subprocess
import sys
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



def test_only_the_store_reads_config_yaml():
    """Run folders' config.yaml is read through RunFolder.read_config; a damaged one is named."""
    readers = [f"{path.relative_to(PACKAGE)}:{number}" for path in PACKAGE.rglob("*.py") if path.name != "store.py"
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if re.search(r"config_path\.read_text|config\.yaml\"\)\.read_text", line)]
    assert readers == []


@pytest.mark.parametrize("content,error", [("model: {width: 8}\n", None), ("[1, 2]\n", "holds a list"),
                                           ("model: {width: 8\n", "is not valid YAML"), (None, "")])
def test_a_run_config_is_read_or_named(tmp_path, content, error):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    if content is not None:
        folder.config_path.write_text(content)
    if error is None:
        assert folder.read_config() == {"model": {"width": 8}}
    else:
        with pytest.raises(ValueError if content else FileNotFoundError, match=re.escape(str(folder.config_path))):
            folder.read_config()

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


def test_curves_are_read_in_one_pass_exactly_as_file_by_file(tmp_path):
    import math

    import pandas as pd

    from scaling.store import load_runs

    def folder(name: str, status: str = "completed") -> RunFolder:
        run = RunFolder(tmp_path / "sweep" / name)
        run.write_record({"run_id": name, "status": status})
        return run

    folder("a").write_metrics([{"step": 10, "D_seen": 100, "train_loss": 0.1 + 0.2, "lr": 1e-3 / 3},
                               {"step": 20, "D_seen": 200, "train_loss": 1 / 3, "val_loss": math.pi}])
    folder("b", "planned")  # no metrics.csv
    folder("c").write_metrics([])  # a header only
    (folder("d").metrics_path).write_text("step,loss\n5,2.5\n\n6,\n")  # another header (a legacy file)
    folder("e").write_metrics([{"step": 1, "D_seen": 8, "train_loss": 2.0000000000000004}])
    _, curves = load_runs(tmp_path / "sweep", curves=True)
    folders = [RunFolder(tmp_path / "sweep" / n) for n in "abcde"]
    frames = [pd.DataFrame(f.read_metrics()).assign(run_id=f.path.name) for f in folders]
    expected = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    pd.testing.assert_frame_equal(curves, expected, check_exact=True)
    assert list(curves["run_id"]) == ["a", "a", "d", "d", "e"] and curves["train_loss"].iloc[0] == 0.1 + 0.2
    import numpy as np

    values = np.random.default_rng(0).standard_normal(20_000) * 10.0 ** np.arange(-40, 40).repeat(250)
    folder("f").write_metrics([{"step": i, "train_loss": float(v)} for i, v in enumerate(values)])
    _, curves = load_runs(tmp_path / "sweep", curves=True)
    assert (curves.loc[curves["run_id"] == "f", "train_loss"].to_numpy() == values).all()  # read back exactly
