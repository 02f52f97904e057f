"""launcher=slurm: the plan's unfinished runs go to SLURM as one job array; the sweep stays attached.

One array task trains one run folder (slurm_script.py writes the sbatch script; the job side is
slurm_job.py and preempt.py). This process only watches: it polls `squeue` (never sacct: there
may be no accounting database), keeps each run's job.json up to date (job id, state, reason),
and ends with the same summary and exit code as the local launcher. It writes a run's
record.json only after the run's job has ended without a result (cancelled, killed, out of
memory, node failure, vanished from the queue): the job itself writes the record while it runs.

Running the same command again trains only the runs that did not complete, and re-attaches to
jobs of an earlier submission that are still queued or running instead of submitting them twice.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

from scaling.config import ConfigError
from scaling.launch.common import Progress, prepare, split_pending, summarise
from scaling.launch.slurm_queue import JobInfo, QueueError, cluster_answers, my_jobs, show_job, submit
from scaling.launch.slurm_script import sbatch_script
from scaling.plan import Plan, RunSpec
from scaling.store import ENDED, RunFolder, Status



@dataclass
class Tracked:
    """A run whose SLURM job this sweep is watching."""

    spec: RunSpec
    job_id: str
    attempts_before: int  # the record's attempts when the job was submitted: later ones are this job's
    since: float = field(default_factory=time.monotonic)
    state: str = "PENDING"
    reason: str = ""
    missing_polls: int = 0
    ended_at: Optional[float] = None  # when a terminal state was first seen
    seen: bool = False

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.spec.path)


# ------------------------------------------------------------------------ checking


def check_plan(runs: list[RunSpec]) -> None:
    """Refuse, before anything is submitted, runs whose trainer does not match the SLURM resources."""
    for spec in runs:
        launcher, trainer = spec.cfg.launcher, spec.cfg.trainer
        _check_launcher(launcher)
        if trainer.devices != launcher.tasks_per_node:
            raise ConfigError(
                f"trainer.devices={trainer.devices!r} does not match launcher.tasks_per_node={launcher.tasks_per_node} "
                f"(SLURM starts one task per device); set trainer.devices={launcher.tasks_per_node} "
                f"or launcher.tasks_per_node={trainer.devices}")
        if trainer.num_nodes != launcher.nodes:
            raise ConfigError(
                f"trainer.num_nodes={trainer.num_nodes} does not match launcher.nodes={launcher.nodes}; "
                f"set trainer.num_nodes={launcher.nodes} or launcher.nodes={trainer.num_nodes}")
        if launcher.gpus_per_node and trainer.accelerator == "cpu":
            raise ConfigError(f"launcher.gpus_per_node={launcher.gpus_per_node} but trainer.accelerator=cpu; "
                              f"use trainer=gpu (or trainer=ddp) or launcher.gpus_per_node=0")
        parts = launcher.tasks_per_node * launcher.nodes * spec.cfg.optim.grad_accum
        if spec.cfg.optim.batch_size % parts:
            raise ConfigError(f"optim.batch_size={spec.cfg.optim.batch_size} is not divisible by "
                              f"{parts} (tasks x nodes x grad_accum); use a multiple of {parts}")


def _check_launcher(launcher: Any) -> None:
    for key in ("parallel", "nodes", "tasks_per_node", "cpus_per_task", "time_min", "poll_s"):
        if getattr(launcher, key) <= 0:
            raise ConfigError(f"launcher.{key}={getattr(launcher, key)} must be positive; set it to 1 or more")
    if launcher.gpus_per_node and launcher.gpus_per_node != launcher.tasks_per_node:
        raise ConfigError(f"launcher.gpus_per_node={launcher.gpus_per_node} differs from launcher.tasks_per_node="
                          f"{launcher.tasks_per_node}; runs use one task per GPU: make them equal")
    if not 0 <= launcher.signal_delay_s < launcher.time_min * 60:
        raise ConfigError(f"launcher.signal_delay_s={launcher.signal_delay_s} must be below the time limit "
                          f"({launcher.time_min * 60}s, launcher.time_min); lower it or raise launcher.time_min")
    if launcher.max_requeues < 0:
        raise ConfigError(f"launcher.max_requeues={launcher.max_requeues} must be >= 0; use 0 to never requeue")


# ---------------------------------------------------------------------- submitting


def slurm_dir(plan: Plan) -> Path:
    """Where the sweep's sbatch scripts, runs files and SLURM logs go (<root>/<sweep>/.slurm)."""
    if plan.launcher.log_dir:
        return Path(plan.launcher.log_dir).absolute()
    return (plan.folder / ".slurm").absolute()


