"""The run folder format, the one writer of record.json, and the run table (`load_runs`).

A run folder `runs/<sweep>/<run_id>/` holds:
  config.yaml   the resolved run config (written once, when the run is planned)
  record.json   status and the run's numbers (N, D, C, loss, wall time, ...)
  metrics.csv   one row per logged step
  job.json      what a scheduler said about the run's job (launchers only)
  owner.lock    held (flock) by the one live process that trains the run; says who
  checkpoints/  last.ckpt (and whatever the launcher keeps)
Every write goes to a temporary file first and is renamed into place, so a killed process never
leaves a half-written file behind. record.json is written only here: every change is a
read-modify-write under an exclusive lock, so concurrent writers (a run, its launcher, a probe)
never lose each other's fields.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import fcntl
import io
import json
import math
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

if TYPE_CHECKING:
    import pandas as pd


class Status(str, enum.Enum):
    """A run's status. A str enum: `Status.COMPLETED == "completed"` and JSON writes the value."""

    PLANNED = "planned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"  # stopped early by a learning-rate search (ASHA): final, not a failure

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(s.value for s in Status)
DAMAGED = "damaged"  # in the run table only: a folder whose record.json cannot be read
TABLE_STATUSES = (*STATUSES, DAMAGED)
ENDED = frozenset({Status.COMPLETED, Status.FAILED, Status.DIVERGED})  # an attempt ran to a verdict
DONE = frozenset({Status.COMPLETED, Status.STOPPED})  # never trained again
UNFINISHED = frozenset({None, Status.PLANNED, Status.RUNNING, Status.INTERRUPTED})  # may still end

METRIC_COLUMNS = ["step", "D_seen", "C_seen", "train_loss", "val_loss", "val_accuracy", "lr",
                  "throughput", "wall_time"]
COUNT_COLUMNS = ("step", "D_seen")
TABLE_COLUMNS = ["run_id", "sweep", "status", "family", "width", "depth", "seed", "N",
                 "N_nonembed", "D", "D_unique", "C", "loss"]


class DamagedRecord(ValueError):
    """A record.json that is not a JSON object (truncated, empty, garbage)."""


class RunBusy(RuntimeError):
    """Another live process owns the run."""


def atomic_write_text(path: Path | str, text: str, durable: bool = True) -> None:
    """Write text to `path` via a temporary file in the same folder and an atomic rename.

    `durable` syncs the file to disk before the rename (10 ms or more on a busy disk); without
    it a crashed process still never leaves a partial file, only an OS crash may lose the write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; run folders are meant to be shared
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null so record.json stays strict JSON; enums become their value."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive lock between processes (flock) and between threads of this process."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(lock_path), threading.RLock())
    with thread_lock:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def planned_record(spec: Any) -> dict[str, Any]:
    """The record of a run that is planned and not yet started: everything the plan knows.

    The one place a record's base fields are built from a RunSpec; the worker rebuilds the
    RunSpec from these fields and config.yaml without planning again.
    """
    cfg = spec.cfg
    return {**spec.summary(), "status": Status.PLANNED, "unit": spec.unit,
            "flops_per_unit": spec.flops_per_unit, "units_per_step": spec.units_per_step,
            "budget_flops": cfg.budget.flops, "lr": cfg.optim.lr, "batch_size": cfg.optim.batch_size,
            "seq_len": getattr(cfg.data, "seq_len", None), "data": cfg.data.name,
            "parametrization": getattr(cfg.model, "parametrization", "sp")}


def owner_facts() -> dict[str, Any]:
    """Who this process is, for the owner lock and the record."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


