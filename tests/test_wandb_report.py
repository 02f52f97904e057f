"""`scaling report SOURCE --wandb`: one offline W&B report run in the sweep's group, read back from its files.

The sweep is the shipped quickstart ladder (tests/data/quickstart_v1.csv: 18 runs of experiment=quickstart_v1 trained on our
machine) laid out as run folders, each with its record and a config.yaml composed from the real config
(logger=wandb, as its runs were trained), so the report is fitted and logged without training anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scaling.cli import main as cli
from scaling.analysis.wandb_report import report_settings
from scaling.config import LoggerConfig, to_dict
from scaling.store import RunFolder, load_runs
from tests.analysis.test_analysis_no_torch import PRELUDE
from tests.conftest import TINY_GPT, tiny
from tests.wandb_offline import logged_file, offline_runs, read_offline_run

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "tests" / "data" / "quickstart_v1.csv"
VARIED = {"model.width": "width", "model.depth": "depth", "optim.lr": "lr", "optim.batch_size": "batch_size",
          "budget.flops": "budget_flops"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The quickstart ladder as a sweep folder: record.json + a real composed config.yaml per run."""
    root = tmp_path_factory.mktemp("wandb_report") / "runs"
    base = to_dict(tiny(TINY_GPT, root, "logger=wandb", "logger.project=scaling-tests", "logger.mode=offline",
                        "sweep.name=quickstart"))
    for _, row in pd.read_csv(LADDER).iterrows():
        record = {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        folder = RunFolder(root / "quickstart" / record["run_id"])
        folder.path.mkdir(parents=True)
        config = json.loads(json.dumps(base))
        for dotted, column in VARIED.items():
            section, key = dotted.split(".")
            config[section][key] = record[column]
        folder.config_path.write_text(yaml.safe_dump(config))
        folder.write_record({**record, "unit": "tokens"})
    return root / "quickstart"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No API key; W&B's artifact staging in the test's folder."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))


def test_report_run_holds_the_run_table_figures_laws_backtest_and_artifact(sweep, tmp_path, capsys, offline):
    out = tmp_path / "report"
    assert cli(["report", str(sweep), "-o", str(out), "--bootstrap", "10", "--wandb"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    found = offline_runs(out)
    assert len(found) == 1 and f"is offline: upload it with `wandb sync {found[0]}`" in printed[-1]  # logger.mode=offline
    run = read_offline_run(found[0])
    # where the sweep's runs went: their project (from their config.yaml), the sweep's group
    assert (run["project"], run["group"], run["job_type"], run["exit_code"]) == \
        ("scaling-tests", "quickstart", "report", 0)
    assert "report" in run["tags"] and run["config"]["law"] == "chinchilla"
    history, summary = run["history"], run["summary"]
    assert {key: summary[key]["_type"] for key in ("runs", "laws", "backtest")} == dict.fromkeys(
        ("runs", "laws", "backtest"), "table-file")  # the run's page shows the tables
    assert (summary["n_runs"], summary["n_fitted"]) == (18, 18)

    assert history["runs"]["_type"] == "table-file"
    table = json.loads(logged_file(found[0], history["runs"]).read_text())
    runs = load_runs(sweep).set_index("run_id")
    assert len(table["data"]) == len(runs) == 18
    assert table["columns"][:10] == ["run_id", "sweep", "status", "family", "N", "N_nonembed", "D", "C", "loss",
                                     "tokens_per_param"]
    ladder = pd.read_csv(LADDER)
    varying = {key for key, column in VARIED.items() if ladder[column].nunique() > 1}
    assert varying == {"model.width", "optim.lr", "optim.batch_size", "budget.flops"}  # model.depth is 2 throughout
    assert set(table["columns"][10:]) == varying  # the config keys that vary, and no key that does not
    for cells in table["data"]:
        row = dict(zip(table["columns"], cells))
        expected = runs.loc[row["run_id"]]
        assert (row["N"], row["D"], row["loss"], row["model.width"], row["optim.lr"]) == \
            (expected["N"], expected["D"], expected["loss"], expected["width"], expected["lr"])
        assert row["tokens_per_param"] == pytest.approx(expected["D"] / expected["N"])

    figures = {key.split("/", 1)[1]: value for key, value in history.items() if key.startswith("figures/")}
    assert set(figures) == {p.stem for p in out.glob("*.png")} and "loss_vs_compute" in figures
    text = logged_file(found[0], figures["loss_vs_compute"]).read_text()
    assert "bdata" not in text  # plain lists, which any plotly.js draws (W&B's need not read typed arrays)
    plot = json.loads(text)
    assert figures["loss_vs_compute"]["_type"] == "plotly-file" and plot["layout"]["meta"]["title"] == "Loss vs compute"
    finals = next(t for t in plot["data"] if t.get("meta") == "final")
    assert sorted(finals["y"]) == pytest.approx(sorted(runs["loss"]))  # interactive: every run, hover text included
    assert len(finals["text"]) == 18

    laws = json.loads(logged_file(found[0], history["laws"]).read_text())
    by_name = {(r[0], r[2]): dict(zip(laws["columns"], r)) for r in laws["data"]}
    for parameter in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        entry = by_name[("chinchilla", parameter)]
        assert entry["role"] == "main" and entry["lo"] <= entry["estimate"] <= entry["hi"], parameter
    assert by_name[("chinchilla", "a")]["estimate"] == pytest.approx(summary["a"])
    assert summary["predicted_loss_lo"] <= summary["predicted_loss"] <= summary["predicted_loss_hi"]
    backtest = json.loads(logged_file(found[0], history["backtest"]).read_text())
    assert len(backtest["data"]) == summary["backtest_held_out"] >= 1
    assert backtest["columns"] == ["run", "C", "loss", "predicted", "rel_error"]
    for run_id, _, loss, predicted, error in backtest["data"]:
        assert loss == runs.loc[run_id, "loss"] and error == pytest.approx(predicted / loss - 1)

    (artifact,) = run["artifacts"][-1:]
    assert (artifact["name"], artifact["type"]) == ("report-quickstart", "report")
    assert "report.html" in artifact["files"]
    assert set(artifact["files"]) == {"report.html", *(p.name for p in out.glob("*.png")),
                                      *(p.name for p in out.glob("*.svg"))}


def test_settings_come_from_the_sweeps_runs_then_the_command_line(sweep, tmp_path):
    assert report_settings([], sweep) == LoggerConfig(name="wandb", project="scaling-tests", mode="offline")
    given = ["logger=wandb", "logger.project=elsewhere", "logger.entity=me", "logger.tags=ladder,v2",
             f"logger.dir={tmp_path / 'w'}", "logger.mode=auto"]
    assert report_settings(given, sweep) == LoggerConfig(name="wandb", project="elsewhere", entity="me", mode="auto",
                                                         tags=["ladder", "v2"], dir=str(tmp_path / "w"))
    assert report_settings([], LADDER) == LoggerConfig(name="wandb", project="scaling")  # a table: the defaults


def test_bad_settings_are_one_line_before_anything_is_fitted(sweep, tmp_path, capsys, offline):
    out = tmp_path / "report"
    for settings in (["logger.mode=sometimes"], ["logger.colour=red"], ["logger.project"]):
        assert cli(["report", str(sweep), "-o", str(out), "--wandb", *settings]) == 2
    assert cli(["report", "--wandb", str(sweep), "-o", str(out)]) == 2  # SOURCE taken as a setting
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "logger.mode=sometimes" in lines[0] and "auto, online, offline, disabled" in lines[0]
    assert "logger.KEY=VALUE" in lines[1] and "'logger.colour=red'" in lines[1] and "'logger.project'" in lines[2]
    assert not out.exists() and not list(tmp_path.rglob("offline-run-*"))


def _blocked(names: tuple[str, ...], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`scaling ARGS` in a fresh interpreter where `names` cannot be imported (prelude of the no-torch test)."""
    prelude = PRELUDE.replace('BLOCKED = ("torch", "torchvision", "pytorch_lightning", "lightning", '
                              '"lightning_fabric", "ray")', f"BLOCKED = {names!r}")
    assert prelude != PRELUDE
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env.update(PYTHONPATH=str(ROOT), WANDB_DATA_DIR=str(cwd / "wandb-data"))
    code = prelude + "from scaling.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


CHINCHILLA = ["report", str(ROOT / "tests" / "data" / "isoflops_chinchilla.csv"), "--columns", "N=params,D=tokens,C=budget",
              "--bootstrap", "0", "--wandb"]


def test_without_wandb_installed_one_line_and_nothing_written(tmp_path):
    missing = _blocked(("wandb",), *CHINCHILLA, "-o", str(tmp_path / "report"), cwd=tmp_path)
    assert missing.returncode == 2 and not (tmp_path / "report").exists()
    assert missing.stderr.splitlines()[0] == ("error: --wandb needs the wandb package: pip install wandb "
                                              "(or leave --wandb out)")


@pytest.mark.slow
def test_report_to_wandb_needs_no_torch(tmp_path):
    """As tests/analysis/test_analysis_no_torch.py, with --wandb: W&B's client brings no training stack."""
    training_stack = ("torch", "torchvision", "pytorch_lightning", "lightning", "lightning_fabric", "ray")
    logged = _blocked(training_stack, *CHINCHILLA, "-o", str(tmp_path / "report"), cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr[-3000:]
    assert logged.stderr.strip().endswith("blocked imports: []"), logged.stderr[-3000:]
    (found,) = offline_runs(tmp_path / "report")
    run = read_offline_run(found)
    assert run["group"] == "isoflops_chinchilla" and run["project"] == "scaling" and run["exit_code"] == 0
    assert run["history"]["runs"]["nrows"] == 85
