"""A ladder's held-out targets: the runs of its top budgets (sweep.holdout_budgets) that a fit never sees.

One place for how a run table is split into fitted runs and targets, and how a fitted law's
predictions of the targets are scored; `scaling fit`, `scaling report` and `scaling predict` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TargetSplit:
    """A run table split into the runs to fit and a ladder's held-out targets (its sweep.holdout_budgets)."""

    fitted: Any
    targets: Any
    budgets: list[float] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def ladder_targets(folder: str | Path) -> dict[str, list[float]]:
    """{sweep name: held-out budgets} for the ladder sweeps under a folder, from each sweep's newest config.yaml
    (a run's config.yaml is written when it is planned, and sweep.* is outside run identity, so the newest
    says the sweep's current design; a completed run keeps the one it was planned with)."""
    from scaling.ladder import held_out_budgets
    from scaling.store import find_run_folders

    newest: dict[str, tuple[float, dict]] = {}
    for run in find_run_folders(folder):
        try:
            sweep = run.read_config().get("sweep") or {}
        except (OSError, ValueError):  # no config.yaml, or a damaged one: that run says nothing of targets
            continue
        stamp = run.config_path.stat().st_mtime
        if sweep.get("mode") == "ladder" and stamp >= newest.get(sweep.get("name"), (-1.0, {}))[0]:
            newest[sweep["name"]] = (stamp, sweep)
    return {name: held_out_budgets(_sweep_view(sweep)) for name, (_, sweep) in newest.items()}


def _sweep_view(sweep: dict) -> Any:
    from types import SimpleNamespace

    defaults = {"budgets": [], "budget_range": [], "budget_count": 0, "holdout_budgets": 0}
    return SimpleNamespace(**{**defaults, **sweep})


def split_targets(runs: Any, source: str | None, frontier: bool) -> TargetSplit:
    """Take a ladder's held-out targets out of the table (none for a table file or --all-runs); with
    --frontier a budget's frontier point is its best run, so the others are left out first."""
    from scaling.ladder import is_target

    path = Path(source) if source else None
    targets = ladder_targets(path) if path is not None and path.is_dir() else {}
    if not targets or "budget_flops" not in runs.columns:
        return TargetSplit(fitted=runs, targets=runs[:0])
    mask = runs.apply(lambda row: is_target(row.get("budget_flops"), targets.get(row.get("sweep"), [])), axis=1)
    budgets = sorted({c for found in targets.values() for c in found})
    fitted, excluded = (budget_best(runs[~mask]) if frontier else (runs[~mask], []))
    warnings = edge_best_warnings(runs[~mask], fitted) if frontier else []
    return TargetSplit(fitted=fitted, targets=runs[mask], budgets=budgets, excluded=excluded, warnings=warnings)


def budget_best(runs: Any) -> tuple[Any, list[dict]]:
    """Per ladder budget (budget_flops), the runs of its best point; the others as exclusions. A point is a
    size (N, D): its seeds' losses are averaged first, so the best point is not the luckiest seed, and all its
    seeds are kept (one run per point without seeds, as before)."""
    import pandas as pd

    loss = pd.to_numeric(runs["loss"], errors="coerce")
    if loss.isna().all():
        return runs, []
    point = [runs["budget_flops"], runs["N"], runs["D"]] if {"N", "D"} <= set(runs.columns) else [runs["budget_flops"]]
    point_loss = loss.groupby(point, dropna=False).transform("mean") if len(point) > 1 else loss
    best = point_loss.groupby(runs["budget_flops"]).transform("min")
    keep = (point_loss == best) | runs["budget_flops"].isna() | loss.isna()
    dropped = [{"run": run, "reason": "not the best run of its budget (the frontier of an IsoFLOP ladder)"}
               for run in runs.loc[~keep, "run_id"]]
    return runs[keep], dropped


