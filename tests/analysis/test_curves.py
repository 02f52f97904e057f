"""Loss-curve laws (`scaling fit SOURCE --law curve`): the MPL and the annealing law, their fit and the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.curve_laws import ANNEAL, MPL, curve_features, per_step_lr
from scaling.analysis.curves import fit_curves
from scaling.analysis.hygiene import AnalysisError
from scaling.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "loss_curves"
AUTHORS_FIT = ["cosine_24000", "constant_24000", "wsdcon_9"]  # Luo et al.'s protocol: predict the other six
PEAK = 3e-4
PAPER_25M = {"L0": 3.04, "A": 0.525, "alpha": 0.508, "B": 363.8, "C": 2.066, "beta": 0.583, "gamma": 0.641}


def scaling_fit(argv: list[str]) -> int:
    return main(["fit", *argv])


def wsd_lr(total: int, warmup: int = 100, decay_from: int | None = None, end: float = 0.1) -> np.ndarray:
    """A per-step schedule 0..total-1: linear warmup, constant, then a linear decay to end * PEAK."""
    decay_from = total if decay_from is None else decay_from
    lr = np.full(total, PEAK)
    lr[:warmup] = np.linspace(0, PEAK, warmup)
    lr[decay_from:] = PEAK * np.linspace(1.0, end, total - decay_from)
    return lr


def mpl_per_step(lr: np.ndarray, steps: np.ndarray, p: dict) -> np.ndarray:
    """The MPL straight from the paper's sums, step by step (drops counted from the peak of lr on)."""
    peak, cumulative = int(np.argmax(lr)), np.cumsum(lr)
    out = []
    for t in steps:
        k = np.arange(peak + 1, t + 1)
        x = lr[k] ** -p["gamma"] * (cumulative[t] - cumulative[k - 1])
        drop = np.sum((lr[k - 1] - lr[k]) * (1 - (p["C"] * x + 1) ** -p["beta"]))
        out.append(p["L0"] + p["A"] * cumulative[t] ** -p["alpha"] - p["B"] * drop)
    return np.array(out)


def anneal_per_step(lr: np.ndarray, steps: np.ndarray, p: dict, decay: float = 0.999) -> np.ndarray:
    """The annealing law straight from its double sum S2 = sum_i sum_{k<=i} (eta_{k-1} - eta_k) decay^(i-k)."""
    peak, cumulative = int(np.argmax(lr)), np.cumsum(lr)
    out = []
    for t in steps:
        i, k = np.meshgrid(np.arange(peak + 1, t + 1), np.arange(peak + 1, t + 1), indexing="ij")
        s2 = np.sum(np.where(k <= i, (lr[k - 1] - lr[k]) * decay ** (i - k), 0.0))
        out.append(p["L0"] + p["A"] * cumulative[t] ** -p["alpha"] - p["C"] * s2)
    return np.array(out)


