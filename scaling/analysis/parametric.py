"""A parametric law fitted to a run table: hygiene, the multi-start fit, diagnostics, bootstrap."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from scaling.analysis.bootstrap import CONFIG_COLUMNS, bootstrap_law, percentile_intervals
from scaling.analysis.fitting import CONVERGED, MAX_ITER, NOT_FINITE, STALLED, LawFit, fit_law
from scaling.analysis.hygiene import (AnalysisError, centred_correlation, clean, identification_warnings,
                                      run_labels, sample_correlation, strongest_correlation)
from scaling.analysis.laws import ONE_VARIABLE, Law, get_law
from scaling.analysis.result import FitResult
from scaling.analysis.table import log_columns

LBFGS_OPTIONS = ("memory", "max_iter", "ftol", "gtol", "c1", "max_backtracks")


def _run_clusters(kept: pd.DataFrame) -> str | None:
    """Runs that are not independent draws are resampled together (a column `run_cluster`): cooldown branches
    with their trunk (the parent's run_id), and the seeds of one configuration (seed_repeats rungs). None when
    every run stands alone, so such tables resample runs exactly as before."""
    label = kept["run_id"].astype(str) if "run_id" in kept.columns else pd.Series(kept.index.astype(str), index=kept.index)
    if "seed" in kept.columns:
        keys = [c for c in CONFIG_COLUMNS if c in kept.columns and kept[c].notna().all()]
        if keys:
            label = kept[keys].astype(str).agg("|".join, axis=1)
    if "parent" in kept.columns:
        label = kept["parent"].where(kept["parent"].notna(), label).astype(str)
    if label.nunique() == len(label):
        return None
    kept["run_cluster"] = label
    return "run_cluster"


def fit_parametric(frame: pd.DataFrame, law: str = "chinchilla", *, irreducible: bool | str = "auto",
                   delta: float = 1e-3, grid: Mapping[str, Any] | None = None, starts: np.ndarray | None = None,
                   weights: str | Sequence[float] | None = None, bootstrap: int = 0, seed: int = 0,
                   level: float = 0.95, clusters: str | None = None, boot_starts: int = 3,
                   corr_threshold: float = 0.99, **lbfgs_options: Any) -> FitResult:
    """Fit law `law` to the usable runs of `frame` (Huber on log loss, L-BFGS from a grid of starts).

    `weights` is a column name or one weight per row; `bootstrap` > 0 adds percentile intervals
    from that many resamples of runs (of whole `clusters` when given a column name). `irreducible`
    (one-variable laws): True keeps E, False fits the pure power law, "auto" keeps E only where the
    points support it (`choose_irreducible`).
    """
    _check_options(lbfgs_options)
    choice = None
    if law in ONE_VARIABLE and irreducible == "auto":
        irreducible, choice, chosen = choose_irreducible(
            frame, law, custom=grid is not None or starts is not None, delta=delta, weights=weights, seed=seed,
            level=level, clusters=clusters, boot_starts=boot_starts, corr_threshold=corr_threshold, **lbfgs_options)
        if chosen is not None and not bootstrap:  # the choice's own fit is this fit: not fitted a third time
            return _with_choice(chosen, choice)
    model = get_law(law, irreducible=bool(irreducible))
    kept, excluded = clean(frame, (*model.variables, "loss"), f"law {law}", min_points=model.n_params + 1)
    logx, logy = log_columns(kept, model.variables), np.log(kept["loss"].to_numpy(dtype=float))
    w = _weights(frame, kept, weights)
    started = time.perf_counter()
    law_fit = fit_law(model, logx, logy, delta=delta, weights=w, starts=starts, grid=grid, **lbfgs_options)
    seconds = time.perf_counter() - started
    result = _result(model, law_fit, kept, excluded, logx, logy, irreducible, seconds)
    corr = centred_correlation(model, law_fit.theta, logx, w)
    if bootstrap:
        clusters = clusters or _run_clusters(kept)
        cluster_labels = kept[clusters].to_numpy() if clusters else None
        corr = _add_bootstrap(result, law_fit, logx, logy, w, bootstrap, seed, level, cluster_labels, boot_starts,
                              lbfgs_options)
        result.bootstrap["clusters"] = clusters
    _add_diagnostics(result, model, corr, corr_threshold, bootstrap > 0, kept["loss"].to_numpy(dtype=float))
    _note_unvaried(result, model, kept)
    return _with_choice(result, choice)


def _with_choice(result: FitResult, choice: dict[str, Any] | None) -> FitResult:
    """The fit with choose_irreducible's verdict in fit_info (E_choice and a note), when one was made."""
    if choice:
        result.fit_info["E_choice"] = choice
        result.fit_info.setdefault("notes", []).append(choice["note"])
    return result


def aicc(residuals: np.ndarray, n_params: int) -> float:
    """Small-sample Akaike criterion of a least-squares fit with these residuals (inf where n <= k + 1)."""
    n = len(residuals)
    if n <= n_params + 1:
        return math.inf
    rss = max(float(np.sum(np.square(residuals))), 1e-300)
    return n * math.log(rss / n) + 2 * n_params + 2 * n_params * (n_params + 1) / (n - n_params - 1)


def choose_irreducible(frame: pd.DataFrame, law: str, *, custom: bool = False,
                       **options: Any) -> tuple[bool, dict[str, Any] | None, FitResult | None]:
    """Whether a one-variable law keeps its irreducible loss E: fit it with and without E and keep E only if
    its small-sample AIC (AICc, on the log residuals) is lower. Over a few points a decade or less apart
    (a CPU ladder's 5 budgets) E is not identified (E, A and alpha trade off along one ridge) and the
    curvature it adds extrapolates worse than the pure power law; on published ladders reaching into the
    bend (Chinchilla's frontier, 7 runs) AICc keeps it. A custom grid or starts are in one law's parameters:
    E is kept as asked for then. Returns (keep E, the verdict for fit_info or None, the kept law's fit without
    bootstrap, fitted with `options`, or None); fit_parametric's other options pass through."""
    if custom:
        return True, None, None
    fits = {}
    for keep in (True, False):
        try:
            fits[keep] = fit_parametric(frame, law, irreducible=keep, **options)
        except AnalysisError:  # too few points for the law with E
            continue
    if True not in fits or False not in fits:
        keep = True in fits
        return keep, None, fits.get(keep)
    scores = {keep: aicc(fit.residuals, len(fit.params)) for keep, fit in fits.items()}
    keep = scores[True] < scores[False]
    shown = {with_e: f"{score:.1f}" for with_e, score in scores.items()}
    note = (f"E kept: the points support it (AICc {shown[True]} with E, {shown[False]} without)" if keep else
            f"E left out, a pure power law: {len(fits[True].residuals)} points do not support it (AICc "
            f"{shown[False]} without E, {shown[True]} with); --E yes keeps it")
    return keep, {"rule": "AICc", "aicc_with_E": scores[True], "aicc_without_E": scores[False], "kept": keep,
                  "note": note}, fits[keep]


def _note_unvaried(result: FitResult, model: Law, kept: pd.DataFrame) -> None:
    """A law variable that takes one value in the fitted runs (D in an lr sweep at fixed tokens) leaves its
    terms unidentified: fit_info['unvaried'] names it, and the law predicts nothing away from that value."""
    unvaried = [v for v in model.variables if kept[v].nunique() == 1] if len(model.variables) > 1 else []
    if unvaried:
        result.fit_info["unvaried"] = unvaried
        result.a = result.b = result.G = None  # an allocation along C moves the unvaried variable too
        values = ", ".join(f"{v} = {float(kept[v].iloc[0]):,.0f}" for v in unvaried)
        result.warnings.append(f"every fitted run has {values}: the law's {' and '.join(unvaried)} terms are not "
                               "identified, so it predicts nothing at other values (vary them, or fit a law of "
                               "what varies)")


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = [k for k in options if k not in LBFGS_OPTIONS]
    if unknown:
        raise TypeError(f"unknown fit option(s) {', '.join(unknown)}")


def _weights(frame: pd.DataFrame, kept: pd.DataFrame, weights: str | Sequence[float] | None) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in kept.columns:
            raise AnalysisError(f"weights column {weights!r} is not in the table")
        w = kept[weights].to_numpy(dtype=float)
    else:
        w = pd.Series(np.asarray(weights, dtype=float), index=frame.index).loc[kept.index].to_numpy()
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise AnalysisError("weights must be finite, non-negative and not all zero")
    return w


def _result(model: Law, law_fit: LawFit, kept: pd.DataFrame, excluded: list[dict], logx: dict, logy: np.ndarray,
            irreducible: bool, seconds: float) -> FitResult:
    pred, _ = model.forward(law_fit.theta[None, :], logx)
    status = law_fit.grid.status
    fit_info = {"method": "Huber on log loss, batched L-BFGS from a grid of starts", "delta": law_fit.delta,
                "starts": law_fit.n_starts, "starts_at_best": law_fit.n_at_best(),
                "converged": int((status == CONVERGED).sum()), "stalled": int((status == STALLED).sum()),
                "max_iter": int((status == MAX_ITER).sum()), "not_finite": int((status == NOT_FINITE).sum()),
                "evaluations": law_fit.minima.evaluations, "seconds": seconds}
    if law_fit.screen is not None:  # the grid's counts above are the screen's; then the refinement on all runs
        fit_info["method"] += (f", screened on {law_fit.screen_runs} of the {len(kept)} runs; the "
                               f"{len(law_fit.minima.f)} best distinct end points refined on all")
        fit_info.update(screen_runs=law_fit.screen_runs, refined=len(law_fit.minima.f),
                        evaluations=law_fit.screen.evaluations + law_fit.minima.evaluations)
    result = FitResult(law=model.name, params=law_fit.params, n_points=len(kept), objective=law_fit.objective,
                       formula=model.formula, residuals=logy - pred[0], runs=run_labels(kept), excluded=excluded,
                       law_options={"irreducible": irreducible} if model.name in ONE_VARIABLE else {},
                       fit_info=fit_info)
    allocation = model.allocation(result.params)
    if allocation:
        result.a, result.b, result.G = allocation["a"], allocation["b"], allocation["G"]
    return result


def _add_bootstrap(result: FitResult, law_fit: LawFit, logx: dict, logy: np.ndarray, w: np.ndarray | None,
                   replicates: int, seed: int, level: float, clusters: np.ndarray | None, boot_starts: int,
                   lbfgs_options: Mapping[str, Any]) -> np.ndarray:
    """Fill ci, samples and bootstrap info; return the bootstrap correlation matrix."""
    model = law_fit.law
    started = time.perf_counter()
    draws, failed = bootstrap_law(law_fit, logx, logy, replicates, seed=seed, weights=w, clusters=clusters,
                                  n_starts=boot_starts, **lbfgs_options)
    if len(draws) < 2:
        raise AnalysisError(f"bootstrap: only {len(draws)} of {replicates} replicates could be fitted")
    values = {k: np.asarray(v) for k, v in model.to_params(draws).items()}
    if result.has_allocation:
        per_draw = [model.allocation({k: v[i] for k, v in values.items()}) for i in range(len(draws))]
        values.update({k: np.array([d[k] for d in per_draw]) for k in ("a", "b", "G")})
    result.sample_names = list(values)
    result.samples = np.column_stack([values[k] for k in result.sample_names])
    result.ci, result.level = percentile_intervals(values, level), level
    result.bootstrap = {"replicates": replicates, "failed": failed, "level": level, "seed": seed,
                        "method": "percentile, runs resampled with replacement",
                        "seconds": time.perf_counter() - started}
    return sample_correlation(model, draws, logx)


def _add_diagnostics(result: FitResult, model: Law, corr: np.ndarray, threshold: float, from_bootstrap: bool,
                     loss: np.ndarray) -> None:
    names = list(model.param_names)
    result.correlation = {"names": names, "matrix": corr.tolist(),
                          "source": "bootstrap draws" if from_bootstrap else "Gauss-Newton at the optimum",
                          "note": "scale parameters taken at the centre of the data",
                          "strongest": strongest_correlation(corr, names), "threshold": threshold}
    result.warnings += identification_warnings(corr, names, threshold)
    result.warnings += sanity_warnings(result, model, loss)


def sanity_warnings(result: FitResult, model: Law, loss: np.ndarray) -> list[str]:
    """Plain-language warnings about a fitted law: negative exponents, a vanishing E, a lonely optimum."""
    out = []
    for name in model.param_names:
        if name.startswith("alpha") or name == "beta":
            if result.params[name] < 0:
                out.append(f"{name} = {result.params[name]:.3g} is negative: the loss grows with scale in this fit")
    if "E" in result.params and result.params["E"] < 1e-3 * float(np.min(loss)):
        out.append("E collapsed to ~0: the data show no irreducible loss (try the pure power law, irreducible=False / --E no)")
    info = result.fit_info
    if info["starts"] >= 10 and info["starts_at_best"] == 1:
        out.append(f"the best optimum was reached from 1 of {info['starts']} starts: widen the grid to be sure it is global")
    return out
