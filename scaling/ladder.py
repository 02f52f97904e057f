"""The ladder sweep mode: compute budgets, model sizes around each budget's expected optimum, a batch per budget.

Per budget C the prior D/N = r (`sweep.tokens_per_param_prior`) puts the optimum at
N_opt = sqrt(C / (6 r)), or an earlier sweep's IsoFLOP fit does (`sweep.prior=runs/NAME`); the ladder asks for `sizes_per_budget` sizes spaced evenly in log N within
+-`span` decades of it and takes, for each, the width (depth by the sweep's rules) whose real N is
nearest. The batch follows a rule of compute (DeepSeek LLM's B_opt = 0.292 C^0.3271 tokens by
default), clipped to [batch_min, batch_max] samples and lowered so that the budget's largest model
still takes `min_steps` optimizer steps. The top budgets (`holdout_budgets`) are held-out targets;
`seed_repeats` repeats the smallest budget's runs over seeds (the noise floor).
Pure functions of the sweep spec and of the sizes the planner measures on meta-device models.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from scaling.errors import ConfigError

REL_TOL = 1e-6  # two budgets closer than this (relative) are the same budget


@dataclass(frozen=True)
class Size:
    """A model the ladder can use: its width, parameter count and training FLOPs per data unit."""

    width: int
    N: int
    flops_per_unit: float


def ladder_budgets(sweep: Any) -> list[float]:
    """The sweep's compute budgets in FLOPs, ascending: `budgets`, else `budget_count` log-spaced in `budget_range`."""
    if sweep.budgets:
        return sorted(float(c) for c in sweep.budgets)
    if sweep.budget_range and sweep.budget_count >= 2:
        low, high = (float(c) for c in sweep.budget_range)
        step = math.log(high / low) / (sweep.budget_count - 1)
        return [float(f"{low * math.exp(i * step):.4g}") for i in range(sweep.budget_count)]
    raise ConfigError("sweep.budgets is empty; list compute budgets in FLOPs (e.g. sweep.budgets=[1e11,1e12,1e13]) "
                      "or give sweep.budget_range=[low,high] and sweep.budget_count for mode=ladder")


def same_budget(a: float, b: float) -> bool:
    """Whether two budgets are the same (up to float noise from YAML and JSON)."""
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def held_out_budgets(sweep: Any) -> list[float]:
    """The budgets marked as targets: the top K for `holdout_budgets: K`, or the listed ones."""
    spec = sweep.holdout_budgets
    if not spec:
        return []
    budgets = ladder_budgets(sweep)
    if isinstance(spec, int):
        chosen = budgets[-spec:]
    else:
        chosen = [_listed_budget(float(c), budgets) for c in spec]
    if len(chosen) >= len(budgets):
        raise ConfigError(f"sweep.holdout_budgets={spec!r} holds out all {len(budgets)} budgets, leaving none to fit; "
                          "hold out fewer (1 is the top budget)")
    return sorted(chosen)


def _listed_budget(value: float, budgets: list[float]) -> float:
    match = [c for c in budgets if same_budget(c, value)]
    if not match:
        raise ConfigError(f"sweep.holdout_budgets lists {value:g}, which is not a budget of the ladder "
                          f"({', '.join(f'{c:g}' for c in budgets)}); list one of them")
    return match[0]


def is_target(budget: Optional[float], targets: list[float]) -> bool:
    """Whether a run's budget (its budget.flops) is one of the held-out target budgets."""
    return budget is not None and any(same_budget(float(budget), c) for c in targets)


def expected_optimum(C: float, prior: float) -> float:
    """N_opt = sqrt(C / (6 r)): the compute-optimal N if D/N = r and C = 6 N D."""
    return math.sqrt(C / (6.0 * prior))


@dataclass(frozen=True)
class Prior:
    """Where the ladder expects each budget's optimum: N_opt = G (C/6)^a (a = 1/2, G = 1/sqrt(r) for a D/N prior r)."""

    G: float
    a: float
    source: str  # how the plan names it

    def optimum(self, C: float) -> float:
        return self.G * (C / 6.0) ** self.a

    def compute_for(self, N: float) -> float:
        """The budget at which N is the expected optimum (the inverse of `optimum`)."""
        return 6.0 * (N / self.G) ** (1.0 / self.a)


