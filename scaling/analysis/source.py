"""The analysis edge: a run table read by `scaling.store.load_runs`, then renamed, completed and filtered.

Reading is the only I/O the analysis does, and it happens here, before any fit: `read_source`
gives plain DataFrames, and everything after it is a pure function of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scaling.analysis.hygiene import AnalysisError
from scaling.analysis.table import parse_columns, prepare
from scaling.store import load_runs


@dataclass
class Source:
    """A run table (one row per run), per-step curves when there are any, and notes on derived columns."""

    runs: pd.DataFrame
    curves: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def read_source(source: str | Path, columns: str | dict[str, str] | None = None, where: str | None = None,
                curves: bool = False) -> Source:
    """Read SOURCE (a sweep folder, a CSV/TSV/Parquet file or wandb:ENTITY/PROJECT[/GROUP]) into a Source.

    `columns` maps run-table names to the file's ('N=Model Size,...'); `where` filters rows
    (pandas query). A file whose rows are per-step curves (it has C_seen) is also the curves.
    """
    try:
        runs, curve = load_runs(source, curves=True) if curves else (load_runs(source), None)
    except (FileNotFoundError, ValueError) as error:
        raise AnalysisError(str(error)) from None
    mapping = parse_columns(columns) if isinstance(columns, str) or columns is None else dict(columns)
    runs, notes = prepare(runs, mapping, where)
    curve = curve if curve is not None and len(curve) else None
    if curve is None and "C_seen" in runs.columns:
        curve = runs
    return Source(runs=runs, curves=curve, notes=notes)
