"""Learning-rate transfer across width (issue 11): the best learning rate of each width, sp against mup,
and the measured rule that carries it up a ladder (`scaling fit SWEEP --law lr`, `sweep.rules_from`).

The frame has one row per run with `parametrization`, `width`, `lr` and `loss` (the run table of
`experiments/lr_transfer`). Under μP the best rate stays put as the width grows; under SP it drifts
(Yang et al. 2022, Figure 1). Per width a parabola of loss in log(lr) through the grid's best point
and up to two neighbours on each side gives lr_opt; lr_opt against width (or N, C) is a power law
whose exponent's interval comes from a residual bootstrap of those parabolas. The fit file this
module writes (`save_fit`) is what `sweep.rules_from` reads (`read_rules`): one module owns the format.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scaling.analysis.hygiene import AnalysisError, exclusion_reasons, require_columns
from scaling.analysis.isoflop import parabola_vertex

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

FIT_FORMAT = "scaling.lr_fit/1"  # the fit file's `format`: what sweep.rules_from accepts
KNOBS = {"lr": ("optim.lr", "learning rate"), "batch_size": ("optim.batch_size", "batch size")}
AGAINST = ("width", "N", "N_nonembed", "C", "D")  # the names a sweep.rules expression may use
MIN_POINTS = 3  # grid values per size: fewer cannot place a parabola
WINDOW = 2  # grid points on each side of the best that the parabola sees
# Columns that must not vary within one (parametrization, size) cell: they change the optimum too.
CONFOUNDERS = ("width", "depth", "D", "seq_len", "lr", "batch_size")


# ------------------------------------------------------------------------ cells and optima


def cells(runs: pd.DataFrame, knob: str = "lr", against: str = "width") -> pd.DataFrame:
    """Mean loss per (parametrization, size, knob value) over usable runs; a diverged run counts as
    an infinite loss (its grid point was tried and lost). Refuses cells that mix other settings."""
    require_columns(runs, [knob, against, "loss"], f"--law lr ({KNOBS[knob][0]} against {against})")
    frame = runs.copy()
    if "parametrization" not in frame:
        frame["parametrization"] = "sp"
    frame["parametrization"] = frame["parametrization"].fillna("sp")
    diverged = frame["status"].astype(str).eq("diverged") if "status" in frame else pd.Series(False, frame.index)
    ok = exclusion_reasons(frame, [knob, against, "loss"]) == ""
    known = exclusion_reasons(frame.assign(status="completed", loss=1.0), [knob, against]) == ""
    frame.loc[diverged & known, "loss"] = math.inf
    frame = frame[(ok | (diverged & known))]
    frame = frame[(frame[knob].astype(float) > 0) & (frame[against].astype(float) > 0)]
    if frame.empty:
        raise AnalysisError(f"no completed run has {knob}, {against} and loss; train the sweep first "
                            "(scaling status shows its runs)")
    _refuse_confounders(frame, knob, against)
    table = frame.groupby(["parametrization", against, knob], as_index=False)["loss"].agg(loss="mean", runs="size")
    return table.astype({knob: float, "loss": float})


def _refuse_confounders(frame: pd.DataFrame, knob: str, against: str) -> None:
    skip = {knob, against} | ({"width"} if against in ("N", "N_nonembed") else set())
    for column in (c for c in CONFOUNDERS if c in frame and c not in skip):
        spread = frame.groupby(["parametrization", against])[column].nunique()
        if (spread > 1).any():
            values = sorted(frame[column].dropna().unique().tolist())
            raise AnalysisError(f"the runs of one {against} differ in {column} too ({', '.join(map(str, values))}); "
                                f"fit one setting at a time, e.g. --where '{column} == {values[0]!r}'")


def best_lrs(frame: pd.DataFrame, knob: str = "lr", against: str = "width") -> pd.DataFrame:
    """Per (parametrization, size): the grid's best value and loss, `lr_opt` (the parabola's vertex in
    log(knob) around it), `edge` ("low"/"high" when the best is a grid edge) and `rates` (grid size)."""
    rows = []
    for (param, size), group in frame.groupby(["parametrization", against]):
        curve = group.groupby(knob)["loss"].mean().sort_index()
        best = int(np.argmin(curve.to_numpy()))
        edge = "low" if best == 0 else "high" if best == len(curve) - 1 else ""
        rows.append({"parametrization": param, against: size, f"best_{knob}": float(curve.index[best]),
                     "loss": float(curve.iloc[best]), f"{knob}_opt": _vertex(curve, best), "edge": edge,
                     "rates": len(curve)})
    table = pd.DataFrame(rows)
    if against == "width" and len(table):
        table["width"] = table["width"].astype(int)
    return table


def _window(curve: pd.Series, best: int) -> tuple[np.ndarray, np.ndarray]:
    """log(knob) and loss of the finite grid points within WINDOW of the best."""
    part = curve.iloc[max(0, best - WINDOW):best + WINDOW + 1]
    part = part[np.isfinite(part.to_numpy(dtype=float))]
    return np.log(part.index.to_numpy(dtype=float)), part.to_numpy(dtype=float)


def _vertex(curve: pd.Series, best: int) -> float:
    """The vertex of the least-squares parabola in log(knob) through the window around the best;
    the grid's best point at an edge, with fewer than 3 finite points, or when the parabola opens down."""
    if best in (0, len(curve) - 1):
        return float(curve.index[best])
    x, y = _window(curve, best)
    return _parabola_vertex(x, y, float(curve.index[best]))