def ladder_prior(sweep: Any) -> Prior:
    """The prior of `sweep`: the IsoFLOP allocation fitted to the runs of `sweep.prior` (a ladder's held-out
    targets left out) when set, else D/N = tokens_per_param_prior."""
    if getattr(sweep, "prior", None):
        return _fitted_prior(str(sweep.prior))
    r = sweep.tokens_per_param_prior
    return Prior(G=1.0 / math.sqrt(r), a=0.5, source=f"prior D/N = {r:g} (N_opt = sqrt(C / (6 x prior)))")


@functools.lru_cache(maxsize=8)
def _fitted_prior(path: str) -> Prior:
    from scaling.analysis import fit
    from scaling.analysis.hygiene import AnalysisError
    from scaling.analysis.targets import split_targets
    from scaling.store import load_runs

    from pathlib import Path

    fix = ("give a sweep folder or run table whose IsoFLOP fit has 2 or more budgets with a minimum inside, or "
           "drop sweep.prior to use sweep.tokens_per_param_prior")
    if not path.startswith("wandb:") and not Path(path).exists():
        raise ConfigError(f"sweep.prior={path!r} does not exist; give the folder of an earlier ladder (runs/NAME) "
                          "or drop sweep.prior to use sweep.tokens_per_param_prior")
    try:
        runs = load_runs(path)
        result = fit(split_targets(runs, path, frontier=False).fitted, "isoflop")
    except (OSError, ValueError, KeyError, AnalysisError) as error:
        raise ConfigError(f"sweep.prior={path!r}: {str(error).splitlines()[0]}; {fix}") from None
    used = result.fit_info.get("budgets_used", 0)
    return Prior(G=float(result.params["G"]), a=float(result.params["a"]),
                 source=f"prior from {path}: N_opt = {result.params['G']:.4g} (C/6)^{result.params['a']:.3f} "
                        f"(IsoFLOP fit of {used} budgets)")


def wanted_sizes(C: float, sweep: Any, target: bool = False) -> list[float]:
    """`sizes_per_budget` values of N spaced evenly in log N within +-span decades of the expected optimum;
    for a held-out target budget only the `holdout_sizes` central ones of them (when set)."""
    center = ladder_prior(sweep).optimum(C)
    k = sweep.sizes_per_budget
    offsets = [0.0] if k == 1 else [sweep.span * (2 * i / (k - 1) - 1) for i in range(k)]
    keep = min(sweep.holdout_sizes or k, k) if target else k
    first = (k - keep) // 2
    return [center * 10 ** offset for offset in offsets[first:first + keep]]


def nearest(sizes: list[Size], N: float) -> Size:
    """The size whose N is nearest to `N` in log N."""
    return min(sizes, key=lambda s: abs(math.log(s.N / N)))


def assign_sizes(wanted: list[float], sizes: list[Size]) -> list[Size]:
    """Distinct sizes, one per wanted N and in the same order, as near to them in log N as the widths allow.

    Where the width grid is coarser than the wanted spacing (small models), taking each one's nearest would pick
    the same width twice and leave the budget with fewer sizes than asked; this picks the increasing run of
    distinct sizes with the least squared log distance instead (a small dynamic programme)."""
    ordered = sorted(sizes, key=lambda s: s.N)
    k, m = len(wanted), len(ordered)
    if k > m:
        return sorted({nearest(ordered, N).width: nearest(ordered, N) for N in wanted}.values(), key=lambda s: s.N)
    cost = [[math.log(ordered[j].N / N) ** 2 for j in range(m)] for N in wanted]
    best = [[math.inf] * m for _ in range(k)]  # best[i][j]: wanted[:i+1] assigned, the i-th to ordered[j]
    back = [[-1] * m for _ in range(k)]
    best[0] = cost[0][:]
    for i in range(1, k):
        running, where = math.inf, -1
        for j in range(m):
            if j >= 1 and best[i - 1][j - 1] < running:
                running, where = best[i - 1][j - 1], j - 1
            if where >= 0:
                best[i][j], back[i][j] = running + cost[i][j], where
    j = min(range(m), key=lambda col: best[k - 1][col])
    chosen = []
    for i in range(k - 1, -1, -1):
        chosen.append(ordered[j])
        j = back[i][j]
    return chosen[::-1]


def search_sizes(measure: Callable[[int], Size], largest: float, sweep: Any) -> list[Size]:
    """Widths that are multiples of `width_step`, measured until N passes 3x `largest` (or max_width).

    `measure(width)` raises ConfigError for a width the family refuses (e.g. not divisible by heads);
    if every width is refused the first refusal is raised."""
    found, first_error = [], None
    for width in range(sweep.width_step, sweep.max_width + 1, sweep.width_step):
        try:
            size = measure(width)
        except ConfigError as error:
            first_error = first_error or error
            continue
        found.append(size)
        if size.N > 3 * largest:
            break
    if not found:
        raise first_error or ConfigError(f"sweep.max_width={sweep.max_width} is below sweep.width_step; raise it")
    return found


