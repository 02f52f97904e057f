"""What every launcher shares: preparing run folders, the worker command, progress and summary."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.config import to_yaml
from scaling.plan import Plan, RunSpec
from scaling.store import RunFolder


def prepare(spec: RunSpec) -> RunFolder:
    """Write a run's config.yaml and a `planned` record unless the run already has a record."""
    folder = RunFolder(spec.path)
    if not folder.exists():
        folder.write_config(to_yaml(spec.cfg))
        folder.write_record({**spec.summary(), "status": "planned", "unit": spec.unit,
                             "flops_per_unit": spec.flops_per_unit, "budget_flops": spec.cfg.budget.flops})
    elif not folder.config_path.exists():
        folder.write_config(to_yaml(spec.cfg))
    return folder


def worker_command(target: Path | str, threads: int | None = None) -> list[str]:
    """The command that trains the run in folder `target` (or, with "--serve", runs named on stdin)."""
    command = [sys.executable, "-m", "scaling.launch.worker", str(target)]
    return command + (["--threads", str(threads)] if threads else [])


def split_pending(plan: Plan) -> tuple[list[RunSpec], list[RunSpec]]:
    """(completed, to_run): runs already completed are never trained twice."""
    done, todo = [], []
    for spec in plan.runs:
        (done if RunFolder(spec.path).status == "completed" else todo).append(spec)
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
    _train_flops: float = 0.0
    _train_seconds: float = 0.0
    _overhead: list[float] = field(default_factory=list)

    def finished(self, flops: float, elapsed: float, record: dict[str, Any]) -> None:
        """Account for a run that ended after `elapsed` seconds (its record has its train time)."""
        train_seconds = float(record.get("wall_time") or 0.0)
        if train_seconds > 0 and record.get("status") == "completed":
            self._train_flops += flops
            self._train_seconds += train_seconds
            self._overhead.append(max(0.0, elapsed - train_seconds))
        self.flops_left -= flops
        self.runs_left -= 1

    def eta(self) -> float:
        """Seconds left: start-up overhead per run plus FLOPs at the rate achieved so far."""
        if self._train_seconds <= 0:
            return math.nan
        rate = self._train_flops / self._train_seconds
        overhead = sum(self._overhead) / len(self._overhead)
        return (self.runs_left * overhead + self.flops_left / rate) / max(1, self.parallel)

    def line(self) -> str:
        """`[name] 3/12 completed · 0 failed · 1 running · 8 remaining · ETA 2m05s`."""
        remaining = self.total - self.completed - self.failed - self.running
        eta = self.eta()
        eta_text = "ETA --" if math.isnan(eta) else f"ETA {format_seconds(eta)}"
        return (f"[{self.name}] {self.completed}/{self.total} completed · {self.failed} failed · "
                f"{self.running} running · {remaining} remaining · {eta_text}")


def format_seconds(seconds: float) -> str:
    """1h02m, 3m05s or 12s."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def summarise(plan: Plan, skipped_done: int) -> tuple[str, int]:
    """The end-of-sweep summary and the exit code (1 if any run did not complete)."""
    rows = [(spec, RunFolder(spec.path).read_record()) for spec in plan.runs]
    failed = [(s, r) for s, r in rows if r.get("status") != "completed"]
    lines = [f"sweep {plan.name}: {len(rows) - len(failed)}/{len(rows)} completed "
             f"({skipped_done} were already done), {len(failed)} not completed"]
    for spec, record in failed:
        error = (record.get("error") or "").strip().splitlines()
        lines.append(f"  {record.get('status', 'planned'):<11} {spec.run_id}  {error[0] if error else ''}")
    if failed:
        lines.append("fix the cause and run the same command again: only these runs will run")
    return "\n".join(lines), 1 if failed else 0


def record_of(spec: RunSpec) -> dict[str, Any]:
    """The current record of a planned run."""
    return RunFolder(spec.path).read_record()
