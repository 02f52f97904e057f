"""Synthetic run tables with a known law, for tests, benchmarks and for trying the analysis offline.

Losses follow Chinchilla's L(N, D) = E + A / N^alpha + B / D^beta (the paper's own estimate by
default) times log-normal noise of relative size `noise`; runs are laid out as IsoFLOP profiles,
and `training_curves` gives per-step curves for the envelope approach.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from scaling.analysis.laws import chinchilla_allocation, chinchilla_loss, optimal_allocation

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022


def isoflop_table(truth: Mapping[str, float] = TRUTH, budgets: np.ndarray | None = None, sizes: int = 9,
                  span: float = 1.0, noise: float = 0.01, seeds: int = 1, seed: int = 0) -> pd.DataFrame:
    """A run table of IsoFLOP profiles: per budget C, `sizes` model sizes log-spaced over +-span decades
    around the true N_opt(C), D = C / (6 N), `seeds` runs of each configuration.

    Columns: run_id, sweep, status, family, width, depth, seed, N, D, C, loss, budget.
    """
    budgets = np.geomspace(1e18, 1e21, 7) if budgets is None else np.asarray(budgets, dtype=float)
    alloc = chinchilla_allocation(truth["A"], truth["B"], truth["alpha"], truth["beta"])
    rng = np.random.default_rng(seed)
    rows = []
    for i, C in enumerate(budgets):
        n_opt, _ = optimal_allocation(C, **alloc)
        for j, N in enumerate(n_opt * np.logspace(-span, span, sizes)):
            for s in range(seeds):
                D = C / (6.0 * N)
                loss = chinchilla_loss(N, D, **truth) * np.exp(noise * rng.standard_normal())
                rows.append({"run_id": f"b{i}-n{j}-s{s}", "sweep": "synthetic", "status": "completed",
                             "family": "synthetic", "width": j, "depth": 1, "seed": s, "N": N, "D": D, "C": C,
                             "loss": float(loss), "budget": i})
    return pd.DataFrame(rows)


def training_curves(truth: Mapping[str, float] = TRUTH, sizes: np.ndarray | None = None,
                    tokens_per_param: float = 400.0, steps: int = 80, noise: float = 0.0,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-step curves of runs of each size trained to tokens_per_param * N tokens.

    The loss after D_seen tokens is L(N, D_seen) (an idealised schedule). Returns (runs, curves),
    curves with run_id, step, D_seen, C_seen (= 6 N D_seen), train_loss, val_loss.
    """
    sizes = np.geomspace(1e7, 1e10, 13) if sizes is None else np.asarray(sizes, dtype=float)
    rng = np.random.default_rng(seed)
    runs, curves = [], []
    for i, N in enumerate(sizes):
        run_id = f"n{i}"
        d_seen = np.geomspace(N / 10.0, tokens_per_param * N, steps)
        loss = chinchilla_loss(N, d_seen, **truth) * np.exp(noise * rng.standard_normal(steps))
        runs.append({"run_id": run_id, "status": "completed", "N": N, "D": d_seen[-1], "C": 6 * N * d_seen[-1],
                     "loss": float(loss[-1])})
        curves.append(pd.DataFrame({"run_id": run_id, "step": np.arange(1, steps + 1), "D_seen": d_seen,
                                    "C_seen": 6 * N * d_seen, "train_loss": loss, "val_loss": loss}))
    return pd.DataFrame(runs), pd.concat(curves, ignore_index=True)
