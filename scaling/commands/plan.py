"""`scaling plan [overrides]`: the runs a sweep would make, with N, D, C and time; trains nothing.

Also what the plan table shows: the status of each run so far, time estimates on this machine
(from sweep.flops_per_second, else past runs, else a quick benchmark), totals and skipped points.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
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
    speed = machine_speed(plan, plan.sweep.flops_per_second)
    if "--json" in args.flags:
        print(json.dumps(plan_json(plan, speed), indent=2))
    else:
        print(format_plan(plan, speed))
    return 0


# Seconds an optimizer step costs beyond its FLOPs (Lightning, the optimizer, small kernels): a small
# GPT step at batch 4 took 9.5 ms on one thread of a 2-core machine.
DEFAULT_STEP_SECONDS = 0.01


@dataclass(frozen=True)
class Speed:
    """How fast this machine trains: seconds = C / flops_per_second + steps x step_seconds."""

    flops_per_second: float
    step_seconds: float
    source: str
    where: str = "here"  # what the estimate is for: this machine, or one GPU when the runs want one it lacks

    def seconds(self, C: float, steps: int) -> float:
        """Estimated wall time of a run of C FLOPs in `steps` optimizer steps."""
        return C / self.flops_per_second + steps * self.step_seconds


def completed_runs(runs_root: Path | str, family: Optional[str] = None) -> Any:
    """Completed runs (of one model family) under runs_root that recorded a wall time, or None."""
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
    return None if done.empty else done


def measured_speed(runs_root: Path | str, family: Optional[str] = None) -> Optional[Speed]:
    """From past runs: wall time = C / R + steps x s fitted (non-negative least squares) over 3 or more
    completed runs, else their median FLOP rate with the default step cost."""
    done = completed_runs(runs_root, family)
    if done is None:
        return None
    where = f"completed {family or ''} runs under {runs_root}".replace("  ", " ")
    if len(done) >= 3 and "steps" in done and done["steps"].notna().all():
        import numpy as np
        from scipy.optimize import nnls

        per_flop, per_step = nnls(np.c_[done["C"], done["steps"]].astype(float), done["wall_time"].astype(float))[0]
        if per_flop > 0:
            return Speed(1 / per_flop, per_step, f"wall time = C / R + steps x s fitted to {len(done)} {where}")
    rate = float((done["C"] / done["wall_time"]).median())
    return Speed(rate, 0.0, f"median of {len(done)} {where}")


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


def gpu_speed(plan: Plan) -> Optional[Speed]:
    """For runs that want a GPU this machine lacks (a GPU sweep planned on a laptop): one GPU at the sweep's
    assumed utilisation of its peak, not this CPU's speed. None when that is not the case."""
    from scaling.config import trainer_wants_gpu

    if not trainer_wants_gpu(plan.cfg.trainer):
        return None
    import torch

    if torch.cuda.device_count():
        return None
    sweep = plan.sweep
    return Speed(sweep.gpu_flops * sweep.utilisation, DEFAULT_STEP_SECONDS,
                 f"no GPU on this machine: one at {sweep.utilisation:.0%} of {sweep.gpu_flops:.3g} FLOP/s", "on one GPU")


def machine_speed(plan: Plan, override: Optional[float] = None) -> Speed:
    """The speed used for time estimates: configured, else measured from past runs, else benchmarked."""
    if override:
        return Speed(override, DEFAULT_STEP_SECONDS, "sweep.flops_per_second")
    gpu = gpu_speed(plan)
    if gpu:
        return gpu
    measured = measured_speed(plan.cfg.run.root, plan.family)
    if measured:
        return measured
    rate, source = matmul_flops_per_second()
    return Speed(rate, DEFAULT_STEP_SECONDS, source)


def plan_rows(plan: Plan, speed: Speed) -> list[dict[str, Any]]:
    """One dict per planned run, with its status so far and estimated time on this machine."""
    from scaling.store import RunFolder, folder_row

    targets = _targets(plan)
    rows = []
    for spec in plan.runs:
        row = spec.summary()
        row["status"] = folder_row(RunFolder(spec.path))["status"] if RunFolder(spec.path).exists() else "new"
        row["est_seconds"] = speed.seconds(row.get("cost", spec.C), spec.steps - (spec.cfg.trainer.branch_step or 0))
        if targets is not None:
            row.update(budget=spec.cfg.budget.flops, batch_size=spec.cfg.optim.batch_size,
                       target=_is_target(spec.cfg.budget.flops, targets))
        rows.append(row)
    return rows


def _targets(plan: Plan) -> Optional[list[float]]:
    """A ladder's held-out budgets (None for other modes)."""
    from scaling.ladder import held_out_budgets

    return held_out_budgets(plan.sweep) if plan.mode == "ladder" else None


def _is_target(budget: Optional[float], targets: list[float]) -> bool:
    from scaling.ladder import is_target

    return is_target(budget, targets)


