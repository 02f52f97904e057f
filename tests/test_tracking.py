"""logger=wandb without a key (offline runs in the sweep's group, their config with the run's size and the
sweep's axes), `load_runs("wandb:...")` and `scaling pull` through a stand-in W&B Api, and scaling.tracking
importing no Lightning.

No W&B server is reachable here, so the pull is tested against a stand-in of `wandb.Api` whose
runs carry what the real ones carry (config dict, dict-like summary, group, state, name, id),
built from the offline runs a real sweep wrote (read back by tests/wandb_offline.py).
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
from scaling.plan import plan_run
from scaling.store import TABLE_COLUMNS, RunFolder, load_runs
from scaling.tracking import (SIZE_KEYS, parse_wandb_path, resolve_mode, run_config, runs_to_table, sweep_axes,
                              wandb_run_id)
from scaling.train.wandb_logger import make_loggers
from scaling.train import InjectedFailure, train
from tests.conftest import TINY_GPT, tiny
from tests.wandb_offline import offline_runs, read_offline_run

SWEEP = [*TINY_GPT, "sweep=grid", "sweep.name=ladder", "logger=wandb", "logger.project=scaling-tests",
         "++sweep.axes={model.width:[16,32,48],budget.tokens:[8192,16384]}"]


class StandInSummary:
    """Dict-like, as wandb.apis.public's HTTPSummary: keys, items, get, [] and `in`."""

    def __init__(self, values: dict):
        self._values = dict(values)

    def keys(self):
        return self._values.keys()

    def items(self):
        return self._values.items()

    def get(self, key, default=None):
        return self._values.get(key, default)

    def __getitem__(self, key):
        return self._values[key]

    def __contains__(self, key):
        return key in self._values


class StandInRun:
    """A wandb.apis.public.Run: id, name, group, state, job_type, tags, config (dict), summary."""

    def __init__(self, offline: dict, state: str, **changes):
        self.id, self.name, self.group = offline["id"], offline["name"], offline["group"]
        self.job_type, self.tags, self.state = offline["job_type"], offline["tags"], state
        self.config = offline["config"]
        self.summary = StandInSummary({**offline["summary"], **changes})


