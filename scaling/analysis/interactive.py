"""The report's figures as interactive plotly figures: the series of `scaling.analysis.series`, with hover
boxes that name each point's run and config.

    figures = plotly_figures(an)   # {name: plotly Figure}, the names of the PNG files
"""

from __future__ import annotations

import html
import math
from typing import Any, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scaling.analysis import lr_transfer
from scaling.analysis.analyse import Analysis
from scaling.analysis.formatting import fmt_count, fmt_flops, hover_lines, run_label
from scaling.analysis.series import (FIGURE_NAMES, allocation_lines, allocation_points, backtest_limits,
                                     backtest_points, branch_trees, empirical_frontier, frontier_curve, groups,
                                     held_out_points, isoflop_profiles, law_line, loss_limits, palette, probe_fits,
                                     registered_points, residual_points, curve_points, size_colours, target_prediction)

CRIMSON = "#dc143c"
APPROACH_COLOURS = {"isoflop": "#1f77b4", "envelope": "#2ca02c"}


def _layout(figure: go.Figure, title: str, xtitle: str, ytitle: str, xlog: bool = True, ylog: bool = True,
            height: int = 460) -> go.Figure:
    """The report's look; the title is kept in layout.meta and shown as the section's heading."""
    figure.update_layout(meta={"title": title}, template="plotly_white", height=height,
                         margin=dict(l=70, r=20, t=30, b=60), hovermode="closest",
                         legend=dict(bgcolor="rgba(255,255,255,0.85)", font=dict(size=11), traceorder="normal"))
    figure.update_xaxes(title=xtitle, type="log" if xlog else "linear", showline=True, linecolor="#888", mirror=True,
                        exponentformat="power" if "compute" in xtitle else "SI")
    figure.update_yaxes(title=ytitle, type="log" if ylog else "linear", showline=True, linecolor="#888", mirror=True)
    return figure


def _hover(rows: pd.DataFrame) -> list[str]:
    return ["<br>".join(hover_lines(row)) for row in rows.to_dict("records")]


def _size_marker(an: Analysis, sizes: pd.Series, colourbar: bool) -> dict[str, Any]:
    """Markers coloured by log10 N on viridis, with a colourbar labelled in parameters."""
    lo, hi = float(np.log10(an.usable["N"].min())), float(np.log10(an.usable["N"].max()))
    marker = dict(color=np.log10(sizes.to_numpy(dtype=float)), colorscale="Viridis", cmin=lo, cmax=max(hi, lo + 1e-9),
                  size=9, line=dict(color="black", width=0.8))
    if colourbar:
        decades = np.arange(math.ceil(lo), math.floor(hi) + 1)
        ends = [t for t in (lo, hi) if not len(decades) or np.min(np.abs(decades - t)) > 0.2]
        ticks = np.unique(np.concatenate([ends, decades]))
        marker["colorbar"] = dict(title=dict(text="N"), tickvals=ticks, ticktext=[fmt_count(10**t) for t in ticks],
                                  thickness=14, len=0.8)
    return marker


def plotly_loss_vs_compute(an: Analysis) -> Optional[go.Figure]:
    """Interactive loss vs compute: curves by N, final points, the frontier with its band, the target."""
    if not len(an.usable):
        return None
    figure = go.Figure()
    _add_curves(figure, an)
    figure.add_trace(go.Scatter(x=an.usable["C"], y=an.usable["loss"], mode="markers",
                                name="final validation loss of each run",
                                meta="final", marker=_size_marker(an, an.usable["N"], True),
                                text=_hover(an.usable), hovertemplate="%{text}<extra></extra>"))
    envelope = empirical_frontier(an)
    if envelope is not None and len(envelope):
        figure.add_trace(go.Scatter(x=envelope["C"], y=envelope["loss"], mode="lines", meta="envelope",
                                    name="lower envelope of the curves", line=dict(color="#777", dash="dot", width=2),
                                    hovertemplate="envelope: C %{x:.3g}, loss %{y:.4f}<extra></extra>"))
    _add_frontier(figure, an)
    _add_predicted(figure, held_out_points(an), "loss", "held-out target", "#ff8c00", "diamond")
    _add_predicted(figure, registered_points(an), "observed", "registered prediction", "#4169e1", "square")
    _layout(figure, "Loss vs compute", "training compute C (FLOPs)", "loss", height=540)
    figure.update_layout(legend=dict(x=0.99, y=0.99, xanchor="right"))
    return figure


