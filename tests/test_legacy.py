"""A sweep folder written by the version before the restructuring (3338502) loads, reports and
resumes with this one (tests/data/legacy_sweep: two completed runs and one killed at step 60 of 160)."""

from __future__ import annotations

import shutil
from pathlib import Path

from scaling.cli import main
from scaling.store import RunFolder, load_runs
from tests.conftest import TINY_GPT

LEGACY = Path(__file__).parent / "data" / "legacy_sweep"
GRID = [*TINY_GPT, "sweep=grid", "sweep.name=legacy", "++sweep.axes={model.width:[16,32]}", "budget.tokens=10240",
        "trainer.threads=1"]


def test_an_old_sweep_folder_loads_reports_and_resumes(tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(LEGACY, root)
    table = load_runs(root / "legacy").set_index("run_id")
    assert table["status"].to_dict() == {"15437aa686": "completed", "2bd59cacf3": "interrupted",
                                         "91bc98136c": "completed"}  # the killed run's owner is long gone
    assert main(["status", str(root / "legacy")]) == 0
    assert "last step 60" in capsys.readouterr().out
    code = main(["report", str(root / "legacy"), "-o", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err  # two usable runs: a one-line refusal to fit is fine
    assert main(["sweep", *GRID, f"run.root={root}"]) == 0  # the same run ids: nothing to train
    assert "nothing to train" in capsys.readouterr().out
    killed = ["model.width=48", "budget.tokens=40960", "sweep.name=legacy"]
    assert main(["train", *TINY_GPT, *killed, "trainer.threads=1", f"run.root={root}"]) == 0
    record = RunFolder(root / "legacy" / "2bd59cacf3").read_record()
    assert record["status"] == "completed" and record["resumed_from_step"] == 60 and record["attempts"] == 2
    assert record["step"] == 160
