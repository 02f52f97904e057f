"""The figures of the scaling-law papers as matplotlib figures (PNG and SVG).

    an = analyse(runs, curves, law="chinchilla", target_flops=1e18)
    save_figures(make_figures(an), "report/")   # loss_vs_compute.png/.svg, isoflop.png, ...

Each figure draws the series of `scaling.analysis.series` (the HTML report's interactive figures
draw the same ones). Only `save_figures` writes files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from scaling.analysis import lr_transfer
from scaling.analysis.analyse import Analysis
from scaling.analysis.formatting import finite, fmt_count, fmt_flops
from scaling.analysis.laws import PARAMETRIC_LAWS
from scaling.analysis.series import (allocation_lines, allocation_points, backtest_limits, backtest_points,
                                     branch_trees, empirical_frontier, frontier_curve, groups, held_out_points,
                                     isoflop_profiles, law_line, loss_limits, palette, probe_fits, registered_points,
                                     residual_points, curve_points, size_colours, size_norm, target_prediction)

RASTER_CURVES = 500  # runs beyond which the SVG draws the training curves as an image


def make_figures(an: Analysis) -> dict[str, Figure]:
    """Every figure the analysis supports, by name (see FIGURE_NAMES); ones without data are left out."""
    makers = {"loss_vs_compute": fig_loss_vs_compute, "loss_vs_params": lambda a: fig_loss_vs_size(a, "N"),
              "loss_vs_data": lambda a: fig_loss_vs_size(a, "D"), "isoflop": fig_isoflop,
              "allocation": fig_allocation, "residuals": fig_residuals, "backtest": fig_backtest,
              "probes": fig_probes, "branches": fig_branches,
              "lr_transfer": lambda a: lr_transfer.report_figure(a.runs), "curve_law": fig_curve_law}
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


def _room_below(ax: Axes, fraction: float = 0.14) -> None:
    """Lower a log y-axis so its lowest drawn point sits `fraction` of the way up: a note at the bottom covers no data."""
    lows = [np.nanmin(np.asarray(line.get_ydata(), dtype=float)) for line in ax.lines if len(line.get_ydata())]
    lo, hi = ax.get_ylim()
    lowest = min([lo, *[y for y in lows if np.isfinite(y) and y > 0]])
    ax.set_ylim(math.exp((math.log(lowest) - fraction * math.log(hi)) / (1 - fraction)), hi)


def _colourbar(figure: Figure, ax: Axes, an: Analysis) -> None:
    mappable = ScalarMappable(norm=size_norm(an), cmap="viridis")
    figure.colorbar(mappable, ax=ax, label="parameters N", pad=0.01)


def fig_loss_vs_compute(an: Analysis) -> Optional[Figure]:
    """Loss vs compute: each run's curve coloured by N, final points, the frontier and its band to the target."""
    if not len(an.usable):
        return None
    figure, ax = _axes("Loss vs compute", "training compute C (FLOPs)", "loss")
    colour = size_colours(an)
    _draw_curves(ax, an, colour)
    ax.scatter(an.usable["C"], an.usable["loss"], c=[colour(n) for n in an.usable["N"]], s=28, zorder=3,
               edgecolors="black", linewidths=0.6, label="final validation loss of each run")
    envelope = empirical_frontier(an)
    if envelope is not None and len(envelope):
        ax.plot(envelope["C"], envelope["loss"], color="0.45", ls=":", lw=1.5, label="lower envelope of the curves")
    _draw_frontier(ax, an)
    _draw_predicted(ax, held_out_points(an), "loss", "held-out target", "darkorange", "D")
    _draw_predicted(ax, registered_points(an), "observed", "registered prediction", "royalblue", "s")
    _colourbar(figure, ax, an)
    ax.legend(fontsize=8, loc="upper right")
    if an.main is None:
        _note(ax, f"no fit: {an.errors.get(an.law, '')[:120]}")
    return figure