def _add_curves(figure: go.Figure, an: Analysis) -> None:
    """The runs' curves, one trace per colour (runs of one size), runs parted by gaps: a trace per run made
    10,000 runs take minutes. The hover box names the run; its final point's box has the whole config."""
    points = curve_points(an)
    if points is None or not len(points):
        return
    colour = size_colours(an)
    rows = an.usable.sort_values("N")
    labels = {run: html.escape(run_label(row)) for run, row in zip(range(len(rows)), rows.to_dict("records"))}
    points = points.assign(colour=[colour(n) for n in points["N"]])
    for i, (hex_colour, part) in enumerate(points.groupby("colour", sort=False)):
        run = part["run"].to_numpy()
        gap = np.flatnonzero(np.diff(run)) + 1  # a NaN between runs breaks the line
        x, y = (np.insert(part[c].to_numpy(dtype=float), gap, np.nan) for c in ("C_seen", "loss"))
        names = [labels[r] for r in np.insert(run, gap, run[gap - 1] if len(gap) else run[:0])]
        figure.add_trace(go.Scatter(
            x=x, y=y, mode="lines", line=dict(color=hex_colour, width=1.4), opacity=0.8, text=names,
            name=f"training curves ({an.loss_column})", meta="curve", legendgroup="curves", showlegend=i == 0,
            hovertemplate=f"%{{text}}<br>at C %{{x:.3g}}: {an.loss_column} %{{y:.4f}}<extra></extra>"))


def _add_frontier(figure: go.Figure, an: Analysis) -> None:
    curve = frontier_curve(an)
    if curve is None:
        return
    if curve["lo"].notna().any():
        figure.add_trace(go.Scatter(x=curve["C"], y=curve["hi"], mode="lines", line=dict(width=0), showlegend=False,
                                    hoverinfo="skip", meta="band"))
        figure.add_trace(go.Scatter(x=curve["C"], y=curve["lo"], mode="lines", line=dict(width=0), fill="tonexty",
                                    fillcolor="rgba(220,20,60,0.15)", name=f"{an.level:.0%} bootstrap band",
                                    meta="band", hoverinfo="skip"))
    inside, beyond = curve[~curve["extrapolated"]], curve[curve["extrapolated"]]
    template = "frontier: C %{x:.3g}, loss %{y:.4f}<extra></extra>"
    figure.add_trace(go.Scatter(x=inside["C"], y=inside["loss"], mode="lines", line=dict(color=CRIMSON, width=3),
                                name=f"compute-optimal frontier ({an.main.law})", meta="frontier",
                                hovertemplate=template))
    if len(beyond):
        joined = pd.concat([inside.tail(1), beyond])
        figure.add_trace(go.Scatter(x=joined["C"], y=joined["loss"], mode="lines", meta="frontier",
                                    line=dict(color=CRIMSON, width=3, dash="dash"), name="extrapolation",
                                    hovertemplate=template))
    _add_target(figure, an)
    limits = loss_limits(an, curve)
    if limits:
        figure.update_yaxes(range=[math.log10(limits[0]), math.log10(limits[1])])


def _add_target(figure: go.Figure, an: Analysis) -> None:
    target = target_prediction(an)
    if not target or "loss" not in target or not np.isfinite(target["loss"]):
        return
    lines = [f"target C = {fmt_flops(target['C'])}", f"predicted loss {target['loss']:.4f}"]
    if np.isfinite(target.get("lo", np.nan)):
        lines[-1] += f" [{target['lo']:.4f}, {target['hi']:.4f}]"
    if "N_opt" in target:
        lines.append(f"N_opt {fmt_count(target['N_opt'])} · D_opt {fmt_count(target['D_opt'])}")
    figure.add_trace(go.Scatter(x=[target["C"]], y=[target["loss"]], mode="markers", name="prediction at the target",
                                meta="target", marker=dict(symbol="star", size=18, color=CRIMSON,
                                                           line=dict(color="black", width=1)),
                                text=["<br>".join(lines)], hovertemplate="%{text}<extra></extra>"))


