"""Read loss curves for a curve law: a folder of CSV files, a folder of size folders, or a sweep folder
(the I/O edge of `curves`).

    read_curves("tests/data/loss_curves/25")   # {"cosine_24000": frame(step, lr, loss), ...}
    read_curve_source("tests/data/loss_curves")  # curves "25/cosine_24000", ..., sizes {"25/cosine_24000": 25, ...}
    read_curve_source("runs/schedules")          # curves by run_id, sizes from the run table's N
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.analysis.hygiene import AnalysisError

LOSS_COLUMNS = ("loss", "train_loss", "val_loss")  # the loss a curve is read from, first present with values
SIZE_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
AUTO = "auto"  # --fit-on auto: per size the trunk and its shortest cooldown (see auto_fit_on)


@dataclass
class CurveSource:
    """Curves by name, each curve's model size N where known, and a sweep's run table (None for CSV folders)."""

    curves: dict[str, pd.DataFrame]
    sizes: dict[str, float]
    runs: pd.DataFrame | None = None

    def distinct_sizes(self) -> list[float]:
        """The distinct N of the curves, ascending."""
        return sorted(set(self.sizes.values()))


def read_curves(source: Path | str) -> dict[str, pd.DataFrame]:
    """Curves by name from a folder of CSV files (step, lr, loss; name = file stem) or a sweep folder."""
    return read_curve_source(source).curves


def read_curve_source(source: Path | str) -> CurveSource:
    """The curves of SOURCE: a folder of CSV files (step, lr, loss; name = file stem), a folder of size folders
    (`25M/`, `100M/` or `25/`, `100/`, each a folder of CSV files; name = size/stem, N = the folder's name, a
    number with an optional k, M, B or T), or a sweep folder (each run's metrics.csv is a curve named by its
    run_id, its loss as `_with_loss` chooses, its N the run table's). Raises AnalysisError when there are no curves.
    """
    path = Path(source)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file"
        raise AnalysisError(f"{source} {what}; --law curve reads a folder of CSV files (step, lr, loss) "
                            f"or a sweep folder (runs/NAME)")
    from scaling.store import find_run_folders

    files = sorted(path.glob("*.csv"))
    if find_run_folders(path):
        found = _read_sweep(path)
    else:
        found = CurveSource(_read_files(files), {}) if files else _read_size_folders(path) or CurveSource({}, {})
    if not found.curves:
        raise AnalysisError(f"no loss curves in {source}: give a folder of CSV files with columns step, lr, loss "
                            f"or a sweep folder whose runs logged metrics.csv")
    return found


def _read_files(files: list[Path], prefix: str = "") -> dict[str, pd.DataFrame]:
    curves = {}
    for file in files:
        try:
            curves[prefix + file.stem] = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise AnalysisError(f"{file} is not a readable CSV file ({error})") from None
    return curves


def _read_size_folders(path: Path) -> CurveSource | None:
    """A folder of size folders of CSV files, or None when it holds none; AnalysisError for a folder of CSV
    files whose name is not a size."""
    inner = sorted((p for p in path.iterdir() if p.is_dir() and any(p.glob("*.csv"))), key=lambda p: p.name)
    if not inner:
        return None
    bad = [p.name for p in inner if parse_size(p.name) is None]
    if bad:
        raise AnalysisError(f"{path} holds folders of CSV files named {', '.join(bad)}, not model sizes: give one of "
                            f"them, or name each size's folder by its N (25M, 100M, 1.3B) to fit across sizes")
    curves, sizes = {}, {}
    for folder in sorted(inner, key=lambda p: parse_size(p.name)):
        found = _read_files(sorted(folder.glob("*.csv")), prefix=f"{folder.name}/")
        curves.update(found)
        sizes.update(dict.fromkeys(found, parse_size(folder.name)))
    return CurveSource(curves, sizes)


def parse_size(name: str) -> float | None:
    """'25M' -> 2.5e7, '1.3B' -> 1.3e9, '25' -> 25.0 (a bare number is N in its own units); None otherwise."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?(?:e\d+)?)([kKmMbBtT]?)", name)
    return float(match.group(1)) * SIZE_SUFFIXES[match.group(2).lower()] if match else None