class RunFolder:
    """One run's folder: its record (the only writer of record.json), config, metrics and owner."""

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

    @property
    def owner_path(self) -> Path:
        """owner.lock: flock-held by the process that trains the run; holds its host and pid."""
        return self.path / "owner.lock"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    def kept_checkpoint(self, step: int) -> Path:
        """checkpoints/step-K.ckpt: a trunk's checkpoint at a branch point (trainer.keep_steps)."""
        return self.checkpoint_dir / f"step-{step}.ckpt"

    def exists(self) -> bool:
        """True when the folder has a record."""
        return self.record_path.exists()

    # ------------------------------------------------------------------ job.json

    def read_job(self) -> dict[str, Any]:
        """The launcher's job info (job_id, job_state, ...), or {}."""
        return json.loads(self.job_path.read_text()) if self.job_path.exists() else {}

    def write_job(self, **fields: Any) -> None:
        """Merge fields into job.json atomically (the training process never writes this file)."""
        with _exclusive(self.path / ".job.lock"):
            atomic_write_text(self.job_path, json.dumps(_json_safe({**self.read_job(), **fields}), indent=2) + "\n")

    def read_config(self) -> dict[str, Any]:
        """config.yaml as a plain dict (the resolved run config); FileNotFoundError when there is none,
        ValueError when it is not a YAML mapping."""
        import yaml

        text = self.config_path.read_text()
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{self.config_path} is not valid YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path} holds a {type(config).__name__}, not a config")
        return config

    # ------------------------------------------------------------------ record.json

    def read_record(self) -> dict[str, Any]:
        """The record, or {} when there is none yet; DamagedRecord when it is not a JSON object."""
        try:
            text = self.record_path.read_text()
        except FileNotFoundError:
            return {}
        try:
            record = json.loads(text)
        except ValueError:
            problem = "is empty" if not text.strip() else "is not valid JSON (truncated or overwritten)"
            raise DamagedRecord(f"{self.record_path} {problem}") from None
        if not isinstance(record, dict):
            raise DamagedRecord(f"{self.record_path} holds a {type(record).__name__}, not a record")
        return record

    @property
    def status(self) -> Optional[Status]:
        """The recorded status, or None for a folder without a record."""
        value = self.read_record().get("status")
        return Status(value) if value in STATUSES else None

    def change(self, edit: Callable[[dict[str, Any]], Optional[dict[str, Any]]], durable: bool = True) -> dict[str, Any]:
        """Apply `edit` to the record under the folder's lock and write it back atomically.

        `edit` gets the current record and returns the new one (or None: leave it as it is);
        `durable=False` for a running attempt's facts, which an OS crash may lose (atomic_write_text).
        """
        with _exclusive(self.path / ".record.lock"):
            record = self.read_record()
            updated = edit(dict(record))
            if updated is None:
                return record
            atomic_write_text(self.record_path, json.dumps(_json_safe(updated), indent=2, sort_keys=True) + "\n", durable)
            return json.loads(json.dumps(_json_safe(updated)))

    def write_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole record (importing or repairing a run; runs use the transitions)."""
        return self.change(lambda _: dict(record))

    def update_record(self, **fields: Any) -> dict[str, Any]:
        """Merge facts into the record (status unchanged unless given)."""
        return self.change(lambda record: {**record, **fields})

    def plan(self, spec: Any, config_yaml: str) -> dict[str, Any]:
        """Write a planned run's config.yaml and, for a new (or damaged) record, its planned record.

        The config is rewritten for every run that is not done: fields outside the run's identity
        (threads, logger, fault injection) may change between attempts.
        """
        try:
            record = self.read_record()
        except DamagedRecord:
            self.record_path.replace(self.record_path.with_name("record.json.damaged"))
            record = {}
        if record.get("status") in DONE:
            return record
        atomic_write_text(self.config_path, config_yaml)
        return self.change(lambda current: None if current else planned_record(spec))

    def start(self, spec: Any, start_step: int, resumed: bool = True, **facts: Any) -> dict[str, Any]:
        """planned | interrupted | failed ... -> running: a new attempt from `start_step` (its own
        checkpoint's when `resumed`; a branch's first attempt starts at its trunk's)."""

        def edit(record: dict[str, Any]) -> dict[str, Any]:
            new = {**record, **planned_record(spec), **facts, "status": Status.RUNNING, "step": start_step,
                   "error": None, "started": record.get("started") or time.time(), "updated": time.time(),
                   "attempts": int(record.get("attempts") or 0) + 1, "owner": owner_facts()}
            if start_step and resumed:
                new["resumed_from_step"] = start_step
                new["resumes"] = [*record.get("resumes", []), start_step]
            return new

        return self.change(edit, durable=False)  # an attempt lost to an OS crash resumes all the same

    def progress(self, **fields: Any) -> dict[str, Any]:
        """Facts of a running attempt (step, wall time, throughput) and a sign of life."""
        return self.change(lambda record: {**record, **fields, "updated": time.time()}, durable=False)

    def finish(self, status: Status, error: Optional[str] = None, **fields: Any) -> dict[str, Any]:
        """running -> completed | failed | diverged | interrupted | stopped, with the final facts."""
        return self.change(lambda record: {**record, **fields, "status": Status(status), "error": error,
                                           "finished": time.time(), "updated": time.time()})

    def end_unfinished(self, status: Status, error: str | Callable[[dict[str, Any]], str]) -> dict[str, Any]:
        """Give a run that did not end by itself its verdict (a dead worker, a killed job, a
        failure before training, a search that stopped it); a run that already ended keeps its
        own record. `error` may be a function of the record."""

        def edit(record: dict[str, Any]) -> Optional[dict[str, Any]]:
            if record.get("status") not in UNFINISHED:
                return None
            text = error(record) if callable(error) else error
            return {**record, "status": Status(status), "error": text, "finished": time.time()}

        return self.change(edit)

    # ------------------------------------------------------------------ ownership

    @contextlib.contextmanager
    def own(self, wait: bool = True, on_wait: Optional[Callable[[dict[str, Any]], None]] = None) -> Iterator[None]:
        """Hold the run for this process: an flock on owner.lock that dies with its holder.

        Another live owner makes this wait (telling `on_wait` who it is) or raise RunBusy.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.owner_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_flock(fd):
                holder = self.owner() or {}
                if not wait:
                    raise RunBusy(f"run {self.path.name} is being trained by {describe_owner(holder)}; "
                                  "wait for it to end or stop that process")
                if on_wait:
                    on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner_facts()).encode(), 0)
            yield
        finally:
            os.close(fd)

    def owner(self) -> Optional[dict[str, Any]]:
        """The live owner's facts (host, pid, since), or None when no process holds the run."""
        if not self.owner_path.exists():
            return None
        fd = os.open(self.owner_path, os.O_RDONLY)
        try:
            if _try_flock(fd, shared=True):
                return None
            text = os.pread(fd, 4096, 0).decode(errors="replace")
        finally:
            os.close(fd)
        try:
            return json.loads(text)
        except ValueError:
            return {}

    def live_status(self) -> Optional[Status]:
        """The status, with a `running` run whose owner is gone shown as `interrupted`."""
        status = self.status
        if status == Status.RUNNING and self.owner() is None:
            return Status.INTERRUPTED
        return status

    # ------------------------------------------------------------------ config, metrics

    def write_config(self, yaml_text: str) -> None:
        """Write the resolved config."""
        atomic_write_text(self.config_path, yaml_text)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metric rows as dicts of floats (empty cells become NaN)."""
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open() as handle:
            return [{k: _to_float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def write_metrics(self, rows: Iterable[dict[str, Any]], durable: bool = True) -> None:
        """Replace metrics.csv atomically with these rows (`durable`: see atomic_write_text)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _format(row.get(k), k in COUNT_COLUMNS) for k in METRIC_COLUMNS})
        atomic_write_text(self.metrics_path, buffer.getvalue(), durable)


