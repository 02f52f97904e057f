"""Chinchilla's approach 1: the lower envelope of every run's training curve (FLOPs seen, loss).

At log-spaced FLOP values, each run's curve is interpolated (loss against log FLOPs seen, inside
the FLOPs that run saw); the lowest loss over model sizes is the compute frontier, and the size
that reaches it is N_opt(C), refined between neighbouring sizes by a parabola in log N. Frontier
points won by the smallest or largest model tried are at the edge of the grid (the true optimum
may lie beyond it) and are left out of the power law N_opt = G (C/6)^a unless `include_edge`.
D_opt = C / (6 N_opt), so b = 1 - a.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.bootstrap import add_table_bootstrap
from scaling.analysis.hygiene import AnalysisError, clean, require_columns
from scaling.analysis.isoflop import parabola_vertex, power_law_fit
from scaling.analysis.result import FitResult

LOSS_COLUMNS = ("val_loss", "train_loss", "loss")


def choose_loss_column(curves: pd.DataFrame) -> str:
    """val_loss when most runs logged it at least twice, else train_loss, else loss."""
    for col in LOSS_COLUMNS:
        if col in curves.columns:
            logged = curves[col].notna().groupby(curves["run_id"]).sum()
            if (logged >= 2).mean() >= 0.5:
                return col
    raise AnalysisError(f"the curves need a loss column ({', '.join(LOSS_COLUMNS)}) logged at least twice per run")


def curve_matrix(curves: pd.DataFrame, run_ids: list, loss_column: str, flops: np.ndarray,
                 smooth: int = 0) -> np.ndarray:
    """Loss of each run at each FLOP value [runs, flops], NaN outside the FLOPs that run saw."""
    out = np.full((len(run_ids), len(flops)), np.nan)
    log_flops = np.log(flops)
    for i, (run_id, curve) in enumerate(_curves_by_run(curves, run_ids, loss_column)):
        if len(curve) < 2:
            continue
        loss = curve[loss_column].to_numpy()
        if smooth > 1:
            loss = pd.Series(loss).rolling(smooth, min_periods=1, center=True).mean().to_numpy()
        x = np.log(curve["C_seen"].to_numpy())
        inside = (log_flops >= x[0]) & (log_flops <= x[-1])
        out[i, inside] = np.interp(log_flops[inside], x, loss)
    return out


def _curves_by_run(curves: pd.DataFrame, run_ids: list, loss_column: str):
    usable = curves[np.isfinite(curves["C_seen"]) & (curves["C_seen"] > 0) & np.isfinite(curves[loss_column])]
    groups = dict(tuple(usable.sort_values("C_seen").groupby("run_id", sort=False)))
    for run_id in run_ids:
        yield run_id, groups.get(run_id, usable.iloc[:0])


def envelope_points(losses: np.ndarray, sizes: np.ndarray, flops: np.ndarray) -> pd.DataFrame:
    """The frontier: per FLOP value the lowest loss, the size reaching it (refined) and an edge flag.

    losses [runs, flops]; sizes [runs] (N). Runs of the same size are pooled (the lowest wins).
    """
    distinct = np.unique(sizes)
    with warnings.catch_warnings():  # a size with no curve at some FLOPs: NaN there, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = np.vstack([np.nanmin(losses[sizes == n], axis=0) for n in distinct])
    rows = []
    for j, c in enumerate(flops):
        have = np.flatnonzero(np.isfinite(pooled[:, j]))
        if len(have) < 2:
            continue
        rows.append({"C": float(c), **_frontier_point(np.log(distinct[have]), pooled[have, j])})
    return pd.DataFrame(rows, columns=["C", "loss", "N_opt", "N_best_run", "models", "edge"])


def _frontier_point(log_n: np.ndarray, loss: np.ndarray) -> dict[str, Any]:
    k = int(np.argmin(loss))
    point = {"loss": float(loss[k]), "N_opt": float(np.exp(log_n[k])), "N_best_run": float(np.exp(log_n[k])),
             "models": len(log_n), "edge": k == 0 or k == len(log_n) - 1}
    if not point["edge"]:
        vertex = parabola_vertex(log_n[k - 1:k + 2], loss[k - 1:k + 2])
        if vertex is not None:
            point["N_opt"] = float(np.exp(np.clip(vertex[0], log_n[k - 1], log_n[k + 1])))
            point["loss"] = min(vertex[1], point["loss"])
    return point


def frontier(runs: pd.DataFrame, curves: pd.DataFrame, *, loss_column: str | None = None, n_flops: int = 40,
             smooth: int = 0) -> pd.DataFrame:
    """Lower envelope of the curves of `runs` (run_id, N) at n_flops log-spaced FLOP values."""
    loss_column = loss_column or choose_loss_column(curves)
    curves = curves[curves["run_id"].isin(runs["run_id"])]
    seen = curves["C_seen"][np.isfinite(curves["C_seen"]) & (curves["C_seen"] > 0)]
    if seen.empty:
        raise AnalysisError("envelope: the curves have no positive C_seen (FLOPs seen) values")
    flops = np.geomspace(seen.min(), seen.max(), n_flops)
    run_ids = list(runs["run_id"])
    losses = curve_matrix(curves, run_ids, loss_column, flops, smooth)
    return envelope_points(losses, runs["N"].to_numpy(dtype=float), flops)


def allocation_from_frontier(points: pd.DataFrame, include_edge: bool = False) -> dict[str, float]:
    """a, b = 1 - a, G of N_opt = G (C/6)^a through the frontier's (non-edge) points."""
    used = points if include_edge else points[~points["edge"].astype(bool)]
    if len(used) < 3:
        raise AnalysisError(f"envelope needs at least 3 frontier points won by an interior model size; "
                            f"{len(used)} of {len(points)} are (add model sizes around the optimum, or longer runs)")
    k, a, se = power_law_fit(used["C"], used["N_opt"])
    return {"a": a, "b": 1.0 - a, "G": k * 6.0**a, "a_stderr": se, "points_used": int(len(used))}


