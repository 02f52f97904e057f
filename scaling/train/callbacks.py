"""Callbacks that record a run: checkpoints, metrics, fault injection and a batch trace."""

from __future__ import annotations

import hashlib
import math
import os
import time
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar

from scaling.plan import RunSpec
from scaling.store import RunFolder


class AtomicCheckpoint(pl.Callback):
    """Saves checkpoints/last.ckpt every N optimizer steps via a temporary file and a rename.

    On a step that also validates, the checkpoint is saved after the validation (as Lightning's
    ModelCheckpoint does): a run killed in between resumes before that step, not after it, so
    no validation is ever lost.
    """

    def __init__(self, folder: RunFolder, every: int, val_every: int, keep_steps: tuple[int, ...] = (),
                 before_save: Optional[Callable[[], None]] = None):
        self.folder, self.every, self.val_every, self.saved_step = folder, every, val_every, -1
        self.keep_steps = set(keep_steps)  # a trunk keeps checkpoints/step-K.ckpt for its branches
        self.before_save = before_save  # the recorder's pending rows reach metrics.csv before a checkpoint

    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint now (a collective call under DDP; rank 0 renames).

        The temporary name is the owner's (pid): a partial file never replaces last.ckpt, and
        a failed write (a full disk) removes its partial file.
        """
        trainer.lightning_module.check_finite()  # a diverged model is never saved over the last good one
        if self.before_save is not None and trainer.is_global_zero:
            self.before_save()  # a resume keeps metrics.csv's rows up to the checkpoint: they must be there
        target = self.folder.last_checkpoint
        tmp = target.with_name(f".last.ckpt.{os.getpid()}.tmp")
        try:
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                os.replace(tmp, target)
                self._keep(trainer.global_step)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.saved_step = trainer.global_step

    def _keep(self, step: int) -> None:
        """At a branch point, the checkpoint also stays as step-K.ckpt (a hard link: no copy, atomic)."""
        kept = self.folder.kept_checkpoint(step)
        if step in self.keep_steps and not kept.exists():
            tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
            os.link(self.folder.last_checkpoint, tmp)
            os.replace(tmp, kept)

    def save_if_behind(self, trainer: pl.Trainer) -> None:
        """Save when steps were made since the last checkpoint (single process only: a collective
        save cannot be trusted while other ranks may be gone)."""
        if trainer.world_size == 1 and trainer.global_step > self.saved_step:
            if trainer.lightning_module.diverged_step() is None:
                self.save(trainer)

    def _due(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step
        return step != self.saved_step and (step % self.every == 0 or step in self.keep_steps) and step < trainer.max_steps

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._due(trainer) and trainer.global_step % self.val_every:
            self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and self._due(trainer):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self.saved_step:
            self.save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):  # Ctrl-C: keep the progress made
            self.save_if_behind(trainer)


class InjectedFailure(RuntimeError):
    """A failure asked for by trainer.fail_at_step (for testing recovery)."""


class FailAtStep(pl.Callback):
    """Raise at a given optimizer step on the first `attempts` attempts of a run (fault injection)."""

    def __init__(self, step: int, attempts: int):
        self.step, self.attempts, self.active = step, attempts, False

    def begin(self, attempt: int) -> None:
        """Arm the failure when this is one of the first `attempts` attempts."""
        self.active = attempt <= self.attempts

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.active and trainer.global_step >= self.step:
            raise InjectedFailure(f"injected failure at step {trainer.global_step} (trainer.fail_at_step)")


class TraceBatches(pl.Callback):
    """Appends `step rank micro-batch sha1` lines to batches.txt: the data each optimizer step saw,
    micro-batch by micro-batch (trainer.trace_batches; what the resume tests compare)."""

    def __init__(self, folder: RunFolder):
        self.path = folder.path / "batches.txt"
        self._step, self._micro = -1, 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        step = trainer.global_step
        self._micro = self._micro + 1 if step == self._step else 0
        self._step = step
        digest = hashlib.sha1()
        for tensor in batch:
            digest.update(torch.as_tensor(tensor).detach().cpu().contiguous().numpy().tobytes())
        with self.path.open("a") as handle:
            handle.write(f"{step} {trainer.global_rank} {self._micro} {digest.hexdigest()}\n")


class RecordMetrics(pl.Callback):
    """Writes metrics.csv (one row per logged step) and keeps record.json's progress fields.

    The training loss is read from the device on logging steps only (after checking that no
    loss so far was NaN or infinite); `shown` holds what the progress bar displays. Rows are
    written at once at the first logging step, on validations, before every checkpoint
    (`flush_pending`: a resume keeps the rows up to its checkpoint from metrics.csv) and at the
    end; other logging steps write at most every FLUSH_EVERY_S seconds. These writes are atomic
    but not synced to disk (an fsync costs 10 ms or more); `write_rows` at the end is.
    """

    FLUSH_EVERY_S = 5.0

    def __init__(self, folder: RunFolder, spec: RunSpec):
        self.folder, self.spec = folder, spec
        self._flushed_at, self._pending, self._dirty = -math.inf, None, True
        self.shown: dict[str, float] = {}
        self.rows: list[dict[str, Any]] = []
        self.wall_before, self.t0 = 0.0, time.monotonic()
        self._last_time, self._last_step = self.t0, 0
        self.throughput = math.nan

    def begin(self, start_step: int, wall_before: float, earlier: Optional[RunFolder] = None) -> None:
        """Start an attempt at `start_step`: keep the rows up to it (from `earlier`, a branch's trunk,
        when given), count time on from `wall_before`."""
        self.rows = [r for r in (earlier or self.folder).read_metrics() if r.get("step", 0) <= start_step]
        self._dirty = True
        self.wall_before, self.t0 = wall_before, time.monotonic()
        self._last_time, self._last_step = self.t0, start_step

    def wall_time(self) -> float:
        """Seconds spent on this run, over all its attempts."""
        return self.wall_before + time.monotonic() - self.t0

    def _row(self, step: int) -> dict[str, Any]:
        self._dirty = True  # the caller fills it in
        if self.rows and self.rows[-1]["step"] == step:
            return self.rows[-1]
        seen = step * self.spec.units_per_step
        row = {"step": step, "D_seen": seen, "C_seen": seen * self.spec.flops_per_unit}
        self.rows.append(row)
        return row

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_step or step % trainer.log_every_n_steps and step != trainer.max_steps:
            return
        pl_module.check_finite()
        now = time.monotonic()
        self.throughput = (step - self._last_step) * self.spec.units_per_step / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        loss = pl_module.last_loss
        row = self._row(step)
        row.update(train_loss=math.nan if loss is None else float(loss), lr=trainer.optimizers[0].param_groups[0]["lr"],
                   throughput=self.throughput, wall_time=self.wall_time())
        rate = f"{self.spec.unit[:3]}/s"
        self.shown.update({"train_loss": row["train_loss"], rate: self.throughput})
        if trainer.loggers:  # to the loggers (W&B), which Lightning calls on these same steps (self.log costs ms)
            pl_module.log("train_loss", row["train_loss"], on_step=True, on_epoch=False)
            pl_module.log(rate, self.throughput, rank_zero_only=True)
        if trainer.is_global_zero:
            self.flush(step, soon=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if "val_loss" not in metrics:
            return
        row = self._row(trainer.global_step)
        row.update(val_loss=float(metrics["val_loss"]), val_accuracy=float(metrics["val_accuracy"]))
        self.shown["val_loss"] = row["val_loss"]
        row.setdefault("wall_time", self.wall_time())
        if trainer.is_global_zero:
            self.flush(trainer.global_step)

    def flush(self, step: int, soon: bool = False) -> None:
        """Rewrite metrics.csv and the record's progress atomically; with `soon`, only when the
        last write is FLUSH_EVERY_S old (else it is pending)."""
        now = time.monotonic()
        if soon and now - self._flushed_at < self.FLUSH_EVERY_S:
            self._pending = step
            return
        self.folder.write_metrics(self.rows, durable=False)  # the final record is synced to disk (write_rows)
        self.folder.progress(step=step, wall_time=self.wall_time(), throughput=self.throughput)
        self._flushed_at, self._pending, self._dirty = now, None, False

    def write_rows(self) -> None:
        """Write metrics.csv (synced to disk) unless it already holds every row."""
        if self._dirty:
            self.folder.write_metrics(self.rows)
            self._dirty = False

    def flush_pending(self) -> None:
        """Write the rows that a throttled flush left pending."""
        if self._pending is not None:
            self.flush(self._pending)

    def last_val(self) -> dict[str, Any]:
        """The most recent row with a validation loss."""
        return next((r for r in reversed(self.rows) if not math.isnan(r.get("val_loss", math.nan))), {})

    def last_train_loss(self) -> Optional[float]:
        """The most recent logged training loss."""
        return next((r["train_loss"] for r in reversed(self.rows) if "train_loss" in r), None)


class ProgressBar(TQDMProgressBar):
    """Lightning's progress bar showing the recorder's latest numbers (updated on logging steps
    and validations), so that displaying them never reads the device on other steps."""

    def __init__(self, recorder: RecordMetrics):
        super().__init__()
        self.recorder = recorder

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        shown = {k: f"{v:.4g}" if k.endswith("loss") else f"{v:,.0f}" for k, v in self.recorder.shown.items()}
        return {**super().get_metrics(trainer, pl_module), **shown}
