"""Loss-curve laws across model sizes (issue 12, item 3): some parameters power laws of N, the rest shared."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.curve_laws import ANNEAL, MPL
from scaling.analysis.curve_source import CurveSource, auto_fit_on, fit_on_names, parse_size, read_curve_source
from scaling.analysis.curves import fit_across_sizes, fit_curves, scaled_coordinates, size_theta
from scaling.analysis.hygiene import AnalysisError
from tests.analysis.test_curves import AUTHORS_FIT, DATA, PAPER_25M, scaling_fit, wsd_lr, mpl_per_step

SIZES = {"25": 25.0, "100": 100.0}


def shipped(sizes=("25", "100")) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    source = read_curve_source(DATA)
    keep = [name for name in source.curves if name.split("/")[0] in sizes]
    return {n: source.curves[n] for n in keep}, {n: source.sizes[n] for n in keep}


def test_shipped_sizes_jointly_lose_little_against_per_size_fits(capsys):
    """The authors' protocol at both sizes at once: L0, A and B power laws of N, alpha, C, beta, gamma shared."""
    assert scaling_fit([str(DATA), "--law", "curve", "--fit-on", ",".join(AUTHORS_FIT), "--json"]) == 0
    joint = json.loads(capsys.readouterr().out)
    assert set(joint["scaling"]) == {"L0", "A", "B"} and set(joint["params"]) == {"alpha", "C", "beta", "gamma"}
    assert joint["scaling"]["L0"]["b"] < 0 < joint["scaling"]["B"]["b"]  # the bigger model: lower level, larger drop
    for label, size in joint["sizes"].items():
        alone = fit_curves(*_one_size(label), "mpl", AUTHORS_FIT).predicted_errors()["mean_rel_err"]
        assert size["fitted"] == 3 and size["predicted"] == 6
        assert size["mean_rel_err"] <= 0.003  # measured 0.168% (25M) and 0.153% (100M); alone 0.139% and 0.177%
        assert size["mean_rel_err"] <= alone + 0.0005
        assert size["params"]["L0"] == pytest.approx(joint["scaling"]["L0"]["a"] * size["N"] ** joint["scaling"]["L0"]["b"])


def _one_size(label: str) -> tuple[dict[str, pd.DataFrame]]:
    curves, _ = shipped((label,))
    return ({name.split("/")[1]: frame for name, frame in curves.items()},)


def test_every_parameter_scaled_is_the_per_size_fit():
    """With two sizes a * N^b has two values to match: scaling all parameters gives each size its own fit."""
    curves, sizes = shipped()
    fit_on = fit_on_names(AUTHORS_FIT, CurveSource(curves, sizes))
    joint = fit_across_sizes(curves, sizes, "anneal", fit_on, scaled=list(ANNEAL.param_names))
    assert joint.params == {} and set(joint.scaling) == set(ANNEAL.param_names)
    for label, size in joint.size_errors().items():
        alone = fit_curves(*_one_size(label), "anneal", AUTHORS_FIT)
        assert size["mean_rel_err"] == pytest.approx(alone.predicted_errors()["mean_rel_err"], rel=1e-3)
        assert size["params"] == pytest.approx(alone.params, rel=1e-3)


def synthetic_sizes(sizes=(1e7, 3e7, 1e8)) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """A constant, a wsd and a short-cooldown curve per size from the MPL with L0, A, B power laws of N."""
    schedules = {"constant": wsd_lr(3001), "wsd": wsd_lr(3001, decay_from=2400), "short": wsd_lr(3001, decay_from=900)}
    steps = np.arange(100, 3001, 50)
    curves, names = {}, {}
    for N in sizes:
        params = {**PAPER_25M, "L0": 30.0 * N ** -0.13, "A": 0.1 * N ** 0.1, "B": 20.0 * N ** 0.15}
        for schedule, lr in schedules.items():
            name = f"{N:g}/{schedule}"
            curves[name] = pd.DataFrame({"step": steps, "lr": lr[steps], "loss": mpl_per_step(lr, steps, params)})
            names[name] = N
    return curves, names


def test_a_size_never_fitted_is_predicted_from_the_others():
    """Three sizes: fit a trunk and a cooldown of the two smaller, predict every curve of the largest."""
    curves, sizes = synthetic_sizes()
    fit_on = ["1e+07/constant", "1e+07/short", "3e+07/constant", "3e+07/short"]
    result = fit_across_sizes(curves, sizes, "mpl", fit_on)
    assert result.scaling["L0"]["b"] == pytest.approx(-0.13, abs=0.01)
    assert result.scaling["B"]["b"] == pytest.approx(0.15, abs=0.03)
    largest = result.size_errors()["100M"]
    assert largest["fitted"] == 0 and largest["predicted"] == 3
    assert largest["mean_rel_err"] < 2e-3
    assert result.curves["3e+07/wsd"]["mean_rel_err"] < 2e-4 and result.curves["3e+07/wsd"]["N"] == 3e7


