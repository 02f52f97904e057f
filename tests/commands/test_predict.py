"""`scaling predict`: registered predictions written once, scored by `scaling status` and `scaling report`; the
report never fits a ladder's held-out targets and draws them and the predictions on loss vs compute.

Most tests plan the quickstart ladder and write its runs' losses from a known law (no training); the last
trains a tiny real ladder (marked slow).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import scaling
from scaling.cli import main
from scaling.config import to_yaml
from scaling.plan import plan_sweep
from scaling.store import RunFolder, Status, load_runs

QUICK = ["experiment=quickstart_v1"]
TOP = 3.3e12  # the quickstart ladder's held-out budget


def _law(N: float, D: float) -> float:
    return 1.2 + 40.0 / N ** 0.3 + 60.0 / D ** 0.28


@dataclass(frozen=True)
class Run:
    """A planned run of the ladder: what the tests need of its RunSpec."""

    run_id: str
    N: int
    D: int
    C: float
    target: bool


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple:
    """The quickstart ladder planned once for the module: (its sweep folder, every planned run)."""
    root = tmp_path_factory.mktemp("planned")
    plan = plan_sweep([*QUICK, f"run.root={root}"])
    for spec in plan.runs:
        RunFolder(spec.path).plan(spec, to_yaml(spec.cfg))
    runs = [Run(s.run_id, s.N, s.D, s.C, math.isclose(s.cfg.budget.flops, TOP, rel_tol=1e-6)) for s in plan.runs]
    return root / "quickstart_v1", runs


@pytest.fixture
def ladder(planned, tmp_path):
    """make(noise, targets_done) -> (sweep folder, fitted runs, target runs): a copy of the planned ladder whose
    runs completed with losses from _law (times 1 + noise * a fixed normal draw), the targets left planned unless
    `targets_done`."""

    def make(noise: float = 0.0, targets_done: bool = True) -> tuple:
        source, runs = planned
        sweep = shutil.copytree(source, tmp_path / "runs" / source.name)
        draws = np.random.default_rng(7).standard_normal(len(runs))
        for run, draw in zip(runs, draws):
            if targets_done or not run.target:
                RunFolder(sweep / run.run_id).finish(Status.COMPLETED, loss=_law(run.N, run.D) * (1 + noise * draw))
        return sweep, [r for r in runs if not r.target], [r for r in runs if r.target]

    return make


def _predict(sweep, *args: str) -> int:
    return main(["predict", str(sweep), *args])


def _file(sweep, name: str) -> dict:
    return json.loads((sweep / "predictions" / f"{name}.json").read_text())


def test_predict_writes_the_law_its_runs_and_the_prediction(ladder, capsys):
    sweep, fitted, targets = ladder()
    assert _predict(sweep, "--target", "3.3e12", "--name", "top", "--bootstrap", "20") == 0
    out = capsys.readouterr().out
    assert "prediction top: chinchilla law at C 3.3e+12" in out and "predictions/top.json" in out
    record = _file(sweep, "top")
    created = datetime.fromisoformat(record["created"])
    assert created.tzinfo is not None and abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)
    assert record["version"]["scaling"] == scaling.__version__
    commit = record["version"]["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert record["law"] == "chinchilla" and record["formula"].startswith("L(N, D)")
    assert set(record["params"]) == {"E", "A", "B", "alpha", "beta"} and set(record["params"]) <= set(record["intervals"])
    assert record["level"] == 0.95 and record["bootstrap"] == 20
    # fitted on every run but the held-out targets, which are excluded with the reason
    assert set(record["fitted_runs"]) == {s.run_id for s in fitted} and record["n_fitted"] == len(fitted)
    assert {e["run"] for e in record["excluded"]} == {s.run_id for s in targets}
    assert record["target"]["kind"] == "compute" and record["target"]["C"] == TOP
    p = record["predicted"]
    # the loss is the fitted law's at its compute-optimal point, and (exact data) the generating law's there
    params = record["params"]
    at_optimum = params["E"] + params["A"] / p["N_opt"] ** params["alpha"] + params["B"] / p["D_opt"] ** params["beta"]
    assert p["loss"] == pytest.approx(at_optimum, rel=1e-9)
    assert p["loss"] == pytest.approx(_law(p["N_opt"], p["D_opt"]), rel=1e-6)
    assert 6 * p["N_opt"] * p["D_opt"] == pytest.approx(TOP / p["C_per_6ND"], rel=1e-6)
    assert 1.0 < p["C_per_6ND"] < 1.6  # the sweep counts attention and the output layer too
    assert p["lo"] <= p["loss"] <= p["hi"] and "bootstrap" in p["interval"]


def test_a_second_prediction_of_the_same_name_is_refused(ladder, capsys):
    sweep, _, _ = ladder()
    assert _predict(sweep, "--target", "3.3e12", "--name", "top", "--bootstrap", "0") == 0
    path = sweep / "predictions" / "top.json"
    before = path.read_bytes()
    capsys.readouterr()
    assert _predict(sweep, "--target", "1e12", "--name", "top", "--law", "compute") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "pick another --name" in err
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["top.json"]  # no temporary left behind


def test_each_kind_of_target(ladder, capsys):
    sweep, fitted, targets = ladder()
    run = targets[0]
    # a run by a unique prefix of its run_id: its N, D, C; never fitted on it
    assert _predict(sweep, "--target", run.run_id[:6], "--name", "run", "--bootstrap", "0") == 0
    record = _file(sweep, "run")
    target = record["target"]
    assert (target["kind"], target["run_id"], target["N"], target["D"]) == ("run", run.run_id, run.N, run.D)
    assert record["target"]["C"] == pytest.approx(run.C)
    assert run.run_id not in record["fitted_runs"]
    assert record["predicted"]["loss"] == pytest.approx(_law(run.N, run.D), rel=1e-6)
    assert record["predicted"]["lo"] is None and record["predicted"]["interval"].startswith("none")
    assert "no interval: --bootstrap 0" in capsys.readouterr().out
    # a point N, D of a fitted run: its runs are left out of the fit, C is theirs
    other = fitted[4]
    assert _predict(sweep, "--target", f"N={other.N},D={other.D}", "--name", "point", "--bootstrap", "0") == 0
    record = _file(sweep, "point")
    assert record["target"]["kind"] == "point" and record["target"]["C"] == pytest.approx(other.C)
    assert other.run_id not in record["fitted_runs"] and record["n_fitted"] == len(fitted) - 1
    assert record["predicted"]["loss"] == pytest.approx(_law(other.N, other.D), rel=1e-6)
    # a compute budget with a law of C: its value there
    assert _predict(sweep, "--target", "C=3.3e12", "--name", "c", "--law", "compute", "--bootstrap", "0") == 0
    record = _file(sweep, "c")
    params = record["params"]
    assert record["predicted"]["loss"] == pytest.approx(params.get("E", 0.0) + params["A"] / TOP ** params["alpha"])
    assert "N_opt" not in record["predicted"]


@pytest.mark.parametrize("args, words", [
    (["--target", "zzz"], "no run of the sweep has that run_id"),
    (["--target", "N=5"], "a point needs N and D"),
    (["--target", "N=1e5,D=x"], "'x' is not a number"),
    (["--target", "N=1e5,D=1e6,Q=2"], "'Q' is not one of N, D, C"),
    (["--target=-3e12"], "must be a positive finite number"),
    (["--target", "3.3e12", "--law", "params"], "no loss at a compute budget"),
    (["--target", "3.3e12", "--name", "../escape"], "--name '../escape'"),
    (["--target", "3.3e12", "--level", "2"], "--level 2.0 is not a confidence level"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, words, ladder, capsys):
    sweep, _, _ = ladder()
    named = args if "--name" in args else [*args, "--name", "p"]
    assert _predict(sweep, *named, "--bootstrap", "0") == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (sweep / "predictions").exists() or not any((sweep / "predictions").iterdir())



def test_a_law_not_identified_at_the_target_is_refused(ladder, capsys):
    """Every fitted run at one D (an lr or width sweep): Chinchilla predicts at that D and nowhere else."""
    sweep, fitted, _ = ladder()
    for run in fitted:
        RunFolder(sweep / run.run_id).update_record(D=200_000)
    assert _predict(sweep, "--target", "3.3e12", "--name", "p", "--bootstrap", "0") == 2
    err = capsys.readouterr().err.strip()
    assert "every fitted run has D = 200,000, so law chinchilla is not identified at C 3.3e+12" in err
    assert len(err.splitlines()) == 1 and not (sweep / "predictions").exists()
    assert _predict(sweep, "--target", "N=2e5,D=2e5", "--name", "q", "--bootstrap", "0") == 0


def test_an_estimate_outside_its_own_interval_is_said():
    """A percentile interval can miss an unstable fit's estimate (an lr sweep's Chinchilla fit gave 2.6610
    [2.6221, 2.6563]): the record marks it and the printed prediction says what it means."""
    from scaling.analysis.predictions import _loss_entry
    from scaling.commands.predict import _lines

    assert "outside_interval" not in _loss_entry(2.64, 2.62, 2.66)
    entry = _loss_entry(2.661, 2.6221, 2.6563)
    assert entry["outside_interval"] is True
    record = {"name": "p", "law": "chinchilla", "target": {"kind": "point", "spec": "N=3e6,D=2e5", "N": 3e6,
              "D": 2e5}, "predicted": entry, "level": 0.95, "bootstrap": 100, "excluded": [], "n_fitted": 56,
              "version": {"scaling": "0", "git_commit": None, "git_dirty": False}}
    assert "the estimate lies outside its interval" in "\n".join(_lines(record, Path("p.json")))

def test_a_table_file_is_refused(tmp_path, capsys):
    table = tmp_path / "runs.csv"
    table.write_text("N,D,C,loss\n1,2,3,4\n")
    assert main(["predict", str(table), "--target", "1e12", "--name", "p"]) == 2
    assert "predictions are registered in a sweep folder" in capsys.readouterr().err


def _complete(sweep, runs) -> None:
    """Write each run's loss, from the law, through the store (as a finished training would)."""
    for run in runs:
        RunFolder(sweep / run.run_id).finish(Status.COMPLETED, loss=_law(run.N, run.D))


