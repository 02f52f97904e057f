"""The run folder format, atomic writes, and the run table (`load_runs`).

A run folder `runs/<sweep>/<run_id>/` holds:
  config.yaml   the resolved run config
  record.json   status and the run's numbers (N, D, C, loss, wall time, ...)
  metrics.csv   one row per logged step
  checkpoints/  last.ckpt (and whatever the launcher keeps)
Every write goes to a temporary file first and is renamed into place, so a killed process never
leaves a half-written file behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

STATUSES = ("planned", "running", "completed", "failed", "diverged", "interrupted", "stopped")
METRIC_COLUMNS = ["step", "D_seen", "C_seen", "train_loss", "val_loss", "val_accuracy", "lr",
                  "throughput", "wall_time"]
TABLE_COLUMNS = ["run_id", "sweep", "status", "family", "width", "depth", "seed", "N",
                 "N_nonembed", "D", "D_unique", "C", "loss"]


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write text to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; run folders are meant to be shared
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null so record.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class RunFolder:
    """One run's folder: read and write its record, config and metrics."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def job_path(self) -> Path:
        """job.json: what a scheduler said about the run's job (written by the launcher only)."""
        return self.path / "job.json"

    def read_job(self) -> dict[str, Any]:
        """The launcher's job info (job_id, job_state, ...), or {}."""
        return json.loads(self.job_path.read_text()) if self.job_path.exists() else {}

    def write_job(self, **fields: Any) -> None:
        """Merge fields into job.json atomically (the training process never writes this file)."""
        atomic_write_text(self.job_path, json.dumps(_json_safe({**self.read_job(), **fields}), indent=2) + "\n")

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    def exists(self) -> bool:
        """True when the folder has a record."""
        return self.record_path.exists()

    def read_record(self) -> dict[str, Any]:
        """The record, or {} when there is none yet."""
        if not self.record_path.exists():
            return {}
        return json.loads(self.record_path.read_text())

    def write_record(self, record: dict[str, Any]) -> None:
        """Replace the record atomically."""
        atomic_write_text(self.record_path, json.dumps(_json_safe(record), indent=2, sort_keys=True) + "\n")

    def update_record(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into the record and write it back atomically."""
        record = self.read_record()
        record.update(fields)
        self.write_record(record)
        return record

    @property
    def status(self) -> str | None:
        """The recorded status, or None for a folder without a record."""
        return self.read_record().get("status")

    def write_config(self, yaml_text: str) -> None:
        """Write the resolved config."""
        atomic_write_text(self.config_path, yaml_text)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metric rows as dicts of floats (empty cells become NaN)."""
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open() as handle:
            return [{k: _to_float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def write_metrics(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace metrics.csv atomically with these rows."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _format(row.get(k)) for k in METRIC_COLUMNS})
        atomic_write_text(self.metrics_path, buffer.getvalue())


def _to_float(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------- run table


def find_run_folders(root: Path | str) -> list[RunFolder]:
    """Every run folder under `root` (a run folder itself, a sweep folder or a runs/ root)."""
    root = Path(root)
    if (root / "record.json").exists():
        return [RunFolder(root)]
    return [RunFolder(p.parent) for p in sorted(root.rglob("record.json"))
            if "checkpoints" not in p.parts]


def record_to_row(record: dict[str, Any]) -> dict[str, Any]:
    """One run-table row from a record: the table columns first, then everything else flat."""
    row = {col: record.get(col) for col in TABLE_COLUMNS}
    for key, value in record.items():
        if key not in row and not isinstance(value, (dict, list)):
            row[key] = value
    for key, value in (record.get("metrics") or {}).items():
        row[key] = value
    return row


def _job_columns(folder: RunFolder) -> dict[str, Any]:
    job = folder.read_job()
    return {k: job[k] for k in ("job_id", "job_state") if k in job}


def load_runs(source: Path | str, curves: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The run table (one row per run) from run folders or a CSV/Parquet file.

    With `curves=True`, also the per-step curves as a long frame (run_id plus metrics.csv columns).
    """
    source = Path(source)
    if source.is_file() and source.suffix in (".csv", ".parquet", ".pq"):
        table = pd.read_parquet(source) if source.suffix != ".csv" else pd.read_csv(source)
        return (table, pd.DataFrame(columns=["run_id", *METRIC_COLUMNS])) if curves else table
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; give a sweep folder (runs/NAME) or a CSV/Parquet file")
    folders = find_run_folders(source)
    rows = [{**record_to_row(f.read_record()), **_job_columns(f)} for f in folders]
    table = pd.DataFrame(rows, columns=None if rows else TABLE_COLUMNS)
    if not curves:
        return table
    frames = [pd.DataFrame(f.read_metrics()).assign(run_id=f.path.name) for f in folders]
    frames = [f for f in frames if not f.empty]
    curve = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id", *METRIC_COLUMNS])
    return table, curve
