"""Acceptance 4: bad tables get clear errors or explicit exclusions, never a silent fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import AnalysisError, fit
from scaling.analysis.hygiene import usable
from scaling.analysis.synthetic import isoflop_table


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return isoflop_table(seed=0, budgets=np.geomspace(1e18, 1e20, 3), sizes=5)


def test_missing_columns_named_with_fix():
    with pytest.raises(AnalysisError, match=r"needs column\(s\) D, loss.*--columns"):
        fit(pd.DataFrame({"N": [1.0, 2.0]}), "chinchilla")


def test_only_n_and_c_derives_d(good):
    table = good.drop(columns=["D"])
    r = fit(table, "chinchilla", grid={"e": [0.5], "a": [5.0], "b": [5.0]})
    assert "D derived as C / (6 N)" in r.fit_info["notes"]


def test_bad_rows_are_excluded_with_reasons(good):
    table = good.astype({"C": object})
    table.loc[0, "status"] = "failed"
    table.loc[1, "status"] = "diverged"
    table.loc[2, "N"] = -5.0
    table.loc[3, "D"] = 0.0
    table.loc[4, "loss"] = np.nan
    table.loc[5, "loss"] = np.inf
    table.loc[6, "C"] = "oops"  # C is not used by L(N, D), so this row stays
    r = fit(table, "chinchilla", grid={"e": [0.5], "a": [5.0], "b": [5.0]})
    reasons = {e["run"]: e["reason"] for e in r.excluded}
    assert reasons == {"b0-n0-s0": "status failed", "b0-n1-s0": "status diverged", "b0-n2-s0": "N <= 0",
                       "b0-n3-s0": "D <= 0", "b0-n4-s0": "loss is missing or not a number",
                       "b1-n0-s0": "loss is infinite"}
    assert r.n_points == len(table) - 6
    assert "b0-n0-s0" not in r.runs


def test_too_few_rows_is_a_clear_error(good):
    with pytest.raises(AnalysisError, match=r"needs at least 6 usable runs; 3 of 5 are usable \(left out: 2 status failed\)"):
        table = good.iloc[:5].copy()
        table.loc[table.index[:2], "status"] = "failed"
        fit(table, "chinchilla")


def test_all_nan_losses(good):
    with pytest.raises(AnalysisError, match="0 of 15 are usable"):
        fit(good.assign(loss=np.nan), "compute")


def test_non_positive_compute_for_compute_law(good):
    r = fit(good.assign(C=np.where(good.index < 3, -1.0, good["C"])), "compute")
    assert sum(e["reason"] == "C <= 0" for e in r.excluded) == 3


def test_isoflop_needs_budgets_with_three_sizes():
    table = isoflop_table(seed=0, sizes=2)
    with pytest.raises(AnalysisError, match="fewer than 3 model sizes"):
        fit(table, "isoflop")


def test_unknown_law_and_bad_holdout(good):
    with pytest.raises(AnalysisError, match="unknown law"):
        fit(good, "gpt4")
    with pytest.raises(AnalysisError, match="nothing left to fit"):
        fit(good, "compute", holdout=len(good))
    with pytest.raises(AnalysisError, match="needs a law that predicts the loss"):
        fit(good, "isoflop", holdout=2)


def test_where_and_columns(good):
    renamed = good.rename(columns={"N": "Model Size", "loss": "Loss"})
    r = fit(renamed, "chinchilla", columns={"N": "Model Size", "loss": "Loss"}, where="budget > 0",
            grid={"e": [0.5], "a": [5.0], "b": [5.0]})
    assert r.n_points == 10
    with pytest.raises(AnalysisError, match="--where"):
        fit(good, "chinchilla", where="no_such_column > 1")
    with pytest.raises(AnalysisError, match="not in the table"):
        fit(good, "chinchilla", columns={"N": "Size"})


def test_weak_identification_flagged():
    # every run at the same tokens-per-parameter ratio: N and D move together, A and B cannot be told apart
    N = np.geomspace(1e7, 1e10, 12)
    D = 20 * N
    loss = 1.7 + 400 / N**0.34 + 410 / D**0.28
    r = fit(pd.DataFrame({"N": N, "D": D, "loss": loss}), "chinchilla")
    assert any(w.startswith(("weakly identified", "the parameters")) for w in r.warnings)
    assert r.correlation["names"] == ["E", "A", "B", "alpha", "beta"]


def test_well_identified_fit_not_flagged(good):
    r = fit(isoflop_table(seed=0), "chinchilla")
    assert not any("weakly identified" in w for w in r.warnings)
    assert abs(r.correlation["strongest"]["r"]) < 0.99


def test_one_predicate_for_a_usable_run():
    """A row without a status counts as completed; any other status, or a missing loss, does not."""
    rows = pd.DataFrame({"run_id": ["none", "nan", "completed", "failed", "diverged", "nan_loss"],
                         "status": [None, np.nan, "completed", "failed", "diverged", "completed"],
                         "N": 1e6, "D": 2e7, "C": 1.2e14, "loss": [3.0, 3.1, 3.2, 3.3, 3.4, np.nan]})
    assert usable(rows).tolist() == [True, True, True, False, False, False]
    assert usable(rows.drop(columns="status")).tolist() == [True] * 5 + [False]
    assert not usable(rows.drop(columns="C")).any()  # a column the use needs is missing
    assert not usable(rows.assign(N=0.0)).any()


def test_figures_frontier_and_fits_use_the_same_runs(good):
    """What the figures draw is what the fits fit, for every status (rows with no status included)."""
    from scaling.analysis.analyse import analyse
    from scaling.analysis.table import compute_frontier

    table = good.astype({"status": object})
    table.loc[[0, 1, 2, 3], "status"] = [None, np.nan, "failed", "diverged"]
    table.loc[4, "loss"] = np.nan
    an = analyse(table, law="chinchilla", bootstrap=0, holdout=0)
    fitted = set(fit(table, "chinchilla", grid={"e": [0.5], "a": [5.0], "b": [5.0]}).runs)
    assert set(an.usable["run_id"]) == fitted == set(table["run_id"]) - {"b0-n2-s0", "b0-n3-s0", "b0-n4-s0"}
    # on the frontier, a run with no status beats a dearer one; a failed run beats nothing and is left to hygiene
    runs = pd.DataFrame({"run_id": ["no_status", "dearer", "failed"], "status": [None, "completed", "failed"],
                         "C": [1.0, 2.0, 0.5], "loss": [2.0, 2.5, 1.0]})
    kept, dropped = compute_frontier(runs)
    assert list(kept["run_id"]) == ["no_status", "failed"] and [d["run"] for d in dropped] == ["dearer"]
