"""Backtests: fit on the cheaper runs, predict the most expensive ones, and say how far off it was.

This is the test a scaling law exists to pass: it is fitted to small runs to predict a big one.
The K highest-compute runs (or a fraction of them) are held out, the law is refitted on the
rest, and the relative error of its predicted loss on each held-out run is reported with how many
decades of compute lie between the largest run fitted and the largest run predicted.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from scaling.analysis.hygiene import AnalysisError, run_labels
from scaling.analysis.result import FitResult


def holdout_count(n: int, holdout: int | float) -> int:
    """How many runs to hold out: K itself for an integer K >= 1, ceil(fraction * n) for 0 < fraction < 1."""
    if isinstance(holdout, float) and 0 < holdout < 1:
        k = math.ceil(holdout * n)
    elif float(holdout) == int(holdout) and int(holdout) >= 1:
        k = int(holdout)
    else:
        raise AnalysisError(f"--holdout {holdout}: give a number of runs (>= 1) or a fraction between 0 and 1")
    if k >= n:
        raise AnalysisError(f"--holdout {holdout} holds out {k} of {n} usable runs: nothing left to fit")
    return k


def whole_budgets(usable: pd.DataFrame, order: np.ndarray, k: int) -> int:
    """k, grown until the held-out runs (the last k of `order`) hold every run of each ladder budget they touch."""
    if "budget_flops" not in usable.columns:
        return k
    budget = usable["budget_flops"].to_numpy(dtype=float)[order]
    while k < len(order) and np.isfinite(budget[-k]) and budget[-k - 1] == budget[-k]:
        k += 1
    return k


def compute_order(frame: pd.DataFrame, variables: tuple[str, ...]) -> np.ndarray:
    """Row positions from cheapest to most expensive: by C, else 6 N D, else the law's own variable."""
    if "C" in frame.columns:
        cost = frame["C"].to_numpy(dtype=float)
    elif {"N", "D"} <= set(frame.columns):
        cost = 6.0 * frame["N"].to_numpy(dtype=float) * frame["D"].to_numpy(dtype=float)
    else:
        cost = frame[variables[0]].to_numpy(dtype=float)
    return np.argsort(cost, kind="stable")


def backtest(usable: pd.DataFrame, holdout: int | float, refit: Callable[[pd.DataFrame], FitResult],
             variables: tuple[str, ...], min_train: int = 1) -> dict:
    """Hold out the most expensive runs of `usable` (a cleaned table), refit on the rest, score the prediction.

    `refit(train_frame)` returns a FitResult whose `predict` takes the law's `variables`;
    `min_train` is the fewest runs the refit needs. A ladder's budget (`budget_flops`) is held out whole:
    its runs share one C, so fitting some of them and predicting the others would extrapolate nothing.
    """
    order = compute_order(usable, variables)
    k = whole_budgets(usable, order, holdout_count(len(usable), holdout))
    if len(usable) - k < min_train:
        raise AnalysisError(f"--holdout {holdout} leaves {len(usable) - k} of {len(usable)} usable runs to fit; "
                            f"the law needs at least {min_train}")
    train, test = usable.iloc[order[:-k]], usable.iloc[order[-k:]]
    fitted = refit(train)
    predicted = np.asarray(fitted.predict(**{v: test[v].to_numpy(dtype=float) for v in variables}), dtype=float)
    observed = test["loss"].to_numpy(dtype=float)
    rel_error = (predicted - observed) / observed
    return _summary(train, test, k, observed, predicted, rel_error, fitted)


def _summary(train: pd.DataFrame, test: pd.DataFrame, k: int, observed: np.ndarray, predicted: np.ndarray,
             rel_error: np.ndarray, fitted: FitResult) -> dict:
    out = {"held_out": k, "fitted_on": len(train), "mean_abs_rel_error": float(np.mean(np.abs(rel_error))),
           "max_abs_rel_error": float(np.max(np.abs(rel_error))), "mean_rel_error": float(np.mean(rel_error))}
    if "C" in test.columns:
        c_train, c_test = float(train["C"].max()), float(test["C"].max())
        out.update(max_C_fitted=c_train, max_C_held_out=c_test, decades=float(np.log10(c_test / c_train)))
    out["runs"] = [{"run": label, "C": float(c) if c is not None else None, "loss": float(o), "predicted": float(p),
                    "rel_error": float(e)}
                   for label, c, o, p, e in zip(run_labels(test), _costs(test), observed, predicted, rel_error)]
    out["params_fitted"] = fitted.params
    return out


def _costs(frame: pd.DataFrame) -> list:
    return list(frame["C"].to_numpy(dtype=float)) if "C" in frame.columns else [None] * len(frame)
