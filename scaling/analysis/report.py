"""The HTML report: the interactive figures, the fitted laws, the backtest and the run table, in one page.

    an = analyse(runs, curves, law="chinchilla", target_flops=1e18)
    write_report(an, "report/", source="runs/quickstart")   # report.html + the PNG/SVG figures

report.html is one self-contained file: plotly.js is embedded (it opens offline, from a file or an
e-mail attachment), every point's hover box names its run and config, and the run table sorts by
any column and filters by status and family with a few lines of plain JavaScript. The page, its
styles and its script are package data (scaling/analysis/templates/report.html, .css, .js).
"""

from __future__ import annotations

import html
import math
import time
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from scaling.analysis import lr_transfer
from scaling.analysis.analyse import Analysis
from scaling.analysis.figures import make_figures, save_figures
from scaling.analysis.formatting import fmt_count, fmt_flops
from scaling.analysis.interactive import plotly_figures
from scaling.analysis.predictions import coverage, coverage_word, prediction_rows
from scaling.analysis.series import held_out_points, isoflop_budgets, target_prediction
from scaling.store import TABLE_COLUMNS

CAPTIONS = {
    "loss_vs_compute": "Every run's training curve (loss against the compute used so far), coloured by model size; "
                       "dots are final validation losses. The red line is the compute-optimal frontier of the "
                       "fitted law with its bootstrap band, solid over the fitted runs and dashed where it "
                       "extrapolates to the target compute (★). Orange diamonds: a ladder's held-out targets (never "
                       "fitted), open with the law's prediction and interval, filled where observed; blue squares: "
                       "registered predictions (scaling predict), likewise.",
    "loss_vs_params": "Final loss against model size, one line per data size; dashed: the fitted law.",
    "loss_vs_data": "Final loss against data size, one line per model size; dashed: the fitted law.",
    "isoflop": "Loss against model size at fixed compute: parabolas in log N and their minima (◆).",
    "allocation": "Compute-optimal model size and data size against compute, from every approach that could be "
                  "fitted, with bootstrap bands; grey: the runs of the sweep.",
    "residuals": "log(observed / predicted loss) of each run under the fitted law.",
    "backtest": "The law fitted without the most expensive runs predicts them (red); grey: the runs it was fitted to.",
    "probes": "Embedding-space probe metrics against model size and compute, with a power law where one fits.",
    "branches": "Each constant-rate trunk (solid) with the cooldown branches (dashed) that leave it at their branch "
                "step, loss against tokens seen, one colour per model; ● the branches' final losses.",
    "lr_transfer": lr_transfer.REPORT_CAPTION,
}
TITLES = {"loss_vs_compute": "Loss vs compute", "loss_vs_params": "Loss vs parameters", "loss_vs_data": "Loss vs data",
          "isoflop": "IsoFLOP profiles", "allocation": "Compute-optimal allocation", "residuals": "Residuals",
          "backtest": "Backtest", "probes": "Probes", "branches": "Cooldown branches",
          "lr_transfer": lr_transfer.REPORT_TITLE}
EXTRA_COLUMNS = ("val_accuracy", "train_loss", "tokens_per_param", "steps", "wall_time", "lr")
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "toImageButtonOptions": {"format": "svg"}, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


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


def predictions_html(an: Analysis) -> str:
    """The held-out targets (the main law's prediction of each, never fitted) and the registered predictions
    (scaling predict), each scored against the run table once its target completed; '' when there are none."""
    from scaling.analysis.targets import target_lines

    parts = []
    points = held_out_points(an)
    if points is not None:
        lines = target_lines(an.target_scores) if an.target_scores else ["no law of the loss to predict them with"]
        rows = "".join(_target_row(r) for r in points.to_dict("records"))
        parts.append(f"<h3>Held-out targets</h3><p>{html.escape(lines[0])}</p>"
                     f"<table class='params' id='held-out'><thead><tr><th>run</th><th>N</th><th>D</th><th>C</th>"
                     f"<th>observed</th><th>predicted [interval]</th><th>error</th><th>covered</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    if an.predictions:
        heads = ("name", "target", "predicted", "observed", "error", "covered")
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(r[k])}</td>" for k in heads) + "</tr>"
                       for r in prediction_rows(an.predictions, an.runs))
        parts.append("<h3>Registered predictions</h3><table class='params' id='registered'><thead><tr>"
                     "<th>name</th><th>target</th><th>predicted [interval]</th><th>observed</th><th>error</th>"
                     f"<th>covered</th></tr></thead><tbody>{rows}</tbody></table>")
    if not parts:
        return ""
    return ('<section class="card" id="predictions"><h2>Held-out targets and registered predictions</h2>'
            + "".join(parts) + "</section>")


