"""Cooldown branches (Hägele et al. 2024): the points of a data-size sweep from one run per model.

For each model of `sweep.models`, a trunk trains at a constant rate (after warmup) up to the
latest branch point and keeps a checkpoint at every branch point (`trainer.keep_steps`). Each data
size D of `sweep.data_sizes` is a warmup-stable-decay run that starts from the trunk's checkpoint
at its decay start, (1 - optim.decay_fraction) of its steps, and cools down over the rest. Up to
that step a wsd run and the constant trunk are the same run (the same batches at the same rates,
the warmup fixed in steps for all of them), so a branch *is* the independent wsd run at D: it has
that run's identity, and its record adds `parent`, `branch_step` and `cost` (the FLOPs it spent
itself). Rules that depend on D (a batch size by data size, say) would break that sameness: the
planner refuses them.
"""

from __future__ import annotations

import re
from typing import Any

from scaling.errors import ConfigError


def expand_branches(planner: Any, sweep: Any, unit: str, overrides: list[str]) -> tuple[list[Any], list[Any]]:
    """Trunks first (a launcher starts them before their branches), then every branch.

    mode=branches: each of `sweep.models` at each of `sweep.data_sizes`; mode=ladder with `sweep.branches`:
    the ladder's points, each model (its width, batch and seed) one trunk for every budget it appears in."""
    from scaling.plan import sweep_points

    if sweep.mode == "branches" and (not sweep.models or not sweep.data_sizes):
        raise ConfigError("mode=branches needs sweep.models and sweep.data_sizes; list widths and data sizes")
    for key, rule in dict(sweep.rules).items():
        if isinstance(rule, str) and re.search(r"\b(D|C)\b", rule):
            raise ConfigError(f"sweep.rules.{key}={rule!r} depends on D or C; with cooldown branches a trunk serves "
                              "every D, so rules may use width, depth and N only")
    models: dict[tuple, list[dict[str, Any]]] = {}
    for point in sweep_points(sweep, unit, planner):
        model = tuple((k, v) for k, v in point.items() if not k.startswith("budget."))
        models.setdefault(model, []).append(point)
    trunks, branches, skipped = [], [], []
    for model, points in models.items():
        trunk, model_branches, model_skipped = _one_model(planner, sweep, unit, dict(model), points, overrides)
        if trunk is not None:
            trunks.append(trunk)
        branches += model_branches
        skipped += model_skipped
    return [*trunks, *branches], skipped


def _one_model(planner: Any, sweep: Any, unit: str, model: dict[str, Any], points: list[dict[str, Any]],
               overrides: list[str]) -> tuple:
    """(trunk, branches, skipped) of one model, from its points (one per data size or budget)."""
    from scaling.plan import Skipped
    from scaling.train.schedule import decay_start, warmup_steps

    specs = sorted(((_spec(planner, sweep, p, overrides), p) for p in
                    ({**point, "optim.schedule": "wsd"} for point in points)), key=lambda pair: pair[0].steps)
    unique: dict[int, dict[str, Any]] = {}  # one branch per length
    skipped = []
    for spec, point in specs:
        if spec.steps in unique:  # the same steps, the same run: say so rather than plan it twice
            skipped.append(Skipped(point, f"the same {spec.steps} steps as {_describe(unique[spec.steps])}: one "
                                          "branch covers both; space the data sizes further apart"))
        else:
            unique[spec.steps] = point
    shortest = specs[0][0]
    warmup = warmup_steps(shortest.cfg, shortest.steps)
    points = [{**p, "optim.warmup_steps": max(1, warmup)} for p in unique.values()]
    keep, kept = [], []
    for point in points:
        spec = _spec(planner, sweep, point, overrides)
        step = decay_start(spec.steps, spec.cfg.optim.decay_fraction)
        if step <= warmup:
            skipped.append(Skipped(point, f"{spec.steps} steps leave no stable phase after {warmup} warmup steps "
                                          "to branch from; use a larger data size"))
            continue
        keep.append(step)
        kept.append((point, step))
    if not kept:
        return None, [], skipped
    trunk = _spec(planner, sweep, {**model, f"budget.{unit}": max(keep) * shortest.units_per_step,
                                   "optim.schedule": "constant", "optim.warmup_steps": max(1, warmup),
                                   "trainer.keep_steps": sorted(set(keep))}, overrides)
    branches = [_spec(planner, sweep, {**point, "trainer.branch_of": trunk.run_id, "trainer.branch_step": step},
                      overrides) for point, step in kept]
    return trunk, branches, skipped


def _describe(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in point.items())


def _spec(planner: Any, sweep: Any, point: dict[str, Any], overrides: list[str]) -> Any:
    """The RunSpec of one point (rules applied)."""
    from scaling.plan import _as_overrides, resolve

    cfg = planner.config(point, dict(sweep.rules))
    return resolve(cfg, planner.info(cfg), planner.model(cfg), [*overrides, *_as_overrides(point)])


def savings(runs: list[Any]) -> dict[str, float] | None:
    """The compute of a branches plan (trunks + branches' own cost) against the same points as
    independent runs; None for a plan without branches."""
    branches = [r for r in runs if r.cfg.trainer.branch_of]
    if not branches:
        return None
    spent = sum(r.summary()["cost"] for r in runs)
    independent = sum(r.C for r in branches)
    return {"spent": spent, "independent": independent, "ratio": spent / independent}


def table_savings(runs: Any) -> dict[str, float] | None:
    """`savings` from a run table (load_runs' columns `parent`, `trunk`, `cost`): the completed trunks and
    branches' own cost against their branches' C as independent runs; None without branches."""
    import pandas as pd

    if "parent" not in runs.columns or "cost" not in runs.columns:
        return None
    done = runs[runs["status"].astype(str) == "completed"] if "status" in runs.columns else runs
    branch = done["parent"].notna()
    trunk = done["trunk"].fillna(False).astype(bool) if "trunk" in done.columns else pd.Series(False, index=done.index)
    if not branch.any():
        return None
    spent = float(pd.to_numeric(done.loc[branch | trunk, "cost"], errors="coerce").sum())
    independent = float(pd.to_numeric(done.loc[branch, "C"], errors="coerce").sum())
    return {"spent": spent, "independent": independent, "ratio": spent / independent,
            "trunks": int(trunk.sum()), "branches": int(branch.sum())}
