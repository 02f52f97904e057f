"""One damaged record.json (issue 14): every command names it in one line and goes on with the
other runs; `scaling sweep` trains that run again."""

from __future__ import annotations

from scaling.cli import main
from scaling.store import RunFolder, load_runs
from tests.conftest import TINY_GPT

SWEEP = [*TINY_GPT, "sweep=grid", "sweep.name=dmg", "++sweep.axes={model.width:[16,32]}", "budget.tokens=6144",
         "trainer.threads=1"]


def test_a_damaged_record_is_named_and_the_rest_go_on(runs_root, capsys):
    overrides = [*SWEEP, f"run.root={runs_root}"]
    assert main(["sweep", *overrides]) == 0
    sweep = runs_root / "dmg"
    damaged, healthy = sorted(p.parent for p in sweep.glob("*/record.json"))
    (damaged / "record.json").write_text('{"status": "compl')  # truncated
    capsys.readouterr()

    assert main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert f"{damaged / 'record.json'} is not valid JSON" in out and "1 completed, 1 damaged" in out
    assert healthy.name in out

    assert main(["plan", *overrides]) == 0
    assert "damaged" in capsys.readouterr().out

    assert main(["report", str(sweep), "-o", str(runs_root / "report")]) in (0, 2)  # 1 usable run: may refuse to fit
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) <= 1

    assert main(["sweep", *overrides]) == 0  # trains the damaged run again
    table = load_runs(sweep)
    assert set(table["status"]) == {"completed"} and len(table) == 2
    assert (damaged / "record.json.damaged").exists()  # kept for a look, never lost silently
    assert RunFolder(damaged).read_record()["attempts"] == 1
