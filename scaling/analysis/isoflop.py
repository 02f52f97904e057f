"""Chinchilla's approach 2 (IsoFLOP profiles): per compute budget, a parabola of loss against log N.

The vertex of each budget's parabola is that budget's N_opt (and, from loss against log D, its
D_opt); power laws through the vertices give N_opt = G (C/6)^a and D_opt = G_D^-1 (C/6)^b. A budget
whose minimum is not inside the sizes it tried (the vertex outside them, or the lowest loss at the
smallest or largest size) is flagged as at the grid's edge and left out of the power laws unless
`include_edge=True`: its true minimum is somewhere the grid did not look.

Intervals on a and b are the t intervals of those regressions' slopes (budgets - 2 degrees of
freedom): they come from how far the budgets' vertices scatter about the power law. A bootstrap over
runs within a budget does not work here: a budget of 3 sizes keeps 3 distinct sizes in only 2 of 9
resamples, so most replicates lose their parabolas and the interval measures which budgets survived.
With --bootstrap and at least 5 sizes in every budget, runs are resampled within budgets instead.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.bootstrap import add_table_bootstrap
from scaling.analysis.hygiene import AnalysisError, clean, run_labels
from scaling.analysis.result import FitResult

COLUMNS = ("N", "D", "C", "loss")


def budget_labels(C: np.ndarray, rel_tol: float = 0.1) -> np.ndarray:
    """Group runs into compute budgets: sorted C is split wherever neighbours differ by more than rel_tol."""
    C = np.asarray(C, dtype=float)
    order = np.argsort(C)
    breaks = np.diff(np.log(C[order])) > np.log1p(rel_tol)
    labels = np.empty(len(C), dtype=int)
    labels[order] = np.concatenate([[0], np.cumsum(breaks)])
    return labels


def parabola_vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """(x at the minimum, y there, curvature) of the least-squares parabola y(x); None if it opens downward."""
    c2, c1, c0 = np.polyfit(x, y, 2)
    if not c2 > 0:
        return None
    x_min = -c1 / (2 * c2)
    return float(x_min), float(c0 + c1 * x_min + c2 * x_min**2), float(2 * c2)


BOOTSTRAP_MIN_SIZES = 5  # sizes every budget needs before a within-budget run bootstrap means anything


def power_law_fit(C: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(k, exponent, standard error of the exponent) of y = k C^exponent, ordinary least squares in log-log."""
    x, z = np.log(np.asarray(C, dtype=float)), np.log(np.asarray(y, dtype=float))
    slope, intercept = np.polyfit(x, z, 1)
    if len(x) < 3:
        return float(np.exp(intercept)), float(slope), float("nan")
    residual = z - (intercept + slope * x)
    stderr = np.sqrt(residual @ residual / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    return float(np.exp(intercept)), float(slope), float(stderr)


def slope_interval(estimate: float, stderr: float, budgets: int, level: float) -> list[float] | None:
    """The t interval [lo, hi] of a fitted slope (budgets - 2 degrees of freedom); None without one."""
    from scipy.stats import t

    if budgets < 3 or not np.isfinite(stderr):
        return None
    half = float(t.ppf((1 + level) / 2, budgets - 2)) * stderr
    return [estimate - half, estimate + half]


def budget_minimum(group: pd.DataFrame) -> dict[str, Any]:
    """One budget's IsoFLOP minimum: N_opt, D_opt, the loss there, and why it is unusable or at an edge."""
    row: dict[str, Any] = {"C": float(np.exp(np.log(group["C"]).mean())), "runs": len(group),
                           "sizes": int(group["N"].nunique())}
    if row["sizes"] < 3:
        return {**row, "usable": False, "edge": False, "note": "fewer than 3 model sizes"}
    log_n = np.log(group["N"].to_numpy())
    vertex = parabola_vertex(log_n, group["loss"].to_numpy())
    if vertex is None:
        return {**row, "usable": False, "edge": False, "note": "no minimum (the parabola opens downward)"}
    row.update(N_opt=float(np.exp(vertex[0])), loss_min=vertex[1], curvature=vertex[2])
    row["D_opt"] = _d_opt(group, row)
    note = _edge_note(log_n, group["loss"].to_numpy(), vertex[0])
    return {**row, "usable": True, "edge": bool(note), "note": note}


def _d_opt(group: pd.DataFrame, row: dict[str, Any]) -> float:
    """D at the minimum of loss against log D (the same parabola seen from D), else C / (6 N_opt)."""
    if group["D"].nunique() >= 3:
        vertex = parabola_vertex(np.log(group["D"].to_numpy()), group["loss"].to_numpy())
        if vertex is not None:
            return float(np.exp(vertex[0]))
    return row["C"] / (6.0 * row["N_opt"])


def _edge_note(log_n: np.ndarray, loss: np.ndarray, vertex: float) -> str:
    lo, hi = log_n.min(), log_n.max()
    best = log_n[np.argmin(loss)]
    if vertex < lo or best == lo:
        return "minimum at the smallest size tried: extend the grid to smaller N"
    if vertex > hi or best == hi:
        return "minimum at the largest size tried: extend the grid to larger N"
    return ""


def isoflop_minima(frame: pd.DataFrame, budgets: np.ndarray) -> pd.DataFrame:
    """One row per budget (C, runs, sizes, N_opt, D_opt, loss_min, curvature, usable, edge, note)."""
    rows = [{"budget": label, **budget_minimum(group)} for label, group in frame.groupby(budgets)]
    table = pd.DataFrame(rows).sort_values("C").reset_index(drop=True)
    for col in ("N_opt", "D_opt", "loss_min", "curvature"):
        if col not in table.columns:
            table[col] = np.nan
    return table


def allocation_from_minima(minima: pd.DataFrame, include_edge: bool = False) -> dict[str, float]:
    """a, b, G, G_D (N_opt = G (C/6)^a, D_opt = G_D^-1 (C/6)^b) and stderrs from usable budgets."""
    used = minima[minima["usable"] & (include_edge | ~minima["edge"].astype(bool))]
    if len(used) < 2:
        raise AnalysisError(f"isoflop needs at least 2 budgets with an interior minimum; {len(used)} of "
                            f"{len(minima)} have one" + _flag_summary(minima))
    k_n, a, se_a = power_law_fit(used["C"], used["N_opt"])
    k_d, b, se_b = power_law_fit(used["C"], used["D_opt"])
    return {"a": a, "b": b, "G": k_n * 6.0**a, "G_D": 1.0 / (k_d * 6.0**b), "a_stderr": se_a, "b_stderr": se_b,
            "budgets_used": int(len(used))}


def _flag_summary(minima: pd.DataFrame) -> str:
    notes = minima.loc[minima["note"].astype(bool), "note"].value_counts()
    return "" if notes.empty else " (" + "; ".join(f"{n}: {why}" for why, n in notes.items()) + ")"


def fit_isoflop(frame: pd.DataFrame, *, budget_tol: float = 0.1, budget_column: str = "budget",
                include_edge: bool = False, bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> FitResult:
    """Chinchilla's approach 2 on a run table: N_opt(C) and D_opt(C) from per-budget parabolas.

    Budgets come from `budget_column` when the table has it, else from C grouped within
    `budget_tol` (relative). `bootstrap` resamples runs within each budget.
    """
    kept, excluded = clean(frame, COLUMNS, "isoflop", min_points=6)
    labels = kept[budget_column].to_numpy() if budget_column in kept.columns else budget_labels(kept["C"], budget_tol)
    kept = kept.assign(_budget=labels)
    started = time.perf_counter()
    minima = isoflop_minima(kept, labels)
    allocation = allocation_from_minima(minima, include_edge)
    result = _isoflop_result(kept, excluded, minima, allocation, include_edge, time.perf_counter() - started)
    _add_slope_intervals(result, allocation, level)
    fewest = int(minima.loc[minima["usable"], "sizes"].min()) if minima["usable"].any() else 0
    if bootstrap and fewest < BOOTSTRAP_MIN_SIZES:
        result.warnings.append(f"bootstrap not used: a budget has only {fewest} sizes (a run bootstrap within budgets "
                               f"needs {BOOTSTRAP_MIN_SIZES}); the intervals are the t intervals of the vertex power laws")
    elif bootstrap:
        def statistic(sample: pd.DataFrame) -> dict[str, float]:
            found = allocation_from_minima(isoflop_minima(sample, sample["_budget"].to_numpy()), include_edge)
            return {k: found[k] for k in ("a", "b", "G")}

        add_table_bootstrap(result, kept, statistic, bootstrap, seed, level, strata="_budget")
    return result


def _add_slope_intervals(result: FitResult, allocation: dict[str, float], level: float) -> None:
    """t intervals of a and b from the scatter of the vertices about their power laws."""
    for name in ("a", "b"):
        interval = slope_interval(allocation[name], allocation[f"{name}_stderr"], allocation["budgets_used"], level)
        if interval is not None:
            result.ci[name] = interval
    result.level = level
    if result.ci:
        result.fit_info["intervals"] = (f"t intervals of the slopes ({allocation['budgets_used'] - 2} degrees of "
                                        "freedom: the vertices' scatter about the power law)")


def _isoflop_result(kept: pd.DataFrame, excluded: list[dict], minima: pd.DataFrame, allocation: dict[str, float],
                    include_edge: bool, seconds: float) -> FitResult:
    used = minima["usable"] & (include_edge | ~minima["edge"].astype(bool))
    predicted = allocation["G"] * (minima.loc[used, "C"] / 6.0) ** allocation["a"]
    residuals = np.log(minima.loc[used, "N_opt"].to_numpy()) - np.log(predicted.to_numpy())
    in_used = kept["_budget"].isin(minima.loc[used, "budget"])
    result = FitResult(law="isoflop", params={k: allocation[k] for k in ("a", "b", "G", "G_D")},
                       n_points=int(in_used.sum()), objective=float(np.sum(residuals**2)),
                       formula="N_opt = G (C/6)^a, D_opt = G_D^-1 (C/6)^b from per-budget parabolas of loss vs log N",
                       residuals=residuals, runs=run_labels(kept[in_used]), excluded=excluded,
                       a=allocation["a"], b=allocation["b"], G=allocation["G"])
    result.fit_info = {"method": "IsoFLOP profiles (Chinchilla approach 2)", "budgets": int(len(minima)),
                       "budgets_used": allocation["budgets_used"], "a_stderr": allocation["a_stderr"],
                       "b_stderr": allocation["b_stderr"], "objective": "sum of squared log N_opt residuals",
                       "seconds": seconds}
    result.details = {"budgets": minima.drop(columns=["budget"]).to_dict(orient="records")}
    result.warnings = [f"budget C = {row.C:.3g}: {row.note}" for row in minima.itertuples() if row.note]
    return result