def test_status_shows_pending_then_scored_and_covered(ladder, capsys):
    from scaling.commands.status import status_table

    sweep, _, targets = ladder(noise=0.01, targets_done=False)
    run = targets[0]
    assert _predict(sweep, "--target", run.run_id, "--name", "one-run", "--bootstrap", "40") == 0
    assert _predict(sweep, "--target", "3.3e12", "--name", "budget", "--bootstrap", "40") == 0
    capsys.readouterr()
    lines = status_table(sweep).splitlines()
    assert "registered predictions (2):" in lines
    by_name = {line.split()[0]: line for line in lines[lines.index("registered predictions (2):") + 2:]}
    assert f"pending (run {run.run_id}: planned)" in by_name["one-run"]
    assert f"pending (0 of {len(targets)} runs of budget 3.3e+12 completed)" in by_name["budget"]
    _complete(sweep, targets)
    lines = status_table(sweep).splitlines()
    by_name = {line.split()[0]: line for line in lines[lines.index("registered predictions (2):") + 2:]}
    one = _file(sweep, "one-run")["predicted"]
    observed = _law(run.N, run.D)
    assert one["lo"] <= observed <= one["hi"]  # this noise and seed: the interval covers the run
    assert by_name["one-run"].endswith("covered") and f"{observed:.4f}" in by_name["one-run"]
    assert f"{(one['loss'] - observed) / observed:+.2%}" in by_name["one-run"]
    best = min(_law(s.N, s.D) for s in targets)  # a budget is scored by its best run
    assert f"{best:.4f}" in by_name["budget"] and "pending" not in by_name["budget"]


