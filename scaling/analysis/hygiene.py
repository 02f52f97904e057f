"""Table hygiene: which runs a fit may use, which it leaves out and why, and how well it is identified.

Nothing is dropped silently: every excluded row comes back as {"run": ..., "reason": ...}, and a
table with too few usable rows is an `AnalysisError` that says how many were usable and why the
rest were not.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from scaling.analysis.laws import Law
from scaling.store import Status

POSITIVE_COLUMNS = ("N", "N_nonembed", "D", "D_unique", "C", "loss", "C_seen", "D_seen")


class AnalysisError(ValueError):
    """A problem with a table or a request, reported to the user as one line."""


def require_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    """Raise AnalysisError naming the missing columns, the present ones and the --columns fix."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        raise AnalysisError(f"{what} needs column(s) {', '.join(missing)}; the table has: {have} "
                            f"(rename with --columns 'N=...,C=...,loss=...')")


def run_labels(frame: pd.DataFrame) -> list[str]:
    """A label per row: its run_id where the table has one, else 'row <index>'."""
    if "run_id" in frame.columns:
        return [str(r) if pd.notna(r) else f"row {i}" for i, r in zip(frame.index, frame["run_id"])]
    return [f"row {i}" for i in frame.index]


def exclusion_reasons(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Why each row cannot be used ('' when it can): status, then missing, infinite or non-positive values.

    This is the one definition of a usable run. A row with no status (a table from a paper, a
    spreadsheet) counts as completed; any other status (failed, diverged, running, ...) does not,
    and neither does a cooldown trunk (mode=branches), whose loss is not annealed.
    """
    reasons = pd.Series("", index=frame.index, dtype=object)
    if "status" in frame.columns:
        status = frame["status"]
        bad = status.notna() & (status.astype(str) != Status.COMPLETED.value)
        reasons[bad] = "status " + status[bad].astype(str)
        if "error" in frame.columns:  # a damaged record: its error names the file
            damaged = status.astype(str) == "damaged"
            reasons[damaged] = frame.loc[damaged, "error"].astype(str).str.split(";").str[0]
    if "trunk" in frame.columns:  # a constant-rate trunk never cooled down: its branches are the points
        trunk = frame["trunk"].fillna(False).astype(bool) & (reasons == "")
        reasons[trunk] = "a cooldown trunk (its branches are the points)"
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce").astype(float)
        for mask, why in ((values.isna(), f"{col} is missing or not a number"),
                          (np.isinf(values), f"{col} is infinite"),
                          ((values <= 0) & (col in POSITIVE_COLUMNS), f"{col} <= 0")):
            reasons[mask & (reasons == "")] = why
    return reasons


def usable(frame: pd.DataFrame, columns: Sequence[str] = ("N", "D", "C", "loss")) -> pd.Series:
    """True for the rows a fit or a figure may use (see `exclusion_reasons`); all False when a column is missing."""
    if any(c not in frame.columns for c in columns):
        return pd.Series(False, index=frame.index)
    return exclusion_reasons(frame, columns) == ""


def clean(frame: pd.DataFrame, columns: Sequence[str], what: str, min_points: int) -> tuple[pd.DataFrame, list[dict]]:
    """Usable rows (the given columns as float) and the excluded rows with their reasons.

    Raises AnalysisError when a column is missing or fewer than `min_points` rows are usable.
    """
    require_columns(frame, columns, what)
    reasons = exclusion_reasons(frame, columns)
    labels = run_labels(frame)
    excluded = [{"run": label, "reason": why} for label, why in zip(labels, reasons) if why]
    kept = frame[reasons == ""].copy()
    for col in columns:
        kept[col] = pd.to_numeric(kept[col]).astype(float)
    if len(kept) < min_points:
        raise AnalysisError(f"{what} needs at least {min_points} usable runs; {len(kept)} of {len(frame)} are usable"
                            + summarise(excluded))
    return kept, excluded


def summarise(excluded: list[dict]) -> str:
    """' (left out: 3 status failed, 1 loss is missing or not a number)', or '' when none were."""
    if not excluded:
        return ""
    counts = Counter(e["reason"] for e in excluded)
    return " (left out: " + ", ".join(f"{n} {why}" for why, n in counts.most_common()) + ")"


# --------------------------------------------------------------------------- identification


def jacobian(law: Law, theta: np.ndarray, logx: Mapping[str, np.ndarray], chunk: int = 256) -> np.ndarray:
    """Exact d log-prediction / d theta [n, p] at one parameter vector theta [p]."""
    n = len(next(iter(logx.values())))
    rows = []
    for start in range(0, n, chunk):  # each block of runs against itself: O(n chunk), not O(n^2)
        k = min(chunk, n - start)
        _, vjp = law.forward(np.tile(theta, (k, 1)), {v: x[start:start + k] for v, x in logx.items()})
        rows.append(vjp(np.eye(k)))
    return np.concatenate(rows)


def centred_correlation(law: Law, theta: np.ndarray, logx: Mapping[str, np.ndarray],
                        weights: np.ndarray | None = None) -> np.ndarray:
    """Gauss-Newton correlation of the fit-space parameters, scales taken at the data's centre.

    Centring (log x minus its mean) removes the trivial intercept-slope coupling of a power law,
    so what is left is a real trade-off the data cannot resolve (E against an exponent, say).
    """
    shifts = {k: float(np.mean(v)) for k, v in logx.items()}
    centred = {k: v - shifts[k] for k, v in logx.items()}
    J = jacobian(law, law.centre(theta, shifts), centred)
    w = np.ones(len(J)) if weights is None else np.asarray(weights, dtype=float)
    info = J.T @ (J * w[:, None])
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return np.full(info.shape, np.nan)
    return _to_correlation(cov)


def sample_correlation(law: Law, samples: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
    """Correlation of bootstrap draws [B, p] of the fit-space parameters, scales at the data's centre."""
    shifts = {k: float(np.mean(v)) for k, v in logx.items()}
    centred = np.array([law.centre(s, shifts) for s in samples])
    return _to_correlation(np.cov(centred, rowvar=False))


def _to_correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    return np.clip(corr, -1.0, 1.0)


def identification_warnings(corr: np.ndarray, names: Sequence[str], threshold: float = 0.99) -> list[str]:
    """One warning naming the parameter pairs whose |correlation| reaches threshold (or that all are undefined)."""
    if not np.isfinite(corr).all():
        return [f"the parameters {', '.join(names)} are not all identified: the fit's information matrix "
                "is singular (too little spread in N, D or C for this law)"]
    pairs = [f"{names[i]} ~ {names[j]} (r = {corr[i, j]:+.3f})" for i in range(len(names))
             for j in range(i + 1, len(names)) if abs(corr[i, j]) >= threshold]
    if not pairs:
        return []
    return [f"weakly identified: {', '.join(pairs)}; the data constrain a combination of these parameters, "
            "not each one (more spread in N, D or C would separate them)"]


def strongest_correlation(corr: np.ndarray, names: Sequence[str]) -> dict | None:
    """{'pair': [p, q], 'r': r} for the largest |off-diagonal| correlation."""
    if len(names) < 2 or not np.isfinite(corr).all():
        return None
    masked = np.abs(corr) - np.eye(len(names)) * 2
    i, j = np.unravel_index(int(np.argmax(masked)), corr.shape)
    return {"pair": [names[i], names[j]], "r": float(corr[i, j])}
