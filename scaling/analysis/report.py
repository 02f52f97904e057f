"""The HTML report: the figures made interactive (plotly), the fitted laws, the backtest and the run table.

    an = analyse(runs, curves, law="chinchilla", target_flops=1e18)
    write_report(an, "report/", source="runs/quickstart")   # report.html + the PNG/SVG figures

report.html is one self-contained file: plotly.js is embedded (it opens offline, from a file or an
e-mail attachment), every point's hover box names its run and config, and the run table sorts by
any column and filters by status and family with a few lines of plain JavaScript. The figures
draw the same series as the matplotlib ones (scaling.analysis.figures).
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scaling.analysis.figures import (FIGURE_NAMES, Analysis, allocation_lines, allocation_points, backtest_points,
                                     empirical_frontier, fmt_count, fmt_flops, frontier_curve, groups, hover_lines,
                                     isoflop_profiles, law_line, make_figures, probe_fits, residual_points, run_curves,
                                     run_label, save_figures, size_colours, target_prediction)
from scaling.store import TABLE_COLUMNS

CAPTIONS = {
    "loss_vs_compute": "Every run's training curve (loss against the compute used so far), coloured by model size; "
                       "dots are final validation losses. The red line is the compute-optimal frontier of the "
                       "fitted law with its bootstrap band, dashed where it extrapolates to the target compute (★).",
    "loss_vs_params": "Final loss against model size, one line per data size; dashed: the fitted law.",
    "loss_vs_data": "Final loss against data size, one line per model size; dashed: the fitted law.",
    "isoflop": "Loss against model size at fixed compute: parabolas in log N and their minima (◆).",
    "allocation": "Compute-optimal model size and data size against compute, from every approach that could be "
                  "fitted, with bootstrap bands; grey: the runs of the sweep.",
    "residuals": "log(observed / predicted loss) of each run under the fitted law.",
    "backtest": "The law fitted without the most expensive runs predicts them (red); grey: the runs it was fitted to.",
    "probes": "Embedding-space probe metrics against model size and compute, with a power law where one fits.",
}
TITLES = {"loss_vs_compute": "Loss vs compute", "loss_vs_params": "Loss vs parameters", "loss_vs_data": "Loss vs data",
          "isoflop": "IsoFLOP profiles", "allocation": "Compute-optimal allocation", "residuals": "Residuals",
          "backtest": "Backtest", "probes": "Probes"}
EXTRA_COLUMNS = ("val_accuracy", "train_loss", "tokens_per_param", "steps", "wall_time", "lr")
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "toImageButtonOptions": {"format": "svg"}, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
CRIMSON = "#dc143c"
APPROACH_COLOURS = {"isoflop": "#1f77b4", "envelope": "#2ca02c"}


# ----------------------------------------------------------------------- plotly figures


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
    return ["<br>".join(hover_lines(row)) for _, row in rows.iterrows()]


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
    colour = size_colours(an)
    for i, (row, curve) in enumerate(run_curves(an)):
        text = "<br>".join(hover_lines(row))
        figure.add_trace(go.Scatter(
            x=curve["C_seen"], y=curve["loss"], mode="lines", line=dict(color=colour(row["N"]), width=1.4),
            opacity=0.8, name=f"training curves ({an.loss_column})", meta="curve", legendgroup="curves",
            showlegend=i == 0,
            hovertemplate=f"{text}<br>at C %{{x:.3g}}: {an.loss_column} %{{y:.4f}}"
                          f"<extra>{html.escape(run_label(row))}</extra>"))
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
    _layout(figure, "Loss vs compute", "training compute C (FLOPs)", "loss", height=540)
    figure.update_layout(legend=dict(x=0.99, y=0.99, xanchor="right"))
    return figure


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
    _limit_y(figure, an, curve)


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


def _limit_y(figure: go.Figure, an: Analysis, curve: pd.DataFrame) -> None:
    values = [an.usable["loss"].to_numpy(), curve["loss"].to_numpy()]
    values += [c["loss"].to_numpy() for _, c in run_curves(an)]
    finite = np.concatenate(values)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if len(finite):
        figure.update_yaxes(range=[math.log10(finite.min() / 1.08), math.log10(finite.max() * 1.08)])


def plotly_loss_vs_size(an: Analysis, vary: str) -> Optional[go.Figure]:
    """Interactive loss vs N (one line per D) or vs D (one line per N), with the fitted law dashed."""
    if not len(an.usable):
        return None
    other = "D" if vary == "N" else "N"
    names = {"N": "parameters N", "D": "training data D"}
    figure = go.Figure()
    found = groups(an.usable, other)
    palette = _palette(len(found))
    for (value, group), colour in zip(found, palette):
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


def _palette(count: int) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps.get_cmap("plasma")
    return [to_hex(cmap(0.85 * i / max(1, count - 1))) for i in range(count)]


def plotly_isoflop(an: Analysis) -> Optional[go.Figure]:
    """Interactive IsoFLOP profiles with parabolas and minima (or the fitted law's profiles)."""
    source, profiles = isoflop_profiles(an)
    if not profiles:
        return None
    figure = go.Figure()
    for profile, colour in zip(profiles, _palette(len(profiles))):
        label = f"C = {fmt_flops(profile['C'])}"
        if "points" in profile:
            figure.add_trace(go.Scatter(x=profile["points"]["N"], y=profile["points"]["loss"], mode="markers",
                                        name=label, legendgroup=label, showlegend=False,
                                        marker=dict(color=colour, size=8), text=_hover(profile["points"]),
                                        hovertemplate="%{text}<extra></extra>"))
        figure.add_trace(go.Scatter(x=profile["N"], y=profile["loss"], mode="lines", name=label, legendgroup=label,
                                    line=dict(color=colour, width=2),
                                    hovertemplate=f"{label}: N %{{x:.3g}}, loss %{{y:.4f}}<extra></extra>"))
        if np.isfinite(profile.get("N_min", np.nan)):
            figure.add_trace(go.Scatter(x=[profile["N_min"]], y=[profile["loss_min"]], mode="markers",
                                        legendgroup=label, showlegend=False,
                                        marker=dict(symbol="diamond", size=12, color=colour, line=dict(width=1)),
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
    values = np.concatenate([fitted["loss"], fitted["predicted"], held["loss"], held["predicted"]]).astype(float)
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = values.min() / 1.03, values.max() * 1.03
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
              "probes": plotly_probes}
    out = {}
    for name in FIGURE_NAMES:
        figure = makers[name](an)
        if figure is not None:
            out[name] = figure
    return out


# ------------------------------------------------------------------------------ HTML


def _num(value: Any, digits: int = 4) -> str:
    """A number for a table cell: thousands separators for counts, 4 significant digits otherwise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e7):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
    return html.escape(str(value))


def _cell(column: str, value: Any) -> str:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and not missing
    sort_key = repr(float(value)) if numeric else html.escape("" if missing else str(value))
    shown = _num(value) if numeric else ("–" if missing else html.escape(str(value)))
    if column == "C" and numeric:
        shown = f"{float(value):.3e}"
    if column == "status" and not missing:
        shown = f'<span class="status {html.escape(str(value))}">{shown}</span>'
    cls = ' class="num"' if numeric else ""
    return f'<td data-value="{sort_key}"{cls}>{shown}</td>'


def table_columns(runs: pd.DataFrame) -> list[str]:
    """The run table's columns shown in the report: load_runs' columns, a few more, then probe_* metrics."""
    wanted = [*TABLE_COLUMNS, *EXTRA_COLUMNS]
    columns = [c for c in wanted if c in runs.columns]
    return columns + sorted(c for c in runs.columns if str(c).startswith("probe_"))


def runs_table_html(runs: pd.DataFrame) -> str:
    """The run table as HTML: sortable headers, one row per run, data-status and data-family for filtering."""
    columns = table_columns(runs)
    head = "".join(f'<th data-col="{i}" title="sort by {html.escape(c)}">{html.escape(c)}</th>'
                   for i, c in enumerate(columns))
    rows = []
    for _, row in runs.iterrows():
        status, family = str(row.get("status", "")), str(row.get("family", ""))
        error = row.get("error")
        title = f' title="{html.escape(str(error).splitlines()[0])}"' if isinstance(error, str) and error else ""
        cells = "".join(_cell(c, _plain(row.get(c))) for c in columns)
        rows.append(f'<tr data-status="{html.escape(status)}" data-family="{html.escape(family)}"{title}>{cells}</tr>')
    return (f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _options(runs: pd.DataFrame, column: str) -> str:
    values = sorted(map(str, runs[column].dropna().unique())) if column in runs.columns else []
    return "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)


def _interval(result: Any, name: str) -> str:
    lo_hi = (result.ci or {}).get(name)
    if not lo_hi or lo_hi[0] is None:
        return ""
    return f' <span class="ci">[{_num(lo_hi[0])}, {_num(lo_hi[1])}]</span>'


def law_html(name: str, result: Any, main: bool) -> str:
    """One fitted law: formula, parameters with their intervals, allocation, warnings."""
    params = "".join(f"<tr><td>{html.escape(k)}</td><td class='num'>{_num(v)}{_interval(result, k)}</td></tr>"
                     for k, v in result.params.items())
    if result.has_allocation and result.law not in ("isoflop", "envelope"):
        params += "".join(f"<tr><td>{k}</td><td class='num'>{_num(getattr(result, k))}{_interval(result, k)}</td></tr>"
                          for k in ("a", "b", "G"))
    level = f"{result.level:.0%} bootstrap intervals ({result.bootstrap['replicates']} resamples)" \
        if result.bootstrap else "no bootstrap"
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    excluded = f"{len(result.excluded)} runs left out" if result.excluded else "no run left out"
    return (f'<div class="law{" main" if main else ""}"><h3>{html.escape(name)}</h3>'
            f"<p class='formula'>{html.escape(result.formula)}</p>"
            f"<p class='meta'>{result.n_points} runs fitted, {excluded}; {level}</p>"
            f"<table class='params'><tbody>{params}</tbody></table>"
            + (f"<ul class='warnings'>{warnings}</ul>" if warnings else "") + "</div>")


def laws_html(an: Analysis) -> str:
    """Every fit of the analysis, then what could not be fitted and why."""
    parts = []
    if an.main is not None:
        parts.append(law_html(f"{an.law} (main fit)", an.main, True))
    parts += [law_html(name, result, False) for name, result in an.approaches.items()]
    failed = {k: v for k, v in an.errors.items() if k != "backtest"}
    if failed:
        items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in failed.items())
        parts.append(f"<div class='law skipped'><h3>Not fitted</h3><ul>{items}</ul></div>")
    return "".join(parts)


def prediction_html(an: Analysis) -> str:
    """The headline: the prediction at the target compute."""
    target = target_prediction(an)
    if not target:
        why = an.errors.get(an.law, "")
        return f"<p class='headline'>No {html.escape(an.law)} fit: {html.escape(why)}</p>"
    parts = [f"At the target compute <b>C = {fmt_flops(target['C'])}</b> FLOPs"]
    if np.isfinite(target.get("loss", np.nan)):
        interval = f" [{target['lo']:.3f}, {target['hi']:.3f}]" if np.isfinite(target.get("lo", np.nan)) else ""
        parts.append(f"the {html.escape(an.law)} law predicts a loss of <b>{target['loss']:.3f}</b>{interval}")
    if "N_opt" in target:
        units = an.runs["unit"].dropna().unique() if "unit" in an.runs.columns else []
        unit = str(units[0]) if len(units) == 1 else "units of data"
        parts.append(f"with <b>N_opt = {fmt_count(target['N_opt'])}</b> parameters trained on "
                     f"<b>D_opt = {fmt_count(target['D_opt'])}</b> {html.escape(unit)}")
    return "<p class='headline'>" + ", ".join(parts) + ".</p>"


def backtest_html(an: Analysis) -> str:
    """The backtest: how far the law fitted to cheaper runs missed the most expensive ones."""
    bt = an.main.backtest if an.main is not None else None
    if not bt:
        why = an.errors.get("backtest", "no fit to backtest")
        return f"<p class='meta'>No backtest: {html.escape(why)}</p>"
    decades = f" across {bt['decades']:.2f} decades of compute" if bt.get("decades") is not None else ""
    rows = "".join(f"<tr><td>{html.escape(str(r['run']))}</td><td class='num'>{fmt_flops(r['C'])}</td>"
                   f"<td class='num'>{r['loss']:.4f}</td><td class='num'>{r['predicted']:.4f}</td>"
                   f"<td class='num'>{r['rel_error']:+.2%}</td></tr>" for r in bt["runs"])
    return (f"<p>Fitted on the {bt['fitted_on']} cheapest runs, the law predicts the {bt['held_out']} most expensive "
            f"with a mean absolute error of <b>{bt['mean_abs_rel_error']:.2%}</b> (largest "
            f"{bt['max_abs_rel_error']:.2%}){decades}.</p>"
            f"<table class='params'><thead><tr><th>run</th><th>C</th><th>loss</th><th>predicted</th><th>error</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def caption(an: Analysis, name: str) -> str:
    """A figure's caption, with what is particular to this sweep (the compute convention of the frontier)."""
    text = CAPTIONS[name]
    if name in ("loss_vs_compute", "allocation") and an.main is not None and an.main.has_allocation \
            and len(an.usable):
        ratio = an.usable["C"] / (6.0 * an.usable["N"] * an.usable["D"])
        text += (f" The law's allocation takes C = 6ND (Chinchilla's convention); this sweep's FLOP accounting "
                 f"gives C / 6ND = {ratio.min():.2f} to {ratio.max():.2f}.")
    return text


def figures_html(figures: dict[str, go.Figure], an: Optional[Analysis] = None) -> str:
    """Each figure in its own section; plotly.js is embedded once, with the first figure."""
    parts = []
    for i, (name, figure) in enumerate(figures.items()):
        div = figure.to_html(include_plotlyjs=i == 0, full_html=False, config=PLOT_CONFIG, div_id=f"fig-{name}")
        wide = " wide" if name in ("loss_vs_compute", "allocation", "probes") else ""
        heading = (figure.layout.meta or {}).get("title") if isinstance(figure.layout.meta, dict) else None
        parts.append(f'<section class="figure{wide}" data-figure="{name}"><h2>{html.escape(heading or TITLES[name])}'
                     f'</h2>{div}'
                     f'<p class="caption">{html.escape(caption(an, name) if an is not None else CAPTIONS[name])} '
                     f'<a href="{name}.png">PNG</a> · <a href="{name}.svg">SVG</a></p></section>')
    return f'<div class="figures">{"".join(parts)}</div>'


def _status_line(runs: pd.DataFrame) -> str:
    if "status" not in runs.columns or not len(runs):
        return f"{len(runs)} runs"
    counts = runs["status"].astype(str).value_counts()
    return f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())


def render_html(an: Analysis, figures: dict[str, go.Figure], source: str, title: Optional[str] = None) -> str:
    """The whole report page (self-contained: styles, plotly.js and the table script inline)."""
    sweeps = sorted(map(str, an.runs["sweep"].dropna().unique())) if "sweep" in an.runs.columns else []
    title = title or f"Scaling report: {', '.join(sweeps) or Path(source).name}"
    generated = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return PAGE.format(
        title=html.escape(title), source=html.escape(str(source)), generated=generated,
        status=html.escape(_status_line(an.runs)), headline=prediction_html(an), figures=figures_html(figures, an),
        laws=laws_html(an), backtest=backtest_html(an), table=runs_table_html(an.runs),
        statuses=_options(an.runs, "status"), families=_options(an.runs, "family"), style=STYLE, script=SCRIPT)


def write_report(an: Analysis, folder: Path | str, source: str, title: Optional[str] = None) -> dict[str, Any]:
    """Write report.html and every figure as PNG and SVG into `folder`; returns {'html': path, 'figures': [...]}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = save_figures(make_figures(an), folder)
    page = folder / "report.html"
    page.write_text(render_html(an, plotly_figures(an), source, title), encoding="utf-8")
    return {"html": page, "figures": written}


STYLE = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e6ec; --accent:#dc143c; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header p { margin:0; color:#c5cad6; font-size:13px; }
main { max-width:1400px; margin:0 auto; padding:20px 32px 40px; }
.headline { font-size:16px; background:#fff; border-left:4px solid var(--accent); padding:12px 16px;
            margin:0 0 20px; border-radius:4px; box-shadow:0 1px 2px rgba(0,0,0,.06); }
nav { margin:0 0 16px; font-size:13px; }
nav a { color:var(--muted); margin-right:14px; text-decoration:none; }
nav a:hover { color:var(--accent); }
.figures { display:grid; grid-template-columns:repeat(auto-fit, minmax(560px, 1fr)); gap:18px; }
.figure, .card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 14px; }
.figure.wide { grid-column:1 / -1; }
.figure h2, .card h2 { font-size:15px; margin:0 0 4px; font-weight:600; }
.caption, .meta { color:var(--muted); font-size:12.5px; margin:6px 0 0; }
.caption a { color:var(--muted); }
section.card { margin-top:20px; }
.laws { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:14px; }
.law { border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.law.main { border-color:var(--accent); }
.law h3 { margin:0 0 4px; font-size:14px; }
.formula { font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; margin:0; }
.ci { color:var(--muted); }
.warnings { color:#8a5a00; font-size:12.5px; padding-left:18px; }
table { border-collapse:collapse; font-size:13px; }
table.params td, table.params th { padding:3px 10px 3px 0; text-align:left; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.controls { display:flex; gap:14px; align-items:center; margin:8px 0 10px; flex-wrap:wrap; font-size:13px; }
.controls select, .controls input { font:inherit; padding:3px 6px; border:1px solid #c9ced8; border-radius:4px; }
.table-wrap { overflow-x:auto; }
#runs { width:100%; }
#runs th { position:sticky; top:0; background:#eef0f4; cursor:pointer; user-select:none; white-space:nowrap;
           padding:6px 10px; text-align:left; border-bottom:1px solid #d5d9e1; }
#runs th.asc::after { content:" ▲"; font-size:10px; }
#runs th.desc::after { content:" ▼"; font-size:10px; }
#runs td { padding:4px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
#runs tbody tr:hover { background:#fbf3f5; }
.status { padding:1px 7px; border-radius:10px; font-size:12px; background:#e8eaef; }
.status.completed { background:#e3f4e8; color:#17633a; }
.status.failed, .status.diverged { background:#fbe4e6; color:#9b1c2c; }
.status.running { background:#e6effc; color:#1d4e9b; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById('runs');
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var status = document.getElementById('filter-status');
  var family = document.getElementById('filter-family');
  var search = document.getElementById('filter-text');
  var count = document.getElementById('run-count');
  function applyFilters() {
    var shown = 0, text = search.value.toLowerCase();
    rows.forEach(function (row) {
      var ok = (!status.value || row.dataset.status === status.value) &&
               (!family.value || row.dataset.family === family.value) &&
               (!text || row.textContent.toLowerCase().indexOf(text) >= 0);
      row.style.display = ok ? '' : 'none';
      if (ok) { shown += 1; }
    });
    count.textContent = shown + ' of ' + rows.length + ' runs';
  }
  function sortBy(th) {
    var col = Number(th.dataset.col);
    var ascending = !th.classList.contains('asc');
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove('asc', 'desc'); });
    th.classList.add(ascending ? 'asc' : 'desc');
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y), result;
      if (x === '' && y !== '') { return 1; }
      if (y === '' && x !== '') { return -1; }
      if (!isNaN(nx) && !isNaN(ny)) { result = nx - ny; } else { result = x.localeCompare(y); }
      return ascending ? result : -result;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener('click', function () { sortBy(th); });
  });
  [status, family].forEach(function (el) { el.addEventListener('change', applyFilters); });
  search.addEventListener('input', applyFilters);
  applyFilters();
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><p>{source} · {status} · generated {generated} by <code>scaling report</code></p></header>
<main>
{headline}
<nav><a href="#figures">Figures</a><a href="#laws">Fitted laws</a><a href="#backtest">Backtest</a>
<a href="#table">Runs</a></nav>
<div id="figures">{figures}</div>
<section class="card" id="laws"><h2>Fitted laws</h2><div class="laws">{laws}</div></section>
<section class="card" id="backtest"><h2>Backtest</h2>{backtest}</section>
<section class="card" id="table"><h2>Runs</h2>
<div class="controls">
<label>status <select id="filter-status"><option value="">all</option>{statuses}</select></label>
<label>family <select id="filter-family"><option value="">all</option>{families}</select></label>
<label>search <input id="filter-text" type="search" placeholder="run id, width, ..."></label>
<span id="run-count"></span><span class="meta">click a column to sort</span>
</div>
<div class="table-wrap">{table}</div>
</section>
</main>
<footer>Made by <code>scaling report</code>; figures also as PNG and SVG next to this file.</footer>
<script>{script}</script>
</body>
</html>
"""
