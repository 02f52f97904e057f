"""Chinchilla's approach 2 (IsoFLOP profiles): per compute budget, a parabola of loss against log N.

The vertex of each budget's parabola is that budget's N_opt (and, from loss against log D, its
D_opt); power laws through the vertices give N_opt = G (C/6)^a and D_opt = G_D^-1 (C/6)^b.

Every budget is checked before its vertex is trusted (`BudgetChecks`, after Open-Athena's
scaling-law-analysis QC of IsoFLOP data, reimplemented), and each flag says what to add:

- too_few_sizes: fewer than `min_sizes` distinct sizes (sizes within 1% count once). Through 3
  sizes a parabola fits exactly and leaves no residual to judge it by. Kept: its vertex is exact,
  only unchecked, and a 3-size ladder would otherwise have no fit at all.
- edge: the vertex outside the sizes tried (a vertex inside with the lowest loss at an end is
  off_centre). Left out (unless include_edge): the true minimum is where the grid did not look.
- off_centre: the vertex inside the sizes but the sampled range on one side of it more than
  `off_centre_ratio` times the other (or under `min_side_fraction` of the sizes on one side).
  Off-centre sampling pulls the vertex toward the grid's centre: a few percent of N_opt for a
  3x offset, and an exponent error when the offset drifts with C (Open-Athena's "Problems with
  Chinchilla Approach 2", section "Off-Center Sampling"). Kept: its vertex is located, and the fit
  reports the exponent from the unflagged budgets beside it (fit_info a_unflagged).
- weak_curvature: the parabola too flat for the noise: its curvature's interval (at `level`)
  reaches zero, or the vertex's interval reaches beyond the sizes tried. Left out: the vertex is
  not located, and a vertex uncertain by a decade would pull the power law more than any other.
- no_minimum: the parabola opens downward. Left out (nothing to use).
- outlier_run: a run whose loss is far (robust z over `outlier_z`) from a smooth curve through the
  budget's other sizes (leave-one-out). Kept, with the run named: check it or rerun it.

Intervals on a and b are the t intervals of those regressions' slopes (budgets - 2 degrees of
freedom): they come from how far the budgets' vertices scatter about the power law. A bootstrap over
runs within a budget does not work here: a budget of 3 sizes keeps 3 distinct sizes in only 2 of 9
resamples, so most replicates lose their parabolas and the interval measures which budgets survived.
With --bootstrap and at least 5 sizes in every budget, runs are resampled within budgets instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.bootstrap import add_table_bootstrap
from scaling.analysis.formatting import fmt_count
from scaling.analysis.hygiene import AnalysisError, clean, run_labels
from scaling.analysis.result import FitResult

COLUMNS = ("N", "D", "C", "loss")
LEFT_OUT = ("edge", "weak_curvature", "no_minimum")  # flags whose budget the power laws leave out
POLICY = ("budgets flagged too_few_sizes, off_centre or outlier_run are kept in the power laws; edge, "
          "weak_curvature and no_minimum are left out")


@dataclass(frozen=True)
class BudgetChecks:
    """Thresholds of the per-budget checks (defaults and reasons in the module docstring)."""

    min_sizes: int = 5  # 2 residual degrees of freedom: the fewest that test a parabola (t_0.975 = 4.3)
    off_centre_ratio: float = 2.5  # far side / near side of the vertex in log N (Open-Athena: 1 + 1.5 margin)
    min_side_fraction: float = 0.2  # of the sizes, on each side of the vertex
    level: float = 0.95  # of the curvature's and the vertex's intervals
    duplicate_tol: float = 0.01  # relative: sizes closer than this count as one
    outlier_z: float = 6.0  # robust z of a leave-one-out residual (Open-Athena's threshold)
    span_decades: float = 1.0  # the span a weak budget is told to widen to


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


def distinct_sizes(N: np.ndarray, tol: float = 0.01) -> int:
    """How many sizes N holds, sizes within a relative `tol` of each other counting once (`size_bins`)."""
    return int(size_bins(np.log10(np.asarray(N, dtype=float)), tol).max()) + 1


def parabola_uncertainty(x: np.ndarray, y: np.ndarray, level: float) -> dict[str, float]:
    """Least-squares parabola y(x) with the lower bound of its curvature c2 and the vertex's interval (t, n-3 dof).

    Returns c2, vertex, minimum (y there), and with 4+ points c2_lo, vertex_lo, vertex_hi, rms; x is centred for
    conditioning and the answer is in x's own units.
    """
    from scipy.stats import t as student_t

    centre = float(np.mean(x))
    X = np.vander(x - centre, 3)  # columns (x - centre)^2, x - centre, 1
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    c2, c1 = float(coef[0]), float(coef[1])
    out = {"c2": c2, "vertex": centre - c1 / (2 * c2) if c2 > 0 else math.nan,
           "minimum": float(coef[2] - c1**2 / (4 * c2)) if c2 > 0 else math.nan}
    dof = len(x) - 3
    if dof < 1:
        return out
    residual = y - X @ coef
    cov = float(residual @ residual) / dof * np.linalg.inv(X.T @ X)
    t = float(student_t.ppf((1 + level) / 2, dof))
    out.update(c2_lo=c2 - t * math.sqrt(cov[0, 0]), rms=float(np.sqrt(np.mean(residual**2))))
    if c2 > 0:  # delta method: d vertex / d (c2, c1) = (c1 / 2 c2^2, -1 / 2 c2)
        grad = np.array([c1 / (2 * c2**2), -1 / (2 * c2), 0.0])
        half = t * math.sqrt(max(float(grad @ cov @ grad), 0.0))
        out.update(vertex_lo=out["vertex"] - half, vertex_hi=out["vertex"] + half)
    return out


def budget_minimum(group: pd.DataFrame, checks: BudgetChecks = BudgetChecks()) -> dict[str, Any]:
    """One budget's IsoFLOP minimum (N_opt, D_opt, loss there), its sampling geometry, and its flags.

    Geometry in decades of N: span, position (of the vertex in the sampled range, 0 = smallest
    size, 1 = largest), sizes_below and sizes_above the vertex, vertex_lo/hi (its interval), and
    curvature_lo. `flags` and `advice` (what to add) follow `checks`; `usable` says it has a vertex.
    """
    log_n, loss = np.log10(group["N"].to_numpy()), group["loss"].to_numpy()
    row: dict[str, Any] = {"C": float(np.exp(np.log(group["C"]).mean())), "runs": len(group),
                           "sizes": distinct_sizes(group["N"].to_numpy(), checks.duplicate_tol),
                           "N_lo": float(10 ** log_n.min()), "N_hi": float(10 ** log_n.max()),
                           "span": float(log_n.max() - log_n.min())}
    if row["sizes"] < 3:
        return _finish(row, [("too_few_sizes", f"only {row['sizes']} size{'s' * (row['sizes'] != 1)}: no parabola; "
                              f"add {checks.min_sizes - row['sizes']} sizes around N = {_n(np.median(log_n))}")],
                       usable=False)
    fit = parabola_uncertainty(log_n, loss, checks.level)
    row.update(curvature=2 * fit["c2"] / math.log(10) ** 2, curvature_lo=2 * fit.get("c2_lo", math.nan) / math.log(10) ** 2,
               rms=fit.get("rms", math.nan))
    if not fit["c2"] > 0:
        best = log_n[np.argmin(loss)]
        flags = [("no_minimum", f"no minimum (the parabola opens downward): widen the span around the lowest loss, "
                                f"at N = {_n(best)}")]
        if row["sizes"] < checks.min_sizes:
            flags.append(("too_few_sizes", f"{row['sizes']} sizes: add {checks.min_sizes - row['sizes']}"))
        return _finish(row, flags, usable=False)
    x = fit["vertex"]
    row.update(N_opt=_pow10(x), loss_min=fit["minimum"],
               position=float((x - log_n.min()) / row["span"]), sizes_below=int(np.sum(log_n < x)),
               sizes_above=int(np.sum(log_n > x)), vertex_lo=_pow10(fit.get("vertex_lo", math.nan)),
               vertex_hi=_pow10(fit.get("vertex_hi", math.nan)))
    row["D_opt"] = _d_opt(group, row)
    return _finish(row, _flags(row, log_n, loss, fit, checks), usable=True)


def _finish(row: dict[str, Any], flags: list[tuple[str, str]], usable: bool) -> dict[str, Any]:
    codes = [code for code, _ in flags]
    return {**row, "usable": usable, "edge": "edge" in codes, "flags": codes, "advice": [why for _, why in flags],
            "note": "; ".join(why for _, why in flags)}


def _flags(row: dict[str, Any], log_n: np.ndarray, loss: np.ndarray, fit: dict[str, float],
           checks: BudgetChecks) -> list[tuple[str, str]]:
    """(flag, what to add) for a budget with a vertex, worst first."""
    lo, hi, x = log_n.min(), log_n.max(), fit["vertex"]
    best = log_n[np.argmin(loss)]
    flags = []
    if x < lo:
        flags.append(("edge", f"minimum below the smallest size tried: add sizes below N = {_n(lo)}, down to about "
                              f"N = {_n(max(2 * x - hi, lo - row['span']))}"))
    elif x > hi:
        flags.append(("edge", f"minimum above the largest size tried: add sizes above N = {_n(hi)}, up to about "
                              f"N = {_n(min(2 * x - lo, hi + row['span']))}"))
    else:
        flags += _weak(row, lo, hi, x, fit, checks) + _off_centre(row, lo, hi, x, best, checks)
    if row["sizes"] < checks.min_sizes:
        flags.append(("too_few_sizes", f"{row['sizes']} sizes: a parabola through 3 leaves no residual to judge it "
                                       f"by; add {checks.min_sizes - row['sizes']} (between N = {_n(lo)} and "
                                       f"{_n(hi)}, or to centre N_opt = {_n(x)})"))
    return flags


def _off_centre(row: dict[str, Any], lo: float, hi: float, x: float, best: float,
                checks: BudgetChecks) -> list[tuple[str, str]]:
    below, above = x - lo, hi - x
    if best in (lo, hi):  # the vertex inside, the lowest loss at an end: the minimum is at least that near the end
        below, above = (0.0, above) if best == lo else (below, 0.0)
    lopsided = max(below, above) > checks.off_centre_ratio * min(below, above)
    fewest = min(row["sizes_below"], row["sizes_above"])
    sparse = fewest < checks.min_side_fraction * (row["sizes_below"] + row["sizes_above"])
    if lopsided:
        side, edge, mirror = ("below", lo, 2 * x - hi) if below < above else ("above", hi, 2 * x - lo)
        return [("off_centre", f"minimum at N = {_n(x)}, {row['position']:.0%} of the way across the sizes tried: "
                               f"add sizes {side} N = {_n(edge)}, to about N = {_n(mirror)}")]
    if sparse:
        side, edge = ("below", lo) if row["sizes_below"] < row["sizes_above"] else ("above", hi)
        return [("off_centre", f"{fewest} of {row['sizes']} sizes {side} the minimum at N = {_n(x)}: add sizes "
                               f"between N = {_n(x)} and {_n(edge)}")]
    return []


def _weak(row: dict[str, Any], lo: float, hi: float, x: float, fit: dict[str, float],
          checks: BudgetChecks) -> list[tuple[str, str]]:
    if "c2_lo" not in fit:
        return []
    flat = fit["c2_lo"] <= 0
    loose = not (lo <= fit.get("vertex_lo", -math.inf) and fit.get("vertex_hi", math.inf) <= hi)
    if not (flat or loose):
        return []
    why = (f"the curvature's {checks.level:.0%} interval reaches zero" if flat else
           f"the minimum's {checks.level:.0%} interval, N = {_n(fit['vertex_lo'])} to {_n(fit['vertex_hi'])}, "
           f"reaches beyond the sizes tried")
    if row["span"] < checks.span_decades:
        half = checks.span_decades / 2
        return [("weak_curvature", f"{why}: widen the span from {row['span']:.2f} to {checks.span_decades:g} "
                                   f"decade{'s' * (checks.span_decades != 1)}: add sizes down to N = {_n(x - half)} "
                                   f"and up to N = {_n(x + half)}")]
    return [("weak_curvature", f"{why} over {row['span']:.2f} decades: add sizes (or seeds) to beat the noise")]


def _pow10(log10_n: float) -> float:
    """10 ** x, infinite rather than an overflow for a vertex a flat parabola puts absurdly far away."""
    return float(10.0 ** log10_n) if log10_n < 300 else math.inf


def _n(log10_n: float) -> str:
    return fmt_count(_pow10(log10_n)) if np.isfinite(log10_n) else "?"


def _d_opt(group: pd.DataFrame, row: dict[str, Any]) -> float:
    """D at the minimum of loss against log D (the same parabola seen from D), else C / (6 N_opt)."""
    if group["D"].nunique() >= 3:
        vertex = parabola_vertex(np.log(group["D"].to_numpy()), group["loss"].to_numpy())
        if vertex is not None:
            return float(np.exp(vertex[0]))
    return row["C"] / (6.0 * row["N_opt"])


def outlier_runs(frame: pd.DataFrame, labels: np.ndarray, checks: BudgetChecks = BudgetChecks()) -> dict[Any, list]:
    """{budget label: [(run, residual, z), ...]} of runs far from a smooth curve through their budget's other sizes.

    Leave-one-out, for runs between other sizes of their budget (an end would need extrapolation):
    the run's loss against an Akima interpolant, in log N, of the other sizes' mean losses (sizes
    within `duplicate_tol` merged). Residuals are pooled over the table and scaled by their median
    absolute deviation (a robust z). Budgets with fewer than 4 sizes are not checked.
    """
    from scipy.interpolate import Akima1DInterpolator

    found: list[tuple[Any, str, float]] = []
    names = _run_names(frame)
    for label, group in frame.groupby(labels):
        if distinct_sizes(group["N"].to_numpy(), checks.duplicate_tol) < 4:
            continue
        group_n, loss = group["N"].to_numpy(), group["loss"].to_numpy()
        log_n = np.log10(group_n)
        bins = size_bins(log_n, checks.duplicate_tol)
        members = [np.flatnonzero(bins == b) for b in range(bins.max() + 1)]
        means = [np.array([v[m].mean() for m in members]) for v in (log_n, loss)]
        for i, index in enumerate(group.index):
            x, y = _means_without(i, log_n, loss, bins, members, means, checks.duplicate_tol)
            at = math.log10(group_n[i])  # as before: math.log10 and np.log10 can differ in the last bit
            if len(x) >= 3 and x.min() < at < x.max():
                found.append((label, names[index], float(loss[i] - Akima1DInterpolator(x, y)(at))))
    if len(found) < 8:
        return {}
    residual = np.array([r for _, _, r in found])
    centre = float(np.median(residual))
    spread = float(np.median(np.abs(residual - centre))) / 0.6745
    out: dict[Any, list] = {}
    for label, run, r in found:
        if spread > 0 and abs(r - centre) / spread > checks.outlier_z:
            out.setdefault(label, []).append((run, r, abs(r - centre) / spread))
    return out


def _means_without(i: int, log_n: np.ndarray, loss: np.ndarray, bins: np.ndarray, members: list[np.ndarray],
                   means: list[np.ndarray], tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean log N and loss per size bin of a budget's runs without run i, as `size_bins` of the rest gives them.

    Only run i's bin changes (or goes, when i is alone in it), unless i is the single smallest of a
    bin it shares: then its removal can move the bins' edges, and the rest is binned afresh. Each
    run then costs one bin's mean instead of every bin's (the same numbers: the same values summed
    in the same order).
    """
    b = bins[i]
    rest = members[b][members[b] != i]
    if not len(rest):
        return np.delete(means[0], b), np.delete(means[1], b)
    if (log_n[rest] <= log_n[i]).any():  # i does not start its bin: no edge moves
        x, y = means[0].copy(), means[1].copy()
        x[b], y[b] = log_n[rest].mean(), loss[rest].mean()
        return x, y
    keep = np.arange(len(log_n)) != i
    x, y = log_n[keep], loss[keep]
    rest_bins = size_bins(x, tol)
    return tuple(np.array([v[rest_bins == k].mean() for k in np.unique(rest_bins)]) for v in (x, y))


