"""Framework overhead: `scaling train` (Lightning, recording, checkpoints) vs a hand-written loop.

Both train the same GPT on the same pystdlib batches for the same number of steps in one process,
and both do the same evaluation work (the held-out set at every trainer.val_every steps and at
the end); the figures are the ratios of their throughputs (tokens per wall-clock second over the whole run,
and tokens per CPU second of the process, which other jobs on a shared machine disturb less), so
machine speed cancels out. Repeats alternate which of the two goes first; the spread is reported.

    python benchmarks/overhead.py [--models 64x2,16x1 --tokens 400000 --repeats 3 --threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from scaling.config import load_config
from scaling.data import build_data
from scaling.models import build_model
from scaling.plan import plan_run
from scaling.train import train

from hand_loop import optimizer_and_schedule, step as step_once  # benchmarks/ (the script's folder)


def evaluate(model: torch.nn.Module, loader: DataLoader) -> float:
    """Mean held-out loss, as the validation step computes it (loss and accuracy per batch, in
    inference mode as Lightning validates)."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
            (logits.argmax(-1) == y).float().mean()
            total, count = total + float(loss) * x.size(0), count + x.size(0)
    model.train()
    return total / count


def hand_written(spec) -> tuple[float, float]:
    """Tokens per wall-clock and per CPU second of a plain PyTorch loop doing the same
    optimisation and evaluation."""
    cfg = spec.cfg
    torch.manual_seed(cfg.seed)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data.info)
    optimizer, schedule = optimizer_and_schedule(spec, model)
    loader = DataLoader(data.train_dataset(spec.steps * cfg.optim.batch_size), batch_size=cfg.optim.batch_size)
    val = DataLoader(data.val_dataset(), batch_size=max(cfg.optim.batch_size, 64))
    start, cpu = time.perf_counter(), time.process_time()
    for step, (x, y) in enumerate(loader, start=1):
        step_once(model, optimizer, schedule, x, y, cfg.optim.grad_clip)
        if step % cfg.trainer.val_every == 0 or step == spec.steps:
            evaluate(model, val)
    return spec.D / (time.perf_counter() - start), spec.D / (time.process_time() - cpu)


class CpuClock(pl.Callback):
    """The process's CPU time when Lightning starts fitting (its set-up counts, as in wall_time)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.start = time.process_time()


def framework(spec) -> tuple[float, float]:
    """Tokens per wall-clock second of `scaling train` on the same run (its recorded wall time:
    set-up, training, validations, metrics.csv, record.json and checkpoints), and per CPU second
    from the start of fitting to the end of train()."""
    clock = CpuClock()
    record = train(spec, callbacks=lambda checkpoint: [clock])
    return spec.D / record["wall_time"], spec.D / (time.process_time() - clock.start)


def measure(width: int, depth: int, tokens: int, repeat: int, threads: int) -> tuple[tuple[float, float], ...]:
    """(hand-written, scaling train) (wall, CPU) tokens/s for one model, in the order the repeat says."""
    with tempfile.TemporaryDirectory() as root:
        cfg = load_config([f"model.width={width}", f"model.depth={depth}", f"budget.tokens={tokens}",
                           f"run.root={root}", "trainer.progress=false", f"trainer.threads={threads}", "seed=0"])
        spec = plan_run(cfg)
        torch.set_num_threads(threads)
        if repeat % 2:
            ours, plain = framework(spec), hand_written(spec)
        else:
            plain, ours = hand_written(spec), framework(spec)
    return plain, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="64x2,16x1", help="widthxdepth, comma-separated")
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    models = [tuple(int(v) for v in m.split("x")) for m in args.models.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {args.threads}")
    ratios: dict[tuple[int, int, str], list[float]] = {(*m, clock): [] for m in models for clock in ("wall", "CPU")}
    for repeat in range(args.repeats):
        for width, depth in models:
            plain, ours = measure(width, depth, args.tokens, repeat, args.threads)
            ratios[(width, depth, "wall")].append(ours[0] / plain[0])
            ratios[(width, depth, "CPU")].append(ours[1] / plain[1])
            print(f"w{width} d{depth} repeat {repeat}: hand-written {plain[0]:,.0f} tok/s ({plain[1]:,.0f} per CPU s), "
                  f"scaling train {ours[0]:,.0f} tok/s ({ours[1]:,.0f} per CPU s), ratio {ours[0] / plain[0]:.3f} "
                  f"(CPU {ours[1] / plain[1]:.3f})  load {os.getloadavg()[0]:.1f}", flush=True)
    print("| model | clock | ratios | median | min | max |\n| --- | --- | --- | ---: | ---: | ---: |")
    for (width, depth, clock), values in ratios.items():
        print(f"| w{width} d{depth} | {clock} | {', '.join(f'{r:.3f}' for r in values)} | "
              f"{statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
    for clock in ("wall", "CPU"):
        every = [r for (*_, c), values in ratios.items() if c == clock for r in values]
        geo = math.exp(sum(math.log(r) for r in every) / len(every))
        print(f"scaling train / hand-written loop, {clock}: {geo:.3f} (geometric mean of {len(every)})")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
