"""Learning-rate transfer across width (issue 11): the best learning rate of each width, sp against mup.

The frame has one row per completed run with `parametrization`, `width`, `lr` and `loss` (the
run table of `experiments/lr_transfer`, its parametrization joined from the run configs). Under
μP the best rate stays put as the width grows; under SP it drifts (Yang et al. 2022, Figure 1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def best_lrs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (parametrization, width): the grid's best lr and loss, `lr_opt` from a parabola in log2(lr)
    through the best point and its neighbours, and `edge` ("low"/"high" when the best is a grid edge)."""
    rows = []
    for (param, width), group in frame.groupby(["parametrization", "width"]):
        curve = group.groupby("lr")["loss"].min().sort_index()
        best = int(np.argmin(curve.to_numpy()))
        edge = "low" if best == 0 else "high" if best == len(curve) - 1 else ""
        rows.append({"parametrization": param, "width": int(width), "best_lr": float(curve.index[best]),
                     "loss": float(curve.iloc[best]), "lr_opt": _vertex(curve, best), "edge": edge})
    return pd.DataFrame(rows)


def _vertex(curve: pd.Series, best: int) -> float:
    """The lr at the vertex of the parabola through points best-1..best+1 (log2 lr); the grid point at an edge."""
    if best in (0, len(curve) - 1):
        return float(curve.index[best])
    x = np.log2(curve.index.to_numpy(float)[best - 1:best + 2])
    a, b, _ = np.polyfit(x, curve.to_numpy()[best - 1:best + 2], 2)
    return float(2 ** (-b / (2 * a))) if a > 0 else float(curve.index[best])


def exponents(best: pd.DataFrame) -> dict[str, float]:
    """Per parametrization: the slope of log lr_opt against log width (0: the rate transfers)."""
    return {param: float(np.polyfit(np.log(group["width"]), np.log(group["lr_opt"]), 1)[0])
            for param, group in best.groupby("parametrization") if group["width"].nunique() > 1}


def figure(frame: pd.DataFrame, title: str = "learning-rate transfer") -> Figure:
    """Loss against learning rate, one curve per width, one panel per parametrization (sp, mup)."""
    params = sorted(frame["parametrization"].unique(), key=lambda p: (p != "sp", p))
    widths = sorted(frame["width"].unique())
    fig = Figure(figsize=(5.0 * len(params), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(params), sharey=True))
    for ax, param in zip(axes, params):
        for i, width in enumerate(widths):
            curve = frame[(frame["parametrization"] == param) & (frame["width"] == width)]
            curve = curve.groupby("lr")["loss"].min().sort_index()
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


def summary(best: pd.DataFrame) -> str:
    """One line per parametrization: best lr per width, how many grid steps they span, the exponent."""
    slopes = exponents(best)
    lines = []
    for param, group in best.groupby("parametrization"):
        group = group.sort_values("width")
        span = math.log2(group["best_lr"].max() / group["best_lr"].min())
        rates = ", ".join(f"w{w}: {lr:g}{' (' + e + ' edge)' if e else ''}"
                          for w, lr, e in zip(group["width"], group["best_lr"], group["edge"]))
        lines.append(f"{param}: best lr {rates}; spread {span:.0f} grid steps; "
                     f"lr_opt ~ width^{slopes.get(param, math.nan):+.2f}")
    return "\n".join(lines)
