"""What every launcher shares: preparing run folders, the worker command, progress and summary."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.config import to_yaml
from scaling.format import format_seconds
from scaling.plan import Plan, RunSpec
from scaling.store import DamagedRecord, RunFolder, Status


def prepare(spec: RunSpec) -> RunFolder:
    """Plan a run into its folder (config.yaml and a `planned` record) before a launcher starts it."""
    folder = RunFolder(spec.path)
    folder.plan(spec, to_yaml(spec.cfg))
    return folder


def worker_command(target: Path | str, threads: int | None = None) -> list[str]:
    """The command that trains the run in folder `target` (or, with "--serve", runs named on stdin)."""
    command = [sys.executable, "-m", "scaling.launch.worker", str(target)]
    return command + (["--threads", str(threads)] if threads else [])


def startable(spec: RunSpec, pending: set[str]) -> bool:
    """A run may start now: any run but a branch; a branch once its trunk has passed its step, or
    has ended without it and is not `pending` (queued or training) in this sweep: the branch then
    records that as its failure."""
    trainer = spec.cfg.trainer
    if not trainer.branch_of:
        return True
    trunk = trunk_of(spec)
    if trunk.kept_checkpoint(trainer.branch_step).exists():
        return True
    return trainer.branch_of not in pending and _status(trunk) not in (Status.PLANNED, Status.RUNNING, None)


def trunk_of(spec: RunSpec) -> RunFolder:
    """The run folder of a cooldown branch's trunk (beside the branch's, in the same sweep)."""
    return RunFolder(spec.path.parent / spec.cfg.trainer.branch_of)


def trunk_missing(spec: RunSpec) -> str | None:
    """Why a branch cannot train: its trunk ended without the checkpoint at the branch's step (the trunk's
    run_id, where it stopped and its own error); None for a branch that can start and for any other run."""
    trainer = spec.cfg.trainer
    if not trainer.branch_of or trunk_of(spec).kept_checkpoint(trainer.branch_step).exists():
        return None
    record = _record(trunk_of(spec))
    error = (record.get("error") or "").strip().splitlines()
    return (f"trunk {trainer.branch_of} is {record.get('status') or 'missing'} at step {record.get('step') or 0} "
            f"without its checkpoint at step {trainer.branch_step}, where this branch starts"
            f"{': ' + error[0] if error else ''}; fix the trunk and run the sweep again")


def die_with_parent() -> None:
    """In a launcher's child process (preexec_fn): get SIGTERM when the launcher dies, even by
    SIGKILL, so no training outlives its sweep (Linux prctl PR_SET_PDEATHSIG; no-op elsewhere)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def split_pending(plan: Plan) -> tuple[list[RunSpec], list[RunSpec]]:
    """(completed, to_run): runs already completed are never trained twice."""
    done, todo = [], []
    for spec in plan.runs:
        (done if _status(RunFolder(spec.path)) == Status.COMPLETED else todo).append(spec)
    return done, todo


@dataclass
class Progress:
    """Counts and ETA of a sweep in flight, printed as one line."""

    name: str
    total: int
    completed: int = 0
    failed: int = 0
    running: int = 0
    parallel: int = 1
    flops_left: float = 0.0
    runs_left: int = 0
    _times: list[tuple[float, float]] = field(default_factory=list)  # (C, seconds) of ended runs

    def finished(self, flops: float, elapsed: float, record: dict[str, Any]) -> None:
        """Account for a run that ended after `elapsed` seconds."""
        if record.get("status") == "completed":
            self._times.append((flops, elapsed))
        self.flops_left -= flops
        self.runs_left -= 1

    def eta(self) -> float:
        """Seconds left, from a fit of seconds = a + b * C over the runs that ended so far.

        The constant covers start-up and per-step overhead (which dominate tiny runs), the
        slope the FLOPs (which dominate big ones); unknown until two runs have ended.
        """
        if len(self._times) < 2:  # one tiny run says little about the others' time
            return math.nan
        a, b = overhead_and_rate(self._times)
        return (self.runs_left * a + self.flops_left * b) / max(1, self.parallel)

    def line(self) -> str:
        """`[name] 3/12 completed · 0 failed · 1 running · 8 remaining · ETA 2m05s`."""
        remaining = self.total - self.completed - self.failed - self.running
        eta = self.eta()
        eta_text = "ETA --" if math.isnan(eta) else f"ETA {format_seconds(eta)}"
        return (f"[{self.name}] {self.completed}/{self.total} completed · {self.failed} failed · "
                f"{self.running} running · {remaining} remaining · {eta_text}")


def overhead_and_rate(times: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (a, b) >= 0 of seconds = a + b * flops over (flops, seconds) pairs."""
    import numpy as np

    flops = np.array([t[0] for t in times], dtype=float)
    seconds = np.array([t[1] for t in times], dtype=float)
    if len(times) < 2 or np.ptp(flops) <= 0:
        return 0.0, float(seconds.sum() / max(flops.sum(), 1e-30))
    b, a = np.polyfit(flops, seconds, 1)
    if a < 0:
        return 0.0, float(seconds.sum() / flops.sum())
    if b < 0:
        return float(seconds.mean()), 0.0
    return float(a), float(b)


def summarise(plan: Plan, skipped_done: int) -> tuple[str, int]:
    """The end-of-sweep summary and the exit code (1 if any run did not complete)."""
    rows = [(spec, record_of(spec)) for spec in plan.runs]
    failed = [(s, r) for s, r in rows if r.get("status") != "completed"]
    lines = [f"sweep {plan.name}: {len(rows) - len(failed)}/{len(rows)} completed "
             f"({skipped_done} were already done), {len(failed)} not completed"]
    for spec, record in failed:
        error = (record.get("error") or "").strip().splitlines()
        lines.append(f"  {record.get('status', 'planned'):<11} {spec.run_id}  {error[0] if error else ''}")
    if failed:
        lines.append("fix the cause and run the same command again: only these runs will run")
    return "\n".join(lines), 1 if failed else 0


def finished_line(spec: RunSpec, record: dict[str, Any]) -> str:
    """`  completed 66c797fa93 w32 d1 D=5,120 loss 4.2088` (or the first line of the error)."""
    loss = record.get("loss")
    error = (record.get("error") or "").strip().splitlines()
    detail = f"loss {loss:.4f}" if isinstance(loss, float) else (error[0] if error else "")
    return (f"  {record.get('status', 'failed'):<9} {spec.run_id} w{spec.cfg.model.width} d{spec.cfg.model.depth} "
            f"D={spec.D:,} {detail}")


def record_of(spec: RunSpec) -> dict[str, Any]:
    """The current record of a planned run ({} with the problem as error when it is damaged)."""
    return _record(RunFolder(spec.path))


def _record(folder: RunFolder) -> dict[str, Any]:
    try:
        return folder.read_record()
    except DamagedRecord as exc:
        return {"status": None, "error": str(exc)}


def _status(folder: RunFolder) -> Status | None:
    """A run's status; a damaged record counts as no record (the run is planned and trained again)."""
    try:
        return folder.status
    except DamagedRecord:
        return None