def _parabola_vertex(x: np.ndarray, y: np.ndarray, fallback: float) -> float:
    if len(x) < 3 or x.min() >= math.log(fallback) or x.max() <= math.log(fallback):
        return fallback
    vertex = parabola_vertex(x, y)
    if vertex is None:
        return fallback
    return float(np.exp(np.clip(vertex[0], x.min(), x.max())))  # never beyond the points it saw


# ----------------------------------------------------------------------------- the law


@dataclass
class LrFit:
    """`--law lr`: per parametrization, knob_opt = coefficient * (size / reference) ** exponent."""

    knob: str
    against: str
    table: pd.DataFrame  # best_lrs: one row per (parametrization, size)
    laws: dict[str, dict[str, Any]]  # parametrization -> exponent, interval, coefficient, reference, rule
    level: float = 0.95
    bootstrap: int = 0
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The config key the rule sets (optim.lr, optim.batch_size)."""
        return KNOBS[self.knob][0]

    def rules(self) -> dict[str, dict[str, str]]:
        """{parametrization: {config key: expression}}: what sweep.rules_from adds to sweep.rules."""
        return {param: {self.key: law["rule"]} for param, law in self.laws.items()}

    def to_dict(self) -> dict[str, Any]:
        """The fit file's content (JSON-safe)."""
        from scaling.analysis.result import json_safe

        return json_safe({"format": FIT_FORMAT, "law": "lr", "knob": self.key, "against": self.against,
                          "rules": self.rules(), "laws": self.laws, "level": self.level,
                          "bootstrap": self.bootstrap, "source": self.source, "notes": self.notes,
                          "points": self.table.to_dict(orient="records")})

    def summary(self) -> str:
        """Per parametrization: the best value per size, lr_opt, the power law with its interval, the rule."""
        knob, against = self.knob, self.against
        lines = [f"{KNOBS[knob][1]} transfer: {knob}_opt per {against} (parabola in log {knob} around the best "
                 f"grid point), then {knob}_opt ~ {against}^exponent"]
        for param, law in self.laws.items():
            rows = self.table[self.table["parametrization"] == param].sort_values(against)
            best = rows[f"best_{knob}"]
            lines.append(f"{param}:")
            lines += [f"  {against} {_size(row[against])}: best {knob} {row[f'best_{knob}']:g} (loss "
                      f"{row['loss']:.4f}), {knob}_opt {row[f'{knob}_opt']:.4g}" for _, row in rows.iterrows()]
            low, high = law["interval"]
            interval = (f"[{low:+.2f}, {high:+.2f}] ({self.level:.0%}, {self.bootstrap} bootstrap replicates)"
                        if np.isfinite([low, high]).all() else "(no interval: " + law.get("no_interval", "") + ")")
            lines.append(f"  exponent {law['exponent']:+.3f} {interval}; best values span "
                         f"{math.log2(best.max() / best.min()):.1f} factors of 2")
            lines.append(f'  rule  {self.key}: "{law["rule"]}"')
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _size(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() and value < 1e6 else f"{value:.3g}"


def fit_lr(runs: pd.DataFrame, knob: str = "lr", against: str = "width", bootstrap: int = 1000, seed: int = 0,
           level: float = 0.95, source: str | None = None) -> LrFit:
    """Fit knob_opt against size per parametrization. Refuses (AnalysisError, one line) fewer than
    MIN_POINTS grid values at a size, a best value at the grid's edge, and fewer than 2 sizes."""
    if knob not in KNOBS or against not in AGAINST:
        raise AnalysisError(f"--law lr fits {' or '.join(KNOBS)} against one of {', '.join(AGAINST)}; "
                            f"got {knob} against {against}")
    frame = cells(runs, knob, against)
    table = best_lrs(frame, knob, against)
    _check_grid(table, knob, against)
    rng = np.random.default_rng(seed)
    laws = {param: _power_law(frame[frame["parametrization"] == param], rows, knob, against, bootstrap, rng, level)
            for param, rows in table.groupby("parametrization")}
    notes = [] if frame["runs"].nunique() == 1 else [
        f"grid points average unequal numbers of runs (seeds), {frame['runs'].min()} to {frame['runs'].max()}: "
        "compare like with like, e.g. --where 'seed == 0'"]
    return LrFit(knob, against, table, laws, level, bootstrap, source, notes)


def _check_grid(table: pd.DataFrame, knob: str, against: str) -> None:
    key = KNOBS[knob][0]
    for _, row in table.iterrows():
        where = f"{row['parametrization']} {against} {_size(row[against])}"
        if row["rates"] < MIN_POINTS:
            raise AnalysisError(f"{where} has {row['rates']} value(s) of {key}; --law lr needs at least {MIN_POINTS} "
                                f"per {against} (a factor ~2 apart): add values to {key}")
        if row["edge"]:
            side, beyond = ("lowest", "below") if row["edge"] == "low" else ("highest", "above")
            raise AnalysisError(f"{where}: the best {key} {row[f'best_{knob}']:g} is the {side} of its grid, so the "
                                f"optimum may lie beyond it; extend the grid {beyond} {row[f'best_{knob}']:g} there "
                                "and run again")
    for param, rows in table.groupby("parametrization"):
        if len(rows) < 2:
            raise AnalysisError(f"{param} has one {against} ({_size(rows[against].iloc[0])}); a power law of "
                                f"{knob}_opt against {against} needs at least 2")


def _power_law(frame: pd.DataFrame, rows: pd.DataFrame, knob: str, against: str, bootstrap: int,
               rng: np.random.Generator, level: float) -> dict[str, Any]:
    """The exponent and coefficient of knob_opt against size for one parametrization, the bootstrap
    interval (parabolas refitted to fitted losses plus resampled pooled residuals) and the rule."""
    sizes = rows[against].to_numpy(dtype=float)
    exponent, intercept = np.polyfit(np.log(sizes), np.log(rows[f"{knob}_opt"].to_numpy(dtype=float)), 1)
    reference = _reference(sizes, against)
    coefficient = float(np.exp(intercept + exponent * math.log(reference)))
    law: dict[str, Any] = {"exponent": float(exponent), "coefficient": coefficient, "reference": reference,
                           "interval": [math.nan, math.nan], "rule": _rule(coefficient, against, reference, exponent,
                                                                           knob)}
    samples, why = _bootstrap(frame, sizes, knob, against, bootstrap, rng)
    if samples is not None:
        tail = (1 - level) / 2
        law["interval"] = [float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))]
    else:
        law["no_interval"] = why
    return law


