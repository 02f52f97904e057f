"""Scale of the run table: load_runs, `scaling status`, `scaling fit` and `scaling report` on 1k-10k runs.

Writes N synthetic run folders (a completed record.json shaped as `scaling train` writes it, and a
metrics.csv of --rows logged steps) through `scaling.store.RunFolder`, laid out as IsoFLOP profiles
of Chinchilla's law with 1% noise (`scaling.analysis.synthetic`: N / 100 budgets x 20 sizes x 5
seeds), then times each command as a whole
process (imports included) under /usr/bin/time, with its peak resident memory.

    python benchmarks/table_scale.py [--runs 1000,3000,10000] [--rows 200] [--root /tmp/scaling-table-scale]

The folders are kept under --root between invocations (written once per N); pass --fresh to rewrite.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scaling.analysis.laws import chinchilla_loss
from scaling.analysis.synthetic import TRUTH, isoflop_table
from scaling.store import RunFolder

REPO = Path(__file__).resolve().parents[1]
SIZES, SEEDS = 20, 5  # IsoFLOP profiles: N / 100 compute budgets x 20 sizes x 5 seeds


def record_for(row: dict, index: int, rows: int) -> dict:
    """A completed run's record, with the fields and sizes a real `scaling train` record has."""
    tokens = int(row["D"])
    steps = rows * 10
    wall = 60.0 + row["C"] / 1e13
    return {
        "C": float(row["C"]), "D": tokens, "D_unique": tokens, "N": int(row["N"]), "N_nonembed": int(row["N"] * 0.8),
        "attempts": 1, "batch_size": 32, "budget_flops": float(row["C"]), "data": "pystdlib", "depth": 2,
        "error": None, "family": "gpt", "flops_per_unit": 6.0 * row["N"],
        "hardware": {"device": "cpu", "host": "bench", "num_nodes": 1, "platform": "Linux", "precision": "32-true",
                     "threads": 1, "world_size": 1},
        "loss": float(row["loss"]), "lr": 0.003,
        "owner": {"host": "bench", "pid": 1000 + index, "since": 1.7e9},
        "parametrization": "sp", "run_id": hashlib.sha1(str(index).encode()).hexdigest()[:10],
        "seed": int(row["seed"]), "seq_len": 128, "started": 1.7e9, "finished": 1.7e9 + wall, "updated": 1.7e9 + wall,
        "status": "completed", "step": steps, "steps": steps, "sweep": "scale", "throughput": tokens / wall,
        "tokens_per_param": tokens / row["N"], "train_loss": float(row["loss"]) * 1.01, "unit": "tokens",
        "units_per_step": max(1, tokens // steps), "val_accuracy": 0.4,
        "versions": {"lightning": "2.6.6", "python": "3.11.7", "scaling": "0.1.0", "torch": "2.14.1"},
        "wall_time": wall, "width": 32 * (1 + int(row["width"])),
    }


def metric_rows(record: dict, rows: int, rng: np.random.Generator) -> list[dict]:
    """`rows` logged steps (every 10th step), a validation every 5th row and at the end."""
    steps = np.arange(1, rows + 1) * 10
    seen = steps * record["units_per_step"]
    truth = chinchilla_loss(float(record["N"]), seen.astype(float), **TRUTH)
    train = truth * np.exp(0.02 * rng.standard_normal(rows))
    val = truth * np.exp(0.005 * rng.standard_normal(rows))
    lr = 0.003 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * steps / steps[-1])))
    out = []
    for i in range(rows):
        validated = (i + 1) % 5 == 0 or i == rows - 1
        out.append({"step": int(steps[i]), "D_seen": int(seen[i]), "C_seen": float(seen[i] * record["flops_per_unit"]),
                    "train_loss": float(train[i]), "val_loss": float(val[i]) if validated else math.nan,
                    "val_accuracy": 0.4 if validated else math.nan, "lr": float(lr[i]),
                    "throughput": record["throughput"], "wall_time": record["wall_time"] * (i + 1) / rows})
    return out


