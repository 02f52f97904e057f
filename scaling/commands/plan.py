"""`scaling plan [overrides]`: the runs a sweep would make, with N, D, C and time; trains nothing.

Also what the plan table shows: the status of each run so far, time estimates on this machine
(from sweep.flops_per_second, else past runs, else a quick benchmark), totals and skipped points.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from scaling.commands.base import Command, writable_folder
from scaling.commands.errors import guarded
from scaling.commands.hydra_front import HydraArgs, hydra_front, print_config
from scaling.format import format_seconds

if TYPE_CHECKING:  # scaling.plan imports Hydra: only where it is used, to keep `scaling --help` fast
    from scaling.plan import Plan


@guarded
def run(args: HydraArgs) -> int:
    """Print the plan (as a table, or JSON with --json)."""
    if args.cfg:
        return print_config(args)
    from scaling.plan import plan_sweep

    plan = plan_sweep(args.overrides)
    writable_folder(plan.cfg.run.root, "run.root")
    rate, source = flop_rate(plan, plan.sweep.flops_per_second)
    if "--json" in args.flags:
        print(json.dumps(plan_json(plan, rate, source), indent=2))
    else:
        print(format_plan(plan, rate, source))
    return 0


def measured_flops_per_second(runs_root: Path | str, family: Optional[str] = None) -> Optional[tuple[float, str]]:
    """The median training FLOP rate of completed runs (of one model family) under runs_root."""
    from scaling.store import load_runs

    root = Path(runs_root)
    if not root.exists():
        return None
    table = load_runs(root)
    if table.empty or "wall_time" not in table:
        return None
    done = table[(table["status"] == "completed") & (table["wall_time"] > 0)]
    if family is not None:
        done = done[done["family"] == family]
    if done.empty:
        return None
    rate = float((done["C"] / done["wall_time"]).median())
    return rate, f"median of {len(done)} completed {family or ''} runs under {root}".replace("  ", " ")


def matmul_flops_per_second(seconds: float = 0.05, efficiency: float = 0.3) -> tuple[float, str]:
    """A quick float32 matmul benchmark on this machine's CPU, times an assumed efficiency."""
    import torch

    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(3):  # warm up the thread pool and caches
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    peak = count * 2 * 512 ** 3 / (time.perf_counter() - start)
    return peak * efficiency, f"CPU matmul benchmark ({peak / 1e9:.1f} GFLOP/s) x {efficiency}"


def flop_rate(plan: Plan, override: Optional[float] = None) -> tuple[float, str]:
    """FLOP/s used for time estimates: configured, else measured from past runs, else benchmarked."""
    if override:
        return override, "sweep.flops_per_second"
    return measured_flops_per_second(plan.cfg.run.root, plan.family) or matmul_flops_per_second()


def plan_rows(plan: Plan, rate: float) -> list[dict[str, Any]]:
    """One dict per planned run, with its status so far and estimated time on this machine."""
    from scaling.store import RunFolder, folder_row

    rows = []
    for spec in plan.runs:
        row = spec.summary()
        row["status"] = folder_row(RunFolder(spec.path))["status"] if RunFolder(spec.path).exists() else "new"
        row["est_seconds"] = row.get("cost", spec.C) / rate  # a branch pays only for its cooldown
        rows.append(row)
    return rows


def plan_json(plan: Plan, rate: float, source: str) -> dict[str, Any]:
    """The plan for machines: runs, skipped points, totals."""
    sweep = plan.sweep
    rows = plan_rows(plan, rate)
    return {"sweep": plan.name, "mode": plan.mode, "runs": rows,
            "skipped": [{"point": s.point, "reason": s.reason} for s in plan.skipped],
            "totals": totals(rows, rate, source, sweep)}


def totals(rows: list[dict[str, Any]], rate: float, source: str, sweep: Any) -> dict[str, Any]:
    """Runs, total FLOPs, time on this machine, GPU hours at the configured utilisation."""
    flops = sum(r.get("cost", r["C"]) for r in rows)
    gpu_flops = sweep.gpu_flops if sweep else 989e12
    utilisation = sweep.utilisation if sweep else 0.4
    return {"runs": len(rows), "flops": flops, "est_seconds_here": flops / rate, "flops_per_second": rate,
            "rate_source": source, "gpu_hours": flops / (gpu_flops * utilisation) / 3600,
            "gpu_flops": gpu_flops, "utilisation": utilisation}


def format_plan(plan: Plan, rate: float, source: str) -> str:
    """The plan as a table for people."""
    rows = plan_rows(plan, rate)
    lines = [f"sweep {plan.name} (mode {plan.mode}): {len(rows)} runs",
             f"{'run_id':<11}{'width':>6}{'depth':>6}{'N':>12}{'D':>13}{'C':>10}{'D/N':>8}{'est':>9}  status"]
    for r in rows:
        lines.append(f"{r['run_id']:<11}{r['width'] or '-':>6}{r['depth'] or '-':>6}{r['N']:>12,}{r['D']:>13,}"
                     f"{r['C']:>10.3g}{r['tokens_per_param']:>8.3g}{format_seconds(r['est_seconds']):>9}  {r['status']}"
                     f"{_role(r)}")
    for s in plan.skipped:
        point = " ".join(f"{k}={v}" for k, v in s.point.items())
        lines.append(f"skipped {point}: {s.reason}")
    t = totals(rows, rate, source, plan.sweep)
    lines.append(f"total: {t['runs']} runs, {t['flops']:.3g} FLOPs, about {format_seconds(t['est_seconds_here'])} "
                 f"here at {rate:.3g} FLOP/s ({source}); {t['gpu_hours']:.3g} GPU hours at "
                 f"{t['utilisation']:.0%} of {t['gpu_flops']:.3g} FLOP/s")
    lines += _branch_totals(plan)
    if any(math.isnan(r["tokens_per_param"]) for r in rows):
        lines.append("note: D/N is undefined for runs without a parameter count")
    return "\n".join(lines)


def _role(row: dict[str, Any]) -> str:
    """'  trunk' or '  branch of TRUNK at step K' (mode=branches), else ''."""
    if row.get("trunk"):
        return "  trunk"
    return f"  branch of {row['parent']} at step {row['branch_step']}" if row.get("parent") else ""


def _branch_totals(plan: Plan) -> list[str]:
    """What the branches save: their compute against the same points as independent runs."""
    from scaling.branches import savings

    saved = savings(plan.runs)
    if saved is None:
        return []
    return [f"branches: {saved['spent']:.3g} FLOPs for trunks and cooldowns, against {saved['independent']:.3g} "
            f"for the same points as independent runs ({saved['ratio']:.2f} of it)"]


COMMAND = Command(name="plan", synopsis="[overrides]", help="show the runs a sweep would make, with N, D, C and time",
                  parse=hydra_front("plan", ("--json",), "\n--json prints the plan as JSON."), run=run)
