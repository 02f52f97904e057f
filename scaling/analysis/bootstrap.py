"""Uncertainty: bootstrap over runs, and the seed-to-seed noise of repeated configurations.

A bootstrap replicate draws runs with replacement (whole clusters when a cluster column is given,
so that, say, the cooldown branches of one run are drawn together). For a parametric law a
replicate is just a weight vector (how many times each run was drawn), so every replicate is fitted
in the same batched L-BFGS call, each from the full fit's best end points.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from scaling.analysis.fitting import LawFit, huber_objective, lbfgs
from scaling.analysis.hygiene import AnalysisError

CONFIG_COLUMNS = ("sweep", "family", "width", "depth", "N", "N_nonembed", "D", "D_unique", "C")


def resample_counts(n: int, replicates: int, rng: np.random.Generator,
                    clusters: Sequence[Any] | None = None) -> np.ndarray:
    """How often each of n runs is drawn in each replicate [replicates, n].

    With `clusters` (a label per run), whole clusters are drawn with replacement.
    """
    if clusters is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(float)
    labels, index = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    k = len(labels)
    per_cluster = rng.multinomial(k, np.full(k, 1.0 / k), size=replicates).astype(float)
    return per_cluster[:, index]


def bootstrap_law(law_fit: LawFit, logx: Mapping[str, np.ndarray], logy: np.ndarray, replicates: int, *,
                  seed: int = 0, weights: np.ndarray | None = None, clusters: Sequence[Any] | None = None,
                  n_starts: int = 3, **lbfgs_options: float) -> tuple[np.ndarray, int]:
    """Refit the law on `replicates` resamples of the runs, all in one batch.

    Each replicate starts from the full fit's `n_starts` best distinct end points and keeps its
    best. Returns (fit-space draws [replicates_ok, p], number of replicates that failed).
    """
    rng = np.random.default_rng(seed)
    counts = resample_counts(len(logy), replicates, rng, clusters)
    if weights is not None:
        counts = counts * np.asarray(weights, dtype=float)[None, :]
    starts = law_fit.distinct_optima(n_starts)
    k, p = starts.shape
    per_start_weights = np.repeat(counts, k, axis=0)  # [replicates * k, n]
    objective = huber_objective(law_fit.law, logx, logy, law_fit.delta, per_start_weights)
    minima = lbfgs(objective, np.tile(starts, (replicates, 1)), **lbfgs_options)
    f = minima.f.reshape(replicates, k)
    best = np.argmin(f, axis=1)
    draws = minima.x.reshape(replicates, k, p)[np.arange(replicates), best]
    ok = np.isfinite(f[np.arange(replicates), best])
    return draws[ok], int((~ok).sum())


def bootstrap_statistic(frame: pd.DataFrame, statistic: Callable[[pd.DataFrame], Mapping[str, float]],
                        replicates: int, *, seed: int = 0, strata: str | None = None,
                        clusters: str | None = None) -> tuple[pd.DataFrame, int]:
    """Any statistic of a table, over resamples of its rows (within `strata`, or of whole `clusters`).

    Replicates where the statistic raises (too few points left, no minimum) are counted, not kept.
    Returns (one row of statistics per good replicate, number of failed replicates).
    """
    rng = np.random.default_rng(seed)
    rows, failed = [], 0
    for _ in range(replicates):
        sample = _resample_frame(frame, rng, strata, clusters)
        try:
            rows.append(dict(statistic(sample)))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            failed += 1
    return pd.DataFrame(rows), failed


def _resample_frame(frame: pd.DataFrame, rng: np.random.Generator, strata: str | None,
                    clusters: str | None) -> pd.DataFrame:
    if clusters is not None:
        labels = frame[clusters].unique()
        drawn = rng.choice(labels, size=len(labels), replace=True)
        return pd.concat([frame[frame[clusters] == label] for label in drawn], ignore_index=True)
    if strata is not None:
        parts = [group.iloc[rng.integers(0, len(group), len(group))] for _, group in frame.groupby(strata)]
        return pd.concat(parts, ignore_index=True)
    return frame.iloc[rng.integers(0, len(frame), len(frame))].reset_index(drop=True)


def percentile_intervals(draws: Mapping[str, np.ndarray], level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap interval [lo, hi] per named quantity."""
    tails = [(1 - level) / 2, (1 + level) / 2]
    out = {}
    for name, values in draws.items():
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            out[name] = [float(q) for q in np.quantile(values, tails)]
    return out


def seed_noise(frame: pd.DataFrame, config_columns: Sequence[str] = CONFIG_COLUMNS) -> dict[str, Any] | None:
    """Run-to-run noise of the loss from configurations repeated with different seeds.

    Groups runs on the configuration columns the table has (all but seed); from groups with two or
    more seeds it pools the within-group spread of log loss (about the relative noise) and of loss.
    None when the table has no seed column or no repeated configuration.
    """
    if "seed" not in frame.columns or "loss" not in frame.columns:
        return None
    keys = [c for c in config_columns if c in frame.columns and frame[c].notna().all()]
    if not keys:
        return None
    loss = frame["loss"].astype(float)
    groups = frame.assign(_log=np.log(loss), _loss=loss).groupby(keys, dropna=False)
    seeds = groups["seed"].transform("nunique")
    repeated = frame.index[(seeds >= 2).to_numpy()]
    if not len(repeated):
        return None
    sub = frame.assign(_log=np.log(loss), _loss=loss)[(seeds >= 2).to_numpy()].groupby(keys, dropna=False)
    n_groups, n_runs = sub.ngroups, len(repeated)
    dof = n_runs - n_groups
    log_dev, abs_dev = _deviations(sub, "_log"), _deviations(sub, "_loss")
    return {"groups": int(n_groups), "runs": int(n_runs), "rel_std": float(np.sqrt((log_dev**2).sum() / dof)),
            "abs_std": float(np.sqrt((abs_dev**2).sum() / dof)), "grouped_by": keys}


def _deviations(groups: Any, column: str) -> pd.Series:
    """Each value minus its group's mean, as `transform(lambda s: s - s.mean())` computes it.

    With groups of fewer than 8 rows (seeds of a configuration) numpy sums a group's values one by
    one in row order, as bincount does: the same numbers, without a Python call per group.
    """
    codes = groups.ngroup().to_numpy()
    values = groups.obj[column].to_numpy(dtype=float)
    counts = np.bincount(codes)
    if counts.max() >= 8:
        return groups[column].transform(lambda s: s - s.mean())
    means = np.bincount(codes, weights=values) / counts
    return pd.Series(values - means[codes], index=groups.obj.index)


def add_table_bootstrap(result: Any, frame: pd.DataFrame, statistic: Callable[[pd.DataFrame], Mapping[str, float]],
                        replicates: int, seed: int, level: float, strata: str | None = None) -> None:
    """Fill a FitResult's ci, samples and bootstrap info by refitting `statistic` on resampled tables."""
    started = time.perf_counter()
    draws, failed = bootstrap_statistic(frame, statistic, replicates, seed=seed, strata=strata)
    if len(draws) < 2:
        raise AnalysisError(f"bootstrap: only {len(draws)} of {replicates} replicates could be fitted")
    result.sample_names = list(draws.columns)
    result.samples = draws.to_numpy(dtype=float)
    result.ci = percentile_intervals({k: draws[k].to_numpy() for k in draws.columns}, level)
    result.level = level
    result.bootstrap = {"replicates": replicates, "failed": failed, "level": level, "seed": seed,
                        "method": "percentile, runs resampled with replacement"
                                  + (" within each budget" if strata else ""),
                        "seconds": time.perf_counter() - started}
