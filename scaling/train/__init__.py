"""Training one run with PyTorch Lightning.

  schedule.py   learning-rate schedules
  module.py     the LightningModule (any family)
  data.py       the LightningDataModule: fixed order, exact resume, DDP shards
  callbacks.py  checkpoints, metrics.csv and record progress, fault injection, batch trace
  run.py        train(spec): own the run folder, resume, fit, record the outcome
"""

from scaling.train.callbacks import AtomicCheckpoint, InjectedFailure
from scaling.train.module import Diverged, ScalingModule
from scaling.train.run import DamagedCheckpoint, Stopped, make_trainer, summary_line, train
from scaling.train.schedule import lr_factor, warmup_steps

__all__ = ["AtomicCheckpoint", "DamagedCheckpoint", "Diverged", "InjectedFailure", "ScalingModule", "Stopped",
           "lr_factor", "make_trainer", "summary_line", "train", "warmup_steps"]
