"""Fitting a law the way Hoffmann et al. 2022 and Besiroglu et al. 2024 do, vectorised over starts.

The objective is the Huber loss (delta 1e-3 by default) between the law's log prediction and the
log of the observed loss, summed over runs (optionally weighted). It is minimised with L-BFGS and
exact gradients from every point of a grid of starts, and the best end point is kept.

All starts run at once: `lbfgs` is a batched L-BFGS in numpy whose state (iterate, gradient,
curvature pairs) has a leading start axis [S, ...]; every iteration makes one batched objective
call for the starts still running, each with its own backtracking line search (Armijo condition,
quadratic interpolation). A start leaves the batch when it converges, so late iterations are cheap.
Per-start weights [S, n] let the bootstrap fit many resamples in the same batch.

On a large table (more than SCREEN_RUNS runs) the grid is screened first: every start runs on an
evenly spread subset of SCREEN_RUNS runs, and only the REFINE_STARTS best distinct end points are
run on all of them. The grid's cost then stops growing with the number of runs (10,000 runs: a
tenth), and the optimum is the full table's, reached from the subset's basins.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from scaling.analysis.hygiene import AnalysisError
from scaling.analysis.laws import Law

Array = np.ndarray
Objective = Callable[[Array, Array], tuple[Array, Array]]  # (theta [k, p], rows [k]) -> (f [k], g [k, p])

CONVERGED, STALLED, MAX_ITER, NOT_FINITE = 0, 1, 2, 3


@dataclass
class Minima:
    """End points of a batched minimisation, one row per start."""

    x: Array  # [S, p]
    f: Array  # [S]  (inf where the start never had a finite objective)
    iterations: Array  # [S]
    status: Array  # [S]: CONVERGED, STALLED (line search could not decrease f), MAX_ITER, NOT_FINITE
    evaluations: int  # objective rows evaluated in total


def huber(residual: Array, delta: float) -> tuple[Array, Array]:
    """Huber loss of each residual and its derivative (as torch.nn.functional.huber_loss)."""
    slope = np.clip(residual, -delta, delta)
    return slope * (residual - 0.5 * slope), slope


def huber_objective(law: Law, logx: Mapping[str, Array], logy: Array, delta: float = 1e-3,
                    weights: Array | None = None, chunk_elements: int = 65536) -> Objective:
    """Objective(theta [k, p], rows [k]) -> (sum of Huber losses [k], gradient [k, p]).

    `weights` is None, one weight per run [n], or one weight vector per start [S, n] (indexed by
    rows). Starts are evaluated about `chunk_elements / n` at a time: the [chunk, n] temporaries
    then stay in cache, which is several times faster than one [k, n] pass per operation.
    """
    chunk_rows = max(1, chunk_elements // max(1, len(logy)))

    def chunk(theta: Array, rows: Array) -> tuple[Array, Array]:
        pred, vjp = law.forward(theta, logx)  # [k, n]
        pred -= logy
        slope = np.clip(pred, -delta, delta)
        if weights is not None:
            slope *= weights if weights.ndim == 1 else weights[rows]
        # sum_i w_i h(r_i), with h(r) = s (r - s / 2), s = clip(r): the weight rides on s once
        unweighted = slope if weights is None else np.clip(pred, -delta, delta)
        f = np.einsum("kn,kn->k", slope, pred) - 0.5 * np.einsum("kn,kn->k", slope, unweighted)
        return f, vjp(slope)

    def objective(theta: Array, rows: Array) -> tuple[Array, Array]:
        parts = [chunk(theta[i:i + chunk_rows], rows[i:i + chunk_rows]) for i in range(0, len(rows), chunk_rows)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return objective


# ------------------------------------------------------------------------- batched L-BFGS


def _two_loop(g: Array, s_hist: Array, y_hist: Array, rho: Array, gamma: Array, newest_first: list[int]) -> Array:
    """L-BFGS two-loop recursion for every start at once: returns H g [k, p]."""
    q = g.copy()
    alphas = []
    for j in newest_first:
        a = rho[:, j] * np.einsum("kp,kp->k", s_hist[:, j], q)
        q -= a[:, None] * y_hist[:, j]
        alphas.append(a)
    r = gamma[:, None] * q
    for j, a in zip(reversed(newest_first), reversed(alphas)):
        b = rho[:, j] * np.einsum("kp,kp->k", y_hist[:, j], r)
        r += (a - b)[:, None] * s_hist[:, j]
    return r


def _backtrack(objective: Objective, rows: Array, x: Array, f: Array, g: Array, d: Array,
               c1: float, max_backtracks: int) -> tuple[Array, Array, Array, Array, int]:
    """Armijo backtracking for every start at once; returns (x, f, g, accepted [k], evaluations)."""
    k = len(rows)
    step, slope0 = np.ones(k), np.einsum("kp,kp->k", g, d)
    x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
    accepted = np.zeros(k, dtype=bool)
    pending, evaluations = np.arange(k), 0
    for _ in range(max_backtracks):
        trial = x[pending] + step[pending, None] * d[pending]
        f_trial, g_trial = objective(trial, rows[pending])
        evaluations += len(pending)
        ok = np.isfinite(f_trial) & np.isfinite(g_trial).all(axis=1)
        ok &= f_trial <= f[pending] + c1 * step[pending] * slope0[pending]
        done = pending[ok]
        x_new[done], f_new[done], g_new[done], accepted[done] = trial[ok], f_trial[ok], g_trial[ok], True
        pending, f_bad = pending[~ok], f_trial[~ok]
        if not len(pending):
            break
        step[pending] = _shrink(step[pending], f_bad - f[pending], slope0[pending])
    return x_new, f_new, g_new, accepted, evaluations


def _shrink(step: Array, rise: Array, slope0: Array) -> Array:
    """Next trial step: minimiser of the quadratic through f(0), f'(0) and f(step), kept in [0.1, 0.5] step."""
    curvature = 2.0 * (rise - slope0 * step)
    with np.errstate(divide="ignore", invalid="ignore"):
        quad = np.where(np.isfinite(curvature) & (curvature > 0), -slope0 * step**2 / curvature, 0.1 * step)
    return np.clip(np.nan_to_num(quad, nan=0.1 * step), 0.1 * step, 0.5 * step)


