"""The hand-written PyTorch loop the benchmarks compare `scaling train` with (overhead.py on CPU, gpu.py).

One optimizer step as a plain loop writes it: the run's AdamW parameter groups and schedule, cross-entropy in
float32, gradient clipping. Imported by the benchmark scripts (run as `python benchmarks/NAME.py`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from scaling.models import param_groups
from scaling.train.schedule import schedule_for


def optimizer_and_schedule(spec: Any, model: torch.nn.Module, fused: bool = False) -> tuple[Any, Any]:
    """AdamW over the family's parameter groups, and the run's learning-rate schedule per step."""
    cfg = spec.cfg
    optimizer = torch.optim.AdamW(param_groups(cfg.model, model, cfg.optim), lr=cfg.optim.lr,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps, fused=fused)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_for(cfg, spec.steps))


def step(model: torch.nn.Module, optimizer: Any, schedule: Any, x: torch.Tensor, y: torch.Tensor,
         grad_clip: float, autocast: Any = None) -> None:
    """One optimizer step on the batch (x, y), under `autocast` when given."""
    with autocast if autocast is not None else contextlib.nullcontext():
        logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    schedule.step()