def authors_protocol(size: str, law: str, capsys: pytest.CaptureFixture) -> dict:
    """`scaling fit DATA/size --law curve --curve-law law --fit-on <the authors' three> --json`, parsed."""
    assert scaling_fit([str(DATA / size), "--law", "curve", "--curve-law", law, "--fit-on", ",".join(AUTHORS_FIT),
                        "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------- acceptance (issue 12, item 3)


@pytest.mark.parametrize("size", ["25", "100"])
def test_authors_protocol_mpl_within_0_3_percent_and_anneal_beside_it(size, capsys):
    mpl = authors_protocol(size, "mpl", capsys)
    predicted = [name for name, info in mpl["curves"].items() if not info["fitted"]]
    assert sorted(predicted) == ["constant_72000", "cosine_72000", "wsd_20000_24000", "wsdcon_18", "wsdcon_3",
                                 "wsdld_20000_24000"]
    assert mpl["law"] == "mpl" and set(mpl["params"]) == {"L0", "A", "alpha", "B", "C", "beta", "gamma"}
    assert mpl["predicted"]["mean_rel_err"] <= 0.003  # Luo et al. publish 0.11% (25M) and 0.14% (100M)
    assert mpl["predicted"]["mean_rel_err"] == pytest.approx(np.mean([mpl["curves"][n]["mean_rel_err"]
                                                                      for n in predicted]))
    anneal = authors_protocol(size, "anneal", capsys)
    assert anneal["law"] == "anneal" and set(anneal["params"]) == {"L0", "A", "alpha", "C"}
    assert anneal["predicted"]["mean_rel_err"] <= 0.005
    assert all(info["max_rel_err"] < 0.015 for info in [*mpl["curves"].values(), *anneal["curves"].values()])


@pytest.mark.slow
@pytest.mark.parametrize("size", ["25", "100"])
def test_exhaustive_starts_find_the_default_optimum(size):
    curves = {path.stem: pd.read_csv(path) for path in sorted((DATA / size).glob("*.csv"))}
    for law in ("mpl", "anneal"):
        default = fit_curves(curves, law, AUTHORS_FIT)
        exhaustive = fit_curves(curves, law, AUTHORS_FIT, exhaustive=True)
        assert exhaustive.objective == pytest.approx(default.objective, rel=1e-5)
        assert exhaustive.predicted_errors()["mean_rel_err"] == pytest.approx(
            default.predicted_errors()["mean_rel_err"], rel=1e-2)


# ---------------------------------------------------------------------- the laws


def test_per_step_lr_warmup_ramps_and_isolated_jumps():
    lr = per_step_lr(np.array([100, 200, 300, 400, 500, 600]), np.array([1.0, 1.0, 0.5, 0.5, 0.4, 0.3]))
    assert lr[0] == 0 and lr[50] == pytest.approx(0.5) and lr[100] == 1.0  # linear warmup from step 0
    assert lr[299] == 1.0 and lr[300] == 0.5  # an isolated jump happens at the step that logs it
    assert lr[450] == pytest.approx(0.45) and lr[550] == pytest.approx(0.35)  # a decay is interpolated
    smooth = per_step_lr(np.array([0, 10, 20, 30]), np.array([1.0, 0.9, 0.7, 0.4]))
    assert smooth[0] == 1.0 and smooth[15] == pytest.approx(0.8) and smooth[25] == pytest.approx(0.55)


@pytest.mark.parametrize("decay_from", [2000, 600])
def test_mpl_lumped_sum_matches_the_paper_step_by_step(decay_from):
    lr = wsd_lr(3001, decay_from=decay_from)
    steps = np.arange(100, 3001, 50)
    features = curve_features(lr, steps, np.ones(len(steps)), PEAK)
    predicted, _ = MPL.predict(MPL.from_params(PAPER_25M, PEAK), features)
    np.testing.assert_allclose(predicted, mpl_per_step(lr, steps, PAPER_25M), rtol=1e-4)


def test_anneal_area_matches_its_double_sum():
    lr = wsd_lr(801, decay_from=500)
    steps = np.arange(100, 801, 35)
    params = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 0.4}
    features = curve_features(lr, steps, np.ones(len(steps)), PEAK)
    predicted, _ = ANNEAL.predict(ANNEAL.from_params(params, PEAK), features)
    np.testing.assert_allclose(predicted, anneal_per_step(lr, steps, params), rtol=1e-10)


@pytest.mark.parametrize("law", [MPL, ANNEAL])
def test_jacobian_matches_finite_differences(law):
    lr = wsd_lr(2001, decay_from=1200)
    steps = np.arange(100, 2001, 40)
    features = curve_features(lr, steps, np.ones(len(steps)), PEAK)
    params = PAPER_25M if law is MPL else {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 0.4}
    theta = law.from_params(params, PEAK)
    _, jac = law.predict(theta, features)
    step = 1e-6 * np.eye(len(theta))
    numeric = np.column_stack([(law.predict(theta + h, features)[0] - law.predict(theta - h, features)[0]) / 2e-6
                               for h in step])
    np.testing.assert_allclose(jac, numeric, rtol=1e-5, atol=1e-7 * np.abs(jac).max())
    assert law.to_params(theta, PEAK) == pytest.approx(params)


def synthetic_curves(law_params: dict = PAPER_25M) -> dict[str, pd.DataFrame]:
    """Three schedules of 3,000 steps logged every 25 steps, their loss from the MPL itself."""
    schedules = {"constant": wsd_lr(3001), "wsd": wsd_lr(3001, decay_from=2400), "short": wsd_lr(3001, decay_from=900)}
    steps = np.arange(100, 3001, 25)
    return {name: pd.DataFrame({"step": steps, "lr": lr[steps], "loss": mpl_per_step(lr, steps, law_params)})
            for name, lr in schedules.items()}


def test_fit_recovers_a_known_mpl_and_predicts_the_held_out_curve():
    result = fit_curves(synthetic_curves(), "mpl", fit_on=["constant", "short"])
    assert result.curves["wsd"]["fitted"] is False and result.curves["short"]["fitted"] is True
    assert result.curves["wsd"]["mean_rel_err"] < 2e-4
    assert result.params["L0"] == pytest.approx(PAPER_25M["L0"], abs=0.02)
    prediction = result.predict("wsd")
    assert list(prediction.columns) == ["step", "loss", "predicted"] and len(prediction) == 117
    assert result.seconds < 20


def test_warmup_steps_are_not_scored_and_long_logs_are_thinned():
    lr = wsd_lr(3001, decay_from=2000)
    every = np.arange(3001)
    curves = {"every_step": pd.DataFrame({"step": every, "lr": lr, "loss": 5.0 - every / 3000}),
              "from_zero": pd.DataFrame({"step": every[::25], "lr": lr[::25], "loss": 5.0 - every[::25] / 3000})}
    result = fit_curves(curves, "anneal")
    assert result.curves["from_zero"]["points"] == 121 - 4  # steps 0, 25, 50, 75 warm up (the peak is at 99/100)
    assert result.curves["every_step"]["points"] == 1000
    assert any("warmup" in note and "99 of every_step" in note and "4 of from_zero" in note for note in result.notes)
    assert any("1000 of 2902 of every_step" in note for note in result.notes)


# ---------------------------------------------------------------------- the command and its errors


def test_sweep_folder_curves_are_named_by_run_id(tmp_path, capsys):
    from scaling import store

    sweep = tmp_path / "runs" / "schedules"
    for run_id, frame in synthetic_curves().items():
        folder = store.RunFolder(sweep / run_id)
        folder.path.mkdir(parents=True)
        folder.write_record({"run_id": run_id, "sweep": "schedules", "status": "completed"})
        rows = frame.rename(columns={"loss": "train_loss"}).assign(val_loss=np.nan)
        folder.write_metrics(rows.to_dict(orient="records"))
    assert scaling_fit([str(sweep), "--law", "curve", "--fit-on", "constant,short"]) == 0
    out = capsys.readouterr().out
    assert "wsd" in out and "predicted" in out and "mean rel err" in out and "fit time" in out
    assert scaling_fit([str(sweep), "--law", "curve", "--curve-law", "anneal", "--json"]) == 0
    assert all(info["fitted"] for info in json.loads(capsys.readouterr().out)["curves"].values())


@pytest.fixture
def bad_folders(tmp_path) -> Path:
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_lr").mkdir()
    pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.9, 2.8]}).to_csv(tmp_path / "no_lr" / "run.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["{bad}/empty", "--law", "curve"], "no loss curves in"),
    (["{bad}/no_lr", "--law", "curve"], "curve run has no column lr"),
    (["{data}/25", "--law", "curve", "--fit-on", "cosine,wsdcon_9"],
     "no curve named cosine; the curves are: constant_24000, constant_72000, cosine_24000"),
    (["{data}/25", "--law", "curve", "--fit-on", ","], "nothing to fit"),
    (["{data}/25", "--curve-law", "anneal"], "--curve-law goes with --law curve"),
    (["{data}/25", "--law", "curve", "--holdout", "2"], "--holdout does not apply to --law curve"),
    (["{bad}", "--law", "curve"], "holds folders of CSV files named no_lr, not model sizes: give one of them"),
    (["{data}/25/wsdcon_9.csv", "--law", "curve"], "is a file"),
])
def test_errors_are_one_line_and_exit_2(bad_folders, capsys, argv, message):
    argv = [a.replace("{bad}", str(bad_folders)).replace("{data}", str(DATA)) for a in argv]
    assert scaling_fit(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error:")


def test_too_few_points_is_nothing_to_fit():
    curves = {"tiny": pd.DataFrame({"step": [10, 20, 30], "lr": [1.0, 1.0, 0.5], "loss": [3.0, 2.9, 2.7]})}
    with pytest.raises(AnalysisError, match="nothing to fit: the curves to fit \\(tiny\\) have 3 logged steps"):
        fit_curves(curves, "mpl")


def test_curve_fit_imports_no_torch_lightning_or_ray():
    code = ("import sys; from scaling.cli import main\n"
            f"assert main(['fit', {str(DATA / '25')!r}, '--law', 'curve', '--curve-law', 'anneal']) == 0\n"
            "heavy = {'torch', 'pytorch_lightning', 'lightning', 'ray'} & {m.split('.')[0] for m in sys.modules}\n"
            "print('HEAVY', sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