def still_queued(todo: list[RunSpec], queue: dict[str, JobInfo]) -> list[Tracked]:
    """Runs whose job (from job.json) SLURM still has pending or running: watch, do not resubmit."""
    tracked = []
    for spec in todo:
        job = RunFolder(spec.path).read_job()
        info = queue.get(str(job.get("job_id")))
        if job.get("launcher") == "slurm" and info is not None and not info.terminal:
            tracked.append(Tracked(spec, info.job_id, int(job.get("attempts_before") or 0), state=info.state))
    return tracked


def submit_array(plan: Plan, runs: list[RunSpec], out: IO) -> list[Tracked]:
    """Prepare the run folders, write the runs file and the sbatch script, submit one job array."""
    launcher = plan.launcher
    folder = slurm_dir(plan)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs_file, script_file = folder / f"{stamp}.runs", folder / f"{stamp}.sbatch"
    run_dirs = [prepare(spec).path.absolute() for spec in runs]
    runs_file.write_text("".join(f"{path}\n" for path in run_dirs))
    script = sbatch_script(launcher, runs_file, len(runs), f"scaling-{plan.name}", folder, sys.executable)
    script_file.write_text(script)
    try:
        array_id = submit(script_file, Path.cwd())
    except QueueError as exc:
        raise ConfigError(f"{exc}; check launcher.partition, launcher.account, launcher.qos and "
                          f"launcher.extra_sbatch (the script: {script_file})") from exc
    print(f"submitted job array {array_id} ({len(runs)} runs, {launcher.parallel} at a time): {script_file}",
          file=out, flush=True)
    tracked = []
    for index, spec in enumerate(runs):
        job_id = f"{array_id}_{index}"
        attempts = int(RunFolder(spec.path).read_record().get("attempts") or 0)
        RunFolder(spec.path).write_job(
            launcher="slurm", job_id=job_id, array_job_id=array_id, array_index=index, job_state="PENDING",
            reason=None, nodes=None, exit_code=None, submitted=time.time(), ended=None, attempts_before=attempts,
            script=str(script_file), log=str(folder / f"{array_id}_{index}.out"))
        tracked.append(Tracked(spec, job_id, attempts))
    return tracked


# ------------------------------------------------------------------------ watching


def _fresh_final(run: Tracked) -> Optional[dict[str, Any]]:
    """The run's record when this job wrote a final status (completed, failed, diverged), else None."""
    record = run.folder.read_record()
    if record.get("status") in ENDED and int(record.get("attempts") or 0) > run.attempts_before:
        return record
    return None


def _update_job(run: Tracked, info: JobInfo) -> None:
    if (info.state, info.reason) != (run.state, run.reason) or not run.seen:
        run.folder.write_job(job_state=info.state, reason=info.reason, nodes=info.nodes or None)
    run.state, run.reason, run.seen, run.missing_polls = info.state, info.reason, True, 0


def slurm_words(run: Tracked) -> tuple[str, str, dict[str, str]]:
    """What SLURM says about an ended job: ("ended CANCELLED (exit code 0:15)", state, scontrol fields)."""
    detail = show_job(run.job_id)
    state = detail.get("JobState") or run.state
    reason = detail.get("Reason") or run.reason
    parts = [f"reason {reason}"] if reason and reason != "None" else []
    if detail.get("ExitCode"):
        parts.append(f"exit code {detail['ExitCode']}")
    return f"ended {state}" + (f" ({', '.join(parts)})" if parts else ""), state, detail


def mark_dead(run: Tracked, vanished: bool) -> dict[str, Any]:
    """Record a run whose job ended without a result as failed, with what SLURM said."""
    if vanished:
        said, state, detail = "vanished from the queue", "VANISHED", {}
    else:
        said, state, detail = slurm_words(run)
    last_words = (run.folder.read_record().get("error") or "").strip().splitlines()
    error = f"SLURM job {run.job_id} {said} before the run finished; see train.log and {run.folder.read_job().get('log')}"
    if last_words:
        error += f" (the run's last words: {last_words[0][:200]})"
    run.folder.write_job(job_state=state, reason=detail.get("Reason") or run.reason,
                         exit_code=detail.get("ExitCode"), ended=time.time())
    return run.folder.finish(Status.FAILED, error=error)


def check_run(run: Tracked, queue: dict[str, JobInfo], settle_s: float) -> Optional[dict[str, Any]]:
    """The run's final record once its job has ended (recording it failed if it died), else None."""
    info = queue.get(run.job_id)
    if info is None:
        run.missing_polls += 1
        if run.missing_polls < 2:  # one poll may race with SLURM's bookkeeping
            return None
        record = _fresh_final(run)
        if record is None:
            return mark_dead(run, vanished=True)
        run.folder.write_job(job_state="GONE", ended=time.time())
        return record
    _update_job(run, info)
    if not info.terminal:
        run.ended_at = None
        return None
    record = _fresh_final(run)
    if record is not None:
        run.folder.write_job(ended=time.time())
        return record
    run.ended_at = run.ended_at or time.monotonic()
    if time.monotonic() - run.ended_at < settle_s:  # SLURM may still requeue it (node failure, preemption)
        return None
    return mark_dead(run, vanished=False)