class StandInApi:
    """wandb.Api(): runs(path, filters) lists a project's runs, oldest first, filtered by group."""

    def __init__(self, project: str, runs: list[StandInRun]):
        self.project, self._runs, self.calls = project, runs, []

    def runs(self, path=None, filters=None, order="+created_at", per_page=50):
        self.calls.append((path, filters))
        if path != self.project:
            raise ValueError(f"Could not find project {path}")
        group = (filters or {}).get("group")
        return [r for r in self._runs if group is None or r.group == group]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real 6-run sweep with logger=wandb and no API key (so offline), trained once for the module."""
    root = tmp_path_factory.mktemp("tracking") / "runs"
    with pytest.MonkeyPatch.context() as env:
        env.delenv("WANDB_API_KEY", raising=False)
        assert cli(["sweep", *SWEEP, f"run.root={root}"]) == 0
    return root / "ladder"


@pytest.fixture
def use_api(monkeypatch):
    """Make `wandb.Api()` return the given stand-in (what load_runs and `scaling pull` call)."""
    import wandb

    return lambda api: monkeypatch.setattr(wandb, "Api", lambda: api)


def stand_in_api(sweep: Path) -> StandInApi:
    """The stand-in Api over the sweep's offline runs, plus a crashed first attempt and another group's run."""
    offline = [read_offline_run(p) for p in offline_runs(sweep)]
    runs = [StandInRun(o, "finished" if o["exit_code"] == 0 else "failed") for o in offline]
    crashed = StandInRun({**offline[0], "id": offline[0]["id"][:-1] + "0"}, "crashed", status="running", loss=9.9)
    other = StandInRun({**offline[1], "id": "elsewhere-1", "group": "another-sweep"}, "finished", run_id="elsewhere")
    return StandInApi("me/scaling-tests", [crashed, *runs, other])


def test_each_run_leaves_an_offline_wandb_run_in_the_sweeps_group(sweep):
    table = load_runs(sweep).set_index("run_id")
    found = offline_runs(sweep)
    assert len(found) == 6 and len(table) == 6
    for path in found:
        run = read_offline_run(path)
        run_id = run["name"]
        folder = RunFolder(sweep / run_id)
        assert path.parent.parent == folder.path  # inside the run folder: <run>/wandb/offline-run-*
        assert run["id"] == f"{run_id}-1" and run["group"] == "ladder" and run["job_type"] == "train"
        assert run["project"] == "scaling-tests" and "gpt" in run["tags"] and run["exit_code"] == 0
        planned = yaml.safe_load(folder.config_path.read_text())
        planned["trainer"]["threads"] = run["config"]["trainer"]["threads"]  # the launcher sets it per worker
        config, record = dict(run["config"]), folder.read_record()
        sizes = {key: config.pop(key) for key in SIZE_KEYS}
        assert sizes == {key: record[key] for key in SIZE_KEYS} and sizes["N"] > 0 and sizes["C"] > 0
        # the sweep's axes, with this run's values: W&B groups, scatters and parallel coordinates over them
        assert config.pop("axes") == {"model.width": record["width"], "budget.tokens": record["D"]}
        assert config == planned  # and the resolved run config
        summary = run["summary"]
        for key in ("N", "N_nonembed", "D", "D_unique", "C", "loss", "width", "depth", "seed", "unit", "steps",
                    "tokens_per_param", "flops_per_unit", "budget_flops", "lr", "batch_size", "data", "attempts"):
            assert summary[key] == record[key], key
        assert summary["status"] == "completed" and summary["val_loss"] == record["loss"]
        log = (folder.path / "train.log").read_text()
        assert f"wandb sync {path}" in log  # the line telling the user how to upload it


def test_wandb_leaves_the_run_table_unchanged(sweep, tmp_path):
    """The same run trained with logger=local has the same row (same id, numbers and loss)."""
    with_wandb = load_runs(sweep).set_index("run_id")
    spec = plan_run(tiny(TINY_GPT, tmp_path / "runs", "sweep.name=ladder", "model.width=32", "budget.tokens=8192"))
    train(spec)
    local = load_runs(tmp_path / "runs").set_index("run_id")
    assert spec.run_id in with_wandb.index
    assert set(with_wandb.columns) == set(local.columns)
    varying = {"wall_time", "throughput", "started", "finished", "updated"}
    for column in set(local.columns) - varying:
        assert with_wandb.loc[spec.run_id, column] == local.loc[spec.run_id, column], column
    assert not any("wandb" in str(c) for c in with_wandb.columns)


def test_load_runs_reads_a_wandb_project_or_one_group(sweep, use_api):
    api = stand_in_api(sweep)
    use_api(api)
    table, curves = load_runs("wandb:me/scaling-tests/ladder", curves=True)
    assert api.calls == [("me/scaling-tests", {"group": "ladder"})]
    assert list(table.columns[:len(TABLE_COLUMNS)]) == TABLE_COLUMNS and len(table) == 6 and curves.empty
    project = load_runs("wandb:me/scaling-tests")
    assert api.calls[-1] == ("me/scaling-tests", None)
    assert sorted(project["sweep"].unique()) == ["another-sweep", "ladder"] and len(project) == 7
    with pytest.raises(ValueError, match="wandb:ENTITY/PROJECT"):
        load_runs("wandb:me")


def test_pull_rebuilds_the_run_table_and_fit_agrees(sweep, tmp_path, capsys, use_api):
    api = stand_in_api(sweep)
    use_api(api)
    out = tmp_path / "runs.parquet"
    assert cli(["pull", "wandb:me/scaling-tests/ladder", "-o", str(out)]) == 0
    assert api.calls == [("me/scaling-tests", {"group": "ladder"})]
    assert "pulled 6 runs (6 completed)" in capsys.readouterr().out
    pulled, folder = pd.read_parquet(out), load_runs(sweep)
    assert list(pulled.columns[:len(TABLE_COLUMNS)]) == TABLE_COLUMNS
    expected = folder[TABLE_COLUMNS].sort_values("run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(pulled[TABLE_COLUMNS], expected)
    for column in ("val_accuracy", "unit", "steps", "tokens_per_param"):
        assert list(pulled[column]) == list(folder.sort_values("run_id")[column]), column
    fits = []
    for source in (out, sweep):
        assert cli(["fit", str(source), "--json"]) == 0
        fits.append(json.loads(capsys.readouterr().out))
    assert fits[0]["params"] == pytest.approx(fits[1]["params"], rel=1e-9)
    assert fits[0]["n_points"] == fits[1]["n_points"] == 6
    assert fits[0]["residuals"]["values"] == pytest.approx(fits[1]["residuals"]["values"], rel=1e-9, abs=1e-12)
    assert [fits[0][k] for k in "abG"] == pytest.approx([fits[1][k] for k in "abG"], rel=1e-9)


def test_a_failed_run_is_finished_and_its_resume_continues_the_same_wandb_run(tmp_path, monkeypatch):
    import wandb

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec = plan_run(tiny(TINY_GPT, tmp_path / "runs", "logger=wandb", "budget.tokens=8192", "trainer.fail_at_step=15"))
    with pytest.raises(InjectedFailure):
        train(spec, loggers_factory=make_loggers)
    assert wandb.run is None  # finished although training raised: the next run cannot write into it
    record = train(spec, loggers_factory=make_loggers)  # resumes from the step-10 checkpoint
    assert record["status"] == "completed" and record["resumes"] == [10]
    first, second = (read_offline_run(p) for p in offline_runs(spec.path))
    assert first["id"] == second["id"] == f"{spec.run_id}-1"  # same W&B run: the resumed curve continues it
    assert (first["exit_code"], first["summary"]["status"]) == (1, "failed")
    assert (second["exit_code"], second["summary"]["status"]) == (0, "completed")
    assert second["summary"]["loss"] == record["loss"]
    assert wandb.run is None


def test_wandb_run_ids_fresh_attempts_get_new_ids_resumes_keep_theirs(tmp_path):
    spec = plan_run(tiny(TINY_GPT, tmp_path / "runs", "budget.tokens=8192"))
    folder = RunFolder(spec.path)
    assert wandb_run_id(spec) == f"{spec.run_id}-1"
    folder.write_record({"status": "failed", "attempts": 1})  # failed before its first checkpoint
    assert wandb_run_id(spec) == f"{spec.run_id}-2"
    folder.write_record({"status": "failed", "attempts": 3, "resumes": [10]})
    folder.checkpoint_dir.mkdir(parents=True)
    folder.last_checkpoint.write_bytes(b"")
    assert wandb_run_id(spec) == f"{spec.run_id}-2"  # attempts 1, 2 fresh, 3 resumed attempt 2: continue it


def test_modes_paths_and_local_logger(tmp_path):
    assert resolve_mode("auto", key_available=False) == "offline"
    assert resolve_mode("auto", key_available=True) is None  # W&B's own default (online, or WANDB_MODE)
    assert resolve_mode("disabled", key_available=True) == "disabled"
    with pytest.raises(ValueError, match="logger.mode=sometimes"):
        resolve_mode("sometimes", key_available=True)
    assert parse_wandb_path("wandb:me/proj") == ("me", "proj", None)
    assert parse_wandb_path("wandb:me/proj/ladder") == ("me", "proj", "ladder")
    for bad in ("me/proj", "wandb:me", "wandb:me//x", "wandb:a/b/c/d"):
        with pytest.raises(ValueError, match="wandb:ENTITY/PROJECT"):
            parse_wandb_path(bad)
    assert make_loggers(plan_run(tiny(TINY_GPT, tmp_path, "budget.tokens=8192"))) == []
    assert runs_to_table([]).columns.tolist() == TABLE_COLUMNS


def test_pull_command_errors_are_one_line(tmp_path, capsys, use_api):
    class Unreachable:
        def runs(self, path=None, filters=None, **_):
            raise ConnectionError("Max retries exceeded with url: /graphql\nmore detail")

    out = str(tmp_path / "r.parquet")
    assert cli(["pull", "wandb:me", "-o", out]) == 2
    assert cli(["pull", "wandb:me/p", "-o", str(tmp_path / "r.txt")]) == 2
    use_api(Unreachable())
    assert cli(["pull", "wandb:me/p", "-o", out]) == 2
    use_api(StandInApi("me/p", []))
    assert cli(["pull", "wandb:me/p/none", "-o", out]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "wandb:ENTITY/PROJECT" in lines[0] and ".parquet or .csv" in lines[1]
    assert "Max retries exceeded" in lines[2] and "has no runs" in lines[3]
    assert not (tmp_path / "r.parquet").exists()


def test_the_axes_are_the_keys_each_sweep_mode_sets_then_its_axes_and_rules(tmp_path):
    def axes(*overrides: str) -> list[str]:
        return sweep_axes(tiny(TINY_GPT, tmp_path, *overrides), "tokens")

    assert axes() == []  # a single run
    assert axes("sweep=grid", "++sweep.axes={optim.lr:[1e-3,3e-3],seed:[0,1]}") == ["model.width", "optim.lr", "seed"]
    assert axes("sweep=isoflop", "sweep.models=[[16,1],[32,2]]", "sweep.budgets=[1e9]",
                "++sweep.rules={optim.lr:'3e-3 * (N / 1e6) ** -0.25'}") == \
        ["model.width", "model.depth", "budget.flops", "optim.lr"]
    assert axes("sweep=data", "sweep.models=[16,32]", "sweep.data_sizes=[8192]", "++sweep.axes={seed:[0,1]}") == \
        ["model.width", "budget.tokens", "seed"]
    assert axes("sweep=ladder") == ["model.width", "budget.flops", "optim.batch_size", "model.depth"]  # + its rule
    assert axes("sweep=data", "++sweep.axes={seed:[0,1]}") == ["seed"]  # no sweep.models: what its axes name
    spec = plan_run(tiny(TINY_GPT, tmp_path, "budget.tokens=8192", "optim.lr=1e-3", "sweep=grid",
                         "++sweep.axes={optim.lr:[1e-3,3e-3]}"))
    config = run_config(spec)
    assert config["axes"] == {"model.width": 32, "optim.lr": 1e-3} and config["D"] == spec.D == 8192
    assert config["tokens_per_param"] == pytest.approx(spec.D / spec.N) and config["C"] == spec.C


def test_tracking_imports_no_lightning():
    """Pulling (load_runs("wandb:...")) and reporting use scaling.tracking; only training needs Lightning."""
    code = ("import sys, scaling.tracking, scaling.store\n"
            "print(sorted(m for m in ('pytorch_lightning', 'lightning', 'torch', 'wandb') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_report_of_the_sweep_goes_to_its_runs_project_and_group(sweep, tmp_path, capsys):
    """`scaling report SWEEP --wandb` on the sweep trained with logger=wandb: the report run joins its runs."""
    out = tmp_path / "report"
    assert cli(["report", str(sweep), "-o", str(out), "--bootstrap", "0", "--wandb"]) == 0
    (found,) = offline_runs(out)
    report = read_offline_run(found)
    trained = read_offline_run(offline_runs(sweep)[0])
    assert (report["project"], report["group"], report["job_type"]) == (trained["project"], "ladder", "report")
    assert report["history"]["runs"]["nrows"] == 6 and "figures/loss_vs_compute" in report["history"]
    assert f"wandb sync {found}" in capsys.readouterr().out
