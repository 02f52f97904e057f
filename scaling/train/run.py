"""One training run: build it, own it, resume it, record it."""

from __future__ import annotations

import contextlib
import logging
import platform
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from scaling.config import to_yaml
from scaling.plan import RunSpec
from scaling.store import RunFolder, Status, describe_owner
from scaling.train.callbacks import AtomicCheckpoint, FailAtStep, ProgressBar, RecordMetrics, TraceBatches
from scaling.train.data import RunDataModule
from scaling.train.module import Diverged, ScalingModule

CallbackFactory = Callable[[AtomicCheckpoint], list[pl.Callback]]


class Stopped(SystemExit):
    """Training stopped on a signal (SIGTERM) after recording the run interrupted: exit 143."""

    def __init__(self) -> None:
        super().__init__(143)


def hardware(trainer: pl.Trainer) -> dict[str, Any]:
    """What the run ran on, for the record."""
    device = "cpu"
    if torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda":
        device = torch.cuda.get_device_name(trainer.strategy.root_device)
    return {"device": device, "world_size": trainer.world_size, "num_nodes": trainer.num_nodes,
            "precision": str(trainer.precision), "host": socket.gethostname(),
            "threads": torch.get_num_threads(), "platform": platform.platform()}


def versions() -> dict[str, str]:
    """Library versions, for the record."""
    import scaling

    return {"scaling": scaling.__version__, "torch": torch.__version__, "lightning": pl.__version__,
            "python": sys.version.split()[0]}


def make_trainer(spec: RunSpec, callbacks: list[pl.Callback], loggers: Any = False,
                 overrides: Optional[dict[str, Any]] = None) -> pl.Trainer:
    """The Lightning Trainer for a run: devices, precision, steps and validation cadence.

    `overrides` replace Trainer arguments (a launcher's strategy, plugins or environment).
    The data module shards the data over ranks itself (exact resume), so Lightning's
    distributed sampler is off.
    """
    cfg = spec.cfg
    precision = "32-true" if str(cfg.trainer.precision) == "32" else cfg.trainer.precision
    kwargs = dict(
        accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy, precision=precision, max_steps=spec.steps, max_epochs=-1,
        accumulate_grad_batches=cfg.optim.grad_accum, gradient_clip_val=cfg.optim.grad_clip or None,
        val_check_interval=cfg.trainer.val_every * cfg.optim.grad_accum, check_val_every_n_epoch=None,
        log_every_n_steps=cfg.trainer.log_every, num_sanity_val_steps=0, logger=loggers,
        enable_checkpointing=False, enable_progress_bar=cfg.trainer.progress, enable_model_summary=False,
        callbacks=callbacks, default_root_dir=str(Path(cfg.run.root) / cfg.sweep.name),
        use_distributed_sampler=False, deterministic=False,
    )
    kwargs.update(overrides or {})
    return pl.Trainer(**kwargs)


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was saved at (0 when there is none)."""
    if not path.exists():
        return 0
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))
    except Exception as exc:  # torch raises several types for a damaged file
        raise DamagedCheckpoint(f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                                "delete it to train the run from the start") from None


class DamagedCheckpoint(ValueError):
    """last.ckpt exists but cannot be loaded."""


def train(spec: RunSpec, loggers_factory: Optional[Callable[[RunSpec], Any]] = None,
          callbacks: Optional[CallbackFactory] = None,
          trainer_overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Train one run into its folder: skip if completed, resume if a checkpoint exists.

    Returns the final record. Raises on failure after recording it (status failed or diverged).
    `callbacks(checkpoint)` gives a launcher's extra callbacks (they get train()'s checkpoint
    writer); `trainer_overrides` go to the Lightning Trainer (strategy, plugins).
    """
    from scaling.data import build_data
    from scaling.models import build_model

    cfg, folder = spec.cfg, RunFolder(spec.path)
    if folder.status == Status.COMPLETED:
        return _nothing_to_do(folder)
    if not folder.exists():
        folder.plan(spec, to_yaml(cfg))
    quiet_lightning()
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data.info)
    recorder = RecordMetrics(folder, spec)
    checkpoint = AtomicCheckpoint(folder, cfg.trainer.checkpoint_every, cfg.trainer.val_every,
                                  tuple(cfg.trainer.keep_steps), before_save=recorder.flush_pending)
    fail = FailAtStep(cfg.trainer.fail_at_step, cfg.trainer.fail_attempts) if cfg.trainer.fail_at_step is not None else None
    extra = [c for c in (fail, TraceBatches(folder) if cfg.trainer.trace_batches else None,
                         ProgressBar(recorder) if cfg.trainer.progress else None) if c is not None]
    trainer = make_trainer(spec, [recorder, checkpoint, *extra, *(callbacks(checkpoint) if callbacks else [])],
                           loggers_factory(spec) if loggers_factory else False, trainer_overrides)
    with contextlib.ExitStack() as owned:
        if trainer.is_global_zero:
            owned.enter_context(folder.own(on_wait=lambda holder: print(
                f"run {spec.run_id} is being trained by {describe_owner(holder)}; waiting for it", flush=True)))
            if folder.status == Status.COMPLETED:  # the other owner finished it
                return _nothing_to_do(folder)
        start = checkpoint_step(folder.last_checkpoint)
        source, trunk = (folder.last_checkpoint if start else None), None
        if not start and cfg.trainer.branch_of:  # a branch's first attempt starts from its trunk
            trunk = RunFolder(folder.path.parent / cfg.trainer.branch_of)
            source, start = trunk_checkpoint(trunk, cfg.trainer.branch_step), cfg.trainer.branch_step
        previous = folder.read_record()
        recorder.begin(start, float(previous.get("wall_time") or 0.0) if trunk is None else 0.0, trunk)
        if fail is not None:
            fail.begin(int(previous.get("attempts") or 0) + 1)
        if trainer.is_global_zero:
            folder.start(spec, start, resumed=trunk is None, hardware=hardware(trainer), versions=versions())
        return _fit(trainer, spec, data, model, folder, recorder, source)