def _bootstrap(frame: pd.DataFrame, sizes: np.ndarray, knob: str, against: str, replicates: int,
               rng: np.random.Generator) -> tuple[np.ndarray | None, str]:
    if replicates <= 0:
        return None, "--bootstrap 0"
    windows = []
    for size in sizes:
        curve = frame[frame[against] == size].groupby(knob)["loss"].mean().sort_index()
        best = int(np.argmin(curve.to_numpy()))
        x, y = _window(curve, best)
        fitted = np.polyval(np.polyfit(x, y, 2), x)
        windows.append((x, fitted, y - fitted, float(curve.index[best])))
    # Residuals pooled over sizes, each inflated for the 3 parameters its parabola spent.
    pooled = np.concatenate([np.zeros(0)] + [r * math.sqrt(len(r) / (len(r) - 3))
                                             for _, _, r, _ in windows if len(r) > 3])
    if not len(pooled) or not np.any(pooled):
        return None, "every parabola goes through exactly 3 points, leaving no residuals; add grid values"
    log_sizes = np.log(sizes)
    slopes = np.empty(replicates)
    for i in range(replicates):
        optima = [_parabola_vertex(x, fitted + rng.choice(pooled, len(x)), best) for x, fitted, _, best in windows]
        slopes[i] = np.polyfit(log_sizes, np.log(optima), 1)[0]
    return slopes, ""


