"""Talking to SLURM's controller: sbatch, squeue and scontrol, parsed into plain objects.

No sacct anywhere: clusters without an accounting database (slurmdbd) are common in labs and
CI, and there sacct answers nothing. A finished job stays visible to `squeue -t all` and
`scontrol show job` for MinJobAge seconds (300 by default), which is what a launcher that polls
every few seconds needs; a job gone from both has vanished.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# States after which a job instance runs no more (it may still be requeued: see slurm.py).
TERMINAL = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                      "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"})
_FIELDS = "%i|%F|%K|%T|%r|%N"


class QueueError(RuntimeError):
    """SLURM's controller did not answer (or refused a command)."""


@dataclass
class JobInfo:
    """One job (or job array task) as squeue shows it."""

    job_id: str  # "12" or, for an array task, "12_3"
    array_job_id: str
    array_index: Optional[int]
    state: str  # PENDING, RUNNING, COMPLETING, COMPLETED, CANCELLED, ...
    reason: str
    nodes: str

    @property
    def terminal(self) -> bool:
        """True when this instance of the job has ended."""
        return self.state in TERMINAL


def _run(command: list[str], timeout: float = 30.0) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise QueueError(f"{command[0]} is not installed; install slurm-wlm (or run slurm/local-cluster.sh start)") from exc
    except subprocess.TimeoutExpired as exc:
        raise QueueError(f"{' '.join(command[:2])} did not answer in {timeout:.0f}s") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise QueueError(f"{' '.join(command[:2])} failed: {message[-1] if message else f'exit code {done.returncode}'}")
    return done.stdout


def cluster_answers() -> Optional[str]:
    """None when `sinfo` answers, else one line saying why not."""
    try:
        _run(["sinfo", "-h", "-o", "%P"], timeout=15)
    except QueueError as exc:
        return str(exc)
    return None


def submit(script: Path, workdir: Path) -> str:
    """`sbatch --parsable SCRIPT`; returns the (array) job id."""
    out = _run(["sbatch", "--parsable", f"--chdir={workdir}", str(script)], timeout=60)
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise QueueError(f"sbatch answered {out.strip()!r}, not a job id")
    return job_id


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """`squeue -o '%i|%F|%K|%T|%r|%N'` output -> {job_id: JobInfo}."""
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 6:
            continue
        job_id, array_id, index, state, reason, nodes = parts
        info = JobInfo(job_id, array_id, int(index) if index.isdigit() else None,
                       state.split()[0] if state else "UNKNOWN", reason, nodes)
        jobs[job_id] = info
    return jobs


def my_jobs() -> dict[str, JobInfo]:
    """All of this user's jobs SLURM still knows (pending, running and recently ended), by job id."""
    return parse_squeue(_run(["squeue", "--me", "--noheader", "--array", "--states=all", f"--format={_FIELDS}"]))


def parse_show_job(text: str) -> dict[str, str]:
    """`scontrol show job -o` output -> {key: value} (JobState, Reason, ExitCode, RunTime, ...)."""
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def show_job(job_id: str) -> dict[str, str]:
    """What `scontrol show job JOB_ID` says now; {} once SLURM has forgotten the job."""
    try:
        return parse_show_job(_run(["scontrol", "show", "job", "-o", job_id], timeout=30))
    except QueueError:
        return {}


def cancel(job_id: str) -> None:
    """`scancel JOB_ID`."""
    _run(["scancel", job_id])