def _draw_curves(ax: Axes, an: Analysis, colour: Callable[[float], str]) -> None:
    """Every run's curve as one LineCollection (an artist per run made 10,000 runs take a minute), rasterised
    in the SVG beyond RASTER_CURVES runs."""
    points = curve_points(an)
    if points is None or not len(points):
        return
    starts = np.flatnonzero(np.diff(points["run"].to_numpy(), prepend=-1))
    segments = np.split(points[["C_seen", "loss"]].to_numpy(), starts[1:])
    colours = [colour(n) for n in points["N"].to_numpy()[starts]]
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.1, alpha=0.75,
                                     label=f"training curves ({an.loss_column})",
                                     rasterized=len(starts) > RASTER_CURVES))
    ax.autoscale_view()


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
    limits = loss_limits(an, curve)
    if limits:
        ax.set_ylim(*limits)
    target = target_prediction(an)
    if target and finite(target.get("loss")):
        ax.plot([target["C"]], [target["loss"]], marker="*", ms=14, color="crimson", mec="black", zorder=4)
        interval = f" [{target['lo']:.3f}, {target['hi']:.3f}]" if finite(target.get("lo")) else ""
        ax.annotate(f"C = {fmt_flops(target['C'])}\nL = {target['loss']:.3f}{interval}", (target["C"], target["loss"]),
                    textcoords="offset points", xytext=(-12, 12), ha="right", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.8", alpha=0.9))


def _draw_predicted(ax: Axes, points: Optional[pd.DataFrame], observed: str, what: str, colour: str,
                    marker: str) -> None:
    """Predictions at their compute (open markers, error bars for the interval) and what was observed there."""
    if points is None:
        return
    predicted = points[np.isfinite(points["predicted"])]
    if len(predicted):
        below = (predicted["predicted"] - predicted["lo"]).fillna(0).clip(lower=0)
        above = (predicted["hi"] - predicted["predicted"]).fillna(0).clip(lower=0)
        ax.errorbar(predicted["C"], predicted["predicted"], yerr=[below, above], fmt=marker, mfc="white", mec=colour, ecolor=colour, ms=7, capsize=3, lw=1.2, zorder=4,
                    label=f"{what}: predicted ({'with interval' if predicted['lo'].notna().any() else 'no interval'})")
    seen = points[np.isfinite(points[observed])]
    if len(seen):
        ax.scatter(seen["C"], seen[observed], marker=marker, s=40, color=colour, edgecolors="black", linewidths=0.6,
                   zorder=5, label=f"{what}: observed")


def fig_loss_vs_size(an: Analysis, vary: str) -> Optional[Figure]:
    """Loss vs N with one line per D (vary='N'), or loss vs D with one line per N (vary='D'), and the law."""
    if not len(an.usable):
        return None
    other = "D" if vary == "N" else "N"
    names = {"N": "parameters N", "D": "training data D"}
    figure, ax = _axes(f"Loss vs {names[vary]}, one line per {other}", names[vary], "validation loss")
    found = groups(an.usable, other)
    for (value, group), colour in zip(found, palette(len(found))):
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
    for profile, colour in zip(profiles, palette(len(profiles), "cividis", 0.9)):
        flags = profile.get("flags", [])
        label = f"C = {fmt_flops(profile['C'])}" + (f" ⚑ {', '.join(flags)}" if flags else "")
        if "points" in profile:
            ax.plot(profile["points"]["N"], profile["points"]["loss"], "o", color=colour, ms=5)
        ax.plot(profile["N"], profile["loss"], color=colour, lw=1.4, ls="--" if flags else "-", label=label)
        if finite(profile.get("N_min")):
            ax.plot([profile["N_min"]], [profile["loss_min"]], marker="D", color=colour if profile.get("used", True)
                    is not False else "white", mec="black", ms=7, zorder=3)
    if any(p.get("flags") for p in profiles):
        _note(ax, "dashed, ⚑: flagged budgets (the report lists what to add); hollow ◆: left out of the power law")
        _room_below(ax)
    if source == "law":
        _note(ax, "no budget in the sweep has 3+ sizes: profiles L(N, C/6N) of the fitted law, ◆ = its optimum")
        losses = np.concatenate([p["loss"] for p in profiles])
        losses = losses[np.isfinite(losses)]
        ax.set_ylim(losses.min() / 1.05, min(losses.max(), losses.min() * 3) * 1.05)
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
    if finite(noise):
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
    lo, hi = backtest_limits(fitted, held)
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="predicted = observed")
    ax.set(xlim=(lo, hi), ylim=(lo, hi))
    bt = an.main.backtest
    decades = f" over {bt['decades']:.2f} decades of compute" if finite(bt.get("decades")) else ""
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


def fig_branches(an: Analysis) -> Optional[Figure]:
    """Cooldown trunks (solid) with their branches (dashed) leaving them, loss against tokens seen, one colour per model."""
    trees = branch_trees(an)
    if not trees:
        return None
    figure, ax = _axes("Trunks and their cooldown branches", "tokens seen D", "loss")
    for tree in trees:
        ax.plot(tree["curve"]["D_seen"], tree["curve"]["loss"], color=tree["colour"], lw=1.6,
                label=f"N = {fmt_count(tree['N'])} trunk")
        for branch in tree["branches"]:
            ax.plot(branch["curve"]["D_seen"], branch["curve"]["loss"], color=tree["colour"], lw=1.1, ls="--")
            if finite(branch["loss"]):
                ax.plot([branch["D"]], [branch["loss"]], "o", color=tree["colour"], mec="black", ms=6, zorder=3)
    ax.plot([], [], color="0.3", ls="--", label="cooldown branches (● final loss)")
    ax.legend(fontsize=8)
    return figure


def fig_curve_law(an: Analysis) -> Optional[Figure]:
    """Observed loss curves (thin) with the schedule law's (MPL) curves: solid where fitted, dashed where predicted."""
    fit, _ = an.curve_law
    if fit is None:
        return None
    figure, ax = _axes(f"Loss curves and the {fit.law.upper()} law", "step", "loss (as fitted)")
    ax.set_xscale("linear")
    sizes = sorted({info.get("N") for info in fit.curves.values()} - {None})
    colours = dict(zip(sizes, palette(len(sizes), "viridis"))) if sizes else {}
    for name, info in fit.curves.items():
        curve, colour = fit.predict(name), colours.get(info.get("N"), "C0")
        ax.plot(curve["step"], curve["loss"], color=colour, lw=0.8, alpha=0.35)
        ax.plot(curve["step"], curve["predicted"], color=colour, lw=1.4, ls="-" if info["fitted"] else "--")
    for N, colour in colours.items():
        ax.plot([], [], color=colour, lw=1.4, label=f"N = {fmt_count(N)}")
    ax.plot([], [], color="0.3", lw=0.8, alpha=0.5, label="observed")
    ax.plot([], [], color="0.3", lw=1.4, label="law, fitted")
    ax.plot([], [], color="0.3", lw=1.4, ls="--", label="law, predicted")
    ax.legend(fontsize=8, loc="upper right")
    predicted = fit.predicted_errors()
    if predicted:
        _note(ax, f"{predicted['curves']} predicted curves: mean rel. error {predicted['mean_rel_err']:.2%}, "
                  f"worst step {predicted['max_rel_err']:.2%}")
    return figure
