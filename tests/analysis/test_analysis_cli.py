"""`scaling fit` (scaling.commands.fit) on CSV files and sweep folders."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scaling.analysis.synthetic import isoflop_table, training_curves
from scaling.cli import main


def scaling_fit(argv: list[str]) -> int:
    return main(["fit", *argv])


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    # a table as someone else would write it: other column names, no D, one failed run
    table = isoflop_table(seed=0).rename(columns={"N": "Model Size", "C": "Training FLOP"}).drop(columns=["D"])
    table.loc[0, "status"] = "failed"
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    table.to_csv(path, index=False)
    return path


COLUMNS = "N=Model Size,C=Training FLOP,loss=loss"


def test_json_output(csv_path, capsys):
    assert scaling_fit([str(csv_path), "--columns", COLUMNS, "--json", "--holdout", "2", "--bootstrap", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "chinchilla"
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert {"ci", "n_points", "objective", "excluded", "a", "b", "G"} <= set(out)
    assert out["n_points"] == 62
    assert out["excluded"] == [{"run": "b0-n0-s0", "reason": "status failed"}]
    assert set(out["ci"]) >= {"E", "A", "B", "alpha", "beta", "a", "b", "G"}
    assert out["backtest"]["held_out"] == 2 and out["backtest"]["mean_abs_rel_error"] < 0.05
    assert "D derived as C / (6 N)" in out["fit"]["notes"]


def test_readable_table(csv_path, capsys):
    assert scaling_fit([str(csv_path), "--columns", COLUMNS, "--law", "isoflop"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("law isoflop") and "left out: b0-n0-s0: status failed" in out


def test_compare(csv_path, capsys):
    assert scaling_fit([str(csv_path), "--columns", COLUMNS, "--compare"]) == 0
    out = capsys.readouterr().out
    assert "chinchilla" in out and "isoflop" in out and "agree" in out


def test_predict_and_where(csv_path, capsys):
    assert scaling_fit([str(csv_path), "--columns", COLUMNS, "--where", "budget >= 2", "--predict", "1e22,1e23",
                        "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 45 and [p["C"] for p in out["predictions"]] == [1e22, 1e23]


@pytest.mark.parametrize("argv, message", [
    (["missing.csv"], "does not exist"),
    (["{csv}"], "needs column(s) N, D"),
    (["{csv}", "--columns", "N=Nope"], "not in the table"),
    (["{csv}", "--columns", COLUMNS, "--where", "nope >"], "--where"),
    (["{csv}", "--columns", COLUMNS, "--law", "envelope"], "needs per-step curves"),
    (["{csv}", "--columns", COLUMNS, "--where", "budget == 0 and width < 4"], "needs at least 6 usable runs"),
])
def test_errors_are_one_line_and_exit_2(csv_path, capsys, argv, message):
    argv = [a.replace("{csv}", str(csv_path)) for a in argv]
    assert scaling_fit(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error:")


def test_tsv_tables_and_unreadable_files(csv_path, tmp_path, capsys):
    tsv = tmp_path / "runs.tsv"
    pd.read_csv(csv_path).to_csv(tsv, sep="\t", index=False)
    assert scaling_fit([str(tsv), "--columns", COLUMNS, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] == 62
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    for name, message in (("notes.txt", "unknown file type '.txt'"), ("broken.parquet", "cannot read")):
        assert scaling_fit([str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_sweep_folder_with_curves(tmp_path, capsys):
    store = pytest.importorskip("scaling.store")
    runs, curves = training_curves(noise=0.002)
    sweep = tmp_path / "runs" / "ladder"
    for run in runs.to_dict(orient="records"):
        folder = store.RunFolder(sweep / run["run_id"])
        folder.path.mkdir(parents=True)
        folder.write_record({**run, "sweep": "ladder", "seed": 0})
        rows = curves[curves["run_id"] == run["run_id"]].drop(columns="run_id")
        folder.write_metrics(rows.to_dict(orient="records"))
    failed = store.RunFolder(sweep / "broken")
    failed.path.mkdir()
    failed.write_record({"run_id": "broken", "status": "failed", "error": "CUDA out of memory"})
    assert scaling_fit([str(sweep), "--law", "envelope", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"] == pytest.approx(0.4516, abs=0.03)
    assert {"run": "broken", "reason": "status failed"} in out["excluded"]
    assert scaling_fit([str(sweep), "--law", "compute", "--holdout", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backtest"]["held_out"] == 2 and out["backtest"]["decades"] > 0


def test_a_law_whose_variable_never_varies_predicts_nothing_beyond_it(tmp_path, capsys):
    """An lr or width sweep at one token count: Chinchilla's D terms are not identified, so fit, report and
    predict give no allocation and no prediction away from that D (they used to print one, outside its interval)."""
    N = [2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6]
    table = pd.DataFrame({"N": N, "D": 2e5, "loss": [2.0 + 30 / n ** 0.35 for n in N]})
    table["C"] = 6 * table["N"] * table["D"]
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    assert scaling_fit([str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fit"]["unvaried"] == ["D"] and "a" not in out
    assert any("every fitted run has D = 200,000" in w for w in out["warnings"])
    assert main(["report", str(path), "-o", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "no prediction: every fitted run has the same D" in printed and "predicted loss" not in printed
    assert "N_opt" not in printed
