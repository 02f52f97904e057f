"""Scaling laws: their formulas, their fitting parametrisation and compute-optimal allocation.

Every law predicts the log of the loss from log-transformed run-table columns. It is fitted in a
"fit space" where the optimiser is well behaved (logs of the scale constants, as Hoffmann et al.
2022 do: `e = log E`, `a = log A`, `b = log B`) and reported in natural units (`E`, `A`, `B`).

The hot path is `Law.forward(theta, logx)`: a batch of parameter vectors `theta` [S, p] (one row
per optimiser start) against every run's log-variables `logx` {name: [n]}; it returns the log
prediction [S, n] and a vector-Jacobian product that turns d(objective)/d(prediction) [S, n]
into d(objective)/d(theta) [S, p]. Gradients are exact (analytic), never numerical.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Mapping

import numpy as np

Array = np.ndarray
VJP = Callable[[Array], Array]

# exp() of arguments below this is < 1e-130: treated as that, which keeps numpy off the slow
# subnormal path (about 10x slower) without changing any prediction that matters.
EXP_FLOOR = -300.0


# ----------------------------------------------------------------- the laws as plain formulas


def power_law(x: Array, A: float, alpha: float, E: float = 0.0) -> Array:
    """L(x) = E + A x^-alpha (E = 0 gives the pure power law)."""
    return E + A * np.asarray(x, dtype=float) ** -alpha


def chinchilla_loss(N: Array, D: Array, E: float, A: float, B: float, alpha: float, beta: float) -> Array:
    """Hoffmann et al. 2022: L(N, D) = E + A / N^alpha + B / D^beta."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return E + A / N**alpha + B / D**beta


def kaplan_loss(N: Array, D: Array, N_c: float, D_c: float, alpha_N: float, alpha_D: float) -> Array:
    """Kaplan et al. 2020 (eq. 1.5): L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    return ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D


def chinchilla_allocation(A: float, B: float, alpha: float, beta: float) -> dict[str, float]:
    """Exponents and coefficient of N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b for Chinchilla's law.

    Minimising E + A/N^alpha + B/D^beta subject to C = 6 N D gives
    G = (alpha A / (beta B))^(1 / (alpha + beta)), a = beta / (alpha + beta), b = alpha / (alpha + beta).
    """
    total = alpha + beta
    G = math.exp((math.log(alpha * A) - math.log(beta * B)) / total) if min(alpha, beta, A, B) > 0 else math.nan
    return {"a": beta / total, "b": alpha / total, "G": G}


def kaplan_allocation(N_c: float, D_c: float, alpha_N: float, alpha_D: float) -> dict[str, float]:
    """N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b for Kaplan's L(N, D) under C = 6 N D.

    With r = alpha_N / alpha_D, d/dN [(N_c/N)^r + D_c N / (C/6)] = 0 gives
    N^(1+r) = r N_c^r (C/6) / D_c, so a = 1 / (1 + r) and G = (r N_c^r / D_c)^a.
    """
    r = alpha_N / alpha_D
    a = 1.0 / (1.0 + r)
    G = math.exp(a * (math.log(r) + r * math.log(N_c) - math.log(D_c))) if r > 0 else math.nan
    return {"a": a, "b": 1.0 - a, "G": G}


def optimal_allocation(C: Array, a: float, b: float, G: float) -> tuple[Array, Array]:
    """(N_opt, D_opt) at compute C: N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b."""
    per_six = np.asarray(C, dtype=float) / 6.0
    return G * per_six**a, per_six**b / G


# ------------------------------------------------------------------------- fit-space laws



_DISTINCT: list[tuple[list[Array], list[Array], Array | None]] = []  # recent calls: (xs, distinct xs, index)


def _distinct_rows(xs: list[Array]) -> tuple[list[Array], Array | None]:
    """The distinct rows of the columns xs and the index that rebuilds every row from them, or
    (xs, None) when most rows differ. Remembered for the last few inputs: a fit calls its law on
    the same arrays thousands of times."""
    for seen, distinct, index in _DISTINCT:
        if len(seen) == len(xs) and all(a is b for a, b in zip(seen, xs)):
            return distinct, index
    rows, index = np.unique(np.stack(xs, axis=1), axis=0, return_inverse=True)
    found = ([np.ascontiguousarray(rows[:, k]) for k in range(len(xs))], index.reshape(-1))
    if len(rows) > len(xs[0]) // 2:
        found = (xs, None)
    _DISTINCT.insert(0, (list(xs), *found))
    del _DISTINCT[4:]
    return found


class Law(ABC):
    """A law as the fitter sees it: names, a default starting grid and a batched forward pass."""

    name: str
    formula: str
    variables: tuple[str, ...]  # run-table columns the law reads, e.g. ("N", "D")
    fit_names: tuple[str, ...]  # fit-space parameters, e.g. ("e", "a", "b", "alpha", "beta")
    param_names: tuple[str, ...]  # reported parameters, e.g. ("E", "A", "B", "alpha", "beta")

    @property
    def n_params(self) -> int:
        """Number of free parameters."""
        return len(self.fit_names)

    @abstractmethod
    def default_grid(self) -> dict[str, Array]:
        """Starting values per fit-space parameter; the fitter starts from their product."""

    @abstractmethod
    def forward(self, theta: Array, logx: Mapping[str, Array]) -> tuple[Array, VJP]:
        """Log predicted loss [S, n] for parameters theta [S, p], and its vector-Jacobian product."""

    @abstractmethod
    def to_params(self, theta: Array) -> dict[str, Array]:
        """Fit space [..., p] -> reported parameters {name: [...]}."""

    @abstractmethod
    def from_params(self, params: Mapping[str, float]) -> Array:
        """Reported parameters -> fit-space vector [p]."""

    def allocation(self, params: Mapping[str, float]) -> dict[str, float] | None:
        """{a, b, G} of the compute-optimal allocation, for laws of N and D; None otherwise."""
        return None

    def centre(self, theta: Array, shifts: Mapping[str, float]) -> Array:
        """theta' with forward(theta', log x - shift) == forward(theta, log x) (for diagnostics)."""
        return np.array(theta, dtype=float)

    def loss(self, params: Mapping[str, float], **columns: Array) -> Array:
        """The law's loss at the given run-table columns (natural units)."""
        arrays = np.broadcast_arrays(*[np.asarray(columns[v], dtype=float) for v in self.variables])
        logx = {v: np.log(x).ravel() for v, x in zip(self.variables, arrays)}
        pred, _ = self.forward(self.from_params(params)[None, :], logx)
        return np.exp(pred[0]).reshape(arrays[0].shape)