def write_runs(root: Path, count: int, rows: int) -> float:
    """Write `count` run folders under root/scale (once: kept when already complete); seconds taken."""
    sweep = root / "scale"
    if sweep.is_dir() and sum(1 for _ in sweep.iterdir()) == count:
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    budgets = np.geomspace(1e15, 1e19, max(1, math.ceil(count / (SIZES * SEEDS))))
    table = isoflop_table(budgets=budgets, sizes=SIZES, seeds=SEEDS, noise=0.01, seed=count).head(count)
    rng = np.random.default_rng(count)
    for index, row in enumerate(table.to_dict("records")):
        record = record_for(row, index, rows)
        folder = RunFolder(sweep / record["run_id"])
        folder.write_record(record)
        folder.write_metrics(metric_rows(record, rows, rng))
    return time.perf_counter() - start


def timed(command: list[str], repeats: int) -> tuple[list[float], float]:
    """(wall seconds of each repeat, peak RSS in MiB over them) of a whole process."""
    walls, peak = [], 0.0
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile("r") as out:
            done = subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%e %M", *command], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
            seconds, kib = out.read().split()[-2:]
        walls.append(float(seconds))
        peak = max(peak, int(kib) / 1024)
    return walls, peak


def commands(root: Path, bootstrap: int) -> dict[str, list[str]]:
    python = sys.executable
    sweep = str(root / "scale")
    report = str(root / "report")
    return {
        "load_runs": [python, "-c", "import sys; from scaling.store import load_runs; load_runs(sys.argv[1])", sweep],
        "load_runs(curves)": [python, "-c",
                              "import sys; from scaling.store import load_runs; load_runs(sys.argv[1], curves=True)",
                              sweep],
        "scaling status": [python, "-m", "scaling.cli", "status", sweep],
        f"scaling fit --bootstrap {bootstrap}": [python, "-m", "scaling.cli", "fit", sweep, "--law", "chinchilla",
                                                 "--bootstrap", str(bootstrap)],
        "scaling report": [python, "-m", "scaling.cli", "report", sweep, "-o", report],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1000,3000,10000")
    parser.add_argument("--rows", type=int, default=200, help="logged steps per run's metrics.csv")
    parser.add_argument("--root", default=str(Path(tempfile.gettempdir()) / "scaling-table-scale"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated command names to time (default: all)")
    parser.add_argument("--fresh", action="store_true", help="rewrite the run folders")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.rows} metric rows per run", flush=True)
    results: dict[str, dict[int, tuple[list[float], float]]] = {}
    counts = [int(n) for n in args.runs.split(",")]
    for count in counts:
        root = Path(args.root) / f"n{count}"
        if args.fresh:
            shutil.rmtree(root, ignore_errors=True)
        took = write_runs(root, count, args.rows)
        size = sum(f.stat().st_size for f in (root / "scale").rglob("*") if f.is_file()) / 2**20
        print(f"{count} runs in {root / 'scale'} ({size:.0f} MiB){f', written in {took:.0f} s' if took else ''}",
              flush=True)
        for name, command in commands(root, args.bootstrap).items():
            if args.only and not any(name.startswith(o) for o in args.only.split(",")):
                continue
            walls, peak = timed(command, args.repeats)
            results.setdefault(name, {})[count] = (walls, peak)
            print(f"  {name}: {' '.join(f'{w:.2f}' for w in walls)} s, peak {peak:.0f} MiB "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("\n| command | " + " | ".join(f"{n:,} runs: s (peak MiB)" for n in counts) + " |")
    print("| --- | " + " | ".join("---:" for _ in counts) + " |")
    for name, by_count in results.items():
        cells = []
        for n in counts:
            if n in by_count:
                walls, peak = by_count[n]
                cells.append(f"{statistics.median(walls):.1f} ({peak:,.0f})")
            else:
                cells.append("")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
