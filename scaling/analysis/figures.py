"""The figures of the scaling-law papers, from a run table and its fits (matplotlib, PNG and SVG).

    an = analyse(runs, curves, law="chinchilla", target_flops=1e18)
    save_figures(make_figures(an), "report/")   # loss_vs_compute.png/.svg, isoflop.png, ...

`analyse` runs the fits once (the law asked for, with bootstrap intervals and a backtest, plus the
IsoFLOP and envelope approaches where the table allows them) and keeps why any of them could not
be fitted. The series helpers below (`frontier_curve`, `isoflop_profiles`, `allocation_lines`, ...)
compute what each figure shows; the matplotlib figures here and the interactive ones of the HTML
report (scaling.analysis.report) both draw from them, so the two always agree. Pure: no I/O except
`save_figures`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from scaling.analysis import AnalysisError, FitResult, fit, frontier
from scaling.analysis.envelope import choose_loss_column
from scaling.analysis.isoflop import budget_labels, power_law_fit
from scaling.analysis.laws import PARAMETRIC_LAWS

FIGURE_NAMES = ("loss_vs_compute", "loss_vs_params", "loss_vs_data", "isoflop", "allocation", "residuals",
                "backtest", "probes")
LOSS_LAWS = ("chinchilla", "kaplan")  # laws of N and D: a loss at every (N, D) and an allocation
MAX_CURVE_POINTS = 200  # per run: longer curves are thinned (log-spaced) for drawing
MAX_GROUPS = 8  # lines in loss-vs-N (one per D) and loss-vs-D (one per N)
PROBE_MIN_R2 = 0.5  # a power law is drawn through a probe metric only when it explains this much


@dataclass
class Analysis:
    """A run table, its curves and its fits: everything the figures and the report show."""

    runs: pd.DataFrame
    usable: pd.DataFrame
    curves: Optional[pd.DataFrame]
    law: str
    main: Optional[FitResult]
    approaches: dict[str, FitResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    target_C: float = math.nan
    loss_column: Optional[str] = None
    level: float = 0.95

    @property
    def loss_law(self) -> bool:
        """Whether the main fit predicts the loss at the compute-optimal point (a law of N and D, or of C)."""
        return self.main is not None and (self.main.law in LOSS_LAWS or self.main.law == "compute")

    def probe_columns(self) -> list[str]:
        """The run table's probe_* columns with at least one number."""
        return [c for c in self.runs.columns if str(c).startswith("probe_")
                and pd.to_numeric(self.runs[c], errors="coerce").notna().any()]


# --------------------------------------------------------------------------- analyse


