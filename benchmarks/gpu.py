"""GPU throughput and MFU of `scaling train` against a hand-written loop, packing and 1-GPU DDP.

Run by benchmarks/gpu.sh (one call, at most 8 minutes on one GPU); `--dry` runs every case on
the CPU at tiny sizes for a few steps, to prove the script works where no GPU is lent. Prints one
table: tokens/s, and MFU = tokens/s x the run's own FLOPs per token (scaling.accounting, as
recorded in record.json) / the device's dense bf16 peak.

    python benchmarks/gpu.py [--dry] [--peak FLOPS]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch

from scaling.config import load_config
from scaling.data import build_data
from scaling.models import build_model
from scaling.plan import plan_run
from scaling.store import RunFolder, find_run_folders
from scaling.train import train

from hand_loop import optimizer_and_schedule, step as step_once  # benchmarks/ (the script's folder)

REPO = Path(__file__).resolve().parents[1]
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "GH200": 989.4e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10G": 70e12, "4090": 165e12}  # dense bf16 tensor-core peaks (SXM where there are two)


def peak_flops(given: Optional[float]) -> Optional[float]:
    if given:
        return given
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sizes(dry: bool) -> dict[str, Any]:
    """Every case's settings: real ones, or tiny CPU ones for --dry."""
    if dry:
        return {"trainer": ["trainer=cpu", "trainer.threads=1"], "compile": False, "big": ["model.width=32",
                "model.depth=1", "model.head_dim=16"], "seq": 64, "batch": 4, "big_steps": 12, "log_every": 2,
                "small": ["model.width=16", "model.depth=1", "model.head_dim=8", "data.seq_len=32",
                          "optim.batch_size=8"], "small_tokens": 8 * 32 * 10, "pack": 2, "ddp": ["trainer=cpu"],
                "val_tokens": 1024}
    return {"trainer": ["trainer=gpu"], "compile": True,
            "big": ["model.preset=gpt2-small"], "seq": 1024, "batch": 16, "big_steps": 120, "log_every": 10,
            "small": ["model.width=128", "model.depth=4", "model.head_dim=32", "data.seq_len=256",
                      "optim.batch_size=32"], "small_tokens": 32 * 256 * 400, "pack": 4,
            "ddp": ["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=1", "trainer.precision=bf16-mixed"],
            "val_tokens": 65536}


def steady(rows: list[dict[str, Any]]) -> float:
    """Median logged throughput after the first two logging intervals (compilation, warm-up)."""
    values = [r["throughput"] for r in rows if r.get("throughput") == r.get("throughput") and r.get("throughput")]
    return statistics.median(values[2:] or values)


