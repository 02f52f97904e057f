"""Learning-rate schedules, as a factor of optim.lr per optimizer step.

Every schedule warms up linearly over its first `warmup_steps` steps, then follows its own shape
and reaches `min_ratio` at `total_steps` (constant never decays). SCHEDULES is the one place that
names them; a schedule's options beyond (step, total_steps, warmup_steps, min_ratio) are keyword
parameters named after the OptimConfig fields they come from (wsd: decay_fraction, decay_shape).
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Optional

from scaling.config import Config, ConfigError, OptimConfig

Factor = Callable[..., float]  # (step, total_steps, warmup_steps, min_ratio, **options) -> factor


def _warmup(step: int, warmup_steps: int) -> Optional[float]:
    """The warmup factor while `step` is inside the warmup, else None."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return None


def _progress(step: int, start: int, total_steps: int) -> float:
    """How far `step` is from `start` (0) to `total_steps` (1), clipped to [0, 1]."""
    return min(1.0, max(0.0, (step - start) / max(1, total_steps - start)))


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio` at `total_steps` (the default)."""
    warm = _warmup(step, warmup_steps)
    if warm is not None:
        return warm
    progress = _progress(step, warmup_steps, total_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then linear decay to `min_ratio` at `total_steps`."""
    warm = _warmup(step, warmup_steps)
    if warm is not None:
        return warm
    return min_ratio + (1.0 - min_ratio) * (1.0 - _progress(step, warmup_steps, total_steps))


def constant_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to 1, then 1 to the end (no decay; `min_ratio` is not used)."""
    warm = _warmup(step, warmup_steps)
    return 1.0 if warm is None else warm


# The cooldown's shape: the factor above the floor, from 1 at the start of the decay to 0 at its end.
DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda progress: 1.0 - progress,
    "sqrt": lambda progress: 1.0 - math.sqrt(progress),  # "1 - sqrt" (Hägele et al. 2024)
}


def decay_start(total_steps: int, decay_fraction: float) -> int:
    """The step at which wsd's decay begins: the last ceil(decay_fraction x total_steps) steps decay."""
    return total_steps - math.ceil(round(decay_fraction * total_steps, 9))


def wsd_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float,
               decay_fraction: float = 0.2, decay_shape: str = "linear") -> float:
    """Warmup-stable-decay: warmup to 1, 1 until `decay_start`, then decay to `min_ratio` at the end."""
    warm = _warmup(step, warmup_steps)
    if warm is not None:
        return warm
    start = decay_start(total_steps, decay_fraction)
    if step <= start:
        return 1.0
    return min_ratio + (1.0 - min_ratio) * DECAY_SHAPES[decay_shape](_progress(step, start, total_steps))


SCHEDULES: dict[str, Factor] = {
    "cosine": lr_factor,
    "wsd": wsd_factor,
    "constant": constant_factor,
    "linear": linear_factor,
}


def warmup_steps(cfg: Config, total_steps: int) -> int:
    """Warmup length in optimizer steps (explicit steps win over the fraction)."""
    if cfg.optim.warmup_steps is not None:
        return min(cfg.optim.warmup_steps, total_steps)
    return int(math.ceil(cfg.optim.warmup_fraction * total_steps))


def schedule_options(optim: OptimConfig) -> dict[str, object]:
    """The schedule's own options (its keyword parameters), read from the OptimConfig fields of that name."""
    params = list(inspect.signature(SCHEDULES[optim.schedule]).parameters)[4:]
    return {name: getattr(optim, name) for name in params}


def unused_options(optim: OptimConfig) -> set[str]:
    """OptimConfig fields that only other schedules read (a cosine run ignores wsd's decay_shape)."""
    every = {name for factor in SCHEDULES.values() for name in list(inspect.signature(factor).parameters)[4:]}
    return every - set(schedule_options(optim))


def check_schedule(optim: OptimConfig, total_steps: int, warmup: int) -> None:
    """Refuse a schedule that cannot fit in `total_steps` (wsd: the warmup must end before the decay)."""
    if optim.schedule != "wsd" or warmup <= decay_start(total_steps, optim.decay_fraction):
        return
    key = "optim.warmup_steps" if optim.warmup_steps is not None else "optim.warmup_fraction"
    raise ConfigError(
        f"{key}={getattr(optim, key[6:])} gives {warmup} warmup steps, longer than wsd's stable phase "
        f"(its decay starts at step {decay_start(total_steps, optim.decay_fraction)} of {total_steps}); "
        f"lower {key} or optim.decay_fraction")


def schedule_for(cfg: Config, total_steps: int) -> Callable[[int], float]:
    """cfg.optim.schedule as a function of the optimizer step alone (what LambdaLR calls)."""
    optim = cfg.optim
    warmup = warmup_steps(cfg, total_steps)
    check_schedule(optim, total_steps, warmup)
    factor, options = SCHEDULES[optim.schedule], schedule_options(optim)

    def at(step: int) -> float:
        return factor(step, total_steps, warmup, optim.min_lr_ratio, **options)

    return at
