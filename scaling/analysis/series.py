"""What each figure shows, computed once for both renderings: the matplotlib figures (PNG, SVG) and the
interactive plotly figures of the HTML report draw these series, so the two always agree.

    curve = frontier_curve(an)          # C, loss, lo, hi, extrapolated
    source, profiles = isoflop_profiles(an)

Pure: functions of an `Analysis` (scaling.analysis.analyse), no drawing and no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm, to_hex

from scaling.analysis import AnalysisError, FitResult, frontier
from scaling.analysis.analyse import LOSS_LAWS, Analysis
from scaling.analysis.formatting import finite
from scaling.analysis.isoflop import budget_labels, power_law_fit
from scaling.analysis.laws import PARAMETRIC_LAWS, get_law

FIGURE_NAMES = ("loss_vs_compute", "loss_vs_params", "loss_vs_data", "isoflop", "allocation", "residuals",
                "backtest", "probes", "branches", "lr_transfer")
MAX_CURVE_POINTS = 200  # per run: longer curves are thinned (log-spaced) for drawing
CURVE_POINT_BUDGET = 100_000  # points of all the drawn curves together: many runs get fewer points each ...
MIN_CURVE_POINTS = 12  # ... but at least this many
MAX_GROUPS = 8  # lines in loss-vs-N (one per D) and loss-vs-D (one per N)
PROBE_MIN_R2 = 0.5  # a power law is drawn through a probe metric only when it explains this much


# -------------------------------------------------------------------------- colours


def size_colours(an: Analysis) -> Callable[[float], str]:
    """N -> a viridis colour on a log scale over the sweep's sizes (hex)."""
    norm = size_norm(an)
    cmap = colormaps.get_cmap("viridis")
    sizes = pd.to_numeric(an.usable["N"], errors="coerce").dropna().unique() if len(an.usable) else []
    known = dict(zip(sizes, (to_hex(c) for c in cmap(norm(np.asarray(sizes, dtype=float)))))) if len(sizes) else {}
    # the runs' own sizes mapped at once (a scalar LogNorm call costs more than the whole array's)
    return lambda n: known[n] if n in known else to_hex(cmap(norm(n)))


def size_norm(an: Analysis) -> LogNorm:
    """The log-scale normalisation of N used for colours."""
    sizes = an.usable["N"] if len(an.usable) else pd.to_numeric(an.runs.get("N", pd.Series([1.0])), errors="coerce")
    lo, hi = float(np.nanmin(sizes)), float(np.nanmax(sizes))
    return LogNorm(vmin=lo, vmax=hi * 1.0001 if hi == lo else hi)


def palette(count: int, name: str = "plasma", span: float = 0.85) -> list[str]:
    """`count` hex colours spread over `span` of a matplotlib colour map (one per line of a figure)."""
    cmap = colormaps.get_cmap(name)
    return [to_hex(cmap(span * i / max(1, count - 1))) for i in range(count)]


# --------------------------------------------------------------------------- series


def curve_points(an: Analysis) -> Optional[pd.DataFrame]:
    """The usable runs' curves as one table [run, run_id, N, C_seen, loss] (`run`: the row's position in the
    usable runs sorted by N), runs by size, each by compute, thinned for drawing to MAX_CURVE_POINTS a run,
    or fewer when there are many runs (CURVE_POINT_BUDGET in all, at least MIN_CURVE_POINTS each), never
    for fitting. None without curves. Computed once per Analysis (every figure draws the same curves)."""
    return an.memoised("curve_points", lambda: _curve_points(an))