def usable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs with finite, positive N, D, C and loss (what the figures plot and the fits use)."""
    frame = runs.copy()
    for col in ("N", "D", "C", "loss"):
        if col not in frame.columns:
            return frame.iloc[:0]
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    ok = np.isfinite(frame[["N", "D", "C", "loss"]]).all(axis=1) & (frame[["N", "D", "C", "loss"]] > 0).all(axis=1)
    if "status" in frame.columns:
        ok &= frame["status"].astype(str) == "completed"
    return frame[ok].reset_index(drop=True)


def default_target(C: pd.Series) -> float:
    """The round power of ten at least ten times the largest compute of the sweep."""
    return 10.0 ** math.ceil(math.log10(float(C.max())) + 1) if len(C) else math.nan


def auto_holdout(n_usable: int, law: str) -> int:
    """How many of the most expensive runs the backtest holds out: a sixth, at least one."""
    return max(1, math.ceil(n_usable / 6)) if law in PARAMETRIC_LAWS else 0


def analyse(runs: pd.DataFrame, curves: Optional[pd.DataFrame] = None, law: str = "chinchilla", *,
            target_flops: Optional[float] = None, bootstrap: int = 200, holdout: Optional[int | float] = None,
            seed: int = 0, level: float = 0.95) -> Analysis:
    """Fit `law` (bootstrap intervals, a backtest) and the IsoFLOP and envelope approaches where possible.

    Nothing raises for a table that cannot be fitted: the reason lands in `errors` and the
    figures show the data alone.
    """
    usable = usable_runs(runs)
    curves = curves if curves is not None and len(curves) else None
    an = Analysis(runs=runs, usable=usable, curves=curves, law=law, main=None, level=level,
                  target_C=float(target_flops) if target_flops else default_target(usable["C"]))
    an.loss_column = _loss_column(curves)
    an.main = _try(an, law, lambda: fit(runs, law, curves=curves, bootstrap=bootstrap, seed=seed, level=level))
    k = auto_holdout(len(usable), law) if holdout is None else holdout
    if an.main is not None and k:
        tested = _try(an, "backtest", lambda: fit(runs, law, curves=curves, holdout=k, seed=seed))
        an.main.backtest = tested.backtest if tested is not None else None
    for approach in ("isoflop", "envelope"):
        if approach != law:
            found = _try(an, approach, lambda name=approach: fit(runs, name, curves=curves, seed=seed))
            if found is not None:
                an.approaches[approach] = found
    return an


def _try(an: Analysis, name: str, job: Callable[[], FitResult]) -> Optional[FitResult]:
    try:
        with np.errstate(all="ignore"):  # overflow in far-off starts and resamples is expected, not news
            return job()
    except (AnalysisError, ValueError, FloatingPointError) as error:
        an.errors[name] = str(error)
        return None


def _loss_column(curves: Optional[pd.DataFrame]) -> Optional[str]:
    """The curve column to draw: val_loss, unless it is logged too sparsely to show a curve and train_loss is not."""
    if curves is None or "run_id" not in curves.columns:
        return None
    logged = {c: float(curves[c].notna().groupby(curves["run_id"]).sum().median())
              for c in ("val_loss", "train_loss") if c in curves.columns}
    val, train = logged.get("val_loss", 0.0), logged.get("train_loss", 0.0)
    if val >= 8 or (val >= 2 and val >= train):
        return "val_loss"
    if train >= 2:
        return "train_loss"
    try:
        return choose_loss_column(curves)
    except AnalysisError:
        return None


# ---------------------------------------------------------------------- formatting


def fmt_count(value: float) -> str:
    """7920 -> '7.9k', 1.2e6 -> '1.2M', 3e9 -> '3.0B'."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def fmt_flops(value: float) -> str:
    """4.03e+08 -> '4.0e8'."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def run_label(row: Any) -> str:
    """'w32 d2 D=250k' for a run-table row."""
    width, depth = _get(row, "width"), _get(row, "depth")
    size = f"w{int(width)} d{int(depth)}" if _finite(width) and _finite(depth) else f"N={fmt_count(_get(row, 'N'))}"
    return f"{size} D={fmt_count(_get(row, 'D'))}"


def hover_lines(row: Any) -> list[str]:
    """The lines a hover box shows for a run: its id and config (width, depth, N, D, C, loss)."""
    lines = [f"run {_get(row, 'run_id')}"]
    width, depth = _get(row, "width"), _get(row, "depth")
    if _finite(width):
        lines.append(f"width {int(width)} · depth {int(depth) if _finite(depth) else '?'}")
    N, D, C, loss = (_get(row, k) for k in ("N", "D", "C", "loss"))
    lines.append(f"N {int(N):,} · D {int(D):,}" if _finite(N) and _finite(D) else f"N {N} · D {D}")
    lines.append((f"C {fmt_flops(C)}" if _finite(C) else f"C {C}") + (f" · loss {loss:.4f}" if _finite(loss) else ""))
    return lines


def _get(row: Any, key: str) -> Any:
    return row.get(key) if hasattr(row, "get") else getattr(row, key, None)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -------------------------------------------------------------------------- colours


def size_colours(an: Analysis) -> Callable[[float], str]:
    """N -> a viridis colour on a log scale over the sweep's sizes (hex)."""
    norm = size_norm(an)
    cmap = colormaps.get_cmap("viridis")
    return lambda n: to_hex(cmap(norm(n)))


def size_norm(an: Analysis) -> LogNorm:
    """The log-scale normalisation of N used for colours."""
    sizes = an.usable["N"] if len(an.usable) else pd.to_numeric(an.runs.get("N", pd.Series([1.0])), errors="coerce")
    lo, hi = float(np.nanmin(sizes)), float(np.nanmax(sizes))
    return LogNorm(vmin=lo, vmax=hi * 1.0001 if hi == lo else hi)


# ---------------------------------------------------------------------------- series


