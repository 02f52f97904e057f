"""One training run: the LightningModule, the Trainer factory and the callbacks that record it."""

from __future__ import annotations

import logging
import math
import os
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
import torch.nn.functional as F
from torch.utils.data import DataLoader

from scaling.config import Config, to_yaml
from scaling.plan import RunSpec
from scaling.store import RunFolder

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


# ------------------------------------------------------------------------- schedule


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio` at `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps(cfg: Config, total_steps: int) -> int:
    """Warmup length in optimizer steps (explicit steps win over the fraction)."""
    if cfg.optim.warmup_steps is not None:
        return min(cfg.optim.warmup_steps, total_steps)
    return int(math.ceil(cfg.optim.warmup_fraction * total_steps))


# -------------------------------------------------------------------- LightningModule


class ScalingModule(pl.LightningModule):
    """Trains any model family: next-byte prediction for text, classification for images."""

    def __init__(self, model: torch.nn.Module, spec: RunSpec):
        super().__init__()
        self.model = model
        self.spec = spec
        self.kind = spec.cfg.data.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self.model(x)  # text: [B, T, V]; image: [B, classes]
        if self.kind == "text":
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
            correct = (logits.argmax(-1) == y).float().mean()
        else:
            loss = F.cross_entropy(logits.float(), y)
            correct = (logits.argmax(-1) == y).float().mean()
        return loss, correct

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss became {loss.item()} at step {self.global_step}")
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, correct = self._loss(batch)
        size = batch[0].size(0)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val_accuracy", correct, sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> Any:
        cfg = self.spec.cfg.optim
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        total, warm = self.spec.steps, warmup_steps(self.spec.cfg, self.spec.steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, warm, cfg.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


# -------------------------------------------------------------------------- callbacks


class AtomicCheckpoint(pl.Callback):
    """Saves checkpoints/last.ckpt every N optimizer steps via a temporary file and a rename."""

    def __init__(self, folder: RunFolder, every: int):
        self.folder, self.every, self._saved_step = folder, every, -1

    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint now (a collective call under DDP; rank 0 renames)."""
        target = self.folder.last_checkpoint
        tmp = target.with_name(".last.ckpt.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, target)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step != self._saved_step and step % self.every == 0 and step < trainer.max_steps:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # On Ctrl-C keep the progress made since the last checkpoint (single process only:
        # a collective save cannot be trusted while other ranks may be gone).
        if isinstance(exception, KeyboardInterrupt) and trainer.world_size == 1 and trainer.global_step > self._saved_step:
            self.save(trainer)


class InjectedFailure(RuntimeError):
    """A failure asked for by trainer.fail_at_step (for testing recovery)."""


class FailAtStep(pl.Callback):
    """Raise at a given optimizer step on the first `attempts` attempts of a run (fault injection)."""

    def __init__(self, step: int, attempts: int, attempt: int):
        self.step, self.active = step, attempt <= attempts

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.active and trainer.global_step >= self.step:
            raise InjectedFailure(f"injected failure at step {trainer.global_step} (trainer.fail_at_step)")


class RecordMetrics(pl.Callback):
    """Writes metrics.csv (one row per logged step) and keeps record.json's progress fields."""

    def __init__(self, folder: RunFolder, spec: RunSpec, start_step: int, wall_before: float):
        self.folder, self.spec = folder, spec
        self.rows = [r for r in folder.read_metrics() if r.get("step", 0) <= start_step]
        self.wall_before = wall_before
        self.t0 = time.monotonic()
        self._last_time, self._last_step = self.t0, start_step
        self.throughput = math.nan

    def wall_time(self) -> float:
        """Seconds spent on this run, over all its attempts."""
        return self.wall_before + time.monotonic() - self.t0

    def _row(self, step: int) -> dict[str, Any]:
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
        now = time.monotonic()
        self.throughput = (step - self._last_step) * self.spec.units_per_step / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        metrics = trainer.callback_metrics
        row = self._row(step)
        row.update(train_loss=float(metrics.get("train_loss", math.nan)), lr=trainer.optimizers[0].param_groups[0]["lr"],
                   throughput=self.throughput, wall_time=self.wall_time())
        pl_module.log(f"{self.spec.unit[:3]}/s", self.throughput, prog_bar=True, rank_zero_only=True)
        if trainer.is_global_zero:
            self.flush(step)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if "val_loss" not in metrics:
            return
        row = self._row(trainer.global_step)
        row.update(val_loss=float(metrics["val_loss"]), val_accuracy=float(metrics["val_accuracy"]))
        row.setdefault("wall_time", self.wall_time())
        if trainer.is_global_zero:
            self.flush(trainer.global_step)

    def flush(self, step: int) -> None:
        """Rewrite metrics.csv and the record's progress atomically."""
        self.folder.write_metrics(self.rows)
        self.folder.update_record(step=step, wall_time=self.wall_time(), throughput=self.throughput)

    def last_val(self) -> dict[str, Any]:
        """The most recent row with a validation loss."""
        return next((r for r in reversed(self.rows) if not math.isnan(r.get("val_loss", math.nan))), {})


# ----------------------------------------------------------------------------- run


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
        use_distributed_sampler=True, deterministic=False,
    )
    kwargs.update(overrides or {})
    return pl.Trainer(**kwargs)


def micro_batch_size(spec: RunSpec, world_size: int) -> int:
    """Per-device batch: the global batch split over devices and accumulation steps."""
    cfg = spec.cfg
    parts = world_size * cfg.optim.grad_accum
    if cfg.optim.batch_size % parts:
        raise ValueError(f"optim.batch_size={cfg.optim.batch_size} is not divisible by devices x grad_accum "
                         f"({parts}); use a multiple of {parts}")
    return cfg.optim.batch_size // parts