def _try_flock(fd: int, shared: bool = False) -> bool:
    """Take an flock without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def describe_owner(holder: dict[str, Any]) -> str:
    """`pid 4242 on node7 since 02:41:07` (or 'another process')."""
    if not holder:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {since}"


def _to_float(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def _format(value: Any, count: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if count:  # read back as floats on resume; a count stays written as an integer
        return str(int(value))
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


def folder_row(folder: RunFolder) -> dict[str, Any]:
    """A run folder's row as it is now: a damaged record is named, a dead owner's run is interrupted."""
    try:
        record = folder.read_record()
    except DamagedRecord as exc:
        return {"run_id": folder.path.name, "status": DAMAGED, "error": f"{exc}; `scaling sweep` trains it again"}
    row = {**record_to_row(record), **_job_columns(folder)}
    if row.get("status") == Status.RUNNING and folder.owner() is None:
        row.update(status=Status.INTERRUPTED.value, error=dead_owner_text(record))
    return row


def dead_owner_text(record: dict[str, Any]) -> str:
    """Why a `running` run is not running: its owner is gone, and its last sign of life."""
    seen = record.get("updated") or record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seen)) if seen else "?"
    return (f"not running: the process that trained it ({describe_owner(record.get('owner') or {})}) is gone; "
            f"last step {record.get('step')} at {when}; run the same command again to resume it")


TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def load_runs(source: Path | str, curves: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The run table (one row per run) from run folders, a CSV/TSV/Parquet file or W&B.

    `source` is a run folder, a sweep folder or runs/; a table file; or wandb:ENTITY/PROJECT[/GROUP]
    (one group is one sweep). With `curves=True`, also the per-step curves as a long frame (run_id
    plus metrics.csv columns; empty for a file or W&B).
    """
    if str(source).startswith("wandb:"):
        from scaling.tracking import pull_runs  # W&B's client is imported for a W&B source only

        table, folders = pull_runs(str(source)), []
    else:
        table, folders = _read_path(Path(source), str(source))
    return (table, _read_curves(folders)) if curves else table