def run_curves(an: Analysis) -> list[tuple[pd.Series, pd.DataFrame]]:
    """(run row, its curve [C_seen, loss]) for every usable run with a curve, thinned to MAX_CURVE_POINTS."""
    if an.curves is None or an.loss_column is None:
        return []
    by_run = dict(tuple(an.curves.groupby("run_id", sort=False)))
    out = []
    for _, row in an.usable.sort_values("N").iterrows():
        curve = by_run.get(row["run_id"])
        if curve is None:
            continue
        curve = curve[["C_seen", an.loss_column]].rename(columns={an.loss_column: "loss"})
        curve = curve[np.isfinite(curve["C_seen"]) & (curve["C_seen"] > 0) & np.isfinite(curve["loss"])]
        if len(curve) >= 2:
            out.append((row, thin(curve.sort_values("C_seen"))))
    return out


def thin(curve: pd.DataFrame, points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `points` rows, log-spaced in position (dense early, where curves bend), always the last."""
    if len(curve) <= points:
        return curve
    keep = np.unique(np.geomspace(1, len(curve), points).astype(int) - 1)
    return curve.iloc[np.union1d(keep, [len(curve) - 1])]


def empirical_frontier(an: Analysis) -> Optional[pd.DataFrame]:
    """The lower envelope of the curves (C, loss), or None without curves."""
    if an.curves is None or an.loss_column is None or len(an.usable) < 2:
        return None
    try:
        return frontier(an.usable, an.curves, loss_column=an.loss_column)
    except (AnalysisError, ValueError):
        return None


def compute_grid(an: Analysis, points: int = 120) -> np.ndarray:
    """Log-spaced compute from the smallest run to the target (or the largest run)."""
    lo = float(an.usable["C"].min())
    hi = max(float(an.usable["C"].max()), an.target_C if _finite(an.target_C) else 0.0)
    return np.geomspace(lo, hi, points)


def frontier_curve(an: Analysis, C: Optional[np.ndarray] = None) -> Optional[pd.DataFrame]:
    """The fitted compute-optimal loss: C, loss, lo, hi (the bootstrap band), extrapolated (beyond the runs)."""
    if not an.loss_law or not len(an.usable):
        return None
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
    if an.main is None or not _finite(an.target_C):
        return None
    out: dict[str, float] = {"C": an.target_C}
    curve = frontier_curve(an, np.array([an.target_C]))
    if curve is not None:
        out.update(loss=float(curve["loss"].iloc[0]), lo=float(curve["lo"].iloc[0]), hi=float(curve["hi"].iloc[0]))
    if an.main.has_allocation:
        optimal = an.main.optimal([an.target_C]).iloc[0]
        out.update(N_opt=float(optimal["N_opt"]), D_opt=float(optimal["D_opt"]))
    return out if len(out) > 1 else None


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
    the runs of that budget (`points`).
    """
    data = _data_profiles(an)
    if data:
        return "data", data
    if an.main is None or an.main.law not in LOSS_LAWS or not len(an.usable):
        return "", []
    lo, hi = float(an.usable["C"].min()), float(an.usable["C"].max())
    budgets = np.geomspace(lo, max(hi, lo * 10), 4)
    return "law", [_law_profile(an.main, C, an.usable) for C in budgets]


def _data_profiles(an: Analysis) -> list[dict[str, Any]]:
    profiles = []
    for C, group in groups(an.usable, "C", 0.1):
        if group["N"].nunique() < 3:
            continue
        x, y = np.log(group["N"].to_numpy()), group["loss"].to_numpy()
        c2, c1, c0 = np.polyfit(x, y, 2)
        grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 60)
        profile = {"C": C, "N": np.exp(grid), "loss": c0 + c1 * grid + c2 * grid**2, "points": group.sort_values("N")}
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


# ------------------------------------------------------------------- matplotlib figures


def make_figures(an: Analysis) -> dict[str, Figure]:
    """Every figure the analysis supports, by name (see FIGURE_NAMES); ones without data are left out."""
    makers = {"loss_vs_compute": fig_loss_vs_compute, "loss_vs_params": lambda a: fig_loss_vs_size(a, "N"),
              "loss_vs_data": lambda a: fig_loss_vs_size(a, "D"), "isoflop": fig_isoflop,
              "allocation": fig_allocation, "residuals": fig_residuals, "backtest": fig_backtest,
              "probes": fig_probes}
    figures = {}
    for name, maker in makers.items():
        figure = maker(an)
        if figure is not None:
            _tidy_ticks(figure)
            figures[name] = figure
    return figures


