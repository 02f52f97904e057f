"""Fit orchestration for figures and the report: the law asked for and the other approaches, run once.

    an = analyse(runs, curves, law="chinchilla", target_flops=1e18)

`analyse` fits the law (with bootstrap intervals and a backtest), plus the IsoFLOP and envelope
approaches where the table allows them, and keeps why any of them could not be fitted. The
result, an `Analysis`, is what `scaling.analysis.series` turns into the data each figure shows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from scaling.analysis import AnalysisError, FitResult, fit
from scaling.analysis.envelope import choose_loss_column
from scaling.analysis.hygiene import run_labels, usable
from scaling.analysis.laws import PARAMETRIC_LAWS

LOSS_LAWS = ("chinchilla", "kaplan")  # laws of N and D: a loss at every (N, D) and an allocation
FIGURE_COLUMNS = ("N", "D", "C", "loss")


@dataclass
class Analysis:
    """A run table, its curves and its fits: everything the figures and the report show."""

    runs: pd.DataFrame
    usable: pd.DataFrame
    curves: Optional[pd.DataFrame]
    law: str
    main: Optional[FitResult]
    approaches: dict[str, FitResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    target_C: float = math.nan
    loss_column: Optional[str] = None
    level: float = 0.95
    held_out: pd.DataFrame = field(default_factory=pd.DataFrame)  # a ladder's held-out targets: shown, never fitted
    target_scores: Optional[dict] = None  # the main law's prediction of each completed target (targets.score_targets)
    predictions: list[dict] = field(default_factory=list)  # registered predictions (scaling.analysis.predictions)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def memoised(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once per analysis (what several figures and renderings share, such as thinned curves)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def loss_law(self) -> bool:
        """Whether the main fit predicts the loss at the compute-optimal point (a law of N and D, or of C)."""
        return self.main is not None and (self.main.law in LOSS_LAWS or self.main.law == "compute")

    @functools.cached_property
    def curve_law(self) -> tuple[Optional[Any], str]:
        """(the sweep's loss-curve law, `curves.sweep_curve_fit`, or None; why not, when none), fitted on first use:
        the figure and the report's table share it (a joint fit takes seconds)."""
        from scaling.analysis.curves import sweep_curve_fit

        try:
            return sweep_curve_fit(self.runs, self.curves), ""
        except AnalysisError as error:
            return None, str(error)

    def probe_columns(self) -> list[str]:
        """The run table's probe_* columns with at least one number."""
        return [c for c in self.runs.columns if str(c).startswith("probe_")
                and pd.to_numeric(self.runs[c], errors="coerce").notna().any()]


def usable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The usable runs (`scaling.analysis.hygiene.usable` over N, D, C and loss), those columns as floats."""
    frame = runs[usable(runs, FIGURE_COLUMNS)].reset_index(drop=True)
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in FIGURE_COLUMNS if c in frame.columns})


def default_target(C: pd.Series) -> float:
    """The round power of ten at least ten times the largest compute of the sweep."""
    return 10.0 ** math.ceil(math.log10(float(C.max())) + 1) if len(C) else math.nan


def auto_holdout(n_usable: int, law: str) -> int:
    """How many of the most expensive runs the backtest holds out: a sixth, at least one."""
    return max(1, math.ceil(n_usable / 6)) if law in PARAMETRIC_LAWS else 0


def analyse(runs: pd.DataFrame, curves: Optional[pd.DataFrame] = None, law: str = "chinchilla", *,
            target_flops: Optional[float] = None, bootstrap: int = 200, holdout: Optional[int | float] = None,
            seed: int = 0, level: float = 0.95, held_out: Optional[pd.DataFrame] = None) -> Analysis:
    """Fit `law` (bootstrap intervals, a backtest) and the IsoFLOP and envelope approaches where possible.

    `held_out` are a ladder's held-out targets (scaling.analysis.targets.split_targets): no fit sees
    them; they join the run table, and the main law's prediction of each completed one is scored.
    Nothing raises for a table that cannot be fitted: the reason lands in `errors` and the
    figures show the data alone.
    """
    if "run_id" not in runs.columns:  # the labels fits give rows ('row 3'), so figures can match runs to fits
        runs = runs.assign(run_id=run_labels(runs))
    kept = usable_runs(runs)
    curves = curves if curves is not None and len(curves) else None
    an = Analysis(runs=runs, usable=kept, curves=curves, law=law, main=None, level=level,
                  target_C=float(target_flops) if target_flops else default_target(kept["C"]))
    an.loss_column = _loss_column(curves)
    an.main = _try(an, law, lambda: fit(runs, law, curves=curves, bootstrap=bootstrap, seed=seed, level=level))
    k = auto_holdout(len(kept), law) if holdout is None else holdout
    if an.main is not None and k:
        tested = _try(an, "backtest", lambda: fit(runs, law, curves=curves, holdout=k, seed=seed))
        an.main.backtest = tested.backtest if tested is not None else None
    for approach in ("isoflop", "envelope"):
        if approach != law:
            found = _try(an, approach, lambda name=approach: fit(runs, name, curves=curves, seed=seed))
            if found is not None:
                an.approaches[approach] = found
    return _with_held_out(an, held_out) if held_out is not None and len(held_out) else an


def _with_held_out(an: Analysis, held_out: pd.DataFrame) -> Analysis:
    from scaling.analysis.targets import score_targets

    an.runs = pd.concat([an.runs, held_out], ignore_index=True)
    frame = held_out.assign(**{c: pd.to_numeric(held_out[c], errors="coerce") for c in FIGURE_COLUMNS})
    frame["loss"] = frame["loss"].where(usable(held_out, FIGURE_COLUMNS))  # a loss only once completed
    an.held_out = frame[(frame[["N", "D", "C"]] > 0).all(axis=1)].reset_index(drop=True)
    if an.main is not None and an.main.law in PARAMETRIC_LAWS and len(an.usable):
        an.target_scores = score_targets(an.main, held_out, an.usable, frontier=False)
    return an


def _try(an: Analysis, name: str, job: Callable[[], FitResult]) -> Optional[FitResult]:
    try:
        with np.errstate(all="ignore"):  # overflow in far-off starts and resamples is expected, not news
            return job()
    except (AnalysisError, ValueError, FloatingPointError) as error:
        an.errors[name] = str(error)
        return None


def _loss_column(curves: Optional[pd.DataFrame]) -> Optional[str]:
    """The curve column to draw: val_loss, unless it is logged too sparsely to show a curve and train_loss is not."""
    if curves is None or "run_id" not in curves.columns:
        return None
    logged = {c: float(curves[c].notna().groupby(curves["run_id"]).sum().median())
              for c in ("val_loss", "train_loss") if c in curves.columns}
    val, train = logged.get("val_loss", 0.0), logged.get("train_loss", 0.0)
    if val >= 8 or (val >= 2 and val >= train):
        return "val_loss"
    if train >= 2:
        return "train_loss"
    try:
        return choose_loss_column(curves)
    except AnalysisError:
        return None