def _add_predicted(figure: go.Figure, points: Optional[pd.DataFrame], observed: str, what: str, colour: str,
                   symbol: str) -> None:
    """Predictions at their compute (open markers with the interval as an error bar) and what was observed."""
    if points is None:
        return
    names = points["name"] if "name" in points.columns else points["run_id"]
    predicted = points[np.isfinite(points["predicted"])]
    if len(predicted):
        text = [f"{name}: predicted {p:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if np.isfinite(lo) else " (no interval)")
                for name, p, lo, hi in zip(names[predicted.index], predicted["predicted"], predicted["lo"],
                                           predicted["hi"])]
        error = dict(type="data", symmetric=False, array=(predicted["hi"] - predicted["predicted"]).fillna(0),
                     arrayminus=(predicted["predicted"] - predicted["lo"]).fillna(0), color=colour, thickness=1.5)
        figure.add_trace(go.Scatter(x=predicted["C"], y=predicted["predicted"], mode="markers", error_y=error,
                                    name=f"{what}: predicted", meta="predicted", text=text,
                                    marker=dict(symbol=f"{symbol}-open", size=11, color=colour, line=dict(width=2)),
                                    hovertemplate="%{text}<br>C %{x:.3g}<extra></extra>"))
    seen = points[np.isfinite(points[observed])]
    if len(seen):
        text = [f"{name}: observed {value:.4f}" for name, value in zip(names[seen.index], seen[observed])]
        figure.add_trace(go.Scatter(x=seen["C"], y=seen[observed], mode="markers", name=f"{what}: observed",
                                    meta="observed", text=text,
                                    marker=dict(symbol=symbol, size=10, color=colour, line=dict(color="black", width=1)),
                                    hovertemplate="%{text}<br>C %{x:.3g}<extra></extra>"))


def plotly_loss_vs_size(an: Analysis, vary: str) -> Optional[go.Figure]:
    """Interactive loss vs N (one line per D) or vs D (one line per N), with the fitted law dashed."""
    if not len(an.usable):
        return None
    other = "D" if vary == "N" else "N"
    names = {"N": "parameters N", "D": "training data D"}
    figure = go.Figure()
    found = groups(an.usable, other)
    for (value, group), colour in zip(found, palette(len(found))):
        group = group.sort_values(vary)
        label = f"{other} = {fmt_count(value)}"
        figure.add_trace(go.Scatter(x=group[vary], y=group["loss"], mode="lines+markers", name=label, legendgroup=label,
                                    line=dict(color=colour), marker=dict(size=8, line=dict(color="black", width=0.6)),
                                    text=_hover(group), hovertemplate="%{text}<extra></extra>"))
        grid = np.geomspace(float(an.usable[vary].min()) / 1.5, float(an.usable[vary].max()) * 1.5, 60)
        line = law_line(an, vary, value, grid)
        if line is not None:
            figure.add_trace(go.Scatter(x=grid, y=line, mode="lines", legendgroup=label, showlegend=False,
                                        line=dict(color=colour, dash="dash", width=1.5),
                                        hovertemplate=f"{an.main.law} fit, {label}: {vary} %{{x:.3g}}, "
                                                      "loss %{y:.4f}<extra></extra>"))
    return _layout(figure, f"Loss vs {names[vary]}, one line per {other}", names[vary], "validation loss")