def _fit(trainer: pl.Trainer, spec: RunSpec, data: Any, model: torch.nn.Module, folder: RunFolder,
         recorder: RecordMetrics, source: Optional[Path]) -> dict[str, Any]:
    """Fit (from the checkpoint `source`, when resuming or branching), validate at the end, and
    record the outcome."""
    module, datamodule = ScalingModule(model, spec), RunDataModule(data, spec)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(source) if source else None)
        if recorder.last_val().get("step") != trainer.global_step:
            trainer.validate(module, datamodule=datamodule, verbose=False)
    except Diverged as exc:
        return finish(folder, recorder, trainer, Status.DIVERGED, error=str(exc), step=exc.step)
    except SIGTERMException:
        finish(folder, recorder, trainer, Status.INTERRUPTED, error="stopped by SIGTERM; resumes from its checkpoint")
        raise Stopped() from None
    except (KeyboardInterrupt, SystemExit) as exc:  # Lightning turns Ctrl-C into SystemExit(1)
        why = getattr(exc, "reason", None) or "interrupted (Ctrl-C or SIGINT)"
        finish(folder, recorder, trainer, Status.INTERRUPTED, error=why)
        raise
    except Exception as exc:
        finish(folder, recorder, trainer, Status.FAILED, error=error_text(exc))
        raise
    if trainer.interrupted:  # Lightning caught a signal and stopped early
        finish(folder, recorder, trainer, Status.INTERRUPTED, error="interrupted by a signal")
        raise KeyboardInterrupt
    return finish(folder, recorder, trainer, Status.COMPLETED)


class TrunkMissing(RuntimeError):
    """A branch's trunk ended without the checkpoint the branch starts from."""


def trunk_checkpoint(trunk: RunFolder, step: int, poll_s: float = 2.0) -> Path:
    """The trunk's checkpoint at `step`, waiting while the trunk is planned or training towards it."""
    from scaling.store import folder_row

    path, said = trunk.kept_checkpoint(step), False
    while not path.exists():
        status = folder_row(trunk)["status"] if trunk.exists() else Status.PLANNED
        if status not in (Status.PLANNED, Status.RUNNING):  # ended, interrupted or damaged
            raise TrunkMissing(f"trunk {trunk.path.name} is {status} without a checkpoint at step {step}, where this "
                               "branch starts; train the trunk (run the sweep again), then the branch")
        if not said:
            print(f"waiting for trunk {trunk.path.name} to reach step {step}", flush=True)
            said = True
        time.sleep(poll_s)
    return path


def _nothing_to_do(folder: RunFolder) -> dict[str, Any]:
    record = folder.read_record()
    print(f"nothing to do, already {summary_line(record, folder.path)}", flush=True)
    return record


def finish(folder: RunFolder, recorder: RecordMetrics, trainer: pl.Trainer, status: Status,
           error: Optional[str] = None, step: Optional[int] = None) -> dict[str, Any]:
    """Write the final record (rank 0) and print the one-line summary; `step` (a diverged run's
    step) replaces the trainer's."""
    if not trainer.is_global_zero:
        return {}
    recorder.write_rows()
    last = recorder.last_val()
    record = folder.finish(status, error=error, step=trainer.global_step if step is None else step, wall_time=recorder.wall_time(),
                           throughput=recorder.throughput, loss=last.get("val_loss"),
                           val_accuracy=last.get("val_accuracy"), train_loss=recorder.last_train_loss())
    print(summary_line(record, folder.path), flush=True)
    return record


def summary_line(record: dict[str, Any], path: Path) -> str:
    """One line: status, N, D, C, final loss, wall time, run folder."""
    loss = record.get("loss")
    loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) else "n/a"
    acc = record.get("val_accuracy")
    acc_text = f" acc={acc:.3f}" if record.get("unit") == "samples" and isinstance(acc, float) else ""
    return (f"{record.get('status')}: {record.get('family')} w{record.get('width')} d{record.get('depth')} "
            f"N={record.get('N', 0):,} D={record.get('D', 0):,} {record.get('unit')} C={record.get('C', 0):.3g} "
            f"val_loss={loss_text}{acc_text} in {record.get('wall_time') or 0:.1f}s -> {path}")


def error_text(exc: BaseException) -> str:
    """The exception's message and the tail of its traceback, for the record."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[-4000:]


def quiet_lightning() -> None:
    """Silence Lightning's start-up chatter and warnings that do not apply to these runs."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*exists and is not empty.*", ".*LeafSpec.*", ".*isinstance.*treespec.*",
                    ".*GPU available but not used.*",
                    ".*`srun` command is available on your system but is not used.*"):
        warnings.filterwarnings("ignore", message=pattern)
