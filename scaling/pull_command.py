"""`scaling pull wandb:ENTITY/PROJECT[/GROUP] -o runs.parquet`: the run table from Weights & Biases.

The table has the columns of `scaling.store.load_runs` (run_id, sweep, status, family, width,
depth, seed, N, N_nonembed, D, D_unique, C, loss, ...), so `scaling fit` and `scaling report`
read the file as they read a sweep folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def configure_pull_parser(parser: argparse.ArgumentParser) -> None:
    """Add `scaling pull`'s arguments to parser."""
    parser.add_argument("source", help="wandb:ENTITY/PROJECT, or wandb:ENTITY/PROJECT/GROUP for one sweep "
                                       "(the group is the sweep name)")
    parser.add_argument("-o", "--output", default="runs.parquet",
                        help="where to write the run table: .parquet (default runs.parquet) or .csv")


def write_table(table: Any, path: Path) -> None:
    """Write the run table as Parquet (or CSV for a .csv path), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


def run_pull(args: argparse.Namespace, api: Any = None) -> int:
    """Run `scaling pull`; 0 on success, 2 with one line on stderr otherwise. `api` stands in for wandb.Api()."""
    from scaling.tracking import parse_wandb_path, pull_runs

    output = Path(args.output)
    if output.suffix not in TABLE_SUFFIXES:
        return _error(f"-o {output}: the run table is written as .parquet or .csv; name the file runs.parquet")
    try:
        parse_wandb_path(args.source)
        table = pull_runs(args.source, api=api)
    except ValueError as error:
        return _error(str(error))
    except Exception as error:  # the W&B client raises its own types for auth, network and missing projects
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return _error(f"W&B could not list the runs of {args.source}: {first} (check the path, and `wandb login` "
                      "or WANDB_API_KEY)")
    if table.empty:
        return _error(f"{args.source} has no runs; check ENTITY/PROJECT and the group (the sweep name)")
    write_table(table, output)
    counts = table["status"].value_counts()
    statuses = ", ".join(f"{n} {status}" for status, n in counts.items())
    sweeps = sorted(map(str, table["sweep"].dropna().unique()))
    print(f"pulled {len(table)} runs ({statuses}) of {'sweep' if len(sweeps) == 1 else 'sweeps'} "
          f"{', '.join(sweeps)} from {args.source} -> {output}")
    return 0


def _error(message: str) -> int:
    print(f"scaling pull: error: {message}", file=sys.stderr)
    return 2
