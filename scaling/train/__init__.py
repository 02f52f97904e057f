"""Training one run with PyTorch Lightning.

  schedule.py   learning-rate schedules (no Lightning: planning reads them)
  module.py     the LightningModule (any family)
  data.py       the LightningDataModule: fixed order, exact resume, DDP shards
  callbacks.py  checkpoints, metrics.csv and record progress, fault injection, batch trace
  run.py        train(spec): own the run folder, resume or branch, fit, record the outcome
  wandb_logger.py  logger=wandb: the Lightning WandbLogger of a run (what it sends: scaling.tracking)

Names are imported on first use, so that `scaling.train.schedule` costs no Lightning import.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"AtomicCheckpoint": "callbacks", "InjectedFailure": "callbacks", "Diverged": "module",
          "ScalingModule": "module", "DamagedCheckpoint": "run", "Stopped": "run", "make_trainer": "run",
          "summary_line": "run", "train": "run", "lr_factor": "schedule", "warmup_steps": "schedule"}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'scaling.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scaling.train.{_HOMES[name]}"), name)