def _tidy_ticks(figure: Figure) -> None:
    """Plain tick labels on log axes of loss (3, 4, 5) and of sizes (10k, 20k), not 3x10^0."""
    for ax in figure.axes:
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if axis.get_scale() != "log":
                continue
            if "loss" in label or label.startswith("probe_"):
                _plain_log_ticks(axis, lambda v: f"{v:g}")
            elif label.startswith(("parameters", "training data", "N_opt", "D_opt")):
                _plain_log_ticks(axis, fmt_count)


def _plain_log_ticks(axis: Any, fmt: Callable[[float], str]) -> None:
    lo, hi = sorted(axis.get_view_interval())
    span = hi / lo if lo > 0 else math.inf
    shown = range(2, 10) if span < 10 else (2, 3, 5) if span < 30 else ()

    def minor(value: float, _: Any) -> str:
        if span < 3:  # less than half a decade: label every tick
            return fmt(float(f"{value:.2g}"))
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6) if value > 0 else 0
        return fmt(value) if mantissa in shown else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: fmt(value)))
    axis.set_minor_formatter(FuncFormatter(minor))


def save_figures(figures: dict[str, Figure], folder: Path | str, formats: tuple[str, ...] = ("png", "svg"),
                 dpi: int = 150) -> list[Path]:
    """Write each figure as NAME.png and NAME.svg in `folder`; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            figure.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
    return paths


def _axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (7.0, 4.8)) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.subplots()
    ax.set(xscale="log", yscale="log", title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.08)
    return figure, ax


def _note(ax: Axes, text: str) -> None:
    ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=8, color="0.3", va="bottom", wrap=True,
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.85", alpha=0.9))


def _colourbar(figure: Figure, ax: Axes, an: Analysis) -> None:
    mappable = ScalarMappable(norm=size_norm(an), cmap="viridis")
    figure.colorbar(mappable, ax=ax, label="parameters N", pad=0.01)


def fig_loss_vs_compute(an: Analysis) -> Optional[Figure]:
    """Loss vs compute: each run's curve coloured by N, final points, the frontier and its band to the target."""
    if not len(an.usable):
        return None
    figure, ax = _axes("Loss vs compute", "training compute C (FLOPs)", "loss")
    colour = size_colours(an)
    for i, (row, curve) in enumerate(run_curves(an)):
        ax.plot(curve["C_seen"], curve["loss"], color=colour(row["N"]), lw=1.1, alpha=0.75,
                label=f"training curves ({an.loss_column})" if i == 0 else None)
    ax.scatter(an.usable["C"], an.usable["loss"], c=[colour(n) for n in an.usable["N"]], s=28, zorder=3,
               edgecolors="black", linewidths=0.6, label="final validation loss of each run")
    envelope = empirical_frontier(an)
    if envelope is not None and len(envelope):
        ax.plot(envelope["C"], envelope["loss"], color="0.45", ls=":", lw=1.5, label="lower envelope of the curves")
    _draw_frontier(ax, an)
    _colourbar(figure, ax, an)
    ax.legend(fontsize=8, loc="upper right")
    if an.main is None:
        _note(ax, f"no fit: {an.errors.get(an.law, '')[:120]}")
    return figure