def ladder_design(plan: Plan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per budget of a ladder: the expected optimum, the sizes, D/N, steps, batch, compute and time."""
    from scaling.ladder import ladder_prior

    sweep, budgets = plan.sweep, {}
    for row in rows:
        if row["budget"] is not None:  # a cooldown trunk (sweep.branches) belongs to no budget
            budgets.setdefault(row["budget"], []).append(row)
    prior = ladder_prior(sweep)
    return {"prior_tokens_per_param": sweep.tokens_per_param_prior, "prior": prior.source, "span": sweep.span,
            "batch_rule": sweep.batch_rule, "min_steps": sweep.min_steps,
            "budgets": [_budget_design(C, group, prior.optimum(C)) for C, group in sorted(budgets.items())]}


def _budget_design(C: float, group: list[dict[str, Any]], n_opt: float) -> dict[str, Any]:
    sizes = sorted(r["N"] for r in group)
    return {"C": C, "N_opt": n_opt, "D_opt": C / (6 * n_opt), "N": sizes,
            "inside": sizes[0] < n_opt < sizes[-1], "widths": sorted(r["width"] for r in group),
            "tokens_per_param": [min(r["tokens_per_param"] for r in group), max(r["tokens_per_param"] for r in group)],
            "steps": [min(r["steps"] for r in group), max(r["steps"] for r in group)],
            "batch_size": [min(r["batch_size"] for r in group), max(r["batch_size"] for r in group)], "target": any(r["target"] for r in group),
            "flops": sum(r["C"] for r in group), "est_seconds": sum(r["est_seconds"] for r in group)}


def format_design(design: dict[str, Any]) -> list[str]:
    """The ladder's design as lines: one per budget."""
    lines = [f"ladder: {design['prior']}, sizes "
             f"within +-{design['span']:g} decades of it; batch = {design['batch_rule']} tokens, >= "
             f"{design['min_steps']} steps per run",
             f"{'budget':>9} {'expected N_opt':>15} {'sizes (N)':<40} {'D/N':>12} {'steps':>11} {'batch':>6} "
             f"{'est':>8}  role"]
    for b in design["budgets"]:
        sizes = " ".join(_short(n) for n in b["N"])
        ratio = f"{b['tokens_per_param'][1]:.3g}..{b['tokens_per_param'][0]:.3g}"
        steps = f"{b['steps'][0]}..{b['steps'][1]}"
        low, high = b["batch_size"]
        batch = f"{low}" if low == high else f"{low}..{high}"
        role = "target (held out)" if b["target"] else "fit"
        inside = ("" if b["inside"] else " (one size: at the expected optimum)" if len(b["N"]) == 1
                  else " (optimum outside the sizes!)")
        lines.append(f"{b['C']:>9.3g} {_short(b['N_opt']):>15} {sizes:<40} {ratio:>12} {steps:>11} "
                     f"{batch:>6} {format_seconds(b['est_seconds']):>8}  {role}{inside}")
    return lines


def _short(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k"


def plan_json(plan: Plan, speed: Speed) -> dict[str, Any]:
    """The plan for machines: runs, skipped points, totals."""
    rows = plan_rows(plan, speed)
    out = {"sweep": plan.name, "mode": plan.mode, "runs": rows,
           "skipped": [{"point": s.point, "reason": s.reason} for s in plan.skipped],
           "totals": totals(rows, speed, plan.sweep)}
    if plan.mode == "ladder":
        out["ladder"] = ladder_design(plan, rows)
    return out


def totals(rows: list[dict[str, Any]], speed: Speed, sweep: Any) -> dict[str, Any]:
    """Runs, total FLOPs, time on this machine, GPU hours at the configured utilisation."""
    flops = sum(r.get("cost", r["C"]) for r in rows)
    gpu_flops = sweep.gpu_flops if sweep else 989e12
    utilisation = sweep.utilisation if sweep else 0.4
    return {"runs": len(rows), "flops": flops, "est_seconds_here": sum(r["est_seconds"] for r in rows),
            "flops_per_second": speed.flops_per_second, "step_seconds": speed.step_seconds,
            "rate_source": speed.source, "gpu_hours": flops / (gpu_flops * utilisation) / 3600,
            "gpu_flops": gpu_flops, "utilisation": utilisation}


def format_plan(plan: Plan, speed: Speed) -> str:
    """The plan as a table for people."""
    rows = plan_rows(plan, speed)
    lines = [f"sweep {plan.name} (mode {plan.mode}): {len(rows)} runs",
             f"{'run_id':<11}{'width':>6}{'depth':>6}{'N':>12}{'D':>13}{'C':>10}{'D/N':>8}{'est':>9}  status"]
    for r in rows:
        lines.append(f"{r['run_id']:<11}{r['width'] or '-':>6}{r['depth'] or '-':>6}{r['N']:>12,}{r['D']:>13,}"
                     f"{r['C']:>10.3g}{r['tokens_per_param']:>8.3g}{format_seconds(r['est_seconds']):>9}  {r['status']}"
                     f"{_role(r)}")
    for s in plan.skipped:
        point = " ".join(f"{k}={v}" for k, v in s.point.items())
        lines.append(f"skipped {point}: {s.reason}")
    if plan.mode == "ladder":
        lines += format_design(ladder_design(plan, rows))
    t = totals(rows, speed, plan.sweep)
    parallel = getattr(plan.launcher, "parallel", 1) or 1
    at_once = f" ({format_seconds(t['est_seconds_here'] / parallel)} {parallel} at a time)" if parallel > 1 else ""
    lines.append(f"total: {t['runs']} runs, {t['flops']:.3g} FLOPs, about {format_seconds(t['est_seconds_here'])}"
                 f"{at_once} {speed.where} at {speed.flops_per_second:.3g} FLOP/s + {speed.step_seconds * 1e3:.3g} ms a step "
                 f"({speed.source}); {t['gpu_hours']:.3g} GPU hours at {t['utilisation']:.0%} of "
                 f"{t['gpu_flops']:.3g} FLOP/s")
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
