"""`scaling status SWEEP_DIR`: runs by status, with their loss."""

from __future__ import annotations

import math
from pathlib import Path

from scaling.store import STATUSES, load_runs

ORDER = {s: i for i, s in enumerate(("running", "failed", "diverged", "interrupted", "stopped", "planned", "completed"))}


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "sci":
        return f"{value:.3g}"
    if kind == "loss":
        return f"{value:.4f}"
    return str(value)


def status_table(sweep_dir: Path | str) -> str:
    """The status report as text: counts by status, then one line per run."""
    table = load_runs(sweep_dir)
    if table.empty:
        return f"{sweep_dir}: no runs yet"
    counts = table["status"].value_counts()
    head = ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)
    table = table.assign(_order=table["status"].map(ORDER).fillna(9)).sort_values(["_order", "C", "N"])
    lines = [f"{sweep_dir}: {len(table)} runs: {head}",
             f"{'run_id':<11}{'status':<12}{'family':<8}{'width':>6}{'depth':>6}{'N':>12}{'D':>13}{'C':>10}"
             f"{'step':>12}{'loss':>9}  job"]
    for row in table.to_dict("records"):
        steps = f"{_fmt(row.get('step'), 'int')}/{_fmt(row.get('steps'), 'int')}"
        job = row.get("job_id") or ""
        if row.get("job_state"):
            job = f"{job} {row['job_state']}"
        lines.append(f"{row['run_id']:<11}{row['status']:<12}{str(row.get('family')):<8}"
                     f"{_fmt(row.get('width'), 'int'):>6}{_fmt(row.get('depth'), 'int'):>6}"
                     f"{_fmt(row.get('N'), 'int'):>12}{_fmt(row.get('D'), 'int'):>13}{_fmt(row.get('C'), 'sci'):>10}"
                     f"{steps:>12}{_fmt(row.get('loss'), 'loss'):>9}  {job}")
        if row["status"] in ("failed", "diverged") and row.get("error"):
            lines.append(f"{'':<11}{str(row['error']).strip().splitlines()[0][:110]}")
    return "\n".join(lines)


def print_status(sweep_dir: Path | str) -> int:
    """Print the status report; exit code 0."""
    print(status_table(sweep_dir))
    return 0