def test_size_theta_jacobian_matches_finite_differences():
    coordinates = scaled_coordinates(MPL, ["L0", "A", "alpha", "B"])  # linear and log coordinates
    rng = np.random.default_rng(0)
    phi = rng.normal(0.0, 0.3, 3 + 2 * len(coordinates))
    for x in (-0.7, 0.0, 1.2):
        theta, jac = size_theta(MPL, coordinates, phi, x)
        numeric = np.column_stack([(size_theta(MPL, coordinates, phi + h, x)[0] -
                                    size_theta(MPL, coordinates, phi - h, x)[0]) / 2e-6
                                   for h in 1e-6 * np.eye(len(phi))])
        np.testing.assert_allclose(jac, numeric, rtol=1e-6, atol=1e-9)


def test_size_folders_and_fit_on_names():
    assert (parse_size("25M"), parse_size("1.3B"), parse_size("25"), parse_size("big")) == (2.5e7, 1.3e9, 25.0, None)
    source = read_curve_source(DATA)
    assert source.distinct_sizes() == [25.0, 100.0] and source.sizes["100/wsdcon_9"] == 100.0
    assert fit_on_names(["wsdcon_9", "25/cosine_24000"], source) == ["25/wsdcon_9", "100/wsdcon_9",
                                                                      "25/cosine_24000"]
    # a folder of CSV files: all but each size's longest curve (the first of the two 72,000-step ones)
    assert fit_on_names(["auto"], source) == [n for n in source.curves if not n.endswith("constant_72000")]


def test_auto_fit_on_in_a_branches_sweep_is_the_trunks_and_shortest_cooldowns():
    runs = pd.DataFrame({"run_id": ["t1", "a", "b", "t2", "c", "d"], "N": [1e4, 1e4, 1e4, 4e4, 4e4, 4e4],
                         "D": [9e5, 2e5, 8e5, 9e5, 2e5, 8e5], "trunk": [True, None, None, True, None, None],
                         "parent": [None, "t1", "t1", None, "t2", "t2"]})
    curves = {r: pd.DataFrame({"step": [1, 2], "lr": [1.0, 1.0], "loss": [3.0, 2.9]}) for r in runs["run_id"]}
    assert sorted(auto_fit_on(CurveSource(curves, {}, runs))) == ["a", "c", "t1", "t2"]


@pytest.mark.parametrize("argv, message", [
    (["{data}/25", "--law", "curve", "--across-sizes"], "--across-sizes needs curves of two or more model sizes"),
    (["{data}", "--law", "curve", "--across-sizes", "L0,delta"], "law mpl has no parameter delta"),
    (["{data}", "--law", "curve", "--fit-on", "25/wsdcon_9"], "across sizes needs curves to fit at two or more"),
    (["{data}/25", "--across-sizes"], "--across-sizes goes with --law curve"),
])
def test_across_sizes_errors_are_one_line_and_exit_2(capsys, argv, message):
    argv = [a.replace("{data}", str(DATA)) for a in argv]
    assert scaling_fit(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error:")


def test_a_folder_of_folders_that_are_not_sizes_says_so(tmp_path):
    (tmp_path / "runs_a").mkdir()
    pd.DataFrame({"step": [1, 2], "lr": [1.0, 1.0], "loss": [3.0, 2.9]}).to_csv(tmp_path / "runs_a" / "x.csv")
    with pytest.raises(AnalysisError, match="folders of CSV files named runs_a, not model sizes"):
        read_curve_source(tmp_path)


def test_a_branches_sweep_across_sizes_from_the_command_line(tmp_path, capsys):
    from tests.analysis.test_report_curve_law import branches_sweep

    branches_sweep(tmp_path / "br")
    assert scaling_fit([str(tmp_path / "br"), "--law", "curve", "--curve-law", "anneal", "--fit-on", "auto",
                        "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["sizes"]) == {"20k", "60k"} and set(result["scaling"]) == {"L0", "A", "C"}
    assert all(size["fitted"] == 2 and size["predicted"] == 2 for size in result["sizes"].values())
    assert result["curves"]["b12"]["N"] == 6e4 and not result["curves"]["b12"]["fitted"]


def test_a_sweep_curve_is_its_validation_loss_where_that_was_logged_as_often():
    from scaling.analysis.curve_source import sweep_curves

    runs = pd.DataFrame({"run_id": ["dense", "sparse"], "N": [1e4, 1e4]})
    long = pd.DataFrame({"run_id": ["dense"] * 4 + ["sparse"] * 4, "step": [5, 10, 15, 20] * 2, "lr": 1.0,
                         "train_loss": [3.0, 2.9, 2.8, 2.7] * 2,
                         "val_loss": [np.nan, 3.1, np.nan, 3.0, np.nan, np.nan, np.nan, 3.0]})
    curves = sweep_curves(runs, long).curves
    assert curves["dense"]["loss"].tolist()[1::2] == [3.1, 3.0]  # validated every other logged step: its loss
    assert curves["sparse"]["loss"].tolist() == [3.0, 2.9, 2.8, 2.7]  # validated once: the training loss
