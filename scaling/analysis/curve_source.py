"""Read loss curves for a curve law: a folder of CSV files, or a sweep folder (the I/O edge of `curves`).

    read_curves("tests/data/loss_curves/25")  # {"cosine_24000": frame(step, lr, loss), ...}
    read_curves("runs/schedules")              # {run_id: frame(step, lr, loss)}: training loss
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.analysis.hygiene import AnalysisError

LOSS_COLUMNS = ("loss", "train_loss", "val_loss")  # the loss a curve is read from, first present with values


def read_curves(source: Path | str) -> dict[str, pd.DataFrame]:
    """Curves by name from a folder of CSV files (step, lr, loss; name = file stem) or a sweep folder.

    In a sweep folder each run's metrics.csv is a curve named by its run_id, its loss the training
    loss. Raises AnalysisError when SOURCE is not a folder or holds no curves.
    """
    path = Path(source)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file"
        raise AnalysisError(f"{source} {what}; --law curve reads a folder of CSV files (step, lr, loss) "
                            f"or a sweep folder (runs/NAME)")
    from scaling.store import find_run_folders

    files = sorted(path.glob("*.csv"))
    curves = _read_files(files) if files and not find_run_folders(path) else _read_sweep(path)
    if not curves:
        inner = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("*.csv")))
        hint = f" ({source} holds folders of CSV files: give one of them, {', '.join(inner)})" if inner else ""
        raise AnalysisError(f"no loss curves in {source}: give a folder of CSV files with columns step, lr, loss "
                            f"or a sweep folder whose runs logged metrics.csv{hint}")
    return curves


def _read_files(files: list[Path]) -> dict[str, pd.DataFrame]:
    curves = {}
    for file in files:
        try:
            curves[file.stem] = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise AnalysisError(f"{file} is not a readable CSV file ({error})") from None
    return curves


def _read_sweep(path: Path) -> dict[str, pd.DataFrame]:
    from scaling.store import load_runs

    _, long = load_runs(path, curves=True)
    if long.empty:
        return {}
    return {str(run_id): _with_loss(frame.drop(columns="run_id"))
            for run_id, frame in long.groupby("run_id", sort=True)}


def _with_loss(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a `loss` column: its own, else the training loss, else the validation loss."""
    for column in LOSS_COLUMNS:
        if column in frame.columns and pd.to_numeric(frame[column], errors="coerce").notna().any():
            return frame.assign(loss=frame[column]) if column != "loss" else frame
    return frame