def _analysis(sweep, bootstrap: int = 20):
    from scaling.analysis.analyse import analyse
    from scaling.analysis.predictions import load_predictions
    from scaling.analysis.source import read_source
    from scaling.analysis.targets import split_targets

    source = read_source(sweep, curves=True)
    split = split_targets(source.runs, str(sweep), frontier=False)
    an = analyse(split.fitted, source.curves, "chinchilla", bootstrap=bootstrap, holdout=0, held_out=split.targets)
    an.predictions = load_predictions(sweep)
    return an


def test_report_fit_excludes_the_targets_and_scores_them(ladder, capsys):
    from scaling.analysis.report import predictions_html
    from scaling.commands.report import summary_lines

    sweep, fitted, targets = ladder(noise=0.01, targets_done=False)
    assert _predict(sweep, "--target", targets[0].run_id, "--name", "one-run", "--bootstrap", "40") == 0
    an = _analysis(sweep, bootstrap=0)
    assert an.main.n_points == len(fitted) and set(an.main.runs) == {s.run_id for s in fitted}
    assert len(an.runs) == len(fitted) + len(targets) and len(an.held_out) == len(targets)
    text = "\n".join(summary_lines(an, None))
    assert f"{len(targets)} held-out targets not fitted" in text and "none completed yet" in text
    assert "pending (run" in text and "pending" in predictions_html(an)
    _complete(sweep, targets)
    an = _analysis(sweep)
    assert an.main.n_points == len(fitted) and an.target_scores["scored"] == len(targets)
    text = "\n".join(summary_lines(an, None))
    assert f"targets: {len(targets)} held-out runs at budget 3.3e+12 (fit never saw them)" in text
    assert re.search(r"one-run .* covered$", text, re.M)
    page = predictions_html(an)
    assert "Held-out targets" in page and "Registered predictions" in page and ">covered<" in page


