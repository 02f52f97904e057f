"""A training step never waits for the device: tensors become Python numbers only where something
is recorded (logging steps); divergence is still caught at the step where it happened."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch

from scaling.plan import plan_run
from scaling.store import RunFolder
from scaling.train import train
from tests.conftest import TINY_GPT, tiny

CONVERSIONS = ("item", "__float__", "__int__", "__bool__", "tolist")
# Host-side tensors by design on every device: the non-fused optimizer's step counts (fused
# AdamW, used on CUDA, keeps them on the device) and the data loader's seeds.
HOST_SIDE = ("torch/optim/", "torch/utils/data/")


class Phase(pl.Callback):
    """Where training is: inside optimizer step k ("step", k), in the hooks after it ("end", k + 1),
    validating, or before or after training."""

    def __init__(self) -> None:
        self.step, self.validating, self.where = -1, False, "before"

    def on_train_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.where = "training"

    def on_train_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.where = "after"

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.step = trainer.global_step

    def on_validation_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.validating = True

    def on_validation_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.validating = False

    def now(self) -> tuple[str, int]:
        if self.validating or self.where != "training":
            return "validation" if self.validating else self.where, self.step
        frame = sys._getframe(2)
        while frame is not None:  # the batch-end hooks (of every callback) run after the step
            if frame.f_code.co_name == "on_train_batch_end":
                return "end", self.step + 1
            frame = frame.f_back
        return "step", self.step


def test_tensors_become_numbers_only_on_logging_steps(runs_root, monkeypatch):
    spec = plan_run(tiny(TINY_GPT, runs_root, "data.name=pystdlib", "budget.tokens=8192", "trainer.log_every=4",
                         "trainer.val_every=100", "trainer.checkpoint_every=100"))
    phase, seen = Phase(), Counter()
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if not any(part in caller for part in HOST_SIDE):
                seen[phase.now()] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    record = train(spec, callbacks=lambda checkpoint: [phase])
    monkeypatch.undo()
    assert record["status"] == "completed" and spec.steps == 32
    inside_steps = {k: n for k, n in seen.items() if k[0] == "step"}
    assert not inside_steps  # no conversion while any optimizer step runs
    after = {k[1] for k in seen if k[0] == "end"}
    assert after == {4, 8, 12, 16, 20, 24, 28, 32}  # the logging steps, and only they
    assert max(n for k, n in seen.items() if k[0] == "end") <= 2  # divergence check and the loss
    metrics = pd.read_csv(RunFolder(spec.path).metrics_path)
    assert list(metrics["step"]) == [4, 8, 12, 16, 20, 24, 28, 32] and metrics["train_loss"].notna().all()


class EveryLoss(pl.Callback):
    """The training loss of every step, read inside the step (the reference)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        assert len(self.losses) == trainer.global_step
        self.losses.append(float(loss.detach()))


def test_divergence_is_recorded_at_the_step_it_happened(runs_root):
    spec = plan_run(tiny(TINY_GPT, runs_root, "data.name=pystdlib", "budget.tokens=16384", "optim.lr=1000",
                         "optim.warmup_fraction=0", "optim.grad_clip=0", "trainer.log_every=5",
                         "trainer.checkpoint_every=3"))
    spy = EveryLoss()
    record = train(spec, callbacks=lambda checkpoint: [spy])
    first_bad = next(step for step, loss in enumerate(spy.losses) if not math.isfinite(loss))
    assert first_bad % 5 and first_bad % 3  # detected later than it happened (at the next log step)
    assert record["status"] == "diverged" and record["step"] == first_bad
    assert record["error"] == f"training loss became {spy.losses[first_bad]} at step {first_bad}"
    folder = RunFolder(spec.path)
    metrics = pd.read_csv(folder.metrics_path) if folder.metrics_path.exists() else pd.DataFrame({"step": []})
    assert (metrics["step"] <= first_bad).all()  # nothing computed after the bad step is recorded
    saved = torch.load(folder.last_checkpoint, map_location="cpu", weights_only=False)
    assert saved["global_step"] <= first_bad
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


def test_a_run_validates_its_last_step_inside_fit_and_syncs_only_its_plan_and_outcome(runs_root, monkeypatch):
    spec = plan_run(tiny(TINY_GPT, runs_root, "data.name=pystdlib", "budget.tokens=1536", "trainer.log_every=2",
                         "trainer.val_every=4", "trainer.checkpoint_every=4"))
    synced, validates, real_fsync = [], [], os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(pl.Trainer, "validate", lambda *args, **kwargs: validates.append(1))
    record = train(spec)
    monkeypatch.undo()
    assert record["status"] == "completed" and spec.steps == 6 and not validates  # no second trainer set-up
    metrics = pd.read_csv(RunFolder(spec.path).metrics_path)
    assert list(metrics.dropna(subset=["val_loss"])["step"]) == [4, 6]  # the last step validated in fit
    assert record["loss"] == metrics["val_loss"].iloc[-1]
    in_run = [Path(p).name for p in synced if Path(p).parent == Path(spec.path).resolve()]
    assert len(in_run) == 3 and sum(".config.yaml." in name for name in in_run) == 1  # planning, and the outcome
    assert sum(".record.json." in name for name in in_run) == 2
    assert torch.load(RunFolder(spec.path).last_checkpoint, map_location="cpu", weights_only=False)["global_step"] == 6