def plotly_isoflop(an: Analysis) -> Optional[go.Figure]:
    """Interactive IsoFLOP profiles with parabolas and minima (or the fitted law's profiles)."""
    source, profiles = isoflop_profiles(an)
    if not profiles:
        return None
    figure = go.Figure()
    for profile, colour in zip(profiles, palette(len(profiles))):
        flags = profile.get("flags", [])
        label = f"C = {fmt_flops(profile['C'])}" + (f" ⚑ {', '.join(flags)}" if flags else "")
        if "points" in profile:
            figure.add_trace(go.Scatter(x=profile["points"]["N"], y=profile["points"]["loss"], mode="markers",
                                        name=label, legendgroup=label, showlegend=False,
                                        marker=dict(color=colour, size=8), text=_hover(profile["points"]),
                                        hovertemplate="%{text}<extra></extra>"))
        advice = "".join(f"<br>⚑ {html.escape(a)}" for a in profile.get("advice", []))
        figure.add_trace(go.Scatter(x=profile["N"], y=profile["loss"], mode="lines", name=label, legendgroup=label,
                                    line=dict(color=colour, width=2, dash="dash" if flags else "solid"),
                                    hovertemplate=f"{label}: N %{{x:.3g}}, loss %{{y:.4f}}{advice}<extra></extra>"))
        if np.isfinite(profile.get("N_min", np.nan)):
            left_out = profile.get("used") is False
            figure.add_trace(go.Scatter(x=[profile["N_min"]], y=[profile["loss_min"]], mode="markers",
                                        legendgroup=label, showlegend=False,
                                        marker=dict(symbol="diamond-open" if left_out else "diamond", size=12,
                                                    color=colour, line=dict(width=1)),
                                        hovertemplate=f"minimum at {label}: N %{{x:.3g}}, "
                                                      "loss %{y:.4f}<extra></extra>"))
    title = "IsoFLOP profiles" if source == "data" else "IsoFLOP profiles of the fitted law (no budget has 3+ sizes)"
    _layout(figure, title, "parameters N", "validation loss")
    if source == "law":
        losses = np.concatenate([p["loss"] for p in profiles])
        finite = losses[np.isfinite(losses)]
        figure.update_yaxes(range=[math.log10(finite.min() / 1.05), math.log10(min(finite.max(), finite.min() * 3))])
    return figure


def plotly_allocation(an: Analysis) -> Optional[go.Figure]:
    """Interactive N_opt(C) and D_opt(C) side by side."""
    lines, points = allocation_lines(an), allocation_points(an)
    if not lines and not points:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("N_opt (parameters) vs C", "D_opt (data) vs C"),
                           horizontal_spacing=0.1)
    for col, key in ((1, "N_opt"), (2, "D_opt")):
        first = col == 1
        figure.add_trace(go.Scatter(x=an.usable["C"], y=an.usable[key[0]], mode="markers", name="runs of the sweep",
                                    legendgroup="runs", showlegend=first, marker=dict(color="#bbb", size=7),
                                    text=_hover(an.usable), hovertemplate="%{text}<extra></extra>"), row=1, col=col)
        for line in lines:
            _allocation_line(figure, line, key, col, first)
        for point in points:
            colour = APPROACH_COLOURS.get(point["name"], CRIMSON)
            figure.add_trace(go.Scatter(x=point["C"], y=point[key], mode="markers", name=f"{point['name']} optima",
                                        legendgroup=f"{point['name']}-pts", showlegend=first,
                                        marker=dict(color=colour, size=9, symbol="square", line=dict(width=1)),
                                        hovertemplate=f"{point['name']}: C %{{x:.3g}}, {key} "
                                                      "%{y:.3g}<extra></extra>"),
                             row=1, col=col)
    _layout(figure, "Compute-optimal allocation", "training compute C (FLOPs)", "", height=440)
    figure.update_yaxes(title_text="N_opt", row=1, col=1)
    figure.update_yaxes(title_text="D_opt", row=1, col=2)
    return figure