def _runs_and_curves(runs: pd.DataFrame | None, curves: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if curves is None or len(curves) == 0 or "C_seen" not in curves.columns:
        raise AnalysisError("envelope needs per-step curves (run_id, C_seen, a loss): give a sweep folder "
                            "or a curve table, not only final losses")
    require_columns(curves, ("run_id", "C_seen"), "envelope (curves)")
    if runs is None or "N" not in runs.columns or runs is curves:
        require_columns(curves, ("N",), "envelope (curves without a run table)")
        runs = curves.drop_duplicates("run_id")[[c for c in ("run_id", "N", "status") if c in curves.columns]]
    require_columns(runs, ("run_id",), "envelope (runs)")
    return runs, curves


def fit_envelope(runs: pd.DataFrame | None, curves: pd.DataFrame | None, *, loss_column: str | None = None,
                 n_flops: int = 40, smooth: int = 0, include_edge: bool = False, bootstrap: int = 0, seed: int = 0,
                 level: float = 0.95) -> FitResult:
    """Chinchilla's approach 1: the frontier and N_opt(C) from the lower envelope of training curves.

    `runs` gives each run's N (and status); `curves` is the long per-step frame (run_id, C_seen,
    val_loss or train_loss). `bootstrap` resamples runs.
    """
    runs, curves = _runs_and_curves(runs, curves)
    kept, excluded = clean(runs, ("N",), "envelope", min_points=3)
    started = time.perf_counter()
    points = frontier(kept, curves, loss_column=loss_column, n_flops=n_flops, smooth=smooth)
    allocation = allocation_from_frontier(points, include_edge)
    result = _envelope_result(kept, excluded, points, allocation, include_edge, time.perf_counter() - started)
    result.fit_info["loss_column"] = loss_column or choose_loss_column(curves)
    if bootstrap:
        by_run = dict(tuple(curves[curves["run_id"].isin(kept["run_id"])].groupby("run_id", sort=False)))

        def statistic(sample: pd.DataFrame) -> dict[str, float]:
            drawn_runs, drawn_curves = _relabel(sample, by_run)
            found = allocation_from_frontier(frontier(drawn_runs, drawn_curves, loss_column=loss_column,
                                                      n_flops=n_flops, smooth=smooth), include_edge)
            return {k: found[k] for k in ("a", "b", "G")}

        add_table_bootstrap(result, kept, statistic, bootstrap, seed, level)
    return result


def _relabel(sample: pd.DataFrame, by_run: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each drawn run (duplicates included) its own id so the envelope sees every draw."""
    ids = [f"{r}#{i}" for i, r in enumerate(sample["run_id"])]
    parts = [by_run[r].assign(run_id=i) for r, i in zip(sample["run_id"], ids) if r in by_run]
    if not parts:
        raise AnalysisError("no curves in this resample")
    return sample.assign(run_id=ids), pd.concat(parts, ignore_index=True)


def _envelope_result(kept: pd.DataFrame, excluded: list[dict], points: pd.DataFrame, allocation: dict[str, float],
                     include_edge: bool, seconds: float) -> FitResult:
    used = points if include_edge else points[~points["edge"].astype(bool)]
    predicted = allocation["G"] * (used["C"] / 6.0) ** allocation["a"]
    residuals = np.log(used["N_opt"].to_numpy()) - np.log(predicted.to_numpy())
    result = FitResult(law="envelope", params={k: allocation[k] for k in ("a", "b", "G")}, n_points=len(kept),
                       objective=float(np.sum(residuals**2)),
                       formula="N_opt = G (C/6)^a from the lower envelope of loss vs FLOPs seen; D_opt = C / (6 N_opt)",
                       residuals=residuals, runs=[str(r) for r in kept["run_id"]], excluded=excluded,
                       a=allocation["a"], b=allocation["b"], G=allocation["G"])
    result.fit_info = {"method": "lower envelope of training curves (Chinchilla approach 1)",
                       "frontier_points": int(len(points)), "points_used": allocation["points_used"],
                       "a_stderr (points are correlated; prefer the bootstrap)": allocation["a_stderr"],
                       "objective": "sum of squared log N_opt residuals", "seconds": seconds}
    result.details = {"frontier": points.to_dict(orient="records")}
    edges = int(points["edge"].sum())
    if edges:
        result.warnings.append(f"{edges} of {len(points)} frontier points are won by the smallest or largest model "
                               "(left out" + (", but include_edge is on" if include_edge else "") + ")")
    return result
