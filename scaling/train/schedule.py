"""Learning-rate schedules, as a factor of optim.lr per optimizer step."""

from __future__ import annotations

import math

from scaling.config import Config


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
