"""Scaling-law analysis: fit laws to the run table, with uncertainty, backtests and hygiene.

    from scaling.analysis import fit
    result = fit(table, law="chinchilla", bootstrap=1000, holdout=2)
    result.params, result.ci, result.a, result.predict(C=1e24), result.to_json()

Everything here is a pure function of DataFrames (the run table of DESIGN.md and, for the envelope,
the per-step curves); reading a source lives in `scaling.analysis.source`, the CLI in `scaling.commands.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from scaling.analysis.backtest import backtest
from scaling.analysis.bootstrap import seed_noise
from scaling.analysis.envelope import fit_envelope, frontier
from scaling.analysis.fitting import LawFit, fit_law, grid_starts, huber, lbfgs
from scaling.analysis.hygiene import AnalysisError, clean, usable
from scaling.analysis.isoflop import fit_isoflop, isoflop_minima
from scaling.analysis.laws import (LAW_NAMES, PARAMETRIC_LAWS, chinchilla_allocation, chinchilla_loss, get_law,
                                   kaplan_allocation, kaplan_loss, optimal_allocation, power_law)
from scaling.analysis.parametric import fit_parametric
from scaling.analysis.result import FitResult, json_safe
from scaling.analysis.source import Source, read_source
from scaling.analysis.table import compute_frontier, prepare

__all__ = [
    "AnalysisError", "Comparison", "FitResult", "LAW_NAMES", "LawFit", "Source", "backtest", "chinchilla_allocation",
    "chinchilla_loss", "compare", "compute_frontier", "fit", "fit_envelope", "fit_isoflop", "fit_law",
    "fit_parametric", "frontier", "get_law", "grid_starts", "huber", "isoflop_minima", "kaplan_allocation",
    "kaplan_loss", "lbfgs", "optimal_allocation", "power_law", "read_source", "seed_noise", "usable",
]

APPROACHES = ("chinchilla", "isoflop", "envelope")


def fit(frame: pd.DataFrame, law: str = "chinchilla", *, curves: pd.DataFrame | None = None,
        columns: Mapping[str, str] | None = None, where: str | None = None, bootstrap: int = 0,
        holdout: int | float | None = None, seed: int = 0, level: float = 0.95, **options: Any) -> FitResult:
    """Fit `law` to a run table and return a FitResult.

    law: chinchilla | kaplan (L(N, D)), compute | params | data (L(C), L(N), L(D); with E where the
    points support it, irreducible="auto", or always True / never False), isoflop (approach 2) or
    envelope (approach 1, needs `curves`).
    columns renames {table name: frame column}; where filters rows (a pandas query); D = C / (6 N)
    when only N and C are given. bootstrap=B adds B-replicate percentile intervals at `level`;
    holdout=K (or a fraction) backtests on the K highest-compute runs. Other options go to the
    approach: delta, grid, starts, weights, clusters, irreducible, max_iter, ftol (parametric laws);
    frontier=True first keeps only the runs no cheaper run beats (for L(C) on a grid sweep);
    budget_tol, budget_column, include_edge (isoflop); loss_column, n_flops, smooth, include_edge
    (envelope).
    """
    if law not in LAW_NAMES:
        raise AnalysisError(f"unknown law {law!r}; choose one of {', '.join(LAW_NAMES)}")
    frame, notes = prepare(frame, dict(columns or {}), where)
    off_frontier: list[dict] = []
    if options.pop("frontier", False):
        frame, off_frontier = compute_frontier(frame)
        notes.append(f"kept the {len(frame)} runs on the compute frontier (no cheaper run has a lower loss)")
    result = _fit_approach(frame, law, curves, bootstrap=bootstrap, seed=seed, level=level, **options)
    result.excluded += off_frontier
    result.fit_info["notes"] = notes + result.fit_info.get("notes", [])
    if holdout:
        result.backtest = _backtest(frame, law, holdout, seed, options)
    result.seed_noise = _seed_noise(frame, result)
    return result


def _fit_approach(frame: pd.DataFrame, law: str, curves: pd.DataFrame | None, **options: Any) -> FitResult:
    if law in PARAMETRIC_LAWS:
        return fit_parametric(frame, law, **options)
    if law == "isoflop":
        return fit_isoflop(frame, **options)
    runs = frame if "N" in frame.columns else None
    return fit_envelope(runs, curves if curves is not None else frame, **options)


def _backtest(frame: pd.DataFrame, law: str, holdout: int | float, seed: int, options: Mapping[str, Any]) -> dict:
    if law not in PARAMETRIC_LAWS:
        raise AnalysisError(f"--holdout needs a law that predicts the loss ({', '.join(PARAMETRIC_LAWS)}); "
                            f"{law} gives N_opt(C) only")
    model = get_law(law, irreducible=options.get("irreducible", "auto") is not False)
    needed = (*model.variables, "loss", *(["C"] if "C" in frame.columns else []))
    usable, _ = clean(frame, needed, f"law {law}", min_points=model.n_params + 2)
    # per-row weight arrays do not survive the split; a weight column does
    refit_options = {k: v for k, v in options.items() if k != "weights" or isinstance(v, str)}
    return backtest(usable, holdout, lambda train: fit_parametric(train, law, seed=seed, **refit_options),
                    model.variables, min_train=model.n_params + 1)


def _seed_noise(frame: pd.DataFrame, result: FitResult) -> dict | None:
    if "loss" not in frame.columns:
        return None
    rows = usable(frame, ("loss",))
    noise = seed_noise(frame[rows].assign(loss=pd.to_numeric(frame["loss"][rows])))
    if noise is None or result.law not in PARAMETRIC_LAWS or not len(result.residuals):
        return noise
    rms = float(np.sqrt(np.mean(result.residuals**2)))
    noise["residual_rel_rms"] = rms
    if noise["rel_std"] > 0 and rms > 3 * noise["rel_std"]:
        result.warnings.append(f"residuals (rms {rms:.2%}) are {rms / noise['rel_std']:.1f}x the seed-to-seed noise "
                               f"({noise['rel_std']:.2%}): the law misses structure the data resolve")
    return noise


# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Approaches fitted to one table side by side, and whether their N_opt exponents agree."""

    results: dict[str, FitResult]
    skipped: dict[str, str]
    table: pd.DataFrame
    agree: bool | None
    verdict: str
    tolerance: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: each approach's result, the side-by-side table, the verdict and what was skipped."""
        return json_safe({"approaches": {k: r.to_dict() for k, r in self.results.items()},
                           "table": self.table.to_dict(orient="records"), "skipped": self.skipped,
                           "agree": self.agree, "verdict": self.verdict, "tolerance": self.tolerance})


