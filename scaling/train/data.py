"""The run's data as a LightningDataModule: a fixed order that resumes exactly.

A run's training stream is samples 0..steps*batch_size-1 of its data source's fixed (nested)
order. Global batch b is samples b*B..b*B+B-1; under DDP rank r of W takes every W-th of them
(as DistributedSampler would), split into grad_accum micro-batches. The batch sampler starts
at the trainer's restored optimizer step, so a resumed run sees exactly the batches, in order,
that an uninterrupted run would; it has no length, so Lightning never ends an "epoch" early or
starts a second one (max_steps ends the run when the planned batches are used up).
"""

from __future__ import annotations

from typing import Iterator, Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from scaling.data import DataSource
from scaling.plan import RunSpec


class StepBatchSampler(Sampler[list[int]]):
    """Index lists of one rank's micro-batches from optimizer step `start_step` to the end.

    No __len__ on purpose: Lightning then treats the stream as one unbounded epoch.
    """

    def __init__(self, steps: int, batch_size: int, micro: int, rank: int, world: int, start_step: int):
        self.steps, self.batch_size, self.micro = steps, batch_size, micro
        self.rank, self.world, self.start_step = rank, world, start_step
        self._used = False

    def __iter__(self) -> Iterator[list[int]]:
        if self._used:  # a second pass would train on the planned data twice
            raise RuntimeError("the run's planned batches were already used; this is a bug in scaling")
        self._used = True
        per_rank = self.batch_size // self.world
        for step in range(self.start_step, self.steps):
            mine = [step * self.batch_size + i * self.world + self.rank for i in range(per_rank)]
            for first in range(0, per_rank, self.micro):
                yield mine[first:first + self.micro]


class RunDataModule(pl.LightningDataModule):
    """Training and validation loaders of one run (any data source)."""

    def __init__(self, data: DataSource, spec: RunSpec):
        super().__init__()
        self.data, self.spec = data, spec
        self.start_step: Optional[int] = None  # the step the last train loader started at

    def micro_batch_size(self, world_size: int) -> int:
        """Per-device batch: the global batch split over devices and accumulation steps."""
        cfg = self.spec.cfg
        parts = world_size * cfg.optim.grad_accum
        if cfg.optim.batch_size % parts:
            raise ValueError(f"optim.batch_size={cfg.optim.batch_size} is not divisible by devices x grad_accum "
                             f"({parts}); use a multiple of {parts}")
        return cfg.optim.batch_size // parts

    def train_dataloader(self) -> DataLoader:
        trainer, cfg = self.trainer, self.spec.cfg
        self.start_step = trainer.global_step  # restored from the checkpoint before loaders are built
        sampler = StepBatchSampler(self.spec.steps, cfg.optim.batch_size, self.micro_batch_size(trainer.world_size),
                                   trainer.global_rank, trainer.world_size, self.start_step)
        dataset = self.data.train_dataset(self.spec.steps * cfg.optim.batch_size)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.trainer.num_workers,
                          generator=_own_generator(cfg.seed))

    def val_dataloader(self) -> DataLoader:
        trainer, dataset = self.trainer, self.data.val_dataset()
        sampler = None
        if trainer.world_size > 1:  # each rank evaluates a shard; the logged loss is synced
            sampler = DistributedSampler(dataset, trainer.world_size, trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=max(self.micro_batch_size(trainer.world_size), 64), sampler=sampler,
                          shuffle=False, num_workers=self.spec.cfg.trainer.num_workers,
                          generator=_own_generator(self.spec.cfg.seed))


def _own_generator(seed: int) -> torch.Generator:
    """A loader's own generator: making an iterator (which draws a worker seed) must not move the
    global generator that dropout draws from, or a resumed run would draw different masks."""
    return torch.Generator().manual_seed(seed)
