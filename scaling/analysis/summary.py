"""Readable text for a FitResult and a Comparison (what `scaling fit` prints without --json)."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_LISTED = 10


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    value = float(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def format_result(result: Any) -> str:
    """The result as a few aligned lines: parameters with intervals, allocation, exclusions, backtest, warnings."""
    info = result.fit_info
    head = f"law {result.law}: {result.formula}"
    lines = [head, f"{result.n_points} runs fitted, {len(result.excluded)} left out" + _fit_line(info)]
    lines += _param_lines(result)
    if result.has_allocation and result.law not in ("isoflop", "envelope"):
        lines.append(f"compute-optimal: N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b with a = {_num(result.a)}, "
                     f"b = {_num(result.b)}, G = {_num(result.G)}")
    lines += _excluded_lines(result.excluded)
    if result.backtest:
        lines += _backtest_lines(result.backtest)
    if result.seed_noise:
        noise = result.seed_noise
        lines.append(f"seed noise: {noise['rel_std']:.2%} of the loss (from {noise['runs']} runs in {noise['groups']} "
                     "repeated configurations)")
    for note in info.get("notes", []):
        lines.append(f"note: {note}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _fit_line(info: dict) -> str:
    parts = []
    if "starts" in info:
        parts.append(f"{info['starts']} starts, best reached by {info['starts_at_best']}")
    if "budgets" in info:
        parts.append(f"{info['budgets_used']} of {info['budgets']} budgets used")
    if "frontier_points" in info:
        parts.append(f"{info['points_used']} of {info['frontier_points']} frontier points used")
    if "seconds" in info:
        parts.append(f"{info['seconds']:.2f} s")
    return "; " + ", ".join(parts) if parts else ""


def _param_lines(result: Any) -> list[str]:
    level = f"{result.level:.0%} CI" if result.ci else ""
    lines = [f"  {'param':<10} {'estimate':>12}   {level}"]
    for name, value in result.params.items():
        ci = result.ci.get(name)
        interval = f"{_num(ci[0])} .. {_num(ci[1])}" if ci else ""
        lines.append(f"  {name:<10} {_num(value):>12}   {interval}")
    if result.law not in ("isoflop", "envelope"):
        for name in ("a", "b", "G"):
            if name in result.ci:
                lines.append(f"  {name:<10} {_num(getattr(result, name)):>12}   {_num(result.ci[name][0])} .. "
                             f"{_num(result.ci[name][1])}")
    lines.append(f"  {'objective':<10} {_num(result.objective):>12}")
    return lines


def _excluded_lines(excluded: list[dict]) -> list[str]:
    lines = [f"left out: {e['run']}: {e['reason']}" for e in excluded[:MAX_LISTED]]
    if len(excluded) > MAX_LISTED:
        lines.append(f"left out: ... and {len(excluded) - MAX_LISTED} more (see --json)")
    return lines


def _backtest_lines(bt: dict) -> list[str]:
    reach = f", {bt['decades']:.2f} decades of compute beyond the fit" if bt.get("decades") is not None else ""
    lines = [f"backtest: held out the {bt['held_out']} highest-compute runs{reach}: mean |relative error| "
             f"{bt['mean_abs_rel_error']:.2%}, max {bt['max_abs_rel_error']:.2%}"]
    for run in bt["runs"][:MAX_LISTED]:
        lines.append(f"  {run['run']}: C = {_num(run['C'])}, loss {run['loss']:.4f}, predicted {run['predicted']:.4f} "
                     f"({run['rel_error']:+.2%})")
    return lines


def format_comparison(comparison: Any) -> str:
    """The approaches side by side and the verdict on their N_opt exponents."""
    lines = [f"  {'approach':<11} {'a':>7} {'a 95% CI':>17} {'b':>7} {'G':>10} {'N_opt at max C':>15} {'runs':>5}  flags"]
    for row in comparison.table.itertuples():
        ci = f"{_num(row.a_lo)} .. {_num(row.a_hi)}" if np.isfinite(row.a_lo) else "-"
        lines.append(f"  {row.approach:<11} {_num(row.a):>7} {ci:>17} {_num(row.b):>7} {_num(row.G):>10} "
                     f"{_num(row.N_opt_at_max_C):>15} {row.n_points:>5}  {row.flags}")
    lines += [f"  {name}: skipped ({why})" for name, why in comparison.skipped.items()]
    lines.append(comparison.verdict)
    return "\n".join(lines)