def hand_written(spec, compile_model: bool, warmup: int) -> float:
    """Tokens/s of a plain loop (bf16 autocast on CUDA, fused AdamW, clipping, the schedule), after warm-up."""
    cfg = spec.cfg
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    torch.manual_seed(cfg.seed)
    data = build_data(cfg.data)
    model = build_model(cfg.model, data.info).to(device)
    if compile_model:
        model.compile()
    optimizer, schedule = optimizer_and_schedule(spec, model, fused=device == "cuda")
    loader = torch.utils.data.DataLoader(data.train_dataset(spec.steps * cfg.optim.batch_size),
                                         batch_size=cfg.optim.batch_size, pin_memory=device == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    start = None
    for step, (x, y) in enumerate(loader):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        step_once(model, optimizer, schedule, x, y, cfg.optim.grad_clip, autocast)
    if device == "cuda":
        torch.cuda.synchronize()
    return (spec.steps - warmup) * spec.units_per_step / (time.perf_counter() - start)


def config(root: str, *overrides: str) -> Any:
    return load_config([*overrides, f"run.root={root}", "trainer.progress=false"])


def sweep(root: str, base: list[str], runs: int, parallel: int) -> tuple[float, float]:
    """(tokens/s of the whole sweep, mean FLOPs per token) of `runs` seeds, `parallel` at a time, start-up included."""
    command = [sys.executable, "-m", "scaling.cli", "sweep", *base, f"seed=range({runs})", "launcher=local",
               f"launcher.parallel={parallel}", f"run.root={root}", "trainer.progress=false"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    records = [f.read_record() for f in find_run_folders(root)]
    tokens = sum(r["D"] for r in records)
    return tokens / wall, statistics.mean(r["flops_per_unit"] for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU, a few steps (proves the script)")
    parser.add_argument("--peak", type=float, help="the device's dense bf16 FLOP/s (default: from its name)")
    args = parser.parse_args()
    s, peak = sizes(args.dry), peak_flops(args.peak)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.dry else "cpu (dry run)"
    print(f"device: {device}; bf16 peak {peak / 1e12:.0f} TFLOP/s" if peak else f"device: {device}; peak unknown",
          flush=True)
    rows: list[tuple[str, float, float]] = []

    def add(name: str, tokens_s: float, flops_per_token: float) -> None:
        rows.append((name, tokens_s, flops_per_token))
        print(f"  {name}: {tokens_s:,.0f} tok/s", flush=True)

    compile_flag = f"trainer.compile={str(s['compile']).lower()}"
    with tempfile.TemporaryDirectory() as root:
        # 1. the big model: scaling train (steady state from metrics.csv) vs the hand-written loop
        base = [*s["trainer"], *s["big"], f"data.seq_len={s['seq']}", f"optim.batch_size={s['batch']}", compile_flag,
                f"budget.tokens={s['big_steps'] * s['batch'] * s['seq']}", f"trainer.log_every={s['log_every']}",
                f"trainer.val_every={s['big_steps']}", f"trainer.checkpoint_every={s['big_steps']}",
                f"data.val_tokens={s['val_tokens']}"]
        spec = plan_run(config(f"{root}/big", *base))
        train(spec)
        ours = steady(RunFolder(spec.path).read_metrics())
        label = "gpt2-small 124M seq 1024 bf16 compiled" if not args.dry else "tiny gpt (dry)"
        add(f"scaling train, {label}", ours, spec.flops_per_unit)
        if s["compile"]:
            torch._dynamo.reset()
        plain = hand_written(spec, s["compile"], warmup=20 if not args.dry else 2)
        add(f"hand-written loop, {label}", plain, spec.flops_per_unit)
        # 2. a small model: its runs one at a time, then packed on the one device
        small = [*s["trainer"], *s["small"], f"budget.tokens={s['small_tokens']}", "trainer.log_every=50",
                 f"data.val_tokens={s['val_tokens']}"]
        one, fpt = sweep(f"{root}/one", small, s["pack"], 1)
        add(f"{s['pack']} small runs (w{s['small'][0].split('=')[1]}), one at a time (sweep, start-up included)", one, fpt)
        packed, fpt = sweep(f"{root}/packed", small, s["pack"], s["pack"])
        add(f"{s['pack']} small runs, {s['pack']} at once on one device (launcher.parallel)", packed, fpt)
        # 3. DDP on one device (the strategy's own cost)
        ddp = [*s["ddp"], *s["small"], f"budget.tokens={s['small_tokens']}", "trainer.log_every=10",
               f"data.val_tokens={s['val_tokens']}"]
        spec = plan_run(config(f"{root}/ddp", *ddp))
        command = [sys.executable, "-m", "scaling.cli", "train", *ddp, f"run.root={root}/ddp", "trainer.progress=false"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        add("small run, 1-GPU DDP strategy" if not args.dry else "small run, DDP strategy (1 process, dry)",
            steady(RunFolder(spec.path).read_metrics()), spec.flops_per_unit)
    print("\n| case | tokens/s | MFU |\n| --- | ---: | ---: |")
    for name, tokens_s, fpt in rows:
        mfu = f"{tokens_s * fpt / peak:.1%}" if peak else "n/a"
        print(f"| {name} | {tokens_s:,.0f} | {mfu} |")
    print(f"\nscaling train / hand-written: {rows[0][1] / rows[1][1]:.3f}; packing speed-up: {rows[3][1] / rows[2][1]:.2f}x")
    print(json.dumps({"device": device, "rows": rows}))


if __name__ == "__main__":
    main()