def _draw_frontier(ax: Axes, an: Analysis) -> None:
    curve = frontier_curve(an)
    if curve is None:
        return
    inside, beyond = curve[~curve["extrapolated"]], curve[curve["extrapolated"]]
    ax.plot(inside["C"], inside["loss"], color="crimson", lw=2, label=f"compute-optimal frontier ({an.main.law} fit)")
    if len(beyond):
        joined = pd.concat([inside.tail(1), beyond])
        ax.plot(joined["C"], joined["loss"], color="crimson", lw=2, ls="--", label="extrapolation")
    if curve["lo"].notna().any():
        ax.fill_between(curve["C"], curve["lo"], curve["hi"], color="crimson", alpha=0.15, lw=0,
                        label=f"{an.level:.0%} bootstrap band")
    _limit_y(ax, an, curve)
    target = target_prediction(an)
    if target and _finite(target.get("loss")):
        ax.plot([target["C"]], [target["loss"]], marker="*", ms=14, color="crimson", mec="black", zorder=4)
        interval = f" [{target['lo']:.3f}, {target['hi']:.3f}]" if _finite(target.get("lo")) else ""
        ax.annotate(f"C = {fmt_flops(target['C'])}\nL = {target['loss']:.3f}{interval}", (target["C"], target["loss"]),
                    textcoords="offset points", xytext=(-12, 12), ha="right", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.8", alpha=0.9))


def _limit_y(ax: Axes, an: Analysis, curve: pd.DataFrame) -> None:
    """Keep the axes on the data and the frontier: a wild bootstrap band must not squash the runs."""
    values = [an.usable["loss"].to_numpy(), curve["loss"].to_numpy()]
    values += [c["loss"].to_numpy() for _, c in run_curves(an)]
    finite = np.concatenate(values)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if len(finite):
        ax.set_ylim(finite.min() / 1.08, finite.max() * 1.08)


def fig_loss_vs_size(an: Analysis, vary: str) -> Optional[Figure]:
    """Loss vs N with one line per D (vary='N'), or loss vs D with one line per N (vary='D'), and the law."""
    if not len(an.usable):
        return None
    other = "D" if vary == "N" else "N"
    names = {"N": "parameters N", "D": "training data D"}
    figure, ax = _axes(f"Loss vs {names[vary]}, one line per {other}", names[vary], "validation loss")
    cmap = colormaps.get_cmap("plasma")
    found = groups(an.usable, other)
    for i, (value, group) in enumerate(found):
        colour = cmap(0.85 * i / max(1, len(found) - 1))
        group = group.sort_values(vary)
        ax.plot(group[vary], group["loss"], "o-", color=colour, ms=5, lw=1.2, label=f"{other} = {fmt_count(value)}")
        grid = np.geomspace(float(an.usable[vary].min()) / 1.5, float(an.usable[vary].max()) * 1.5, 60)
        line = law_line(an, vary, value, grid)
        if line is not None:
            ax.plot(grid, line, color=colour, ls="--", lw=1, alpha=0.8)
    if an.main is not None and an.main.law in PARAMETRIC_LAWS:
        ax.plot([], [], color="0.3", ls="--", label=f"{an.main.law} fit")
    ax.legend(fontsize=8, title=None, ncols=2 if len(found) > 4 else 1)
    return figure


def fig_isoflop(an: Analysis) -> Optional[Figure]:
    """IsoFLOP profiles: loss vs N at fixed compute with parabolas and minima (or the fitted law's profiles)."""
    source, profiles = isoflop_profiles(an)
    if not profiles:
        return None
    title = "IsoFLOP profiles" if source == "data" else "IsoFLOP profiles of the fitted law"
    figure, ax = _axes(title, "parameters N", "validation loss")
    cmap = colormaps.get_cmap("cividis")
    for i, profile in enumerate(profiles):
        colour = cmap(0.9 * i / max(1, len(profiles) - 1))
        label = f"C = {fmt_flops(profile['C'])}"
        if "points" in profile:
            ax.plot(profile["points"]["N"], profile["points"]["loss"], "o", color=colour, ms=5)
        ax.plot(profile["N"], profile["loss"], color=colour, lw=1.4, label=label)
        if _finite(profile.get("N_min")):
            ax.plot([profile["N_min"]], [profile["loss_min"]], marker="D", color=colour, mec="black", ms=7, zorder=3)
    if source == "law":
        _note(ax, "no budget in the sweep has 3+ sizes: profiles L(N, C/6N) of the fitted law, ◆ = its optimum")
        losses = np.concatenate([p["loss"] for p in profiles])
        finite = losses[np.isfinite(losses)]
        ax.set_ylim(finite.min() / 1.05, min(finite.max(), finite.min() * 3) * 1.05)
    ax.legend(fontsize=8)
    return figure


def fig_allocation(an: Analysis) -> Optional[Figure]:
    """N_opt(C) and D_opt(C): each approach's power law (with its band) and the measured optima."""
    lines, points = allocation_lines(an), allocation_points(an)
    if not lines and not points:
        return None
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    axes = figure.subplots(1, 2)
    styles = {"isoflop": ("tab:blue", "s"), "envelope": ("tab:green", "^")}
    for ax, key, label in ((axes[0], "N_opt", "N_opt (parameters)"), (axes[1], "D_opt", "D_opt (data)")):
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=label, title=f"{label} vs C")
        ax.grid(True, alpha=0.3)
        ax.scatter(an.usable["C"], an.usable[key[0]], color="0.75", s=14, label="runs of the sweep")
        for line in lines:
            colour = styles.get(line["name"], ("crimson", "o"))[0]
            exponent = line["a"] if key == "N_opt" else line["b"]
            ax.plot(line["C"], line[key], color=colour, lw=2, label=f"{line['name']}: ∝ C^{exponent:.3f}")
            if f"{key}_lo" in line:
                ax.fill_between(line["C"], line[f"{key}_lo"], line[f"{key}_hi"], color=colour, alpha=0.15, lw=0)
        for point in points:
            colour, marker = styles.get(point["name"], ("crimson", "o"))
            ax.scatter(point["C"], point[key], color=colour, marker=marker, edgecolors="black", s=36, zorder=3,
                       label=f"{point['name']} optima")
        ax.legend(fontsize=8)
    return figure