def _allocation_line(figure: go.Figure, line: dict[str, Any], key: str, col: int, first: bool) -> None:
    colour = APPROACH_COLOURS.get(line["name"], CRIMSON)
    exponent = line["a"] if key == "N_opt" else line["b"]
    if f"{key}_lo" in line:
        figure.add_trace(go.Scatter(x=line["C"], y=line[f"{key}_hi"], mode="lines", line=dict(width=0),
                                    showlegend=False, hoverinfo="skip", legendgroup=line["name"]), row=1, col=col)
        figure.add_trace(go.Scatter(x=line["C"], y=line[f"{key}_lo"], mode="lines", line=dict(width=0), fill="tonexty",
                                    fillcolor=_rgba(colour, 0.15), showlegend=False, hoverinfo="skip",
                                    legendgroup=line["name"]), row=1, col=col)
    figure.add_trace(go.Scatter(x=line["C"], y=line[key], mode="lines", line=dict(color=colour, width=2.5),
                                name=f"{line['name']}: N_opt ∝ C^{line['a']:.3f}, D_opt ∝ C^{line['b']:.3f}",
                                legendgroup=line["name"],
                                showlegend=first,
                                hovertemplate=f"{line['name']}: C %{{x:.3g}}, {key} %{{y:.3g}} "
                                              f"(∝ C^{exponent:.3f})<extra></extra>"), row=1, col=col)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def plotly_residuals(an: Analysis) -> Optional[go.Figure]:
    """Interactive residuals of the main fit against compute."""
    points = residual_points(an)
    if points is None or not len(points):
        return None
    figure = go.Figure()
    noise = (an.main.seed_noise or {}).get("rel_std")
    if noise is not None and np.isfinite(noise):
        figure.add_hrect(y0=-noise, y1=noise, fillcolor="#ddd", line_width=0, layer="below")
    figure.add_hline(y=0, line=dict(color="black", width=1))
    text = [f"{h}<br>residual {r:+.4f}" for h, r in zip(_hover(points), points["residual"])]
    figure.add_trace(go.Scatter(x=points["C"], y=points["residual"], mode="markers", name="runs",
                                marker=_size_marker(an, points["N"], True), text=text,
                                hovertemplate="%{text}<extra></extra>"))
    rms = float(np.sqrt(np.mean(points["residual"] ** 2)))
    return _layout(figure, f"Residuals of the {an.main.law} fit (rms {rms:.2%})", "training compute C (FLOPs)",
                   "log(observed / predicted)", ylog=False)


def plotly_backtest(an: Analysis) -> Optional[go.Figure]:
    """Interactive backtest: predicted against observed loss, held-out runs in red."""
    points = backtest_points(an)
    if points is None:
        return None
    held, fitted = points["held_out"], points["fitted"]
    info = an.usable.assign(run=an.usable["run_id"].astype(str))
    held = held.assign(run=held["run"].astype(str))[["run", "predicted", "rel_error"]].merge(info, on="run")
    held_text = [f"{h}<br>predicted {p:.4f} ({e:+.2%})" for h, p, e in
                 zip(_hover(held), held["predicted"], held["rel_error"])]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=fitted["loss"], y=fitted["predicted"], mode="markers", name="runs fitted (full fit)",
                                marker=dict(color="#999", size=8), text=_hover(fitted),
                                hovertemplate="%{text}<br>predicted %{y:.4f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=held["loss"], y=held["predicted"], mode="markers", name="held out (fit without them)",
                                marker=dict(color=CRIMSON, size=12, line=dict(color="black", width=1)),
                                text=held_text, hovertemplate="%{text}<extra></extra>"))
    lo, hi = backtest_limits(fitted, held)
    figure.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = observed",
                                line=dict(color="black", width=1), hoverinfo="skip"))
    _layout(figure, f"Backtest of the {an.main.law} fit", "observed loss", "predicted loss")
    figure.update_xaxes(range=[math.log10(lo), math.log10(hi)])
    return figure.update_yaxes(range=[math.log10(lo), math.log10(hi)])


