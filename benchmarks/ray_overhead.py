"""What launcher=ray costs over launcher=local for a sweep of small runs.

    python benchmarks/ray_overhead.py [--runs 4] [--tokens 5120]

Runs the same tiny GPT grid sweep twice as `scaling sweep` commands (each in a fresh process, so
start-up is included): launcher=local with launcher.parallel=2, then launcher=ray on an embedded
Ray (cpus_per_trial=1, so 2 trials at once on 2 cores). Prints wall time per sweep, the training
time the runs recorded, and the difference per run (start-up, scheduling, process creation).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["model=gpt", "model.depth=1", "model.head_dim=16", "data.seq_len=32", "data.val_tokens=4096",
        "optim.batch_size=8", "trainer.val_every=10", "trainer.log_every=5", "trainer.checkpoint_every=10",
        "trainer.progress=false", "sweep=grid"]


def sweep(root: Path, runs: int, tokens: int, launcher: list[str]) -> tuple[float, float]:
    """(wall seconds of the whole command, training seconds summed over the runs' records)."""
    widths = ", ".join(str(16 * (i + 1)) for i in range(runs))
    command = [sys.executable, "-m", "scaling.cli", "sweep", *TINY, f"++sweep.axes={{model.width: [{widths}]}}",
               f"budget.tokens={tokens}", f"run.root={root}", *launcher]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    trained = sum(json.loads(p.read_text())["wall_time"] for p in root.glob("grid/*/record.json"))
    return wall, trained


def main() -> None:
    """Print one table row per launcher."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=5120)
    args = parser.parse_args()
    print("| launcher | runs | wall s | training s (sum) | overhead s per run |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, launcher in [("local, parallel=2", ["launcher=local", "launcher.parallel=2"]),
                           ("ray, embedded, 1 CPU per trial", ["launcher=ray"])]:
        with tempfile.TemporaryDirectory() as tmp:
            wall, trained = sweep(Path(tmp), args.runs, args.tokens, launcher)
        per_run = (wall * 2 - trained) / args.runs  # 2 at a time: slot-seconds not spent training
        print(f"| {name} | {args.runs} | {wall:.1f} | {trained:.1f} | {per_run:.1f} |")


if __name__ == "__main__":
    main()
