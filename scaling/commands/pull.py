"""`scaling pull wandb:ENTITY/PROJECT[/GROUP] -o runs.parquet`: the run table from Weights & Biases.

The table has the columns of `scaling.store.load_runs` (run_id, sweep, status, family, width,
depth, seed, N, N_nonembed, D, D_unique, C, loss, ...), so `scaling fit` and `scaling report`
read the file as they read a sweep folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scaling.commands.base import Command, writable_file
from scaling.commands.errors import UsageError, guarded
from scaling.format import first_line, format_counts


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling pull`'s arguments."""
    parser.add_argument("source", help="wandb:ENTITY/PROJECT, or wandb:ENTITY/PROJECT/GROUP for one sweep "
                                       "(the group is the sweep name)")
    parser.add_argument("-o", "--output", default="runs.parquet",
                        help="where to write the run table: .parquet (default runs.parquet) or .csv")


@guarded
def run(args: argparse.Namespace) -> int:
    """Pull the runs and write the table."""
    output = _output(Path(args.output))
    table = _pull(args.source)
    write_table(table, output)
    counts = table["status"].value_counts()
    sweeps = sorted(map(str, table["sweep"].dropna().unique()))
    print(f"pulled {len(table)} runs ({format_counts(counts.items())}) of "
          f"{'sweep' if len(sweeps) == 1 else 'sweeps'} {', '.join(sweeps)} from {args.source} -> {output}")
    return 0


def _output(output: Path) -> Path:
    """The output file, checked before anything is pulled."""
    if output.suffix not in (".parquet", ".pq", ".csv"):
        raise UsageError(f"-o {output}: the run table is written as .parquet or .csv; name the file runs.parquet")
    return writable_file(output, "-o")


def _pull(source: str) -> Any:
    """The run table of a W&B path; every failure of the W&B client is one line."""
    from scaling.store import load_runs
    from scaling.tracking import parse_wandb_path

    try:
        parse_wandb_path(source)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        table = load_runs(source)
    except Exception as error:  # the W&B client raises its own types for auth, network and missing projects
        reason = first_line(error) or type(error).__name__
        raise UsageError(f"W&B could not list the runs of {source}: {reason} (check the path, and `wandb login` "
                         "or WANDB_API_KEY)") from None
    if table.empty:
        raise UsageError(f"{source} has no runs; check ENTITY/PROJECT and the group (the sweep name)")
    return table


def write_table(table: Any, path: Path) -> None:
    """Write the run table as Parquet (or CSV for a .csv path), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


COMMAND = Command(name="pull", synopsis="wandb:ENTITY/PROJECT", help="rebuild the run table from Weights & Biases",
                  arguments=arguments, run=run)
