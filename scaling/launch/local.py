"""launcher=local: run a plan's runs on this machine, one or `parallel` at a time.

Runs train in long-lived worker processes (`scaling.launch.worker --serve`), each run's output
going to its folder's train.log: a crash in one run never takes the sweep down (a dead worker
is replaced and its run recorded failed), start-up is paid once per worker rather than once per
run, and Ctrl-C stops everything cleanly for a later resume.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Optional

from scaling.launch.common import (Progress, die_with_parent, finished_line, prepare, record_of, split_pending,
                                   startable, summarise, worker_command)
from scaling.plan import Plan, RunSpec
from scaling.store import RunFolder, Status


@dataclass
class _Worker:
    process: subprocess.Popen
    spec: Optional[RunSpec] = None
    started: float = 0.0

    def give(self, spec: RunSpec) -> None:
        """Send a run to this worker."""
        folder = prepare(spec)
        self.spec, self.started = spec, time.monotonic()
        assert self.process.stdin is not None
        self.process.stdin.write(f"{folder.path}\n")
        self.process.stdin.flush()


def threads_per_run(parallel: int, cores: Optional[int] = None) -> int:
    """CPU threads for each of `parallel` concurrent runs (the machine's cores divided)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, parallel))


def _spawn(threads: int) -> _Worker:
    command = worker_command("--serve", threads)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, bufsize=1, start_new_session=True, preexec_fn=die_with_parent)
    return _Worker(process)


def launch(plan: Plan, out: Optional[IO] = None) -> int:
    """Run every not-yet-completed run of the plan, `launcher.parallel` at a time; 0 when all completed."""
    out = out or sys.stdout  # looked up now: a test (or a caller) may have replaced it
    parallel = plan.launcher.parallel
    done, todo = split_pending(plan)
    if not todo:
        print(f"sweep {plan.name}: nothing to train, all {len(done)} runs are already completed", file=out)
        return 0
    parallel = max(1, min(parallel, len(todo)))
    print(f"sweep {plan.name}: {len(plan.runs)} runs, {len(done)} already completed, {len(todo)} to run "
          f"({parallel} at a time); logs in each run's train.log", file=out, flush=True)
    progress = Progress(plan.name, len(plan.runs), completed=len(done), parallel=parallel,
                        flops_left=sum(s.C for s in todo), runs_left=len(todo))
    threads = threads_per_run(parallel)
    workers = [_spawn(threads) for _ in range(parallel)]
    # The most expensive runs first (longest-processing-time order): the sweep then ends with a few short runs
    # on every worker instead of one long run on one while the others idle. `startable` still holds branches back.
    queue = sorted(todo, key=lambda spec: -spec.C)
    try:
        _drive(workers, queue, progress, threads, out)
    except KeyboardInterrupt:
        _stop(workers)
        print(f"\nsweep {plan.name} interrupted; run the same command again to pick up where it stopped",
              file=out, flush=True)
        raise
    _close(workers)
    text, code = summarise(plan, len(done))
    print(text, file=out, flush=True)
    return code


def _drive(workers: list[_Worker], queue: list[RunSpec], progress: Progress, threads: int, out: IO) -> None:
    """Hand runs to idle workers and collect answers until the queue is empty and all are idle."""
    while queue or any(w.spec for w in workers):
        changed = False
        pending = {s.run_id for s in queue} | {w.spec.run_id for w in workers if w.spec}
        for index, worker in enumerate(workers):
            ready = next((s for s in queue if startable(s, pending)), None) if worker.spec is None else None
            if ready is not None:
                if worker.process.poll() is not None:
                    workers[index] = worker = _spawn(threads)
                queue.remove(ready)
                worker.give(ready)
                changed = True
        progress.running = sum(1 for w in workers if w.spec)
        if changed:
            print(progress.line(), file=out, flush=True)
        _collect(workers, progress, out)


def _collect(workers: list[_Worker], progress: Progress, out: IO, timeout: float = 0.5) -> None:
    """Wait briefly for answers; record finished runs and runs whose worker died."""
    busy = [w for w in workers if w.spec]
    readable, _, _ = select.select([w.process.stdout for w in busy], [], [], timeout)
    for worker in busy:
        if worker.process.stdout in readable:
            answer = worker.process.stdout.readline()
            if answer:
                _finish(worker, int(answer.split()[0]), progress, out)
                continue
        code = worker.process.poll()
        if code is not None:
            _finish(worker, code if code else 1, progress, out, died=True)


def _finish(worker: _Worker, code: int, progress: Progress, out: IO, died: bool = False) -> None:
    spec = worker.spec
    assert spec is not None
    folder = RunFolder(spec.path)
    record = record_of(spec)
    if died:
        record = folder.end_unfinished(
            Status.FAILED, f"worker process died (exit code {worker.process.returncode}); see train.log")
    progress.finished(spec.C, time.monotonic() - worker.started, record)
    if record.get("status") == Status.COMPLETED:
        progress.completed += 1
    else:
        progress.failed += 1
    worker.spec = None
    print(finished_line(spec, record), file=out, flush=True)


def _close(workers: list[_Worker]) -> None:
    """Let idle workers exit (end of input)."""
    for worker in workers:
        if worker.process.stdin:
            worker.process.stdin.close()
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()


def _stop(workers: list[_Worker], grace: float = 60.0) -> None:
    """Ask workers to stop (SIGINT: their run is recorded `interrupted`), then kill stragglers."""
    for worker in workers:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