def checkpoint_step(path: Path) -> int:
    """The optimizer step a checkpoint was saved at (0 when there is none)."""
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))


def train(spec: RunSpec, loggers_factory: Optional[Callable[[RunSpec], Any]] = None,
          extra_callbacks: Optional[list[pl.Callback]] = None,
          trainer_overrides: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Train one run into its folder: skip if completed, resume if a checkpoint exists.

    Returns the final record. Raises on failure after recording it (status failed or diverged).
    `trainer_overrides` go to the Lightning Trainer (launchers use them for strategy and plugins).
    """
    from scaling.data import build_data
    from scaling.models import build_model

    cfg = spec.cfg
    folder = RunFolder(spec.path)
    previous = folder.read_record()
    if previous.get("status") == "completed":
        print(f"nothing to do, already {summary_line(previous, folder.path)}", flush=True)
        return previous
    quiet_lightning()
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data.info)
    start = checkpoint_step(folder.last_checkpoint)
    recorder = RecordMetrics(folder, spec, start, float(previous.get("wall_time") or 0.0) if start else 0.0)
    checkpoint = AtomicCheckpoint(folder, cfg.trainer.checkpoint_every)
    callbacks = [recorder, checkpoint, *(extra_callbacks or [])]
    if cfg.trainer.fail_at_step is not None:
        attempt = int(previous.get("attempts") or 0) + 1
        callbacks.append(FailAtStep(cfg.trainer.fail_at_step, cfg.trainer.fail_attempts, attempt))
    loggers = loggers_factory(spec) if loggers_factory else False
    trainer = make_trainer(spec, callbacks, loggers, trainer_overrides)
    if trainer.is_global_zero:
        folder.write_config(to_yaml(cfg))
        folder.write_record(initial_record(spec, previous, start, trainer))
    micro = micro_batch_size(spec, trainer.world_size)
    train_loader = DataLoader(data.train_dataset(spec.steps * cfg.optim.batch_size, start * cfg.optim.batch_size),
                              batch_size=micro, shuffle=False, num_workers=cfg.trainer.num_workers, drop_last=True)
    val_loader = DataLoader(data.val_dataset(), batch_size=max(micro, 64), shuffle=False,
                            num_workers=cfg.trainer.num_workers)
    module = ScalingModule(model, spec)
    try:
        ckpt = str(folder.last_checkpoint) if start else None
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt)
        if recorder.last_val().get("step") != trainer.global_step:
            trainer.validate(module, dataloaders=val_loader, verbose=False)
    except Diverged as exc:
        return finish(folder, recorder, trainer, "diverged", error=str(exc))
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        finish(folder, recorder, trainer, "interrupted", error="interrupted (Ctrl-C or SIGINT)")
        raise
    except Exception as exc:
        finish(folder, recorder, trainer, "failed", error=error_text(exc))
        raise
    if trainer.interrupted:  # Lightning caught a signal and stopped early
        finish(folder, recorder, trainer, "interrupted", error="interrupted by a signal")
        raise KeyboardInterrupt
    return finish(folder, recorder, trainer, "completed")


def initial_record(spec: RunSpec, previous: dict[str, Any], start: int, trainer: pl.Trainer) -> dict[str, Any]:
    """The record written when a run starts or resumes."""
    cfg = spec.cfg
    record = {**previous, **spec.summary(), "status": "running", "unit": spec.unit,
              "flops_per_unit": spec.flops_per_unit, "budget_flops": cfg.budget.flops,
              "lr": cfg.optim.lr, "batch_size": cfg.optim.batch_size, "seq_len": getattr(cfg.data, "seq_len", None),
              "data": cfg.data.name, "hardware": hardware(trainer), "versions": versions(),
              "started": previous.get("started") or time.time(), "step": start, "error": None,
              "attempts": int(previous.get("attempts") or 0) + 1}
    if start:
        record["resumed_from_step"] = start
        record.setdefault("resumes", [])
        record["resumes"] = [*record["resumes"], start]
    return record


def finish(folder: RunFolder, recorder: RecordMetrics, trainer: pl.Trainer, status: str,
           error: Optional[str] = None) -> dict[str, Any]:
    """Write the final record (rank 0) and print the one-line summary."""
    if not trainer.is_global_zero:
        return {}
    folder.write_metrics(recorder.rows)
    last = recorder.last_val()
    record = folder.update_record(
        status=status, error=error, step=trainer.global_step, wall_time=recorder.wall_time(),
        throughput=recorder.throughput, loss=last.get("val_loss"), val_accuracy=last.get("val_accuracy"),
        train_loss=next((r["train_loss"] for r in reversed(recorder.rows) if "train_loss" in r), None),
        finished=time.time())
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
            f"val_loss={loss_text}{acc_text} in {record.get('wall_time', 0):.1f}s -> {path}")


def error_text(exc: BaseException) -> str:
    """The exception's message and the tail of its traceback, for the record."""
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[-4000:]


def quiet_lightning() -> None:
    """Silence Lightning's start-up chatter and warnings that do not apply to these runs."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*exists and is not empty.*", ".*checkpoint that ended before the epoch ended.*",
                    ".*LeafSpec.*", ".*isinstance.*treespec.*", ".*GPU available but not used.*",
                    ".*`srun` command is available on your system but is not used.*",
                    r".*Using `DistributedSampler` with the dataloaders. During `trainer.validate\(\)`.*"):
        warnings.filterwarnings("ignore", message=pattern)
