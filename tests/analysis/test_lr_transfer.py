"""Learning-rate transfer: best rates per width, the parabola's vertex, the exponent, the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.lr_transfer import best_lrs, exponents, figure, summary

LRS = [0.002, 0.004, 0.008, 0.016, 0.032]


def synthetic(optimum: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Loss = 2 + (log2 lr - log2 optimum)^2 / 10 on the grid, per (parametrization, width)."""
    rows = [{"parametrization": p, "width": w, "lr": lr, "loss": 2 + (np.log2(lr / best)) ** 2 / 10}
            for (p, w), best in optimum.items() for lr in LRS]
    return pd.DataFrame(rows)


def test_best_rates_vertex_and_exponents() -> None:
    frame = synthetic({("mup", 32): 0.008, ("mup", 64): 0.008, ("mup", 128): 0.008,
                       ("sp", 32): 0.016, ("sp", 64): 0.008 * 2 ** 0.3, ("sp", 128): 0.004})
    best = best_lrs(frame).set_index(["parametrization", "width"])
    assert best.loc[("sp", 64), "best_lr"] == 0.008
    assert best.loc[("sp", 64), "lr_opt"] == pytest.approx(0.008 * 2 ** 0.3)  # a parabola is exact here
    assert (best["edge"] == "").all()
    slopes = exponents(best.reset_index())
    assert slopes["mup"] == pytest.approx(0.0, abs=1e-9) and slopes["sp"] == pytest.approx(-1.0, abs=1e-9)
    assert "sp: best lr w32: 0.016, w64: 0.008, w128: 0.004; spread 2 grid steps" in summary(best.reset_index())
    assert len(figure(frame).axes) == 2


def test_an_optimum_at_the_grid_edge_is_named() -> None:
    best = best_lrs(synthetic({("sp", 32): 0.1, ("sp", 64): 0.001}))
    assert list(best["edge"]) == ["high", "low"] and list(best["lr_opt"]) == [0.032, 0.002]
    assert "w32: 0.032 (high edge)" in summary(best)