def _curve_points(an: Analysis) -> Optional[pd.DataFrame]:
    if an.curves is None or an.loss_column is None:
        return None
    usable = an.usable.sort_values("N")
    ids = usable["run_id"].to_numpy()
    first = np.flatnonzero(~pd.Series(ids).duplicated().to_numpy())  # a run_id twice: its first row's curve
    found = pd.Index(ids[first]).get_indexer(an.curves["run_id"])
    run = np.where(found >= 0, first[found], -1)
    C = an.curves["C_seen"].to_numpy(dtype=float)
    loss = an.curves[an.loss_column].to_numpy(dtype=float)
    ok = np.isfinite(C) & (C > 0) & np.isfinite(loss) & (run >= 0)
    run, C, loss = run[ok], C[ok], loss[ok]
    order = np.lexsort((C, run))
    run, C, loss = run[order], C[order], loss[order]
    counts = np.bincount(run, minlength=len(usable))
    points = min(MAX_CURVE_POINTS, max(MIN_CURVE_POINTS, CURVE_POINT_BUDGET // max(1, int((counts > 0).sum()))))
    position = np.arange(len(run)) - (np.cumsum(counts) - counts)[run]
    length = counts[run]
    keep = np.zeros(len(run), dtype=bool)
    for size in np.unique(length[length >= 2]):  # runs of one length keep the same positions
        kept = np.zeros(size, dtype=bool)
        kept[_thinned_positions(int(size), points)] = True
        same = length == size
        keep[same] = kept[position[same]]
    run = run[keep]
    return pd.DataFrame({"run": run, "run_id": usable["run_id"].to_numpy()[run], "N": usable["N"].to_numpy()[run],
                         "C_seen": C[keep], "loss": loss[keep]})


def _thinned_positions(length: int, points: int) -> np.ndarray:
    """Positions `thin` keeps of a curve of `length` rows."""
    if length <= points:
        return np.arange(length)
    return np.union1d(np.unique(np.geomspace(1, length, points).astype(int) - 1), [length - 1])


def thin(curve: pd.DataFrame, points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `points` rows, log-spaced in position (dense early, where curves bend), always the last."""
    return curve if len(curve) <= points else curve.iloc[_thinned_positions(len(curve), points)]


def empirical_frontier(an: Analysis) -> Optional[pd.DataFrame]:
    """The lower envelope of the curves (C, loss), or None without curves."""
    if an.curves is None or an.loss_column is None or len(an.usable) < 2:
        return None
    return an.memoised("empirical_frontier", lambda: _empirical_frontier(an))  # both renderings draw it


def _empirical_frontier(an: Analysis) -> Optional[pd.DataFrame]:
    try:
        return frontier(an.usable, an.curves, loss_column=an.loss_column)
    except (AnalysisError, ValueError):
        return None


def compute_grid(an: Analysis, points: int = 120) -> np.ndarray:
    """Log-spaced compute from the smallest fitted run to the target (or the largest run, held-out target or
    registered prediction)."""
    lo = float(an.usable["C"].min())
    hi = max(float(an.usable["C"].max()), an.target_C if finite(an.target_C) else 0.0, *_shown_C(an))
    return np.geomspace(lo, hi, points)


def _shown_C(an: Analysis) -> list[float]:
    """The compute of the held-out targets and registered predictions the loss-vs-compute figure draws."""
    shown = [float(c) for c in an.held_out["C"]] if len(an.held_out) else []
    points = registered_points(an)
    return shown + ([float(c) for c in points["C"]] if points is not None else [])


def frontier_curve(an: Analysis, C: Optional[np.ndarray] = None) -> Optional[pd.DataFrame]:
    """The fitted compute-optimal loss: C, loss, lo, hi (the bootstrap band), extrapolated (beyond the runs)."""
    if not an.loss_law or not len(an.usable) or (an.main.law != "compute" and not an.main.has_allocation):
        return None  # a law of N and D without an allocation (a variable it never saw vary) has no frontier
    C = compute_grid(an) if C is None else np.asarray(C, dtype=float)
    main = an.main
    if main.law == "compute":
        def along(result: FitResult) -> np.ndarray:
            return np.asarray(result.predict(C=C), dtype=float)
    else:
        def along(result: FitResult) -> np.ndarray:
            return result.optimal(C)["loss"].to_numpy()
    with np.errstate(all="ignore"):
        loss = along(main)
    band = draw_band(main, along, an.level)
    out = pd.DataFrame({"C": C, "loss": loss})
    out["lo"], out["hi"] = (band[:, 0], band[:, 1]) if band is not None else (np.nan, np.nan)
    out["extrapolated"] = C > float(an.usable["C"].max()) * (1 + 1e-9)
    return out


def draw_band(main: FitResult, along: Callable[[FitResult], np.ndarray], level: float) -> Optional[np.ndarray]:
    """Quantiles [n, 2] of `along(result)` over the fit's bootstrap draws (each draw as a FitResult).

    A draw the law cannot evaluate (a parameter at 0 in a log-space law, say) is skipped.
    """
    if main.samples is None or not len(main.samples):
        return None
    values = []
    for draw in main.samples:
        d = dict(zip(main.sample_names, draw))
        params = {k: float(d[k]) for k in main.params if k in d}
        allocation = {k: d[k] for k in ("a", "b", "G") if k in d and main.has_allocation}
        try:
            with np.errstate(all="ignore"):
                values.append(along(dataclasses.replace(main, params=params, **allocation)))
        except (ValueError, OverflowError, ZeroDivisionError):
            continue
    if len(values) < 2:
        return None
    stack = np.array(values, dtype=float)
    stack[~np.isfinite(stack)] = np.nan
    with np.errstate(all="ignore"):
        return np.nanquantile(stack, [(1 - level) / 2, (1 + level) / 2], axis=0).T


def target_prediction(an: Analysis) -> Optional[dict[str, float]]:
    """At the target compute: C, loss (with lo, hi) and, with an allocation, N_opt and D_opt."""
    if an.main is None or not finite(an.target_C):
        return None
    out: dict[str, float] = {"C": an.target_C}
    curve = frontier_curve(an, np.array([an.target_C]))
    if curve is not None:
        out.update(loss=float(curve["loss"].iloc[0]), lo=float(curve["lo"].iloc[0]), hi=float(curve["hi"].iloc[0]))
    if an.main.has_allocation:
        optimal = an.main.optimal([an.target_C]).iloc[0]
        out.update(N_opt=float(optimal["N_opt"]), D_opt=float(optimal["D_opt"]))
    return out if len(out) > 1 else None


def held_out_points(an: Analysis) -> Optional[pd.DataFrame]:
    """A ladder's held-out targets: run_id, N, D, C, loss (NaN until completed) and the main law's prediction
    of each from its own N, D or C (predicted, with lo, hi from the bootstrap draws)."""
    if not len(an.held_out):
        return None
    frame = an.held_out[[c for c in ("run_id", "N", "D", "C", "loss") if c in an.held_out.columns]].copy()
    frame["predicted"], frame["lo"], frame["hi"] = np.nan, np.nan, np.nan
    main = an.main
    variables = get_law(main.law, **main.law_options).variables if main and main.law in PARAMETRIC_LAWS else ()
    if not variables or not set(variables) <= set(frame.columns):
        return frame
    columns = {v: frame[v].to_numpy(dtype=float) for v in variables}
    with np.errstate(all="ignore"):
        if main.samples is not None:
            band = main.predict_interval(**columns)
            frame["predicted"], frame["lo"], frame["hi"] = (band[k].to_numpy() for k in ("estimate", "lo", "hi"))
        else:
            frame["predicted"] = np.asarray(main.predict(**columns), dtype=float)
    return frame


def registered_points(an: Analysis) -> Optional[pd.DataFrame]:
    """The registered predictions (scaling predict) at their compute: name, label, C, predicted, lo, hi,
    observed (NaN while pending), state and covered, scored against the run table."""
    from scaling.analysis.predictions import Target, score

    rows = []
    for prediction in an.predictions:
        if "error" in prediction or prediction["target"].get("C") is None:
            continue
        scored, predicted = score(prediction, an.runs), prediction["predicted"]
        rows.append({"name": prediction["name"], "label": Target(**prediction["target"]).label(),
                     "C": float(prediction["target"]["C"]), "predicted": float(predicted["loss"]),
                     "lo": _or_nan(predicted.get("lo")), "hi": _or_nan(predicted.get("hi")),
                     "observed": _or_nan(scored.get("observed")), "state": scored["state"],
                     "covered": scored.get("covered")})
    return pd.DataFrame(rows) if rows else None


def _or_nan(value: Any) -> float:
    return float(value) if value is not None else np.nan


def groups(frame: pd.DataFrame, column: str, rel_tol: float = 0.05) -> list[tuple[float, pd.DataFrame]]:
    """Rows grouped by `column` within rel_tol (geometric-mean label), the MAX_GROUPS largest groups."""
    if not len(frame):
        return []
    labels = budget_labels(frame[column].to_numpy(dtype=float), rel_tol)
    found = [(float(np.exp(np.log(g[column]).mean())), g) for _, g in frame.groupby(labels)]
    found = sorted(found, key=lambda item: -len(item[1]))[:MAX_GROUPS]
    return sorted(found, key=lambda item: item[0])


def law_line(an: Analysis, vary: str, fixed: Optional[float], grid: np.ndarray) -> Optional[np.ndarray]:
    """The main law's loss along `vary` (N or D) at a fixed value of the other, or None when it has none."""
    main = an.main
    if main is None or main.law not in PARAMETRIC_LAWS:
        return None
    other = "D" if vary == "N" else "N"
    with np.errstate(all="ignore"):
        if main.law in LOSS_LAWS and fixed is not None:
            return np.asarray(main.predict(**{vary: grid, other: np.full(len(grid), fixed)}), dtype=float)
        if main.law == {"N": "params", "D": "data"}[vary]:
            return np.asarray(main.predict(**{vary: grid}), dtype=float)
    return None


def isoflop_profiles(an: Analysis) -> tuple[str, list[dict[str, Any]]]:
    """('data', profiles) from budgets of 3+ sizes, else ('law', profiles of the fitted law), else ('', []).

    A profile: C, N (grid), loss (parabola or law along the grid), N_min, loss_min, and for data
    the runs of that budget (`points`) and the IsoFLOP fit's verdict on it (`flags`, `advice`, `used`).
    """
    data = _data_profiles(an)
    if data:
        return "data", data
    if an.main is None or an.main.law not in LOSS_LAWS or not an.main.has_allocation or not len(an.usable):
        return "", []
    lo, hi = float(an.usable["C"].min()), float(an.usable["C"].max())
    budgets = np.geomspace(lo, max(hi, lo * 10), 4)
    return "law", [_law_profile(an.main, C, an.usable) for C in budgets]


def isoflop_budgets(an: Analysis) -> list[dict[str, Any]]:
    """The IsoFLOP fit's budgets (C, flags, advice, used, ...; see scaling.analysis.isoflop), [] without one."""
    result = an.main if an.law == "isoflop" else an.approaches.get("isoflop")
    return list(result.details.get("budgets", [])) if result is not None else []


def _budget_flags(budgets: list[dict[str, Any]], C: float) -> dict[str, Any]:
    """flags, advice and used of the fitted budget nearest C (within 10%); nothing flagged when none is."""
    near = [b for b in budgets if abs(np.log(b["C"] / C)) < np.log1p(0.1)]
    if not near:
        return {"flags": [], "advice": [], "used": None}
    best = min(near, key=lambda b: abs(np.log(b["C"] / C)))
    return {"flags": list(best.get("flags", [])), "advice": list(best.get("advice", [])), "used": best.get("used")}


def _data_profiles(an: Analysis) -> list[dict[str, Any]]:
    profiles = []
    budgets = isoflop_budgets(an)
    for C, group in groups(an.usable, "C", 0.1):
        if group["N"].nunique() < 3:
            continue
        x, y = np.log(group["N"].to_numpy()), group["loss"].to_numpy()
        c2, c1, c0 = np.polyfit(x, y, 2)
        grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 60)
        profile = {"C": C, "N": np.exp(grid), "loss": c0 + c1 * grid + c2 * grid**2, "points": group.sort_values("N"),
                   **_budget_flags(budgets, C)}
        if c2 > 0:
            x_min = -c1 / (2 * c2)
            profile.update(N_min=float(np.exp(x_min)), loss_min=float(c0 + c1 * x_min + c2 * x_min**2))
        profiles.append(profile)
    return profiles


def _law_profile(main: FitResult, C: float, usable: pd.DataFrame) -> dict[str, Any]:
    N = np.geomspace(float(usable["N"].min()) / 4, float(usable["N"].max()) * 4, 80)
    with np.errstate(all="ignore"):
        loss = np.asarray(main.predict(N=N, D=C / (6.0 * N)), dtype=float)
        optimal = main.optimal([C]).iloc[0]
    return {"C": float(C), "N": N, "loss": loss, "N_min": float(optimal["N_opt"]), "loss_min": float(optimal["loss"])}


def allocation_lines(an: Analysis) -> list[dict[str, Any]]:
    """N_opt(C) and D_opt(C) of every fit that gives them: name, C, N_opt, D_opt (and _lo/_hi bands)."""
    if not len(an.usable):
        return []
    C = compute_grid(an)
    out = []
    for name, result in [(an.law, an.main), *an.approaches.items()]:
        if result is None or not result.has_allocation:
            continue
        line = result.optimal(C)
        entry = {"name": name, "C": C, "N_opt": line["N_opt"].to_numpy(), "D_opt": line["D_opt"].to_numpy(),
                 "a": result.a, "b": result.b}
        entry.update(_allocation_band(result, C, an.level))
        out.append(entry)
    return out


def _allocation_band(result: FitResult, C: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """N_opt_lo/hi and D_opt_lo/hi at C from the bootstrap draws of a and G (D_opt = (C/6) / N_opt)."""
    if result.samples is None or not {"a", "G"} <= set(result.sample_names):
        return {}
    draws = dict(zip(result.sample_names, np.asarray(result.samples, dtype=float).T))
    per_six = C / 6.0
    with np.errstate(all="ignore"):
        n_opt = draws["G"][:, None] * per_six[None, :] ** draws["a"][:, None]
        n_opt[~np.isfinite(n_opt) | (n_opt <= 0)] = np.nan
        lo, hi = np.nanquantile(n_opt, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return {"N_opt_lo": lo, "N_opt_hi": hi, "D_opt_lo": per_six / hi, "D_opt_hi": per_six / lo}


def allocation_points(an: Analysis) -> list[dict[str, Any]]:
    """The measured optima: IsoFLOP minima and envelope frontier points (name, C, N_opt, D_opt)."""
    out = []
    for name, result in [(an.law, an.main), *an.approaches.items()]:
        if result is None:
            continue
        rows = result.details.get("budgets") or result.details.get("frontier")
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        if "usable" in frame.columns:
            frame = frame[frame["usable"].astype(bool)]
        if "edge" in frame.columns:
            frame = frame[~frame["edge"].astype(bool)]
        if "D_opt" not in frame.columns:
            frame = frame.assign(D_opt=frame["C"] / (6.0 * frame["N_opt"]))
        if len(frame):
            out.append({"name": name, "C": frame["C"].to_numpy(), "N_opt": frame["N_opt"].to_numpy(),
                        "D_opt": frame["D_opt"].to_numpy()})
    return out


def residual_points(an: Analysis) -> Optional[pd.DataFrame]:
    """run_id, C, N, D, loss, residual (log observed - log predicted) of the main parametric fit."""
    main = an.main
    if main is None or main.law not in PARAMETRIC_LAWS or not len(main.residuals):
        return None
    frame = pd.DataFrame({"run_id": [str(r) for r in main.runs], "residual": np.asarray(main.residuals, dtype=float)})
    table = an.usable.assign(run_id=an.usable["run_id"].astype(str)) if "run_id" in an.usable.columns else None
    if table is None:
        return None
    return frame.merge(table, on="run_id", how="inner")


def backtest_points(an: Analysis) -> Optional[dict[str, pd.DataFrame]]:
    """{'held_out': run, C, loss, predicted, rel_error; 'fitted': the in-sample runs with their prediction}."""
    main = an.main
    if main is None or not main.backtest or not main.backtest.get("runs"):
        return None
    held = pd.DataFrame(main.backtest["runs"])
    fitted = an.usable[~an.usable["run_id"].astype(str).isin(held["run"].astype(str))]
    variables = {"chinchilla": ("N", "D"), "kaplan": ("N", "D"), "compute": ("C",), "params": ("N",), "data": ("D",)}
    with np.errstate(all="ignore"):
        predicted = main.predict(**{v: fitted[v].to_numpy(dtype=float) for v in variables[main.law]})
    return {"held_out": held, "fitted": fitted.assign(predicted=np.asarray(predicted, dtype=float))}


def probe_fits(an: Analysis) -> list[dict[str, Any]]:
    """Per probe_* metric and per x in (N, C): the points and, where one fits, the power law y = k x^p."""
    out = []
    for metric in an.probe_columns():
        frame = an.runs.assign(**{metric: pd.to_numeric(an.runs[metric], errors="coerce")})
        for x in ("N", "C"):
            if x not in frame.columns:
                continue
            points = frame[np.isfinite(pd.to_numeric(frame[x], errors="coerce")) & np.isfinite(frame[metric])]
            out.append({"metric": metric, "x": x, "points": points, **_power_fit(points[x], points[metric], x)})
    return out


def _power_fit(x: pd.Series, y: pd.Series, name: str = "x") -> dict[str, Any]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = (x > 0) & (y > 0)
    if ok.sum() < 3 or np.unique(x[ok]).size < 2:
        return {"fit": None, "note": "too few positive points for a power law"}
    k, exponent, _ = power_law_fit(x[ok], y[ok])
    predicted = np.log(k) + exponent * np.log(x[ok])
    residual = np.log(y[ok]) - predicted
    total = np.log(y[ok]) - np.log(y[ok]).mean()
    r2 = 1.0 - float(np.sum(residual**2) / np.sum(total**2)) if np.sum(total**2) > 0 else 0.0
    if r2 < PROBE_MIN_R2:
        return {"fit": None, "note": f"no power law (R² = {r2:.2f})"}
    grid = np.geomspace(x[ok].min(), x[ok].max(), 50)
    return {"fit": {"k": k, "exponent": exponent, "r2": r2, "x": grid, "y": k * grid**exponent},
            "note": f"∝ {name}^{exponent:.3f} (R² = {r2:.2f})"}


# --------------------------------------------------------------------------- axes


def loss_limits(an: Analysis, curve: pd.DataFrame, margin: float = 1.08) -> Optional[tuple[float, float]]:
    """The loss axis range holding the runs, their curves and the frontier: a wild bootstrap band must not
    squash the runs."""
    values = [an.usable["loss"].to_numpy(), curve["loss"].to_numpy()]
    drawn = curve_points(an)
    values += [drawn["loss"].to_numpy()] if drawn is not None else []
    for points, keys in ((held_out_points(an), ("loss", "predicted")), (registered_points(an), ("observed", "predicted"))):
        values += [points[k].to_numpy(dtype=float) for k in keys] if points is not None else []
    return _positive_range(np.concatenate(values), margin)


def backtest_limits(fitted: pd.DataFrame, held: pd.DataFrame, margin: float = 1.03) -> Optional[tuple[float, float]]:
    """One range for both axes of the backtest (observed and predicted loss of the fitted and held-out runs)."""
    values = np.concatenate([fitted["loss"], fitted["predicted"], held["loss"], held["predicted"]]).astype(float)
    return _positive_range(values, margin)


def _positive_range(values: np.ndarray, margin: float) -> Optional[tuple[float, float]]:
    values = values[np.isfinite(values) & (values > 0)]
    return (values.min() / margin, values.max() * margin) if len(values) else None


def branch_trees(an: Analysis) -> list[dict[str, Any]]:
    """Cooldown trunks with their branches (mode=branches), for loss against tokens seen.

    One entry per trunk with a curve: run_id, N, colour (by N), curve (D_seen, loss) and branches,
    each run_id, branch_step, curve (from its branch step on) and its final D and loss.
    """
    runs, curves = an.runs, an.curves
    if curves is None or "parent" not in runs.columns or not runs["parent"].notna().any() or "D_seen" not in curves:
        return []
    column = an.loss_column or "val_loss"
    colour = size_colours(an)
    by_run = {run: c.dropna(subset=[column]).sort_values("step") for run, c in curves.groupby("run_id")}
    trees = []
    for parent, children in runs[runs["parent"].notna()].groupby("parent"):
        trunk = runs[runs["run_id"] == parent]
        N = float(pd.to_numeric((trunk if len(trunk) else children)["N"], errors="coerce").iloc[0])
        tree = {"run_id": str(parent), "N": N, "colour": colour(N), "curve": _branch_curve(by_run.get(parent), column),
                "branches": []}
        for _, child in children.sort_values("D").iterrows():
            curve = by_run.get(child["run_id"])
            step = float(child.get("branch_step") or 0)
            tree["branches"].append({"run_id": str(child["run_id"]), "branch_step": step, "D": float(child["D"]),
                                     "loss": float(child["loss"]) if finite(child.get("loss")) else np.nan,
                                     "curve": _branch_curve(None if curve is None else curve[curve["step"] >= step],
                                                            column)})
        trees.append(tree)
    return sorted(trees, key=lambda t: t["N"])


def _branch_curve(curve: Optional[pd.DataFrame], column: str) -> dict[str, np.ndarray]:
    if curve is None or not len(curve):
        return {"D_seen": np.zeros(0), "loss": np.zeros(0)}
    return {"D_seen": curve["D_seen"].to_numpy(dtype=float), "loss": curve[column].to_numpy(dtype=float)}