def lbfgs(objective: Objective, x0: Array, *, memory: int = 10, max_iter: int = 500, ftol: float = 1e-9,
          gtol: float = 1e-12, c1: float = 1e-4, max_backtracks: int = 40) -> Minima:
    """Minimise `objective` from every row of x0 [S, p] at once with L-BFGS.

    A start stops when an accepted step lowers f by at most ftol * |f|, when max |gradient| <= gtol,
    or when its line search cannot lower f any more (STALLED: a kink or the limit of precision).
    """
    x = np.array(x0, dtype=float)
    S, p = x.shape
    f, g = objective(x, np.arange(S))
    finite = np.isfinite(f) & np.isfinite(g).all(axis=1)
    f = np.where(finite, f, np.inf)
    s_hist, y_hist, rho = np.zeros((S, memory, p)), np.zeros((S, memory, p)), np.zeros((S, memory))
    gamma = 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-300)  # first step of unit length
    status = np.where(finite, MAX_ITER, NOT_FINITE)
    iterations, evaluations = np.zeros(S, dtype=int), S
    active = finite.copy()
    for it in range(max_iter):
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        newest_first = [(it - 1 - j) % memory for j in range(min(it, memory))]
        d = -_two_loop(g[rows], s_hist[rows], y_hist[rows], rho[rows], gamma[rows], newest_first)
        d = _ensure_descent(d, g[rows], rho, rows)
        x_new, f_new, g_new, accepted, n_eval = _backtrack(objective, rows, x[rows], f[rows], g[rows], d,
                                                           c1, max_backtracks)
        evaluations += n_eval
        slot = it % memory
        s, y = x_new - x[rows], g_new - g[rows]
        sy, yy = np.einsum("kp,kp->k", s, y), np.einsum("kp,kp->k", y, y)
        keep = accepted & (sy > 1e-10 * np.sqrt(yy * np.einsum("kp,kp->k", s, s)))
        s_hist[rows, slot], y_hist[rows, slot] = s, y
        rho[rows, slot] = np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0)
        gamma[rows] = np.where(keep, sy / np.where(keep, yy, 1.0), gamma[rows])
        small_drop = (f[rows] - f_new) <= ftol * np.maximum(np.abs(f_new), 1e-300)
        flat = np.abs(g_new).max(axis=1) <= gtol
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        iterations[rows] += 1
        stop_ok, stop_stall = accepted & (small_drop | flat), ~accepted
        status[rows[stop_ok]], status[rows[stop_stall]] = CONVERGED, STALLED
        active[rows[stop_ok | stop_stall]] = False
    return Minima(x=x, f=f, iterations=iterations, status=status, evaluations=evaluations)


def _ensure_descent(d: Array, g: Array, rho: Array, rows: Array) -> Array:
    """Replace non-descent directions by steepest descent of unit length and forget that start's pairs."""
    bad = ~(np.einsum("kp,kp->k", d, g) < 0) | ~np.isfinite(d).all(axis=1)
    if bad.any():
        d[bad] = -g[bad] / np.maximum(np.linalg.norm(g[bad], axis=1, keepdims=True), 1e-300)
        rho[rows[bad]] = 0.0
    return d


# --------------------------------------------------------------------------- fitting a law


def grid_starts(law: Law, grid: Mapping[str, object] | None = None) -> Array:
    """Cartesian product of the law's default starting grid, with entries of `grid` replacing defaults."""
    values = law.default_grid()
    for name, choice in (grid or {}).items():
        if name not in values:
            raise ValueError(f"grid names {name!r}, which law {law.name} does not have; its fit-space "
                             f"parameters are {', '.join(law.fit_names)}")
        values[name] = np.atleast_1d(np.asarray(choice, dtype=float))
    return np.array(list(itertools.product(*(values[n] for n in law.fit_names))), dtype=float)