def _reference(sizes: np.ndarray, against: str) -> float:
    """The rule's reference size: the grid's width nearest the geometric middle, or a power of 10."""
    middle = float(np.exp(np.log(sizes).mean()))
    if against == "width":
        return float(sizes[np.argmin(np.abs(np.log(sizes / middle)))])
    return float(10 ** round(math.log10(middle)))


def _rule(coefficient: float, against: str, reference: float, exponent: float, knob: str) -> str:
    """A sweep.rules expression: coefficient * (size / reference) ** exponent (batch sizes rounded)."""
    ref = f"{int(reference)}" if against == "width" else f"{reference:.0e}".replace("e+0", "e").replace("e+", "e")
    text = f"{coefficient:.4g} * ({against} / {ref}) ** {exponent:.3f}"
    return f"max(1, int(round({text})))" if knob == "batch_size" else text


# --------------------------------------------------------------------------- the fit file


def save_fit(fit: LrFit, path: Path | str) -> Path:
    """Write the fit file (JSON) that sweep.rules_from reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fit.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def read_rules(path: Path | str, parametrization: str) -> dict[str, str]:
    """The rules a fit file holds for `parametrization` ({config key: expression}); ValueError (one
    line) for a file that is missing, not JSON, not a fit file, or without that parametrization."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist; write it with scaling fit SWEEP --law lr --save {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON fit file ({error}); write it with scaling fit SWEEP "
                         "--law lr --save FILE") from None
    rules = content.get("rules") if isinstance(content, dict) else None
    if not isinstance(rules, dict) or content.get("format") != FIT_FORMAT or not all(
            isinstance(r, dict) and all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in r.items())
            for r in rules.values()):
        raise ValueError(f"{path} is not a fit file of scaling fit --law lr (format {FIT_FORMAT} with rules "
                         "{parametrization: {key: expression}}); write it with scaling fit SWEEP --law lr --save FILE")
    if parametrization not in rules:
        raise ValueError(f"{path} has rules for {', '.join(rules) or 'no parametrization'}, not for "
                         f"model.parametrization={parametrization}; fit a sweep of {parametrization} runs or set "
                         "model.parametrization to match")
    return dict(rules[parametrization])


# ------------------------------------------------------------------------------ the figure


def varies_lr_across_widths(runs: pd.DataFrame) -> bool:
    """Whether a run table is an lr-transfer sweep: at least 2 widths, each with at least 3 learning rates."""
    if not {"width", "lr", "loss"} <= set(runs.columns):
        return False
    usable = runs[exclusion_reasons(runs, ["width", "lr", "loss"]) == ""]
    counts = usable.groupby("width")["lr"].nunique()
    return int((counts >= MIN_POINTS).sum()) >= 2