def edge_best_warnings(runs: Any, best: Any) -> list[str]:
    """A warning per side for the ladder budgets whose best point (`best`, budget_best's choice among `runs`) is
    their smallest (or largest) size: the optimum may lie beyond the sizes tried, so the frontier point may sit
    above the frontier."""
    import pandas as pd

    from scaling.analysis.formatting import fmt_count
    from scaling.analysis.hygiene import usable

    def completed(frame: Any) -> Any:  # a trunk has no budget; a failed run no loss
        return frame[usable(frame, ("N", "loss")) & frame["budget_flops"].notna()]

    chosen = completed(best).groupby("budget_flops")["N"].first()
    sides: dict[str, list[str]] = {"smallest": [], "largest": []}
    for budget, group in completed(runs).groupby("budget_flops"):
        n = pd.to_numeric(group["N"], errors="coerce")
        if n.nunique() < 2 or budget not in chosen.index:
            continue
        at = chosen[budget]
        side = "smallest" if at == n.min() else "largest" if at == n.max() else None
        if side:
            sides[side].append(f"{float(budget):.2g} (N = {fmt_count(at)})")
    return [f"frontier: at budget{'s' * (len(found) > 1)} {', '.join(found)} the best run is the {side} size tried: "
            f"the optimum may lie {'below' if side == 'smallest' else 'above'} it, so the frontier point may be too "
            f"high; add {'smaller' if side == 'smallest' else 'larger'} sizes there (--law isoflop says which)"
            for side, found in sides.items() if found]


def score_targets(result: Any, targets: Any, fitted: Any, frontier: bool) -> dict[str, Any]:
    """The law's prediction of each completed held-out run (with --frontier: each target budget's best run):
    loss, predicted, relative error, and the mean and mean |.| over them."""
    import numpy as np
    import pandas as pd

    from scaling.analysis.hygiene import usable
    from scaling.analysis.laws import get_law

    done = targets[pd.to_numeric(targets["loss"], errors="coerce").notna()]
    if frontier and len(done):
        done, _ = budget_best(done)
    variables = get_law(result.law, **result.law_options).variables
    observed = done["loss"].to_numpy(dtype=float)
    predicted = (np.asarray(result.predict(**{v: done[v].to_numpy(dtype=float) for v in variables}), dtype=float)
                 if len(done) else observed)
    errors = (predicted - observed) / observed
    rows = [{"run": r, "N": int(n), "D": int(d), "C": float(c), "loss": float(o), "predicted": float(p),
             "rel_error": float(e)}
            for r, n, d, c, o, p, e in zip(done["run_id"], done["N"], done["D"], done["C"], observed, predicted, errors)]
    top_fitted = float(pd.to_numeric(fitted.loc[usable(fitted, ("C", "loss")), "C"]).max())  # no trunk, no failed run
    return {"budgets": sorted({float(c) for c in targets["budget_flops"]}), "planned": len(targets),
            "scored": len(rows), "runs": rows, "mean_rel_error": float(np.mean(errors)) if rows else None,
            "mean_abs_rel_error": float(np.mean(np.abs(errors))) if rows else None,
            "decades": float(np.log10(done["C"].max() / top_fitted)) if rows else None}


def target_lines(targets: dict[str, Any]) -> list[str]:
    """The held-out targets' scores as lines for people."""
    budgets = ", ".join(f"{c:.3g}" for c in targets["budgets"])
    if not targets["scored"]:
        return [f"targets: {_runs(targets['planned'])} at budget {budgets}, none completed yet: nothing to score"]
    lines = [(f"targets: {_runs(targets['scored'])} at budget {budgets} (fit never saw them), "
             f"{targets['decades']:.2f} decades of compute beyond the largest fitted run: "
             f"mean |relative error| {targets['mean_abs_rel_error']:.2%}, mean {targets['mean_rel_error']:+.2%}")]
    lines += [f"  {r['run']}: N = {r['N']:,}, D = {r['D']:,}, C = {r['C']:.3g}, loss {r['loss']:.4f}, "
              f"predicted {r['predicted']:.4f} ({r['rel_error']:+.2%})" for r in targets["runs"]]
    return lines


def _runs(count: int) -> str:
    return f"{count} held-out run{'s' * (count != 1)}"
