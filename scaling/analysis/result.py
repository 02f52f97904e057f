"""FitResult: what a fit found, how sure it is, what it left out, and what it predicts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scaling.analysis.laws import PARAMETRIC_LAWS, get_law, optimal_allocation


@dataclass
class FitResult:
    """A fitted law (or an allocation found by IsoFLOP or envelope) with its uncertainty.

    `params` are in natural units (for chinchilla E, A, B, alpha, beta); `ci` maps a parameter
    (and a, b, G) to its bootstrap interval [lo, hi] at `level`. `residuals` are
    log(observed loss) - log(predicted loss), one per run used, in the order of `runs`.
    For laws of N and D, `a`, `b` and `G` give N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b.
    `samples` holds the bootstrap draws of `sample_names` (not written to JSON).
    """

    law: str
    params: dict[str, float]
    n_points: int
    objective: float
    formula: str = ""
    ci: dict[str, list[float]] = field(default_factory=dict)
    level: float = 0.95
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    runs: list[str] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    backtest: dict | None = None
    a: float | None = None
    b: float | None = None
    G: float | None = None
    law_options: dict[str, Any] = field(default_factory=dict)
    fit_info: dict[str, Any] = field(default_factory=dict)
    correlation: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    seed_noise: dict[str, Any] | None = None
    bootstrap: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    samples: np.ndarray | None = field(default=None, repr=False)
    sample_names: list[str] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ predictions

    @property
    def has_allocation(self) -> bool:
        """Whether the result gives N_opt and D_opt as power laws of C."""
        return self.a is not None and self.G is not None

    def predict(self, **columns: Any) -> np.ndarray | pd.DataFrame:
        """Predicted loss at the given columns, or the compute-optimal point at C.

        `predict(N=..., D=...)` (chinchilla, kaplan) and `predict(C=...)` / `predict(N=...)` /
        `predict(D=...)` (one-variable laws) return the loss as an array. For results with an
        allocation, `predict(C=...)` returns a DataFrame with C, N_opt, D_opt and the loss there
        (NaN for isoflop and envelope, which give the allocation but no law of the loss).
        """
        if self.has_allocation and set(columns) == {"C"}:
            return self.optimal(columns["C"])
        return self._loss(self.params, **columns)

    def optimal(self, C: Any) -> pd.DataFrame:
        """N_opt, D_opt and (for a law of N and D) the loss at compute C."""
        if not self.has_allocation:
            raise ValueError(f"law {self.law} gives no compute-optimal allocation")
        C = np.atleast_1d(np.asarray(C, dtype=float))
        N_opt, D_opt = optimal_allocation(C, self.a, self.b, self.G)
        loss = self._loss(self.params, N=N_opt, D=D_opt) if self.law in ("chinchilla", "kaplan") else np.full(len(C), np.nan)
        return pd.DataFrame({"C": C, "N_opt": N_opt, "D_opt": D_opt, "loss": loss})

    def predict_interval(self, level: float | None = None, **columns: Any) -> pd.DataFrame:
        """Estimate and bootstrap interval of the prediction: columns estimate, lo, hi (and N_opt, ... for C).

        Needs a fit with `bootstrap=B`.
        """
        if self.samples is None:
            raise ValueError("no bootstrap draws: fit with bootstrap=B to get prediction intervals")
        level = self.level if level is None else level
        draws = [dict(zip(self.sample_names, row)) for row in self.samples]
        if self.has_allocation and set(columns) == {"C"}:
            return self._allocation_interval(np.atleast_1d(np.asarray(columns["C"], dtype=float)), draws, level)
        values = np.array([self._loss(d, **columns) for d in draws])
        return _interval_frame(self._loss(self.params, **columns), values, level)

    def _allocation_interval(self, C: np.ndarray, draws: list[dict], level: float) -> pd.DataFrame:
        frame = self.optimal(C)
        per_six = C / 6.0
        tails = [(1 - level) / 2, (1 + level) / 2]
        n_opt = np.array([d["G"] * per_six ** d["a"] for d in draws])
        lo, hi = np.nanquantile(n_opt, tails, axis=0)
        frame = frame.assign(N_opt_lo=lo, N_opt_hi=hi, D_opt_lo=per_six / hi, D_opt_hi=per_six / lo)
        if self.law in PARAMETRIC_LAWS:
            losses = np.array([self._loss(d, N=n, D=per_six / n) for d, n in zip(draws, n_opt)])
            frame["loss_lo"], frame["loss_hi"] = np.nanquantile(losses, tails, axis=0)
        return frame

    def _loss(self, params: dict[str, float], **columns: Any) -> np.ndarray:
        if self.law not in PARAMETRIC_LAWS:
            raise ValueError(f"{self.law} gives N_opt(C) and D_opt(C), not a law of the loss: use predict(C=...)")
        law = get_law(self.law, **self.law_options)
        missing = [v for v in law.variables if v not in columns]
        if missing:
            raise ValueError(f"law {self.law} predicts from {', '.join(law.variables)}; missing {', '.join(missing)}")
        return law.loss({k: params[k] for k in law.param_names}, **{v: columns[v] for v in law.variables})

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN and infinities become null); bootstrap draws are left out."""
        out: dict[str, Any] = {
            "law": self.law, "formula": self.formula, "params": self.params, "ci": self.ci, "level": self.level,
            "n_points": self.n_points, "objective": self.objective,
        }
        if self.has_allocation:
            out.update(a=self.a, b=self.b, G=self.G)
        out.update(excluded=self.excluded, backtest=self.backtest, residuals=_residual_summary(self.residuals),
                   fit=self.fit_info, correlation=self.correlation, warnings=self.warnings,
                   seed_noise=self.seed_noise, bootstrap=self.bootstrap, details=self.details)
        return json_safe(out)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON (see to_dict)."""
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """A readable table of the result (what `scaling fit` prints without --json)."""
        from scaling.analysis.summary import format_result

        return format_result(self)


def _interval_frame(estimate: np.ndarray, values: np.ndarray, level: float) -> pd.DataFrame:
    lo, hi = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return pd.DataFrame({"estimate": np.ravel(estimate), "lo": np.ravel(lo), "hi": np.ravel(hi)})


def _residual_summary(residuals: np.ndarray) -> dict[str, Any]:
    r = np.asarray(residuals, dtype=float)
    if not len(r):
        return {"values": []}
    return {"rms": float(np.sqrt(np.mean(r**2))), "max_abs": float(np.max(np.abs(r))), "values": r.tolist()}


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value