def size_bins(log10_n: np.ndarray, tol: float = 0.01) -> np.ndarray:
    """A bin number per size, sizes within a relative `tol` of their bin's smallest sharing it (ordered by size)."""
    order = np.argsort(log10_n)
    bins = np.empty(len(log10_n), dtype=int)
    current, start = -1, -math.inf
    for i in order:
        if log10_n[i] - start > math.log10(1 + tol):
            current, start = current + 1, log10_n[i]
        bins[i] = current
    return bins


def _run_names(frame: pd.DataFrame) -> dict[Any, str]:
    """'run <run_id>', or 'the run at N = 1.2M' for a table without run ids."""
    if "run_id" in frame.columns:
        return {i: f"run {r} (N = {fmt_count(n)})" for i, r, n in zip(frame.index, run_labels(frame), frame["N"])}
    return {i: f"the run at N = {fmt_count(n)}" for i, n in zip(frame.index, frame["N"])}


def isoflop_minima(frame: pd.DataFrame, budgets: np.ndarray, checks: BudgetChecks = BudgetChecks(),
                   outliers: bool = False) -> pd.DataFrame:
    """One row per budget (its label as `budget`; the columns of `budget_minimum`), sorted by C.

    outliers=True also checks each run against its budget's other sizes (`outlier_runs`).
    """
    rows = [{"budget": label, **budget_minimum(group, checks)} for label, group in frame.groupby(budgets)]
    found = outlier_runs(frame, budgets, checks) if outliers else {}
    for row in rows:
        for run, residual, z in found.get(row["budget"], []):
            row["flags"] = [*row["flags"], *(["outlier_run"] if "outlier_run" not in row["flags"] else [])]
            row["advice"] = [*row["advice"], f"{run}: loss {residual:+.3g} off a smooth curve through the "
                                             f"other sizes ({z:.0f} robust SDs): check it or rerun it"]
            row["note"] = "; ".join(row["advice"])
    table = pd.DataFrame(rows).sort_values("C").reset_index(drop=True)
    for col in ("N_opt", "D_opt", "loss_min", "curvature", "position", "vertex_lo", "vertex_hi"):
        if col not in table.columns:
            table[col] = np.nan
    return table


