"""`scaling status SWEEP_DIR`: runs by status, with their loss."""

from __future__ import annotations

import argparse
from pathlib import Path

from scaling.commands.base import Command, existing_path
from scaling.commands.errors import UsageError, guarded
from scaling.format import first_line, format_counts, format_int, format_loss, format_sci

SWEEP_HELP = "a sweep folder (runs/NAME)"
ORDER = {s: i for i, s in enumerate(("running", "damaged", "failed", "diverged", "interrupted", "stopped", "planned",
                                     "completed"))}


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling status`'s arguments."""
    parser.add_argument("sweep_dir", help=f"{SWEEP_HELP}, a runs/ root, or a run table (.csv, .parquet)")


@guarded
def run(args: argparse.Namespace) -> int:
    """Print the status report."""
    path = existing_path(args.sweep_dir, SWEEP_HELP)
    from scaling.store import TABLE_SUFFIXES

    if path.is_file() and path.suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{path} is a file, not a sweep folder; give {SWEEP_HELP}")
    print(status_table(path))
    return 0


def status_table(sweep_dir: Path | str) -> str:
    """The status report as text: counts by status, then one line per run."""
    from scaling.store import TABLE_STATUSES, load_runs

    table = load_runs(sweep_dir)
    if table.empty:
        return f"{sweep_dir}: no runs yet"
    counts = table["status"].value_counts()
    head = format_counts((s, counts[s]) for s in TABLE_STATUSES if s in counts)
    table = table.assign(_order=table["status"].map(ORDER).fillna(9)).sort_values(["_order", "C", "N"])
    lines = [f"{sweep_dir}: {len(table)} runs: {head}",
             f"{'run_id':<11}{'status':<12}{'family':<8}{'width':>6}{'depth':>6}{'N':>12}{'D':>13}{'C':>10}"
             f"{'step':>12}{'loss':>9}  job"]
    for row in table.to_dict("records"):
        lines.append(_row_line(row))
        if row["status"] in ("failed", "diverged", "damaged", "interrupted") and row.get("error"):
            lines.append(f"{'':<11}{first_line(row['error'], 200)}")
    return "\n".join(lines + _prediction_lines(Path(sweep_dir), table))


def _prediction_lines(folder: Path, table: object) -> list[str]:
    """The sweep's registered predictions (`scaling predict`), each scored or pending."""
    from scaling.analysis.predictions import load_predictions, prediction_lines

    lines = prediction_lines(load_predictions(folder), table) if folder.is_dir() else []
    return ["", *lines] if lines else []


def _row_line(row: dict) -> str:
    steps = f"{format_int(row.get('step'))}/{format_int(row.get('steps'))}"
    job = row.get("job_id") or ""
    if row.get("job_state"):
        job = f"{job} {row['job_state']}"
    return (f"{row['run_id']:<11}{row['status']:<12}{str(row.get('family')):<8}"
            f"{format_int(row.get('width')):>6}{format_int(row.get('depth')):>6}"
            f"{format_int(row.get('N')):>12}{format_int(row.get('D')):>13}{format_sci(row.get('C')):>10}"
            f"{steps:>12}{format_loss(row.get('loss')):>9}  {job}")


COMMAND = Command(name="status", synopsis="SWEEP_DIR", help="runs by status, with their loss",
                  arguments=arguments, run=run)
