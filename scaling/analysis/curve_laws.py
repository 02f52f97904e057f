"""Schedule-aware laws of the whole loss curve: the Multi-Power Law and the annealing law.

    mpl:    L(t) = L0 + A (S1(t) + S_W)^-alpha - B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),
            G(x) = 1 - (C x + 1)^-beta,  S_k(t) = sum_{tau=k..t} eta_tau           (Luo et al. 2025)
    anneal: L(t) = L0 + A S1(t)^-alpha - C S2(t),
            S2(t) = sum_{i<=t} sum_{k<=i} (eta_{k-1} - eta_k) lambda^(i-k)            (Tissue et al. 2024)

A curve is the learning rate and the loss at its logged steps. The rate of every step is rebuilt
from the logged ones (`per_step_lr`); the sums above then run over steps, as in the papers, except
that the loss-drop sum of the MPL lumps the drops of each stretch of at most `resolution` steps
(and of each stretch between two logged steps) into one, at the stretch's drop-weighted centre:
that keeps a fit to O(points x stretches) work, within 1e-4 of the exact per-step sum.

Everything is pure numpy over arrays; laws work in units of the peak learning rate internally
(so that the optimiser sees parameters of order one) and report the papers' units.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

Array = np.ndarray
ANNEAL_DECAY = 0.999  # Tissue et al.'s momentum lambda of the annealing area
DEFAULT_RESOLUTION = 64  # steps per lumped stretch of the MPL's loss-drop sum


def per_step_lr(steps: Array, lrs: Array) -> Array:
    """The learning rate of every step 0..steps[-1], rebuilt from the logged (step, lr) pairs (steps sorted, unique).

    Before the first logged step the rate rises linearly from 0 at step 0 (a linear warmup, when the
    log starts after it). Between two logged steps it is interpolated linearly, except for an
    isolated jump (flat before and after, as in a step schedule), which happens at the later step.
    """
    steps = np.asarray(steps, dtype=np.int64)
    lrs = np.asarray(lrs, dtype=float)
    lr = np.interp(np.arange(steps[-1] + 1), np.concatenate([[0], steps]), np.concatenate([[0.0], lrs]))
    if steps[0] == 0:
        lr[0] = lrs[0]
    for j in _isolated_jumps(lrs):
        lr[steps[j - 1]:steps[j]] = lrs[j - 1]
    return lr


def _isolated_jumps(lrs: Array) -> Array:
    """Indices j where the rate changes from point j-1 to j but not just before nor just after."""
    same = np.isclose(lrs[1:], lrs[:-1], rtol=1e-9, atol=0.0)  # same[j-1]: lrs[j] == lrs[j-1]
    flat_before = np.concatenate([[True], same[:-1]])
    flat_after = np.concatenate([same[1:], [True]])
    return np.flatnonzero(~same & flat_before & flat_after) + 1


@dataclass(frozen=True)
class CurveFeatures:
    """What a law needs of one curve, in units of the peak rate: everything but the parameters.

    `area` [n]: S1 + S_W at each evaluated step; `anneal_area` [n]: S2 of the annealing law.
    The MPL's loss-drop sum runs over pairs (evaluated step t, lumped stretch k <= t), packed row
    by row: `pair_area` [P] S_k(t), `pair_drop` [P] the stretch's drop eta_{k-1} - eta_k,
    `pair_log_lr` [P] log eta_k; the pairs of the steps from `first_paired` on start at `row_starts`.
    """

    steps: Array
    loss: Array
    area: Array
    anneal_area: Array
    first_paired: int
    row_starts: Array
    pair_area: Array
    pair_drop: Array
    pair_log_lr: Array


def curve_features(lr: Array, steps: Array, loss: Array, peak_lr: float, *,
                   resolution: int = DEFAULT_RESOLUTION, decay: float = ANNEAL_DECAY) -> CurveFeatures:
    """The features of one curve: `lr` of every step (`per_step_lr`), evaluated at `steps` from its peak on.

    The steps before the peak (warmup) add their area to S_W but are neither fitted nor predicted,
    and the loss-drop sums start at the peak, as in Luo et al.
    """
    lr = np.asarray(lr, dtype=float) / peak_lr
    peak = int(np.argmax(lr))
    keep = np.asarray(steps) >= peak
    t = np.asarray(steps, dtype=np.int64)[keep]
    cumulative = np.cumsum(lr)
    return CurveFeatures(steps=t, loss=np.asarray(loss, dtype=float)[keep], area=cumulative[t],
                         anneal_area=_anneal_area(lr, peak, decay)[t],
                         **_drop_pairs(lr, cumulative, t, *_lumped_drops(lr, peak, t, resolution)))


def _drop_pairs(lr: Array, cumulative: Array, t: Array, drops: Array, centres: Array) -> dict[str, Array | int]:
    """The packed (step, stretch) pairs of the loss-drop sum: a stretch counts from its centre step on."""
    step_index, stretch = np.nonzero(centres[None, :] <= t[:, None])  # row-major: grouped by step
    first_paired = int(np.searchsorted(t, centres.min(initial=t[-1] + 1)))
    return {"first_paired": first_paired, "row_starts": np.flatnonzero(np.diff(step_index, prepend=-1)),
            "pair_area": cumulative[t[step_index]] - cumulative[centres[stretch] - 1],
            "pair_drop": drops[stretch], "pair_log_lr": np.log(lr[centres[stretch]])}


def _step_drops(lr: Array, peak: int) -> Array:
    """eta_{k-1} - eta_k of every step k, 0 up to the peak (the warmup's rises are not drops)."""
    drops = np.zeros(len(lr))
    drops[peak + 1:] = lr[peak:-1] - lr[peak + 1:]
    return drops


def _lumped_drops(lr: Array, peak: int, evaluated: Array, resolution: int) -> tuple[Array, Array]:
    """Stretches of steps after the peak (cut every `resolution` steps and after every evaluated step)
    that have a drop: their total drop and their drop-weighted centre step."""
    if peak + 1 >= len(lr):
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    step_drop = _step_drops(lr, peak)
    edges = np.union1d(np.arange(peak + 1, len(lr), resolution), evaluated[evaluated > peak] + 1)
    edges = edges[edges < len(lr)]
    weight = np.abs(step_drop)
    mass = np.add.reduceat(weight, edges)
    has_drop = mass > 0
    centres = np.add.reduceat(weight * np.arange(len(lr)), edges)[has_drop] / mass[has_drop]
    return np.add.reduceat(step_drop, edges)[has_drop], np.rint(centres).astype(np.int64)


def _anneal_area(lr: Array, peak: int, decay: float) -> Array:
    """S2 at every step: the cumulated momentum of rate drops, m_i = decay m_{i-1} + (eta_{i-1} - eta_i)."""
    from scipy.signal import lfilter

    return np.cumsum(lfilter([1.0], [1.0, -decay], _step_drops(lr, peak)))


# ---------------------------------------------------------------------- the laws


@dataclass(frozen=True)
class CurveLaw:
    """A curve law: parameter names (papers' order), fit-space maps, and prediction with its Jacobian.

    `predict(theta, features)` -> (loss [n], d loss / d theta [n, p]) in fit space theta;
    `to_params(theta, peak_lr)` gives the papers' parameters in papers' units and
    `from_params(params, peak_lr)` the inverse; `bounds` bound theta for L-BFGS-B.
    """

    name: str
    param_names: tuple[str, ...]
    formula: str
    predict: Callable[[Array, CurveFeatures], tuple[Array, Array]]
    to_params: Callable[[Array, float], dict[str, float]]
    from_params: Callable[[dict[str, float], float], Array]
    bounds: tuple[tuple[float | None, float | None], ...]
    log_coordinates: frozenset[int] = frozenset()  # theta entries that are the log of a parameter (in peak-rate units)


def _power_term(theta: Array, area: Array) -> tuple[Array, Array, Array]:
    """A area^-alpha with theta = (L0, log A, alpha, ...): the value and its derivatives in log A, alpha."""
    value = np.exp(theta[1]) * area ** -theta[2]
    return value, value, -value * np.log(area)


def mpl_predict(theta: Array, f: CurveFeatures) -> tuple[Array, Array]:
    """MPL loss at f.steps and its Jacobian; theta = (L0, log A, alpha, log(B beta), log C, log beta, gamma).

    B beta and log beta (not B and beta) keep the fit well posed where beta -> 0 and B -> infinity
    (G(x) / beta -> log(1 + C x)), a ridge the optimum of short curves often lies along.
    """
    L0, _, _, log_B_beta, log_C, log_beta, gamma = theta
    power, d_log_A, d_alpha = _power_term(theta, f.area)
    B_beta, C, beta = np.exp(log_B_beta), np.exp(log_C), np.exp(log_beta)
    scaled = C * np.exp(-gamma * f.pair_log_lr) * f.pair_area  # C x, x = eta_k^-gamma S_k(t)
    log_base = np.log1p(scaled)
    tail = np.exp(-beta * log_base)  # 1 - G
    gain = -np.expm1(-beta * log_base) / beta * f.pair_drop  # drop * G / beta
    slope = scaled * tail / (1.0 + scaled) * f.pair_drop  # drop * d(G / beta) / d log C
    # per pair: drop * G / beta and its derivatives in log C, log beta and gamma (d x / d gamma = -log(eta) x)
    terms = np.stack([gain, slope, log_base * tail * f.pair_drop - gain, -slope * f.pair_log_lr], axis=1)
    sums = np.zeros((len(f.area), 4))  # the same, summed per evaluated step
    if len(terms):
        sums[f.first_paired:] = np.add.reduceat(terms, f.row_starts, axis=0)
    jac = np.empty((len(f.area), 7))
    jac[:, 0], jac[:, 1], jac[:, 2] = 1.0, d_log_A, d_alpha
    jac[:, 3:] = -B_beta * sums
    return L0 + power - B_beta * sums[:, 0], jac


def anneal_predict(theta: Array, f: CurveFeatures) -> tuple[Array, Array]:
    """Annealing-law loss at f.steps and its Jacobian; theta = (L0, log A, alpha, C)."""
    power, d_log_A, d_alpha = _power_term(theta, f.area)
    jac = np.column_stack([np.ones(len(f.area)), d_log_A, d_alpha, -f.anneal_area])
    return theta[0] + power - theta[3] * f.anneal_area, jac


def _mpl_params(theta: Array, peak: float) -> dict[str, float]:
    L0, log_A, alpha, log_B_beta, log_C, log_beta, gamma = map(float, theta)
    return {"L0": L0, "A": float(np.exp(log_A) * peak ** alpha), "alpha": alpha,
            "B": float(np.exp(log_B_beta - log_beta) / peak), "C": float(np.exp(log_C) * peak ** (gamma - 1.0)),
            "beta": float(np.exp(log_beta)), "gamma": gamma}


def _mpl_theta(p: dict[str, float], peak: float) -> Array:
    return np.array([p["L0"], np.log(p["A"]) - p["alpha"] * np.log(peak), p["alpha"],
                     np.log(p["B"] * p["beta"] * peak), np.log(p["C"]) - (p["gamma"] - 1.0) * np.log(peak),
                     np.log(p["beta"]), p["gamma"]])


def _anneal_params(theta: Array, peak: float) -> dict[str, float]:
    L0, log_A, alpha, C = map(float, theta)
    return {"L0": L0, "A": float(np.exp(log_A) * peak ** alpha), "alpha": alpha, "C": C / peak}


def _anneal_theta(p: dict[str, float], peak: float) -> Array:
    return np.array([p["L0"], np.log(p["A"]) - p["alpha"] * np.log(peak), p["alpha"], p["C"] * peak])


MPL = CurveLaw(name="mpl", param_names=("L0", "A", "alpha", "B", "C", "beta", "gamma"),
               formula="L0 + A*(S1+S_W)^-alpha - B*sum_k (eta_{k-1}-eta_k)*(1-(C*eta_k^-gamma*S_k+1)^-beta)",
               predict=mpl_predict, to_params=_mpl_params, from_params=_mpl_theta,
               bounds=((None, None), (None, None), (1e-3, 3.0), (None, None), (None, None),
                       (np.log(1e-4), np.log(5.0)), (0.0, 3.0)), log_coordinates=frozenset({1, 3, 4, 5}))
ANNEAL = CurveLaw(name="anneal", param_names=("L0", "A", "alpha", "C"),
                  formula=f"L0 + A*S1^-alpha - C*S2 (S2: annealing area, lambda={ANNEAL_DECAY})",
                  predict=anneal_predict, to_params=_anneal_params, from_params=_anneal_theta,
                  bounds=((None, None), (None, None), (1e-3, 3.0), (0.0, None)), log_coordinates=frozenset({1}))
CURVE_LAWS = {law.name: law for law in (MPL, ANNEAL)}