def _target_row(row: dict[str, Any]) -> str:
    observed, predicted = row["loss"], row["predicted"]
    interval = f" [{row['lo']:.4f}, {row['hi']:.4f}]" if np.isfinite(row["lo"]) else ""
    scored = np.isfinite(observed) and np.isfinite(predicted)
    error = f"{(predicted - observed) / observed:+.2%}" if scored else "–"
    covered = "pending" if not np.isfinite(observed) else coverage_word(coverage(row["lo"], row["hi"], observed))
    cells = (row.get("run_id", ""), fmt_count(row["N"]), fmt_count(row["D"]), fmt_flops(row["C"]),
             f"{observed:.4f}" if np.isfinite(observed) else "–",
             f"{predicted:.4f}{interval}" if np.isfinite(predicted) else "–", error, covered)
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def curve_law_html(an: Analysis) -> str:
    """The schedule law of the sweep's whole curves (when it has branches or several schedules): the figure of
    observed against the law's curves (inline PNG) and each curve's mean and worst relative error; '' when none."""
    import base64
    import io

    from scaling.analysis.figures import fig_curve_law

    fit, why = an.curve_law
    if fit is None:
        return f"<p class='meta'>No loss-curve law: {html.escape(why)}</p>" if why else ""
    image = io.BytesIO()
    fig_curve_law(an).savefig(image, format="png", dpi=110, bbox_inches="tight")
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td class='num'>{fmt_count(info['N']) if 'N' in info else '–'}"
                   f"</td><td>{'fitted' if info['fitted'] else 'predicted'}</td><td class='num'>{info['points']}</td>"
                   f"<td class='num'>{info['mean_rel_err']:.3%}</td><td class='num'>{info['max_rel_err']:.3%}</td></tr>"
                   for name, info in fit.curves.items())
    params = ", ".join(f"{k} = {_num(v)}" for k, v in fit.params.items())
    params += "".join(f"; {k} = {_num(law['a'])} N^{_num(law['b'])}" for k, law in fit.scaling.items())
    across = f" with {', '.join(fit.scaling)} power laws of N" if fit.scaling else ""
    predicted = fit.predicted_errors()
    summary = (f"{predicted['curves']} predicted curves: mean relative error <b>{predicted['mean_rel_err']:.2%}</b> "
               f"(worst step {predicted['max_rel_err']:.2%})." if predicted else "Every curve was fitted.")
    return ('<section class="card" id="curve-law"><h2>Loss curves and their schedule law</h2>'
            f"<p>The {html.escape(fit.law.upper())} law, fitted to each model size's trunk and shortest cooldown (or "
            f"to all its runs but the longest){across}, predicts the other curves. {summary}</p>"
            f"<p class='formula'>{html.escape(fit.formula)}</p><p class='meta'>{params}</p>"
            f"<img alt='observed and predicted loss curves' src='data:image/png;base64,"
            f"{base64.b64encode(image.getvalue()).decode()}' style='max-width:100%'>"
            "<table class='params' id='curve-errors'><thead><tr><th>curve</th><th>N</th><th>role</th><th>points</th>"
            f"<th>mean rel. error</th><th>max rel. error</th></tr></thead><tbody>{rows}</tbody></table></section>")


def caption(an: Analysis, name: str) -> str:
    """A figure's caption, with what is particular to this sweep (the compute convention of the frontier)."""
    text = CAPTIONS[name]
    if name == "branches":
        from scaling.branches import table_savings

        saved = table_savings(an.runs)
        if saved:
            text += (f" Compute: the {saved['trunks']} trunks and {saved['branches']} branches spent "
                     f"{fmt_flops(saved['spent'])} FLOPs, against {fmt_flops(saved['independent'])} for the same "
                     f"points as independent runs: {saved['ratio']:.2f} of it, {1 - saved['ratio']:.0%} saved.")
    if name in ("loss_vs_compute", "allocation") and an.main is not None and an.main.has_allocation \
            and len(an.usable):
        ratio = an.usable["C"] / (6.0 * an.usable["N"] * an.usable["D"])
        text += (f" The law's allocation takes C = 6ND (Chinchilla's convention); this sweep's FLOP accounting "
                 f"gives C / 6ND = {ratio.min():.2f} to {ratio.max():.2f}.")
    return text


def isoflop_flags_html(an: Analysis) -> str:
    """The IsoFLOP budgets' flags, one row per flagged budget: what is wrong, what to add, kept or left out."""
    flagged = [b for b in isoflop_budgets(an) if b.get("flags")]
    if not flagged:
        return ""
    rows = "".join(f"<tr><td class='num'>{fmt_flops(b['C'])}</td><td class='num'>{b['sizes']}</td>"
                   f"<td>{html.escape(', '.join(b['flags']))}</td>"
                   f"<td>{'used' if b.get('used') else 'left out'}</td>"
                   f"<td>{'<br>'.join(html.escape(a) for a in b['advice'])}</td></tr>" for b in flagged)
    return (f"<p class='meta'>{len(flagged)} IsoFLOP budget{'s' * (len(flagged) != 1)} flagged (dashed in the figure):"
            "</p><table class='params isoflop-flags'><thead><tr><th>C</th><th>sizes</th><th>flags</th>"
            f"<th>power law</th><th>what to add</th></tr></thead><tbody>{rows}</tbody></table>")


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
                     f'<a href="{name}.png">PNG</a> · <a href="{name}.svg">SVG</a></p>'
                     f'{isoflop_flags_html(an) if name == "isoflop" and an is not None else ""}</section>')
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
    return template("report.html").format(
        title=html.escape(title), source=html.escape(str(source)), generated=generated,
        status=html.escape(_status_line(an.runs)), headline=prediction_html(an), figures=figures_html(figures, an),
        laws=laws_html(an), backtest=backtest_html(an), predictions=predictions_html(an) + curve_law_html(an),
        table=runs_table_html(an.runs),
        statuses=_options(an.runs, "status"), families=_options(an.runs, "family"),
        style=template("report.css"), script=template("report.js"))


def write_report(an: Analysis, folder: Path | str, source: str, title: Optional[str] = None) -> dict[str, Any]:
    """Write report.html and every figure as PNG and SVG into `folder`; returns {'html': path, 'figures': [...]}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = save_figures(make_figures(an), folder)
    page = folder / "report.html"
    page.write_text(render_html(an, plotly_figures(an), source, title), encoding="utf-8")
    return {"html": page, "figures": written}


def template(name: str) -> str:
    """A file of scaling/analysis/templates (the page, its styles, its script) as text."""
    return files("scaling.analysis").joinpath("templates", name).read_text(encoding="utf-8")
