"""Preemption under SLURM: a signal before the time limit leads to a checkpoint and one requeue.

Requeue is decided here and nowhere else: Lightning's own SLURM auto-requeue is switched off
(`SLURMEnvironment(auto_requeue=False)`) and submitit is not used, so a signal never causes two
requeues. The flow:

1. SLURM sends SIGUSR1 `launcher.signal_delay_s` before the time limit (`--signal=USR1@T`, to
   every task of the step). `PreemptSignal` (installed when the worker starts, before torch is
   imported, so an early signal is never fatal) only notes it.
2. `RequeueOnSignal`, at the end of the next optimizer step, agrees with the other ranks (one
   all-reduce), saves checkpoints/last.ckpt through train()'s AtomicCheckpoint and raises
   `Preempted`; train() records the run `interrupted`.
3. The worker (rank 0) then calls `scontrol requeue JOBID` (`requeue_job`); SLURM ends this
   instance and starts the same array task again, which resumes from last.ckpt.

An operator's `scontrol requeue` (SIGTERM to the tasks, no USR1) needs nothing from here:
Lightning stops at the next step, and the requeued job resumes from the periodic checkpoint
(or from the one `RequeueOnSignal` writes on SIGTERM for a single-process run).
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any, Optional

import pytorch_lightning as pl


class Preempted(SystemExit):
    """Training stopped on the preemption signal after saving its checkpoint at `step`."""

    def __init__(self, step: int):
        super().__init__(0)
        self.step = step
        self.reason = f"preempted by SLURM's signal at step {step}: checkpoint saved"


class PreemptSignal:
    """Notes that the preemption signal arrived (a handler that only sets a flag)."""

    def __init__(self, signum: int = signal.SIGUSR1):
        self.signum = signum
        self.received = False

    def install(self) -> "PreemptSignal":
        """Install the handler for `signum` (main thread only); returns self."""
        signal.signal(self.signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True


class RequeueOnSignal(pl.Callback):
    """After the step during which the signal arrived: save last.ckpt on all ranks, raise Preempted.

    `checkpoint` is train()'s AtomicCheckpoint (it writes checkpoints/last.ckpt atomically).
    """

    def __init__(self, flag: PreemptSignal, checkpoint: Any):
        self.flag, self.checkpoint = flag, checkpoint

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if not _agreed(trainer, self.flag.received):
            return
        self.checkpoint.save(trainer)
        raise Preempted(trainer.global_step)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # SIGTERM (scancel, an operator's requeue, the time limit): keep the progress made since the
        # last periodic checkpoint. Single process only: the other ranks may already be gone.
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException):
            self.checkpoint.save_if_behind(trainer)


def _agreed(trainer: pl.Trainer, received: bool) -> bool:
    """True on every rank when any rank received the signal (one all-reduce under DDP)."""
    if trainer.world_size == 1:
        return received
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return received
    flag = torch.tensor([1 if received else 0], device=trainer.strategy.root_device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def slurm_trainer_overrides() -> dict[str, Any]:
    """Trainer arguments for a run inside a SLURM step: Lightning's SLURM environment, no auto-requeue."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}


def requeue_job(job_id: str, restarts: int, max_requeues: int) -> Optional[str]:
    """`scontrol requeue JOB_ID` unless the job was already requeued `max_requeues` times.

    Returns None on success, else why the job was not requeued (for the run's record).
    """
    if restarts >= max_requeues:
        times = "once" if restarts == 1 else f"{restarts} times"
        return f"not requeued: job {job_id} was already requeued {times} (launcher.max_requeues={max_requeues})"
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol requeue {job_id} failed: {exc}"
    if done.returncode != 0:
        return f"scontrol requeue {job_id} failed: {(done.stderr or done.stdout).strip()}"
    return None