REPORT_TITLE = "Learning-rate transfer"
REPORT_CAPTION = ("Final loss against learning rate, one curve per width (★: each width's best), one panel per "
                  "parametrization (Yang et al. 2022, Figure 1): under μP the best rate stays put as the width grows, "
                  "under SP it moves. scaling fit SWEEP --law lr fits the best rate against width.")


def _lr_frame(runs: pd.DataFrame) -> pd.DataFrame | None:
    """The usable runs of an lr-transfer sweep (parametrization filled in), or None for any other table."""
    if not varies_lr_across_widths(runs):
        return None
    frame = runs[exclusion_reasons(runs, ["width", "lr", "loss"]) == ""]
    return frame.assign(parametrization=frame["parametrization"].fillna("sp") if "parametrization" in frame else "sp")


def report_figure(runs: pd.DataFrame) -> "Figure | None":
    """The report's PNG/SVG figure (`figure`) when the run table varies lr across widths; else None."""
    frame = _lr_frame(runs)
    return None if frame is None else figure(frame, REPORT_TITLE)


def report_plotly(runs: pd.DataFrame) -> "go.Figure | None":
    """The report's interactive figure: the same curves as `figure`, one panel per parametrization."""
    frame = _lr_frame(runs)
    if frame is None:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    params = sorted(frame["parametrization"].unique(), key=lambda p: (p != "sp", p))
    widths = sorted(frame["width"].unique())
    fig = make_subplots(rows=1, cols=len(params), shared_yaxes=True, subplot_titles=params)
    for col, param in enumerate(params, 1):
        for i, width in enumerate(widths):
            curve = frame[(frame["parametrization"] == param) & (frame["width"] == width)]
            curve = curve.groupby("lr")["loss"].mean().sort_index()
            if curve.empty:
                continue
            r, g, b, _ = _colour(i, len(widths))
            colour = f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f})"
            fig.add_trace(go.Scatter(x=curve.index, y=curve.to_numpy(), mode="lines+markers", name=f"width {width}",
                                     legendgroup=str(width), showlegend=col == 1, line=dict(color=colour)),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=[curve.idxmin()], y=[curve.min()], mode="markers", showlegend=False,
                                     legendgroup=str(width), marker=dict(symbol="star", size=13, color=colour),
                                     hovertemplate=f"width {width}: best lr %{{x:g}}, loss %{{y:.4f}}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(type="log", title_text="learning rate (optim.lr)", row=1, col=col)
    fig.update_yaxes(title_text="validation loss", row=1, col=1)
    fig.update_layout(template="plotly_white", height=420, margin=dict(l=70, r=20, t=40, b=50))
    return fig


def figure(frame: pd.DataFrame, title: str = "learning-rate transfer") -> "Figure":
    """Loss against learning rate, one curve per width, one panel per parametrization (sp, mup)."""
    from matplotlib.figure import Figure

    if "parametrization" not in frame:
        frame = frame.assign(parametrization="sp")
    params = sorted(frame["parametrization"].fillna("sp").unique(), key=lambda p: (p != "sp", p))
    widths = sorted(frame["width"].unique())
    fig = Figure(figsize=(5.0 * len(params), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(params), sharey=True))
    for ax, param in zip(axes, params):
        for i, width in enumerate(widths):
            curve = frame[(frame["parametrization"] == param) & (frame["width"] == width)]
            curve = curve.groupby("lr")["loss"].mean().sort_index()
            if curve.empty:
                continue
            colour = _colour(i, len(widths))
            ax.plot(curve.index, curve.to_numpy(), marker="o", ms=3, color=colour, label=f"width {width}")
            ax.plot([curve.idxmin()], [curve.min()], marker="*", ms=11, color=colour)
        ax.set(xscale="log", title=param, xlabel="learning rate (optim.lr)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("validation loss")
    axes[-1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _colour(index: int, count: int) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    return colormaps["viridis"](index / max(1, count - 1) * 0.9)