def plotly_probes(an: Analysis) -> Optional[go.Figure]:
    """Interactive probe metrics against N and C with their power laws."""
    fits = probe_fits(an)
    if not fits:
        return None
    metrics = list(dict.fromkeys(f["metric"] for f in fits))
    titles = [f"{m} vs {x}" for m in metrics for x in ("N", "C")]
    figure = make_subplots(rows=len(metrics), cols=2, subplot_titles=titles, vertical_spacing=0.12 / len(metrics))
    for entry in fits:
        row, col = metrics.index(entry["metric"]) + 1, 1 if entry["x"] == "N" else 2
        points = entry["points"]
        text = [f"{h}<br>{entry['metric']} {v:.4g}" for h, v in zip(_hover(points), points[entry["metric"]])]
        figure.add_trace(go.Scatter(x=points[entry["x"]], y=points[entry["metric"]], mode="markers", showlegend=False,
                                    marker=dict(size=9, color="#440154", line=dict(width=0.6, color="black")),
                                    text=text, hovertemplate="%{text}<extra></extra>"), row=row, col=col)
        if entry["fit"] is not None:
            figure.add_trace(go.Scatter(x=entry["fit"]["x"], y=entry["fit"]["y"], mode="lines", showlegend=False,
                                        line=dict(color=CRIMSON), hovertemplate=f"{entry['note']}<extra></extra>"),
                             row=row, col=col)
        figure.update_xaxes(type="log", title_text=entry["x"], row=row, col=col)
        if (points[entry["metric"]] > 0).all():
            figure.update_yaxes(type="log", row=row, col=col)
        figure.update_yaxes(title_text=entry["metric"], row=row, col=col)
    figure.update_layout(template="plotly_white", height=320 * len(metrics), margin=dict(l=70, r=20, t=40, b=50))
    return figure


def plotly_figures(an: Analysis) -> dict[str, go.Figure]:
    """The interactive figures by name (the same names as the PNG files); ones without data are left out."""
    makers = {"loss_vs_compute": plotly_loss_vs_compute, "loss_vs_params": lambda a: plotly_loss_vs_size(a, "N"),
              "loss_vs_data": lambda a: plotly_loss_vs_size(a, "D"), "isoflop": plotly_isoflop,
              "allocation": plotly_allocation, "residuals": plotly_residuals, "backtest": plotly_backtest,
              "probes": plotly_probes, "branches": plotly_branches,
              "lr_transfer": lambda a: lr_transfer.report_plotly(a.runs)}
    out = {}
    for name in FIGURE_NAMES:
        figure = makers[name](an)
        if figure is not None:
            out[name] = figure
    return out


def plotly_branches(an: Analysis) -> Optional[go.Figure]:
    """Interactive trunks with their cooldown branches (loss against tokens seen, one colour per model)."""
    trees = branch_trees(an)
    if not trees:
        return None
    figure = go.Figure()
    for tree in trees:
        label = f"N = {fmt_count(tree['N'])}"
        figure.add_trace(go.Scatter(x=tree["curve"]["D_seen"], y=tree["curve"]["loss"], mode="lines",
                                    name=f"{label} trunk", legendgroup=label, line=dict(color=tree["colour"], width=2),
                                    hovertemplate=f"trunk {tree['run_id']} ({label}): D %{{x:.3g}}, "
                                                  "loss %{y:.4f}<extra></extra>"))
        for branch in tree["branches"]:
            figure.add_trace(go.Scatter(x=[*branch["curve"]["D_seen"], branch["D"]],
                                        y=[*branch["curve"]["loss"], branch["loss"]], mode="lines",
                                        legendgroup=label, showlegend=False,
                                        line=dict(color=tree["colour"], width=1.5, dash="dash"),
                                        hovertemplate=f"branch {branch['run_id']} from step {branch['branch_step']:.0f}: "
                                                      "D %{x:.3g}, loss %{y:.4f}<extra></extra>"))
            figure.add_trace(go.Scatter(x=[branch["D"]], y=[branch["loss"]], mode="markers", legendgroup=label,
                                        showlegend=False, marker=dict(color=tree["colour"], size=9,
                                                                      line=dict(color="black", width=0.6)),
                                        hovertemplate=f"branch {branch['run_id']}: final loss %{{y:.4f}} at "
                                                      "D %{x:.3g}<extra></extra>"))
    return _layout(figure, "Trunks and their cooldown branches", "tokens seen D", "loss")