def _read_path(path: Path, source: str) -> tuple[pd.DataFrame, list[RunFolder]]:
    """(the run table, its run folders) from a folder or a table file."""
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"{source} does not exist; give a sweep folder (runs/NAME) or a CSV/Parquet file")
    if not path.is_dir():
        return read_table_file(path), []
    folders = find_run_folders(path)
    rows = [folder_row(f) for f in folders]
    return pd.DataFrame(rows, columns=None if rows else TABLE_COLUMNS), folders


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV, TSV or Parquet run table; ValueError with one line for any other file or an unreadable one."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .parquet or a sweep folder")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as error:  # pandas and pyarrow raise many kinds (ParserError, ArrowInvalid, ...)
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot read {path}: {first}") from None


def _read_curves(folders: list[RunFolder]) -> pd.DataFrame:
    """Every folder's metrics.csv as one long frame with a run_id column (floats, as read_metrics
    gives them; the files sharing a header are parsed together, in one pass)."""
    import numpy as np
    import pandas as pd

    by_header: dict[bytes, list[tuple[int, str, bytes, int]]] = {}
    for index, folder in enumerate(folders):
        try:
            text = folder.metrics_path.read_bytes()  # bytes: a StringIO of every file would take 4 bytes a character
        except FileNotFoundError:
            continue
        header, _, body = text.partition(b"\n")
        rows = sum(1 for line in body.split(b"\n") if line.strip(b"\r"))
        if rows:
            by_header.setdefault(header.strip(), []).append((index, folder.path.name, body.rstrip(b"\n") + b"\n", rows))
    frames = []
    for header, files in by_header.items():
        names = next(csv.reader([header.decode()]))
        # pandas' default float parser reads Python's repr of a float back exactly (a test holds it)
        frame = pd.read_csv(io.BytesIO(b"".join(body for _, _, body, _ in files)), header=None, names=names,
                            dtype=float, skip_blank_lines=True)
        counts = [rows for *_, rows in files]
        if len(frame) != sum(counts):  # a file csv reads differently (quoted newlines): one by one
            frame = pd.concat([pd.DataFrame(folders[i].read_metrics()) for i, *_ in files], ignore_index=True)
        frame["run_id"] = np.repeat([name for _, name, _, _ in files], counts)
        frame["_order"] = np.repeat([i for i, *_ in files], counts)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run_id", *METRIC_COLUMNS])
    if len(frames) == 1:
        return frames[0].drop(columns="_order")
    joined = pd.concat(frames, ignore_index=True)  # folder order, as one frame per run would give
    return joined.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
