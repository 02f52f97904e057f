"""Inside a SLURM job: train one run folder (every rank of `srun`), and requeue on preemption.

`python -m scaling.launch.worker --slurm RUN_DIR` ends here. The worker is the edge: it passes
SLURM's variables in `env` (this module reads no environment of its own).
"""

from __future__ import annotations

import signal
import traceback
from pathlib import Path
from typing import Mapping, Optional

from scaling.launch.preempt import Preempted, PreemptSignal, RequeueOnSignal, requeue_job, slurm_trainer_overrides


def run_task(folder: Path, threads: Optional[int], env: Mapping[str, str], flag: PreemptSignal) -> int:
    """Train the run in `folder` as one rank of a SLURM step; 0 when completed or requeued."""
    from scaling.launch.worker import train_folder

    try:
        record = train_folder(folder, threads, callbacks=lambda checkpoint: [RequeueOnSignal(flag, checkpoint)],
                              trainer_overrides=slurm_trainer_overrides())
    except Preempted as stop:
        return after_preemption(folder, stop.step, env)
    except Exception:  # train() recorded the failure; the traceback goes to train.log
        traceback.print_exc()
        return 1
    return 0 if record.get("status") in ("completed", None) else 1


def after_preemption(folder: Path, step: int, env: Mapping[str, str]) -> int:
    """Rank 0 requeues the job (once per signal) and notes it in the run's record."""
    if int(env.get("SLURM_PROCID", "0")) != 0:
        return 0
    from scaling.store import RunFolder

    job_id = env.get("SLURM_JOB_ID", "")
    restarts = int(env.get("SLURM_RESTART_COUNT") or 0)
    run = RunFolder(folder)
    max_requeues = int((run.read_config().get("launcher") or {}).get("max_requeues", 1))
    if not job_id:
        problem: Optional[str] = "not requeued: no SLURM_JOB_ID"
    else:
        # The record first: once requeued, SLURM ends this process (SIGTERM, then SIGKILL).
        run.update_record(error=f"preempted by SLURM's signal at step {step}: checkpoint saved; "
                                    f"requeueing job {job_id} (requeue {restarts + 1} of at most {max_requeues})")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problem = requeue_job(job_id, restarts, max_requeues)
    if problem is not None:
        run.update_record(error=f"preempted by SLURM's signal at step {step}: checkpoint saved; {problem}")
    print(f"preempted at step {step}: " + (problem or f"requeued job {job_id}"), flush=True)
    return 0 if problem is None else 1