def watch(plan: Plan, tracked: list[Tracked], progress: Progress, out: IO) -> None:
    """Poll SLURM until every tracked job has ended; print progress as it changes."""
    launcher = plan.launcher
    settle_s = max(10.0, 2 * launcher.poll_s)
    last_answer, last_line, last_print = time.monotonic(), "", 0.0
    while tracked:
        try:
            queue = my_jobs()
            last_answer = time.monotonic()
        except QueueError as exc:
            if time.monotonic() - last_answer > launcher.unreachable_s:
                for run in tracked:
                    run.folder.finish(Status.FAILED, error=f"SLURM stopped answering ({exc}); job "
                                             f"{run.job_id} may still run: check squeue, then run the sweep again")
                    _finished(run, run.folder.read_record(), progress, out)
                return
            time.sleep(launcher.poll_s)
            continue
        for run in list(tracked):
            record = check_run(run, queue, settle_s)
            if record is not None:
                tracked.remove(run)
                _finished(run, record, progress, out)
        progress.running = sum(1 for run in tracked if run.state in ("RUNNING", "COMPLETING"))
        line = _progress_line(progress, tracked)
        if line != last_line or time.monotonic() - last_print > 60:
            print(line, file=out, flush=True)
            last_line, last_print = line, time.monotonic()
        if tracked:
            time.sleep(launcher.poll_s)


def _progress_line(progress: Progress, tracked: list[Tracked]) -> str:
    pending = sum(1 for run in tracked if run.state == "PENDING")
    jobs = sorted({run.job_id.split("_")[0] for run in tracked})
    return progress.line() + (f" · {pending} pending in SLURM (job {', '.join(jobs)})" if tracked else "")


def _finished(run: Tracked, record: dict[str, Any], progress: Progress, out: IO) -> None:
    progress.finished(run.spec.C, time.monotonic() - run.since, record)
    if record.get("status") == "completed":
        progress.completed += 1
    else:
        progress.failed += 1
    loss = record.get("loss")
    error = (record.get("error") or "").strip().splitlines()
    completed = record.get("status") == "completed" and isinstance(loss, float)
    detail = f"loss {loss:.4f}" if completed else (error[0][:160] if error else "")
    print(f"  {record.get('status', 'failed'):<9} {run.spec.run_id} job {run.job_id} "
          f"w{run.spec.cfg.model.width} d{run.spec.cfg.model.depth} D={run.spec.D:,} {detail}", file=out, flush=True)


# ---------------------------------------------------------------------------- entry


def launch(plan: Plan, out: Optional[IO] = None) -> int:
    """Submit the plan's unfinished runs as one SLURM job array, watch them, return the exit code."""
    out = out or sys.stdout  # looked up now: a test (or a caller) may have replaced it
    done, todo = split_pending(plan)
    if not todo:
        print(f"sweep {plan.name}: nothing to train, all {len(done)} runs are already completed", file=out)
        return 0
    check_plan(todo)
    problem = cluster_answers()
    if problem:
        raise ConfigError(f"launcher=slurm but SLURM does not answer ({problem}); start a cluster "
                          f"(slurm/local-cluster.sh start) or use launcher=local")
    attached = still_queued(todo, my_jobs())
    waiting = {run.spec.run_id for run in attached}
    to_submit = [spec for spec in todo if spec.run_id not in waiting]
    launcher = plan.launcher
    print(f"sweep {plan.name}: {len(plan.runs)} runs, {len(done)} already completed, {len(attached)} still in "
          f"SLURM's queue, {len(to_submit)} to submit", file=out, flush=True)
    tracked = attached + (submit_array(plan, to_submit, out) if to_submit else [])
    progress = Progress(plan.name, len(plan.runs), completed=len(done), parallel=launcher.parallel,
                        flops_left=sum(s.C for s in todo), runs_left=len(todo))
    try:
        watch(plan, tracked, progress, out)
    except KeyboardInterrupt:
        jobs = sorted({run.job_id.split("_")[0] for run in tracked})
        print(f"\nstopped watching; the jobs keep running in SLURM (scancel {' '.join(jobs)} stops them). "
              f"Run the same command again to re-attach", file=out, flush=True)
        raise
    text, code = summarise(plan, len(done))
    print(text, file=out, flush=True)
    return code