SCREEN_RUNS = 1000  # a grid over more runs than this is screened on this many first
REFINE_STARTS = 20  # the screen's best distinct end points that are then run on every run


@dataclass
class LawFit:
    """The best of a multi-start fit, with every start's end point kept for diagnostics."""

    law: Law
    theta: Array  # [p] best fit-space parameters
    objective: float
    minima: Minima  # end points on all runs (of the screen's best starts when screened)
    delta: float
    screen: Minima | None = None  # end points of every grid start on the screening subset
    screen_runs: int = 0  # runs in that subset

    @property
    def params(self) -> dict[str, float]:
        """Reported parameters of the best fit."""
        return {k: float(v) for k, v in self.law.to_params(self.theta).items()}

    @property
    def grid(self) -> Minima:
        """End points of every start of the grid (on the screening subset when screened)."""
        return self.screen if self.screen is not None else self.minima

    @property
    def n_starts(self) -> int:
        """How many starts were run."""
        return len(self.grid.f)

    def n_at_best(self, rtol: float = 1e-6) -> int:
        """How many starts ended within rtol (relative) of the best objective (of the screen's, when screened)."""
        f = self.grid.f
        best = self.objective if self.screen is None else float(np.min(f))
        return int(np.sum(f <= best * (1 + rtol) + 1e-300))

    def distinct_optima(self, k: int, tol: float = 1e-3) -> Array:
        """Up to k best end points that differ by more than tol in fit space [k, p].

        When screened, only those within 10% of the best objective: the refined starts ran to the
        limit of precision, so the others lie in basins far worse than the optimum's.
        """
        minima = self.minima
        if self.screen is not None:
            near = minima.f <= 1.1 * self.objective
            minima = Minima(x=minima.x[near], f=minima.f[near], iterations=minima.iterations[near],
                            status=minima.status[near], evaluations=minima.evaluations)
        return distinct_end_points(minima, k, tol)


def distinct_end_points(minima: Minima, k: int, tol: float = 1e-3) -> Array:
    """Up to k best finite end points of `minima` that differ by more than tol in fit space [k, p]."""
    order = np.argsort(minima.f)
    chosen: list[Array] = []
    for i in order[np.isfinite(minima.f[order])]:
        if all(np.abs(minima.x[i] - c).max() > tol for c in chosen):
            chosen.append(minima.x[i])
        if len(chosen) == k:
            break
    return np.array(chosen)


def screening_rows(logx: Mapping[str, Array], law: Law, count: int) -> Array:
    """`count` row positions spread evenly over the runs sorted by the law's variables (all sizes, all budgets)."""
    order = np.lexsort([logx[v] for v in reversed(law.variables)])
    return np.sort(order[np.linspace(0, len(order) - 1, count).round().astype(int)])


def fit_law(law: Law, logx: Mapping[str, Array], logy: Array, *, delta: float = 1e-3,
            weights: Array | None = None, starts: Array | None = None,
            grid: Mapping[str, object] | None = None, screen_runs: int = SCREEN_RUNS, refine: int = REFINE_STARTS,
            **lbfgs_options: float) -> LawFit:
    """Fit `law` to log losses logy [n] at log-variables logx {name: [n]} from a grid of starts.

    `starts` [S, p] (fit space) overrides the grid; `weights` [n] weighs each run's Huber loss.
    With more than `screen_runs` runs and `refine` starts, the starts run on `screen_runs` of
    the runs first and only the `refine` best distinct end points on all (0: never screen).
    """
    x0 = grid_starts(law, grid) if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    screen, subset = None, 0
    if 0 < screen_runs < len(logy) and len(x0) > refine:
        rows = screening_rows(logx, law, screen_runs)
        sub_weights = None if weights is None else np.asarray(weights, dtype=float)[rows]
        screen = lbfgs(huber_objective(law, {v: logx[v][rows] for v in law.variables}, logy[rows], delta,
                                         sub_weights), x0, **lbfgs_options)
        if np.isfinite(screen.f).any():
            x0, subset = distinct_end_points(screen, refine), screen_runs
        else:
            screen = None
    # the few refined starts run to the limit of precision: a relative drop of ftol (1e-9) can stop a
    # start early in the flat valleys of a large table, which a grid of thousands hides by its best
    refine_options = {**lbfgs_options, "ftol": 0.0} if screen is not None else lbfgs_options
    minima = lbfgs(huber_objective(law, logx, logy, delta, weights), x0, **refine_options)
    if not np.isfinite(minima.f).any():
        raise AnalysisError(f"law {law.name}: no start reached a finite objective (check the losses and the grid)")
    best = int(np.argmin(minima.f))
    return LawFit(law=law, theta=minima.x[best].copy(), objective=float(minima.f[best]), minima=minima,
                  delta=delta, screen=screen, screen_runs=subset)
