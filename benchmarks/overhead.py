"""Framework overhead: `scaling train` (Lightning, recording, checkpoints) vs a hand-written loop.

Both train the same GPT on the same pystdlib batches for the same number of steps in one process;
the figure is the ratio of their training throughputs (tokens/s), so machine speed cancels out.

    python benchmarks/overhead.py [--width 64 --depth 2 --tokens 400000 --repeats 2]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from scaling.config import load_config
from scaling.data import build_data
from scaling.models import build_model
from scaling.plan import plan_run
from scaling.train import lr_factor, train, warmup_steps


def hand_written(spec) -> float:
    """Tokens per second of a plain PyTorch loop doing the same optimisation."""
    cfg = spec.cfg
    torch.manual_seed(cfg.seed)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data.info)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": other, "weight_decay": 0.0}], lr=cfg.optim.lr,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2))
    warm = warmup_steps(cfg, spec.steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec.steps, warm, cfg.optim.min_lr_ratio))
    loader = DataLoader(data.train_dataset(spec.steps * cfg.optim.batch_size), batch_size=cfg.optim.batch_size)
    start = time.perf_counter()
    for x, y in loader:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        schedule.step()
    return spec.D / (time.perf_counter() - start)


def framework(spec) -> float:
    """Tokens per second of `scaling train` on the same run (training time only, from the record)."""
    record = train(spec)
    return spec.D / record["wall_time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ratios = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as root:
            cfg = load_config([f"model.width={args.width}", f"model.depth={args.depth}", f"budget.tokens={args.tokens}",
                               f"run.root={root}", "trainer.progress=false", f"seed={repeat}"])
            spec = plan_run(cfg)
            plain = hand_written(spec)
            ours = framework(spec)
        ratios.append(ours / plain)
        print(f"repeat {repeat}: hand-written {plain:,.0f} tok/s, scaling train {ours:,.0f} tok/s, ratio {ours / plain:.3f}")
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"scaling train / hand-written loop throughput: {geo:.3f} (geometric mean of {len(ratios)})")


if __name__ == "__main__":
    main()