def used_budgets(minima: pd.DataFrame, include_edge: bool = False) -> pd.Series:
    """Which budgets the power laws use: those with a vertex and no flag of LEFT_OUT (edge allowed by include_edge)."""
    dropped = [f for f in LEFT_OUT if not (include_edge and f == "edge")]
    return minima["usable"].astype(bool) & ~minima["flags"].apply(lambda flags: any(f in dropped for f in flags))


def allocation_from_minima(minima: pd.DataFrame, include_edge: bool = False) -> dict[str, float]:
    """a, b, G, G_D (N_opt = G (C/6)^a, D_opt = G_D^-1 (C/6)^b) and stderrs from the used budgets."""
    used = minima[used_budgets(minima, include_edge)]
    if len(used) < 2:
        raise AnalysisError(f"isoflop needs at least 2 budgets with a located interior minimum; {len(used)} of "
                            f"{len(minima)} have one" + _flag_summary(minima, include_edge))
    k_n, a, se_a = power_law_fit(used["C"], used["N_opt"])
    k_d, b, se_b = power_law_fit(used["C"], used["D_opt"])
    return {"a": a, "b": b, "G": k_n * 6.0**a, "G_D": 1.0 / (k_d * 6.0**b), "a_stderr": se_a, "b_stderr": se_b,
            "budgets_used": int(len(used))}