def fig_residuals(an: Analysis) -> Optional[Figure]:
    """Residuals of the main fit (log observed - log predicted) against compute, coloured by N."""
    points = residual_points(an)
    if points is None or not len(points):
        return None
    figure, ax = _axes(f"Residuals of the {an.main.law} fit", "training compute C (FLOPs)", "log(observed / predicted)")
    ax.set_yscale("linear")
    colour = size_colours(an)
    ax.axhline(0, color="black", lw=1)
    noise = (an.main.seed_noise or {}).get("rel_std")
    if _finite(noise):
        ax.axhspan(-noise, noise, color="0.85", label="± seed-to-seed noise")
    ax.scatter(points["C"], points["residual"], c=[colour(n) for n in points["N"]], edgecolors="black", s=32, zorder=3)
    _colourbar(figure, ax, an)
    rms = float(np.sqrt(np.mean(points["residual"] ** 2)))
    _note(ax, f"rms {rms:.2%}")
    return figure


def fig_backtest(an: Analysis) -> Optional[Figure]:
    """Backtest: loss predicted by a fit to the cheaper runs against the loss the held-out runs reached."""
    points = backtest_points(an)
    if points is None:
        return None
    held, fitted = points["held_out"], points["fitted"]
    figure, ax = _axes(f"Backtest of the {an.main.law} fit", "observed loss", "predicted loss", size=(5.6, 5.0))
    ax.scatter(fitted["loss"], fitted["predicted"], color="0.6", s=20, label="runs fitted (full fit)")
    ax.scatter(held["loss"], held["predicted"], color="crimson", edgecolors="black", s=50, zorder=3,
               label="held out (fit without them)")
    values = np.concatenate([fitted["loss"], fitted["predicted"], held["loss"], held["predicted"]])
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = values.min() / 1.03, values.max() * 1.03
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = observed")
    ax.set(xlim=(lo, hi), ylim=(lo, hi))
    bt = an.main.backtest
    decades = f" over {bt['decades']:.2f} decades of compute" if _finite(bt.get("decades")) else ""
    _note(ax, f"held out {bt['held_out']}: mean |error| {bt['mean_abs_rel_error']:.2%}{decades}")
    ax.legend(fontsize=8, loc="upper left")
    return figure


def fig_probes(an: Analysis) -> Optional[Figure]:
    """Each probe_* metric against N and against C, with a power law where one fits."""
    fits = probe_fits(an)
    if not fits:
        return None
    metrics = list(dict.fromkeys(f["metric"] for f in fits))
    figure = Figure(figsize=(10, 3.4 * len(metrics)), layout="constrained")
    axes = figure.subplots(len(metrics), 2, squeeze=False)
    colour = size_colours(an)
    for entry in fits:
        ax = axes[metrics.index(entry["metric"]), 0 if entry["x"] == "N" else 1]
        points = entry["points"]
        ax.set(xscale="log", xlabel="parameters N" if entry["x"] == "N" else "training compute C (FLOPs)",
               ylabel=entry["metric"], title=f"{entry['metric']} vs {entry['x']}")
        ax.grid(True, alpha=0.3)
        ax.scatter(points[entry["x"]], points[entry["metric"]], c=[colour(n) for n in points["N"]],
                   edgecolors="black", s=30, zorder=3)
        if (points[entry["metric"]] > 0).all():
            ax.set_yscale("log")  # a power law is a straight line
        if entry["fit"] is not None:
            ax.plot(entry["fit"]["x"], entry["fit"]["y"], color="crimson", lw=1.5, label=entry["note"])
            ax.legend(fontsize=8)
        else:
            _note(ax, entry["note"])
    return figure