def compare(frame: pd.DataFrame, *, curves: pd.DataFrame | None = None, approaches: tuple[str, ...] = APPROACHES,
            tolerance: float = 0.05, bootstrap: int = 0, seed: int = 0, level: float = 0.95,
            options: Mapping[str, Mapping[str, Any]] | None = None) -> Comparison:
    """Fit every approach the table allows (chinchilla, isoflop, envelope) and compare their N_opt exponents.

    They agree when the exponents a lie within `tolerance` of each other, or (with bootstrap) when
    their intervals overlap. Approaches the table cannot support are listed in `skipped` with why.
    `options` gives per-approach options, e.g. {"isoflop": {"budget_tol": 0.2}}.
    """
    results, skipped = {}, {}
    for approach in approaches:
        try:
            results[approach] = fit(frame, approach, curves=curves, bootstrap=bootstrap, seed=seed, level=level,
                                    **dict((options or {}).get(approach, {})))
        except AnalysisError as error:
            skipped[approach] = str(error)
    c_ref = float(pd.to_numeric(frame["C"], errors="coerce").max()) if "C" in frame.columns else float("nan")
    rows = [_comparison_row(name, r, c_ref) for name, r in results.items()]
    table = pd.DataFrame(rows, columns=["approach", "a", "a_lo", "a_hi", "b", "G", "N_opt_at_max_C", "n_points", "flags"])
    agree, verdict = _verdict(table, tolerance)
    return Comparison(results=results, skipped=skipped, table=table, agree=agree, verdict=verdict,
                      tolerance=tolerance, extra={"max_C": c_ref})


def _comparison_row(name: str, result: FitResult, c_ref: float) -> dict[str, Any]:
    lo, hi = result.ci.get("a", [np.nan, np.nan])
    n_opt = float(result.optimal(c_ref)["N_opt"].iloc[0]) if np.isfinite(c_ref) and result.has_allocation else np.nan
    return {"approach": name, "a": result.a, "a_lo": lo, "a_hi": hi, "b": result.b, "G": result.G,
            "N_opt_at_max_C": n_opt, "n_points": result.n_points, "flags": _flags(result)}


def _flags(result: FitResult) -> str:
    weak = any(w.startswith(("weakly identified", "the parameters")) for w in result.warnings)
    other = len(result.warnings) - sum(w.startswith(("weakly identified", "the parameters")) for w in result.warnings)
    return ", ".join(([ "weakly identified"] if weak else []) + ([f"{other} warning(s)"] if other else []))


def _verdict(table: pd.DataFrame, tolerance: float) -> tuple[bool | None, str]:
    if len(table) < 2:
        return None, "only one approach could be fitted: nothing to compare"
    spread = float(table["a"].max() - table["a"].min())
    overlap = bool(table["a_hi"].notna().all() and table["a_lo"].max() <= table["a_hi"].min())
    agree = spread <= tolerance or overlap
    if (table["flags"].str.contains("weakly identified")).any():
        how_note = " (some fits are weakly identified: see their warnings)"
    else:
        how_note = ""
    how = f"N_opt exponents a span {spread:.3f} ({', '.join(f'{r.approach} {r.a:.3f}' for r in table.itertuples())})"
    if agree:
        return True, f"agree: {how}" + (", intervals overlap" if overlap else f", within {tolerance}") + how_note
    return False, (f"disagree: {how}, more than {tolerance}"
                   + (" and intervals do not overlap" if table["a_hi"].notna().all() else "") + how_note)