def _stable_exps(terms: list[Array]) -> tuple[Array, list[Array], Array]:
    """log-sum-exp of [S, n] terms with the shifted exponentials it used: (lse, exps, sum)."""
    shift = terms[0].copy()
    for term in terms[1:]:
        np.maximum(shift, term, out=shift)
    exps = []
    for term in terms:
        z = term - shift
        np.maximum(z, EXP_FLOOR, out=z)
        exps.append(np.exp(z, out=z))
    total = exps[0].copy()
    for z in exps[1:]:
        total += z
    lse = np.log(total)
    lse += shift
    return lse, exps, total


class SumOfPowers(Law):
    """log L = log(E + sum_k A_k x_k^-alpha_k): Chinchilla's law and the one-variable laws.

    Fitted as Hoffmann et al. do, as a log-sum-exp of terms (a_k - alpha_k log x_k) and e:
    fit space is (e, a_1, ..., a_K, alpha_1, ..., alpha_K) (no e without an irreducible term).
    """

    def __init__(self, name: str, variables: tuple[str, ...], scale_names: tuple[str, ...],
                 exponent_names: tuple[str, ...], irreducible: bool = True):
        self.name, self.variables, self.irreducible = name, variables, irreducible
        self.scale_names, self.exponent_names = scale_names, exponent_names
        lower = tuple(s.lower() for s in scale_names)
        self.fit_names = (("e",) if irreducible else ()) + lower + exponent_names
        self.param_names = (("E",) if irreducible else ()) + scale_names + exponent_names
        terms = " + ".join(f"{s}/{v}^{x}" for s, v, x in zip(scale_names, variables, exponent_names))
        self.formula = f"L({', '.join(variables)}) = " + ("E + " if irreducible else "") + terms

    def default_grid(self) -> dict[str, Array]:
        if self.variables == ("N", "D"):  # Hoffmann et al.'s grid: 5 * 6 * 6 * 5 * 5 = 4,500 starts
            grid = {"e": np.arange(-1, 1.01, 0.5), "a": np.arange(0, 26, 5.0), "b": np.arange(0, 26, 5.0),
                    "alpha": np.arange(0, 2.01, 0.5), "beta": np.arange(0, 2.01, 0.5)}
        else:  # one variable: exponents are small for C, so start small too (9 * 7 * 6 = 378)
            grid = {"e": np.arange(-3.0, 1.01, 0.8), "a": np.arange(0, 31, 5.0),
                    self.exponent_names[0]: np.array([0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5])}
        return {k: grid[k] for k in self.fit_names}

    def _split(self, theta: Array) -> tuple[Array | None, Array, Array]:
        k = len(self.variables)
        offset = 1 if self.irreducible else 0
        e = theta[:, 0:1] if self.irreducible else None
        return e, theta[:, offset:offset + k], theta[:, offset + k:offset + 2 * k]

    def forward(self, theta: Array, logx: Mapping[str, Array]) -> tuple[Array, VJP]:
        e, scales, exponents = self._split(theta)
        xs = [logx[v] for v in self.variables]
        if e is None and len(xs) == 1:  # pure power law: log L = a - alpha log x, linear
            pred = scales - np.multiply.outer(exponents[:, 0], xs[0])
            return pred, lambda gbar: np.stack([gbar.sum(1), -(gbar @ xs[0])], axis=1)
        shift = self._row_max(e, scales, exponents, xs)  # [S, 1]: no term exceeds it in its row
        # Every term is a function of the run's x alone: computed once per distinct x (a sweep
        # repeats configurations over seeds) and spread to the runs, the same numbers to the bit.
        distinct, index = _distinct_rows(xs)
        exps = [self._shifted_exp(scales[:, k:k + 1] - shift, exponents[:, k], x) for k, x in enumerate(distinct)]
        total = exps[0].copy()
        for z in exps[1:]:
            total += z
        exp_e = np.exp(np.maximum(e - shift, EXP_FLOOR)) if e is not None else None
        if exp_e is not None:
            total += exp_e
        pred = np.log(total)
        pred += shift
        if index is not None:
            pred, total = np.take(pred, index, axis=1), np.take(total, index, axis=1)
            exps = [np.take(z, index, axis=1) for z in exps]

        def vjp(gbar: Array) -> Array:  # d pred / d term_k = exp(term_k) / total (called once)
            q = np.divide(gbar, total, out=total)
            cols = [exp_e[:, 0] * q.sum(1)] if exp_e is not None else []
            for z in exps:
                z *= q
            cols += [z.sum(1) for z in exps]
            cols += [-(z @ x) for z, x in zip(exps, xs)]
            return np.stack(cols, axis=1)

        return pred, vjp

    @staticmethod
    def _row_max(e: Array | None, scales: Array, exponents: Array, xs: list[Array]) -> Array:
        """Per start, an upper bound (attained) on every term a_k - alpha_k log x_k and on e."""
        bounds = [scales[:, k] - np.minimum(exponents[:, k] * x.min(), exponents[:, k] * x.max())
                  for k, x in enumerate(xs)]
        if e is not None:
            bounds.append(e[:, 0])
        return np.max(np.stack(bounds), axis=0)[:, None]

    @staticmethod
    def _shifted_exp(offset: Array, exponent: Array, x: Array) -> Array:
        """exp(offset - exponent x) [S, n], built in place, floored at exp(EXP_FLOOR)."""
        z = np.multiply.outer(exponent, x)
        np.subtract(offset, z, out=z)
        np.maximum(z, EXP_FLOOR, out=z)
        return np.exp(z, out=z)

    def centre(self, theta: Array, shifts: Mapping[str, float]) -> Array:
        theta = np.array(theta, dtype=float)
        offset, k = (1 if self.irreducible else 0), len(self.variables)
        for i, v in enumerate(self.variables):
            theta[..., offset + i] -= theta[..., offset + k + i] * shifts[v]
        return theta

    def to_params(self, theta: Array) -> dict[str, Array]:
        theta = np.asarray(theta, dtype=float)
        out = {}
        for i, (fit_name, name) in enumerate(zip(self.fit_names, self.param_names)):
            out[name] = np.exp(theta[..., i]) if fit_name != name else theta[..., i]
        return out

    def from_params(self, params: Mapping[str, float]) -> Array:
        # max(): a bootstrap draw can underflow E (or A, B) to exactly 0.0; its log is then very
        # negative rather than a math domain error.
        return np.array([math.log(max(params[p], 1e-300)) if f != p else float(params[p])
                         for f, p in zip(self.fit_names, self.param_names)])

    def allocation(self, params: Mapping[str, float]) -> dict[str, float] | None:
        if self.variables != ("N", "D"):
            return None
        return chinchilla_allocation(params["A"], params["B"], params["alpha"], params["beta"])


