"""Analysis-specific transforms of the run table: renamed columns, derived sizes, a row filter, the frontier.

The run table itself comes from `scaling.store.load_runs` (see `scaling.analysis.source`); everything
here is a pure function of a DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.analysis.hygiene import AnalysisError, require_columns, run_labels, usable


def parse_columns(spec: str | None) -> dict[str, str]:
    """'N=Model Size,C=Training FLOP,loss=loss' -> {'N': 'Model Size', 'C': 'Training FLOP', 'loss': 'loss'}."""
    if not spec:
        return {}
    mapping = {}
    for item in spec.split(","):
        if "=" not in item:
            raise AnalysisError(f"--columns entry {item.strip()!r} is not NAME=SOURCE_COLUMN "
                                "(e.g. 'N=Model Size,C=Training FLOP,loss=loss')")
        target, source = (part.strip() for part in item.split("=", 1))
        if not target or not source:
            raise AnalysisError(f"--columns entry {item.strip()!r} has an empty name")
        mapping[target] = source
    return mapping


def rename_columns(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """Rename source columns to the run table's names ({table name: source name})."""
    missing = [src for src in mapping.values() if src not in frame.columns]
    if missing:
        raise AnalysisError(f"--columns names {', '.join(map(repr, missing))}, not in the table; its columns are: "
                            + ", ".join(map(str, frame.columns)))
    clashes = [t for t, s in mapping.items() if t in frame.columns and t != s and t not in mapping.values()]
    frame = frame.drop(columns=clashes)
    return frame.rename(columns={s: t for t, s in mapping.items()})


def derive_sizes(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill D = C / (6 N) when only N and C are given, or C = 6 N D when only N and D are (with a note)."""
    cols, notes = frame.columns, []
    if "N" in cols and "C" in cols and "D" not in cols:
        frame = frame.assign(D=pd.to_numeric(frame["C"], errors="coerce") / (6.0 * pd.to_numeric(frame["N"], errors="coerce")))
        notes.append("D derived as C / (6 N)")
    elif "N" in cols and "D" in cols and "C" not in cols:
        frame = frame.assign(C=6.0 * pd.to_numeric(frame["N"], errors="coerce") * pd.to_numeric(frame["D"], errors="coerce"))
        notes.append("C derived as 6 N D")
    return frame, notes


def apply_where(frame: pd.DataFrame, where: str | None) -> pd.DataFrame:
    """Rows matching a pandas query expression (e.g. "family == 'gpt' and N > 1e6")."""
    if not where:
        return frame
    try:
        return frame.query(where)
    except Exception as error:  # pandas raises many kinds (SyntaxError, UndefinedVariableError, ...)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AnalysisError(f"--where {where!r} failed: {message}") from None


def prepare(frame: pd.DataFrame, columns: dict[str, str] | None = None,
            where: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Rename, derive D (or C), then filter: the table a fit reads, with notes on what was derived."""
    frame = rename_columns(frame, columns or {})
    frame, notes = derive_sizes(frame)
    return apply_where(frame, where), notes


def compute_frontier(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The runs on the compute frontier (no run with less or equal C has a lower loss), and the others
    as exclusions. Rows a fit cannot use are kept for hygiene to judge."""
    require_columns(frame, ("C", "loss"), "frontier=True")
    C = pd.to_numeric(frame["C"], errors="coerce").to_numpy(dtype=float)
    loss = pd.to_numeric(frame["loss"], errors="coerce").to_numpy(dtype=float)
    valid = usable(frame, ("C", "loss")).to_numpy()
    order = np.flatnonzero(valid)[np.lexsort((loss[valid], C[valid]))]
    best_so_far = np.minimum.accumulate(loss[order])
    beaten = np.zeros(len(frame), dtype=bool)
    beaten[order[1:]] = loss[order[1:]] >= best_so_far[:-1]
    labels = run_labels(frame)
    dropped = [{"run": labels[i], "reason": "not on the compute frontier"} for i in np.flatnonzero(beaten)]
    return frame[~beaten], dropped


def log_columns(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{name: log of the column} for the law's variables."""
    return {name: np.log(frame[name].to_numpy(dtype=float)) for name in names}