def test_loss_vs_compute_dashes_the_law_beyond_the_fitted_runs_and_draws_targets(ladder):
    from scaling.analysis.figures import fig_loss_vs_compute
    from scaling.analysis.interactive import plotly_loss_vs_compute

    sweep, fitted, targets = ladder(noise=0.01)
    assert _predict(sweep, "--target", "3.3e12", "--name", "budget", "--bootstrap", "20") == 0
    an = _analysis(sweep)
    top_fitted = max(s.C for s in fitted)
    ax = fig_loss_vs_compute(an).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    solid, dashed = lines["compute-optimal frontier (chinchilla fit)"], lines["extrapolation"]
    assert solid.get_linestyle() == "-" and max(solid.get_xdata()) <= top_fitted * (1 + 1e-9)
    assert dashed.get_linestyle() == "--" and max(dashed.get_xdata()) >= TOP
    labels = [c.get_label() for c in ax.containers] + [c.get_label() for c in ax.collections]
    assert {"held-out target: predicted (with interval)", "held-out target: observed",
            "registered prediction: predicted (with interval)", "registered prediction: observed"} <= set(labels)
    figure = plotly_loss_vs_compute(an)
    frontier = [t for t in figure.data if t.meta == "frontier"]
    assert [t.line.dash for t in frontier] == [None, "dash"]
    assert max(frontier[0].x) <= top_fitted * (1 + 1e-9) and max(frontier[1].x) >= TOP
    held = next(t for t in figure.data if t.name == "held-out target: predicted")
    assert len(held.x) == len(targets) and all(np.asarray(held.error_y.array) >= 0)
    registered = next(t for t in figure.data if t.name == "registered prediction: observed")
    assert list(registered.y) == [pytest.approx(min(load_runs(sweep).query("budget_flops > 3e12")["loss"]))]


def test_predict_and_status_need_no_torch(ladder):
    from tests.analysis.test_analysis_no_torch import run_blocked

    sweep, _, _ = ladder()
    code = "from scaling.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    predicted = run_blocked(code, "predict", str(sweep), "--target", "3.3e12", "--name", "p", "--bootstrap", "5",
                            cwd=sweep)
    assert predicted.returncode == 0, predicted.stderr
    shown = run_blocked(code, "status", str(sweep), cwd=sweep)
    assert shown.returncode == 0 and "registered predictions (1):" in shown.stdout


TINY_LADDER = ["model=gpt", "model.head_dim=8", "data.seq_len=32", "data.val_tokens=4096", "trainer.val_every=1000",
               "trainer.log_every=10", "trainer.checkpoint_every=1000", "trainer.progress=false", "sweep=ladder",
               "sweep.name=tiny", "sweep.sizes_per_budget=2", "sweep.span=0.2", "sweep.min_steps=30",
               "launcher.parallel=2"]


@pytest.mark.slow
def test_a_real_tiny_ladder_predicts_then_trains_its_target(tmp_path, capsys):
    """Three budgets of a tiny GPT trained, a prediction registered at a 3x larger budget, then the same ladder
    with that budget as its held-out target: only the target's runs train, and status and report score it."""
    from scaling.commands.status import status_table

    root = tmp_path / "runs"
    assert main(["sweep", *TINY_LADDER, f"run.root={root}", "sweep.budgets=[5e8,1e9,2e9]",
                 "sweep.holdout_budgets=0"]) == 0
    sweep = root / "tiny"
    fitted = load_runs(sweep)
    assert _predict(sweep, "--target", "6e9", "--name", "next", "--law", "compute", "--bootstrap", "100") == 0
    record = _file(sweep, "next")
    assert set(record["fitted_runs"]) == set(fitted["run_id"]) and record["predicted"]["lo"] is not None
    assert "pending (no run of budget 6e+09 in the sweep)" in status_table(sweep)
    assert main(["sweep", *TINY_LADDER, f"run.root={root}", "sweep.budgets=[5e8,1e9,2e9,6e9]",
                 "sweep.holdout_budgets=1"]) == 0
    runs = load_runs(sweep)
    targets = runs[~runs["run_id"].isin(fitted["run_id"])]
    assert len(targets) >= 1 and (targets["budget_flops"] == 6e9).all() and (runs["status"] == "completed").all()
    assert runs.set_index("run_id").loc[fitted["run_id"], "finished"].tolist() == fitted["finished"].tolist()
    observed = float(targets["loss"].min())
    p = record["predicted"]
    verdict = "covered" if p["lo"] <= observed <= p["hi"] else "not covered"
    line = next(x for x in status_table(sweep).splitlines() if x.startswith("next "))
    assert f"{observed:.4f}" in line and f"{(p['loss'] - observed) / observed:+.2%}" in line and line.endswith(verdict)
    capsys.readouterr()
    assert main(["report", str(sweep), "-o", str(tmp_path / "report"), "--law", "compute", "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert f"compute fit of {len(fitted)} runs" in out and f"{len(targets)} held-out targets not fitted" in out
    assert f"targets: {len(targets)} held-out runs at budget 6e+09" in out
    assert next(x for x in out.splitlines() if x.startswith("next ")) == line
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Registered predictions" in page and f">{verdict}<" in page