def _read_sweep(path: Path) -> CurveSource:
    from scaling.store import load_runs

    runs, long = load_runs(path, curves=True)
    return sweep_curves(runs, long)


def sweep_curves(runs: pd.DataFrame, long: pd.DataFrame | None) -> CurveSource:
    """A sweep's curves (run_id -> step, lr, loss, ...) from load_runs' run table and long curve frame, with each
    curve's N from the run table where it has one."""
    if long is None or long.empty:
        return CurveSource({}, {}, runs)
    curves = {str(run_id): _with_loss(frame.drop(columns="run_id"))
              for run_id, frame in long.groupby("run_id", sort=True)}
    sizes = {}
    if "N" in runs.columns:
        N = pd.to_numeric(runs["N"], errors="coerce")
        sizes = {str(r): float(n) for r, n in zip(runs["run_id"], N) if str(r) in curves and np.isfinite(n) and n > 0}
    return CurveSource(curves, sizes, runs)


def _with_loss(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a `loss` column: its own; else the validation loss where it was logged at least half as
    often as the training loss (on a fixed set it is smooth, where one batch's training loss is not); else the
    training loss, else the validation loss."""
    counts = {c: int(pd.to_numeric(frame[c], errors="coerce").notna().sum()) if c in frame.columns else 0
              for c in LOSS_COLUMNS}
    if counts["loss"]:
        return frame
    dense_validation = counts["val_loss"] and 2 * counts["val_loss"] >= counts["train_loss"]
    for column in ("val_loss", "train_loss") if dense_validation else ("train_loss", "val_loss"):
        if counts[column]:
            return frame.assign(loss=frame[column])
    return frame


def fit_on_names(names: Sequence[str] | None, source: CurveSource) -> list[str] | None:
    """--fit-on's names as curve names: AUTO as `auto_fit_on`; a bare stem also names that stem in every size
    folder (cosine_24000 -> 25/cosine_24000, 100/cosine_24000); None (fit all) stays None."""
    if names is None:
        return None
    if list(names) == [AUTO]:
        return auto_fit_on(source)
    out = []
    for name in names:
        in_sizes = [curve for curve in source.curves if curve.split("/", 1)[-1] == name and "/" in curve]
        out += [name] if name in source.curves or not in_sizes else in_sizes
    return out


def auto_fit_on(source: CurveSource) -> list[str]:
    """The curves to fit that leave the rest predicted, per model size: in a branches sweep the trunk and its
    shortest cooldown; otherwise every curve but the one that ran longest (by D, else by last step)."""
    runs = source.runs
    if runs is not None and "parent" in runs.columns and runs["parent"].notna().any():
        runs = runs[runs["run_id"].astype(str).isin(source.curves)]
        trunks = runs["trunk"].fillna(False).astype(bool) if "trunk" in runs.columns else runs["parent"].isna()
        chosen = list(runs.loc[trunks, "run_id"].astype(str))
        branches = runs[runs["parent"].notna()]
        chosen += [str(rows.sort_values("D")["run_id"].iloc[0]) for _, rows in branches.groupby("parent")]
        return chosen
    chosen = []
    for names in _by_size(source).values():
        longest = max(names, key=lambda name: _length(source, name))
        chosen += [name for name in names if name != longest or len(names) == 1]
    return chosen


def _by_size(source: CurveSource) -> dict[float | None, list[str]]:
    groups: dict[float | None, list[str]] = {}
    for name in source.curves:
        groups.setdefault(source.sizes.get(name), []).append(name)
    return groups


def _length(source: CurveSource, name: str) -> float:
    """How long a curve ran: its run's D in a sweep, else its last logged step."""
    runs = source.runs
    if runs is not None and "D" in runs.columns:
        D = pd.to_numeric(runs.loc[runs["run_id"].astype(str) == name, "D"], errors="coerce")
        if len(D) and np.isfinite(D.iloc[0]):
            return float(D.iloc[0])
    return float(pd.to_numeric(source.curves[name]["step"], errors="coerce").max())