WHY_LEFT_OUT = {"too_few_sizes": "fewer than 3 model sizes", "no_minimum": "no minimum (the parabola opens downward)",
                "edge": "minimum at the edge of the sizes tried", "weak_curvature": "weak curvature"}


def _flag_summary(minima: pd.DataFrame, include_edge: bool) -> str:
    left_out = minima[~used_budgets(minima, include_edge)]
    reasons = pd.Series([WHY_LEFT_OUT.get(next((f for f in flags if f != "too_few_sizes"), "too_few_sizes"), "")
                         for flags in left_out["flags"]], dtype=object).value_counts()
    return "" if reasons.empty else " (" + "; ".join(f"{n}: {why}" for why, n in reasons.items()) + ")"


def fit_isoflop(frame: pd.DataFrame, *, budget_tol: float = 0.1, budget_column: str = "budget",
                include_edge: bool = False, checks: BudgetChecks = BudgetChecks(), bootstrap: int = 0, seed: int = 0,
                level: float = 0.95) -> FitResult:
    """Chinchilla's approach 2 on a run table: N_opt(C) and D_opt(C) from per-budget parabolas.

    Budgets come from `budget_column` when the table has it, else from C grouped within
    `budget_tol` (relative). Each budget is checked (`checks`, see the module docstring); the
    result's details["budgets"] holds every budget with its flags and what to add, and its
    warnings one line per flagged budget. Intervals on a and b are the slopes' t intervals; `bootstrap`
    resamples runs within each budget instead when every budget has BOOTSTRAP_MIN_SIZES sizes.
    """
    kept, excluded = clean(frame, COLUMNS, "isoflop", min_points=6)
    labels = kept[budget_column].to_numpy() if budget_column in kept.columns else budget_labels(kept["C"], budget_tol)
    kept = kept.assign(_budget=labels)
    started = time.perf_counter()
    minima = isoflop_minima(kept, labels, checks, outliers=True)
    allocation = allocation_from_minima(minima, include_edge)
    result = _isoflop_result(kept, excluded, minima, allocation, include_edge, time.perf_counter() - started)
    _add_slope_intervals(result, allocation, level)
    fewest = int(minima.loc[minima["usable"], "sizes"].min()) if minima["usable"].any() else 0
    if bootstrap and fewest < BOOTSTRAP_MIN_SIZES:
        result.warnings.append(f"bootstrap not used: a budget has only {fewest} sizes (a run bootstrap within budgets "
                               f"needs {BOOTSTRAP_MIN_SIZES}); the intervals are the t intervals of the vertex power laws")
    elif bootstrap:
        def statistic(sample: pd.DataFrame) -> dict[str, float]:
            found = allocation_from_minima(isoflop_minima(sample, sample["_budget"].to_numpy(), checks), include_edge)
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
    used = used_budgets(minima, include_edge)
    predicted = allocation["G"] * (minima.loc[used, "C"] / 6.0) ** allocation["a"]
    residuals = np.log(minima.loc[used, "N_opt"].to_numpy()) - np.log(predicted.to_numpy())
    in_used = kept["_budget"].isin(minima.loc[used, "budget"])
    result = FitResult(law="isoflop", params={k: allocation[k] for k in ("a", "b", "G", "G_D")},
                       n_points=int(in_used.sum()), objective=float(np.sum(residuals**2)),
                       formula="N_opt = G (C/6)^a, D_opt = G_D^-1 (C/6)^b from per-budget parabolas of loss vs log N",
                       residuals=residuals, runs=run_labels(kept[in_used]), excluded=excluded,
                       a=allocation["a"], b=allocation["b"], G=allocation["G"])
    flagged = minima["flags"].apply(bool)
    result.fit_info = {"method": "IsoFLOP profiles (Chinchilla approach 2)", "budgets": int(len(minima)),
                       "budgets_used": allocation["budgets_used"], "budgets_flagged": int(flagged.sum()),
                       "a_stderr": allocation["a_stderr"], "b_stderr": allocation["b_stderr"],
                       "objective": "sum of squared log N_opt residuals", "seconds": seconds, "notes": [POLICY]}
    clean_used = minima[used & ~flagged]
    if 2 <= len(clean_used) < allocation["budgets_used"]:
        result.fit_info["a_unflagged"] = power_law_fit(clean_used["C"], clean_used["N_opt"])[1]
        result.fit_info["notes"].append(f"a = {result.a:.3f} from the {allocation['budgets_used']} budgets used; "
                                        f"{result.fit_info['a_unflagged']:.3f} from the {len(clean_used)} unflagged")
    minima = minima.assign(used=used)
    result.details = {"budgets": minima.drop(columns=["budget"]).to_dict(orient="records")}
    result.warnings = [f"budget C = {row.C:.3g} ({'used' if row.used else 'left out'}): {row.note}"
                       for row in minima.itertuples() if row.note]
    return result