class Kaplan(Law):
    """Kaplan et al. 2020's L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

    Fit space: (n_c = log N_c, d_c = log D_c, alpha_N, alpha_D); log L = alpha_D * LSE(u, v) with
    u = (alpha_N / alpha_D)(n_c - log N) and v = d_c - log D.
    """

    name = "kaplan"
    formula = "L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    variables = ("N", "D")
    fit_names = ("n_c", "d_c", "alpha_N", "alpha_D")
    param_names = ("N_c", "D_c", "alpha_N", "alpha_D")

    def default_grid(self) -> dict[str, Array]:
        return {"n_c": np.arange(15.0, 36.0, 5.0), "d_c": np.arange(15.0, 36.0, 5.0),
                "alpha_N": np.array([0.05, 0.1, 0.2, 0.4, 0.8]), "alpha_D": np.array([0.05, 0.1, 0.2, 0.4, 0.8])}

    def forward(self, theta: Array, logx: Mapping[str, Array]) -> tuple[Array, VJP]:
        n_c, d_c, alpha_n, alpha_d = (theta[:, i:i + 1] for i in range(4))
        gap_n = n_c - logx["N"]  # [S, n]
        ratio = alpha_n / alpha_d
        u = ratio * gap_n
        lse, (exp_u, exp_v), total = _stable_exps([u, d_c - logx["D"]])
        w_u, w_v = exp_u / total, exp_v / total

        def vjp(gbar: Array) -> Array:
            return np.stack([(gbar * w_u * alpha_n).sum(1), (gbar * w_v * alpha_d).sum(1),
                             (gbar * w_u * gap_n).sum(1), (gbar * (lse - w_u * u)).sum(1)], axis=1)

        return alpha_d * lse, vjp

    def centre(self, theta: Array, shifts: Mapping[str, float]) -> Array:
        theta = np.array(theta, dtype=float)
        theta[..., 0] -= shifts["N"]
        theta[..., 1] -= shifts["D"]
        return theta

    def to_params(self, theta: Array) -> dict[str, Array]:
        theta = np.asarray(theta, dtype=float)
        return {"N_c": np.exp(theta[..., 0]), "D_c": np.exp(theta[..., 1]),
                "alpha_N": theta[..., 2], "alpha_D": theta[..., 3]}

    def from_params(self, params: Mapping[str, float]) -> Array:
        return np.array([math.log(params["N_c"]), math.log(params["D_c"]), params["alpha_N"], params["alpha_D"]])

    def allocation(self, params: Mapping[str, float]) -> dict[str, float] | None:
        return kaplan_allocation(params["N_c"], params["D_c"], params["alpha_N"], params["alpha_D"])


ONE_VARIABLE = {"compute": "C", "params": "N", "data": "D"}
PARAMETRIC_LAWS = ("chinchilla", "kaplan", *ONE_VARIABLE)
LAW_NAMES = (*PARAMETRIC_LAWS, "isoflop", "envelope")


def get_law(name: str, irreducible: bool = True) -> Law:
    """The fit-space law called `name` (chinchilla, kaplan, compute, params, data).

    `irreducible=False` drops E from the one-variable laws (a pure power law, L = A x^-alpha).
    """
    if name == "chinchilla":
        return SumOfPowers("chinchilla", ("N", "D"), ("A", "B"), ("alpha", "beta"))
    if name == "kaplan":
        return Kaplan()
    if name in ONE_VARIABLE:
        return SumOfPowers(name, (ONE_VARIABLE[name],), ("A",), ("alpha",), irreducible=irreducible)
    raise ValueError(f"unknown law {name!r}; choose one of {', '.join(LAW_NAMES)}")