def batch_samples(C: float, sizes: list[Size], sweep: Any, units_per_sample: int, names: dict[str, Any],
                  fewest_units: Optional[float] = None) -> int:
    """The budget's batch in samples: the rule of C, clipped, lowered so its largest model takes min_steps
    (or so that a run of `fewest_units` does)."""
    try:
        units = float(eval(sweep.batch_rule, {"__builtins__": {}}, {**names, "C": C}))  # noqa: S307 (user's config)
    except Exception as exc:
        raise ConfigError(f"sweep.batch_rule={sweep.batch_rule!r} failed: {exc}; give an expression of C, "
                          "the batch in the data's unit (e.g. 0.292 * C ** 0.3271 tokens)") from exc
    samples = min(max(round(units / units_per_sample), sweep.batch_min), sweep.batch_max)
    if fewest_units is None:
        fewest_units = min(C / s.flops_per_unit for s in sizes)
    most_for_steps = math.floor(fewest_units / (sweep.min_steps * units_per_sample))
    return max(sweep.batch_min, min(samples, most_for_steps))


def ladder_points(sweep: Any, measure: Callable[[int], Size], units_per_sample: int,
                  names: dict[str, Any], base_seed: int = 0) -> list[dict[str, Any]]:
    """The ladder's points ({dotted key: value}), budget by budget, smallest model first.

    With `seed_repeats` = K > 1 the smallest budget's runs are repeated with seeds base_seed + 1 .. K - 1:
    the seed-to-seed spread of those runs is the noise floor a fit is judged against.
    """
    budgets = ladder_budgets(sweep)
    largest = max(max(wanted_sizes(C, sweep)) for C in budgets)
    sizes = search_sizes(measure, largest, sweep)
    targets = held_out_budgets(sweep)
    chosen = {C: assign_sizes(wanted_sizes(C, sweep, is_target(C, targets)), sizes) for C in budgets}
    if getattr(sweep, "branches", False):  # a trunk serves all of a width's budgets: one batch per width
        per_width = width_batches(chosen, sweep, units_per_sample, names)
        points = [{"model.width": s.width, "budget.flops": C, "optim.batch_size": per_width[s.width]}
                  for C in budgets for s in chosen[C]]
    else:
        points = []
        for C in budgets:
            batch = batch_samples(C, chosen[C], sweep, units_per_sample, names)
            points += [{"model.width": s.width, "budget.flops": C, "optim.batch_size": batch} for s in chosen[C]]
    repeats = [{**point, "seed": base_seed + k} for k in range(1, sweep.seed_repeats)
               for point in points if point["budget.flops"] == budgets[0]]
    return points + repeats


def width_batches(chosen: dict[float, list[Size]], sweep: Any, units_per_sample: int,
                  names: dict[str, Any]) -> dict[int, int]:
    """One batch per width for a ladder of cooldown branches (a trunk serves all of a width's budgets, so they
    share its batches): the batch rule at the compute where that size is the expected optimum (clipped to the
    budgets it appears in), lowered so that its smallest budget still takes min_steps."""
    prior = ladder_prior(sweep)
    used: dict[int, tuple[Size, list[float]]] = {}
    for C, sizes in chosen.items():
        for size in sizes:
            used.setdefault(size.width, (size, []))[1].append(C)
    batches = {}
    for width, (size, budgets) in used.items():
        at = min(max(prior.compute_for(size.N), min(budgets)), max(budgets))
        batches[width] = batch_samples(at, [size], sweep, units_per_sample, names,
                                       fewest_units=min(budgets) / size.flops_per_unit)
    return batches


def point_keys(sweep: Any) -> list[str]:
    """The config keys a ladder sets per run (what ladder_points' points hold), without measuring any model."""
    return ["model.width", "budget.flops", "optim.batch_size", *(["seed"] if sweep.seed_repeats > 1 else [])]


def steps_reason(steps: int, sweep: Any) -> Optional[str]:
    """Why a ladder run is too short to keep (None when it takes at least min_steps)."""
    if steps >= sweep.min_steps:
        return None
    return (f"{steps} optimizer steps, fewer than sweep.min_steps={sweep.min_steps} even at "
            f"sweep.batch_min={sweep.batch_min}")
