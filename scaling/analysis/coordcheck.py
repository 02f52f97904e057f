"""The coordinate check's numbers and figure: activation size against width, per layer and step.

The frame has one row per (width, layer, step) with the RMS of that layer's output
(`scaling.models.mup.coordinates`). Under μP every curve is flat in width; under SP the logits
(and, with SP's fixed-std init, the hidden layers) grow with it (Yang et al. 2022, Figure 5).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator


def slopes(frame: pd.DataFrame) -> pd.DataFrame:
    """Per layer and step: the slope of log RMS against log width and `spread`, the largest RMS
    over the smallest across widths. Rows in the model's layer order, then by step."""
    order = {layer: i for i, layer in enumerate(dict.fromkeys(frame["layer"]))}
    rows = []
    for (layer, step), group in frame.groupby(["layer", "step"], sort=False):
        group = group.groupby("width")["rms"].mean()
        rows.append({"layer": layer, "step": int(step), "slope": _slope(group), "spread": _spread(group)})
    table = pd.DataFrame(rows, columns=["layer", "step", "slope", "spread"])
    return table.sort_values(["layer", "step"], key=lambda c: c.map(order) if c.name == "layer" else c,
                             ignore_index=True)


def _slope(rms: pd.Series) -> float:
    """Least-squares slope of log(rms) on log(width): 0 when every RMS is 0 (a zero-initialised
    readout at init), NaN when only some are or there are fewer than 2 widths."""
    if len(rms) >= 2 and (rms.to_numpy() == 0).all():
        return 0.0
    if len(rms) < 2 or (rms.to_numpy() <= 0).any():
        return math.nan
    return float(np.polyfit(np.log(rms.index.to_numpy(float)), np.log(rms.to_numpy()), 1)[0])


def _spread(rms: pd.Series) -> float:
    """max / min of the RMS over widths (1: flat; inf when one is 0 and another is not)."""
    low, high = float(rms.min()), float(rms.max())
    if high == 0:
        return 1.0
    return high / low if low > 0 else math.inf


def slope_table(table: pd.DataFrame) -> pd.DataFrame:
    """`slopes` as one row per layer: slope at each step (columns `step 1`, ...) and the largest spread."""
    wide = table.pivot(index="layer", columns="step", values="slope")
    wide.columns = [f"step {step}" for step in wide.columns]
    wide["max spread"] = table.groupby("layer")["spread"].max()
    return wide.loc[list(dict.fromkeys(table["layer"]))]


def figure(frame: pd.DataFrame, title: str) -> Figure:
    """One log-log panel per step: each layer's output RMS against width (the mup package's plot)."""
    steps = sorted(frame["step"].unique())
    fig = Figure(figsize=(4.2 * len(steps), 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(steps), sharey=True))
    layers, widths = list(dict.fromkeys(frame["layer"])), sorted(frame["width"].unique())
    colours = [_colour(i, len(layers)) for i in range(len(layers))]
    for ax, step in zip(axes, steps):
        at_step = frame[frame["step"] == step]
        for layer, colour in zip(layers, colours):
            line = at_step[at_step["layer"] == layer].groupby("width")["rms"].mean()
            line = line[line > 0]
            ax.plot(line.index, line.to_numpy(), marker="o", ms=3, lw=1.2, color=colour, label=layer)
        ax.set(xscale="log", yscale="log", title=f"step {step}", xlabel="width")
        ax.xaxis.set_minor_locator(NullLocator())  # width ticks only, unlabelled minor ones overlap
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("RMS of the layer's output")
    fig.suptitle(title)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=7, frameon=False)
    return fig


def _colour(index: int, count: int) -> tuple[float, float, float, float]:
    """Layer colours from input (dark) to output (bright), as the mup package draws them."""
    from matplotlib import colormaps

    return colormaps["viridis"](index / max(1, count - 1))
