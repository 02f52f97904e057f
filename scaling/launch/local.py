"""launcher=local: run a plan's runs on this machine, one or `parallel` at a time.

Each run trains in its own worker process (output in the run folder's train.log), so a crash
in one run never takes the sweep down, and Ctrl-C stops everything cleanly for a later resume.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Optional

from scaling.launch.common import Progress, prepare, split_pending, summarise, worker_command
from scaling.plan import Plan, RunSpec
from scaling.store import RunFolder
from scaling.train import run_dir


@dataclass
class _Job:
    spec: RunSpec
    process: subprocess.Popen
    log: IO


def threads_per_run(parallel: int, cores: Optional[int] = None) -> int:
    """CPU threads for each of `parallel` concurrent runs (the machine's cores divided)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, parallel))


def run_local(plan: Plan, parallel: int = 1, out: IO = sys.stdout) -> int:
    """Run every not-yet-completed run of the plan; returns the exit code (0: all completed)."""
    done, todo = split_pending(plan)
    if not todo:
        print(f"sweep {plan.name}: nothing to train, all {len(done)} runs are already completed", file=out)
        return 0
    print(f"sweep {plan.name}: {len(plan.runs)} runs, {len(done)} already completed, {len(todo)} to run "
          f"({parallel} at a time); logs in each run's train.log", file=out, flush=True)
    progress = Progress(plan.name, len(plan.runs), completed=len(done), parallel=parallel,
                        flops_left=sum(s.C for s in todo))
    threads = threads_per_run(parallel)
    queue, running = list(todo), []
    try:
        while queue or running:
            while queue and len(running) < parallel:
                running.append(_start(queue.pop(0), threads))
            progress.running = len(running)
            time.sleep(0.2)
            running = _reap(running, progress, out)
    except KeyboardInterrupt:
        _stop(running)
        print(f"\nsweep {plan.name} interrupted; run the same command again to pick up where it stopped",
              file=out, flush=True)
        raise
    text, code = summarise(plan, len(done))
    print(text, file=out, flush=True)
    return code


def _start(spec: RunSpec, threads: int) -> _Job:
    folder = prepare(spec)
    log = open(folder.path / "train.log", "a")
    process = subprocess.Popen(worker_command(folder.path, threads), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    return _Job(spec, process, log)


def _reap(running: list[_Job], progress: Progress, out: IO) -> list[_Job]:
    """Collect finished workers, update the counts and print the progress line on change."""
    still = []
    for job in running:
        code = job.process.poll()
        if code is None:
            still.append(job)
            continue
        job.log.close()
        record = RunFolder(run_dir(job.spec)).read_record()
        if code == 0 and record.get("status") == "completed":
            progress.completed += 1
        else:
            progress.failed += 1
            if record.get("status") in (None, "planned", "running"):
                RunFolder(run_dir(job.spec)).update_record(
                    status="failed", error=f"worker exited with code {code} without a result; see train.log")
        progress.flops_done += job.spec.C
        progress.flops_left -= job.spec.C
        progress.running = len(running) - 1
        print(_finished_line(job.spec, record, code), file=out)
        print(progress.line(), file=out, flush=True)
    return still


def _finished_line(spec: RunSpec, record: dict, code: int) -> str:
    loss = record.get("loss")
    loss_text = f"loss {loss:.4f}" if isinstance(loss, float) else (record.get("error") or "").splitlines()[:1]
    return (f"  {record.get('status', 'failed'):<9} {spec.run_id} w{spec.cfg.model.width} d{spec.cfg.model.depth} "
            f"D={spec.D:,} {loss_text if isinstance(loss_text, str) else ''.join(loss_text)}")


def _stop(running: list[_Job], grace: float = 60.0) -> None:
    """Ask workers to stop (SIGINT: they record `interrupted`), then kill stragglers."""
    for job in running:
        if job.process.poll() is None:
            os.killpg(job.process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for job in running:
        try:
            job.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(job.process.pid, signal.SIGKILL)
            job.process.wait()
        job.log.close()
