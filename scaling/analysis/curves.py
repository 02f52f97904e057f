"""Fit a loss-curve law (MPL or annealing law) to some curves and predict the others.

    from scaling.analysis.curves import fit_curves
    result = fit_curves({"cosine": frame, "constant": frame2, "wsd": frame3}, law="mpl", fit_on=["cosine", "constant"])
    result.params, result.curves["wsd"]["mean_rel_err"], result.predict("wsd"), result.to_dict()

Each curve is a frame with columns step, lr, loss (one row per logged step). The fit minimises the
Huber loss (delta 1e-3) of log(observed) - log(predicted) over every logged step, from the peak of
the rate on, of the fitted curves (Luo et al.'s objective), with L-BFGS-B from a few starts.
Errors are |predicted - observed| / observed at the same steps. Pure: no I/O.

Across model sizes (`fit_across_sizes`), some parameters are power laws a * N^b of the size N and the
others are shared, fitted jointly to the curves of every size, so that a few curves per size (one
constant-rate trunk and a cooldown, say) predict every schedule and data size of every size:

    fit_across_sizes(curves, sizes={"25/cosine_24000": 25e6, ...}, law="mpl", fit_on=[...], scaled=["L0", "A"])
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from scaling.analysis.curve_laws import (CURVE_LAWS, DEFAULT_RESOLUTION, CurveFeatures, CurveLaw, curve_features,
                                         per_step_lr)
from scaling.analysis.hygiene import AnalysisError

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
CURVE_COLUMNS = ("step", "lr", "loss")
HUBER_DELTA = 1e-3
MAX_STRETCHES = 2048  # lumped drop stretches per curve: bounds the [points, stretches] matrices
MAX_POINTS = 1000  # evaluated steps per curve; longer logs are thinned evenly


@dataclass
class CurveFit:
    """A fitted curve law: parameters (papers' units), and per curve whether it was fitted and its errors."""

    law: str
    params: dict[str, float]
    formula: str
    curves: dict[str, dict] = field(default_factory=dict)
    objective: float = float("nan")
    seconds: float = float("nan")
    notes: list[str] = field(default_factory=list)
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    sizes: dict[str, dict] = field(default_factory=dict)  # across sizes: label -> {"N", "params" at that N}
    scaling: dict[str, dict[str, float]] = field(default_factory=dict)  # across sizes: name -> {"a", "b"}: a N^b

    def predict(self, name: str) -> pd.DataFrame:
        """Observed and predicted loss of curve `name` at its evaluated steps (step, loss, predicted)."""
        return self.predictions[name]

    def predicted_errors(self) -> dict[str, float | int] | None:
        """Over the predicted curves: the mean of their mean relative errors and the worst step; None if none."""
        predicted = [info for info in self.curves.values() if not info["fitted"]]
        return {"curves": len(predicted), **_errors_over(predicted)} if predicted else None

    def size_errors(self) -> dict[str, dict]:
        """Across sizes, per size label: N, its parameters, how many curves were fitted and predicted, and over
        its predicted curves the mean of their mean relative errors and the worst step (None when none)."""
        out = {}
        for label, size in self.sizes.items():
            infos = [info for info in self.curves.values() if info.get("N") == size["N"]]
            predicted = [info for info in infos if not info["fitted"]]
            errors = _errors_over(predicted) if predicted else {"mean_rel_err": None, "max_rel_err": None}
            out[label] = {**size, "fitted": len(infos) - len(predicted), "predicted": len(predicted), **errors}
        return out

    def to_dict(self) -> dict:
        """JSON-ready: {"law", "params", "curves": {name: {"fitted", "mean_rel_err", "max_rel_err", "points"}},
        "predicted": predicted_errors(), "formula", "objective", "seconds", "notes"}; across sizes also
        "scaling": {name: {"a", "b"}} and "sizes": size_errors(), and each curve's "N"."""
        out = {"law": self.law, "params": {k: _finite(v) for k, v in self.params.items()},
               "curves": {name: {k: _finite(v) for k, v in info.items()} for name, info in self.curves.items()},
               "predicted": self.predicted_errors(), "formula": self.formula, "objective": _finite(self.objective),
               "seconds": _finite(self.seconds), "notes": list(self.notes)}
        if self.sizes:
            out["scaling"] = {name: {k: _finite(v) for k, v in law.items()} for name, law in self.scaling.items()}
            out["sizes"] = {label: {k: ({p: _finite(x) for p, x in v.items()} if k == "params" else _finite(v))
                                    for k, v in info.items()} for label, info in self.size_errors().items()}
        return out

    def summary(self) -> str:
        """A plain-text table: parameters, then per curve fitted or predicted, mean and worst relative error."""
        lines = [f"law: curve ({self.law})  {self.formula}",
                 ("shared " if self.sizes else "") + "params: " + ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())]
        lines += [f"across sizes: {name} = {law['a']:.6g} * N^{law['b']:.4g}" for name, law in self.scaling.items()]
        lines.append(f"{'curve':<28} {'role':<9} {'points':>6} {'mean rel err':>13} {'max rel err':>12}")
        for name, info in self.curves.items():
            role = "fitted" if info["fitted"] else "predicted"
            lines.append(f"{name:<28} {role:<9} {info['points']:>6} {info['mean_rel_err']:>12.4%} "
                         f"{info['max_rel_err']:>11.4%}")
        predicted = self.predicted_errors()
        if predicted:
            lines.append(f"{predicted['curves']} predicted curves: mean rel err {predicted['mean_rel_err']:.4%} "
                         f"(mean over curves), worst step {predicted['max_rel_err']:.4%}")
        for label, size in self.size_errors().items():
            errors = (f"predicted mean rel err {size['mean_rel_err']:.4%}, worst step {size['max_rel_err']:.4%}"
                      if size["predicted"] else "nothing predicted")
            lines.append(f"N={label}: {size['fitted']} fitted, {size['predicted']} predicted curves: {errors}")
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"fit time: {self.seconds:.2f} s")
        return "\n".join(lines)


def _finite(value: object) -> object:
    """Plain float for JSON (None for NaN or infinity); other values as they are."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def fit_curves(curves: Mapping[str, pd.DataFrame], law: str = "mpl", fit_on: Sequence[str] | None = None, *,
               exhaustive: bool = False) -> CurveFit:
    """Fit `law` ("mpl" or "anneal") to the curves named in `fit_on` (default: all) and predict every curve.

    `curves` maps a name to a frame with columns step, lr, loss. Raises AnalysisError for no curves,
    a curve without those columns or with too few usable steps, and `fit_on` naming unknown curves.
    `exhaustive` starts the fit from a grid of 81 points (MPL) instead of 3 (they agree on the shipped data).
    """
    began = time.perf_counter()
    chosen = _check_request(curves, law, fit_on)
    frames = {name: clean_curve(name, frame) for name, frame in curves.items()}
    peak = max(float(frame["lr"].max()) for frame in frames.values())
    features, notes = _all_features(frames, peak)
    curve_law = CURVE_LAWS[law]
    _require_points(features, chosen, curve_law)
    theta, objective = _minimise(curve_law, [features[name] for name in chosen], exhaustive)
    result = CurveFit(law=law, params=curve_law.to_params(theta, peak), formula=curve_law.formula,
                      objective=objective, notes=notes)
    for name, feature in features.items():
        _score(result, name, name in chosen, feature, curve_law.predict(theta, feature)[0])
    result.seconds = time.perf_counter() - began
    return result


def _errors_over(infos: list[dict]) -> dict[str, float]:
    """Over some curves' scores: the mean of their mean relative errors and the worst step."""
    return {"mean_rel_err": float(np.mean([i["mean_rel_err"] for i in infos])),
            "max_rel_err": max(i["max_rel_err"] for i in infos)}


def _check_request(curves: Mapping[str, pd.DataFrame], law: str, fit_on: Sequence[str] | None) -> list[str]:
    if law not in CURVE_LAWS:
        raise AnalysisError(f"unknown curve law {law!r}; choose one of {', '.join(CURVE_LAWS)}")
    if not curves:
        raise AnalysisError("no loss curves to fit: give curves with columns step, lr, loss")
    chosen = list(curves) if fit_on is None else list(dict.fromkeys(fit_on))
    unknown = [name for name in chosen if name not in curves]
    if unknown:
        raise AnalysisError(f"no curve named {', '.join(unknown)}; the curves are: {', '.join(sorted(curves))}")
    if not chosen:
        raise AnalysisError(f"nothing to fit: name at least one curve to fit (of {', '.join(sorted(curves))})")
    return chosen


def clean_curve(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of one curve with finite step, lr >= 0 and loss > 0, sorted by step (the last row of a repeated step).

    Raises AnalysisError when a column is missing, fewer than 2 rows are usable or no lr is positive.
    """
    missing = [c for c in CURVE_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalysisError(f"curve {name} has no column {', '.join(missing)}; a loss curve needs columns "
                            f"{', '.join(CURVE_COLUMNS)} (it has: {', '.join(map(str, frame.columns)) or 'none'})")
    values = frame[list(CURVE_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    usable = values.notna().all(axis=1) & np.isfinite(values).all(axis=1) & (values["step"] >= 0)
    usable &= (values["lr"] >= 0) & (values["loss"] > 0)
    values = values[usable].drop_duplicates("step", keep="last").sort_values("step")
    if len(values) < 2 or not (values["lr"] > 0).any():
        raise AnalysisError(f"curve {name} has {len(values)} usable rows (finite step, lr >= 0, loss > 0) and "
                            f"{'a' if (values['lr'] > 0).any() else 'no'} positive lr; a loss curve needs 2 rows "
                            f"and a positive lr")
    return values.astype({"step": np.int64}).reset_index(drop=True)


def _all_features(frames: Mapping[str, pd.DataFrame], peak: float) -> tuple[dict[str, CurveFeatures], list[str]]:
    """Each curve's features (in units of the global peak rate `peak`) and notes on the steps left out."""
    features, warmup, thinned = {}, [], []
    for name, frame in frames.items():
        steps = frame["step"].to_numpy()
        lr = per_step_lr(steps, frame["lr"].to_numpy())
        after_peak = np.flatnonzero(steps >= int(np.argmax(lr)))
        kept = _thin(after_peak)
        warmup += [f"{len(steps) - len(after_peak)} of {name}"] if len(after_peak) < len(steps) else []
        thinned += [f"{len(kept)} of {len(after_peak)} of {name}"] if len(kept) < len(after_peak) else []
        resolution = max(DEFAULT_RESOLUTION, -(-len(lr) // MAX_STRETCHES))
        features[name] = curve_features(lr, steps[kept], frame["loss"].to_numpy()[kept], peak, resolution=resolution)
    notes = [("logged steps before the peak of the learning rate (warmup) are neither fitted nor scored, as in Luo "
              f"et al.: {', '.join(warmup)}")] if warmup else []
    notes += [f"long curves are used at evenly spread steps: {', '.join(thinned)}"] if thinned else []
    return features, notes


def _thin(indices: np.ndarray) -> np.ndarray:
    """At most MAX_POINTS of the indices, evenly spread, the first and last kept."""
    if len(indices) <= MAX_POINTS:
        return indices
    return indices[np.unique(np.linspace(0, len(indices) - 1, MAX_POINTS).round().astype(int))]


def _require_points(features: Mapping[str, CurveFeatures], chosen: Sequence[str], law: CurveLaw) -> None:
    """Refuse a fit with no more points than the law has parameters."""
    points = sum(len(features[name].loss) for name in chosen)
    if points <= len(law.param_names):
        raise AnalysisError(f"nothing to fit: the curves to fit ({', '.join(chosen)}) have {points} logged steps "
                            f"from the peak of the learning rate on; law {law.name} has {len(law.param_names)} "
                            f"parameters, so fit on more or longer curves")


def _score(result: CurveFit, name: str, fitted: bool, feature: CurveFeatures, predicted: np.ndarray,
           **more: float) -> None:
    relative = np.abs(predicted - feature.loss) / feature.loss
    result.curves[name] = {"fitted": fitted, "mean_rel_err": float(np.mean(relative)),
                           "max_rel_err": float(np.max(relative)), "points": len(relative), **more}
    result.predictions[name] = pd.DataFrame({"step": feature.steps, "loss": feature.loss, "predicted": predicted})


# ---------------------------------------------------------------------- the fit


def huber_objective(law: CurveLaw, features: Iterable[CurveFeatures]) -> Objective:
    """theta -> (mean Huber loss of the log residuals / delta^2, its gradient) over the curves' points."""
    features = list(features)
    n_points = sum(len(f.loss) for f in features)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        total, gradient = 0.0, np.zeros(len(theta))
        for f in features:
            predicted, jac = law.predict(theta, f)
            if not np.all(predicted > 0):
                return np.inf, gradient
            residual = np.log(predicted) - np.log(f.loss)
            slope = np.clip(residual, -HUBER_DELTA, HUBER_DELTA)
            total += float(np.sum(slope * (residual - 0.5 * slope)))
            gradient += (slope / predicted) @ jac
        scale = n_points * HUBER_DELTA ** 2
        return total / scale, gradient / scale

    return objective


def _minimise(law: CurveLaw, features: list[CurveFeatures], exhaustive: bool) -> tuple[np.ndarray, float]:
    """The best end point of L-BFGS-B over the law's starting points, and its objective."""
    objective = huber_objective(law, features)
    best_theta, best_value = None, np.inf
    with _one_blas_thread():
        for theta0 in _starts(law, features, exhaustive):
            theta, value = _descend(objective, theta0, law.bounds)
            if value < best_value:
                best_theta, best_value = theta, value
    if best_theta is None:
        raise AnalysisError(f"the {law.name} fit found no finite loss from any start; check the curves' lr and loss")
    return best_theta, best_value


def _descend(objective: Objective, theta: np.ndarray, bounds: Sequence, restarts: int = 5) -> tuple[np.ndarray, float]:
    """L-BFGS-B, restarted from where it stopped while that still helps (it sometimes stops on a tiny step)."""
    value = np.inf
    for _ in range(restarts):
        end = minimize(objective, theta, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 3000, "ftol": 1e-13, "gtol": 1e-10})
        improved = value - end.fun > 1e-9 * abs(end.fun)
        if end.fun <= value:
            theta, value = end.x, float(end.fun)
        if not improved:
            break
    return theta, value


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread: L-BFGS-B's small products (7 parameters) only lose time to more (10x on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - then the fit is only slower
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _starts(law: CurveLaw, features: list[CurveFeatures], exhaustive: bool) -> list[np.ndarray]:
    """Starting points: a power law L0 + A S^-alpha fitted to the curves, then the drop terms from a grid.

    In peak-rate units the MPL's drop scale is B eta_peak and its C is C eta_peak^(1 - gamma).
    """
    L0, log_A, alpha = _power_start(features)
    if law.name == "anneal":
        return [np.array([L0, log_A, alpha, drop]) for drop in ((0.0, 1e-4, 1e-3, 1e-2) if exhaustive else (1e-4,))]
    grid = (itertools.product((0.03, 0.1, 0.3), (0.01, 0.1, 1.0), (0.1, 0.5, 1.0), (0.3, 0.6, 1.0)) if exhaustive
            else ((0.1, 0.1, 0.5, 0.6), (0.3, 1.0, 0.5, 0.3), (0.03, 0.01, 1.0, 1.0)))
    return [np.array([L0, log_A, alpha, np.log(drop * beta), np.log(C), np.log(beta), gamma])
            for drop, C, beta, gamma in grid]


def _power_start(features: list[CurveFeatures]) -> tuple[float, float, float]:
    """(L0, log A, alpha) of L0 + A S^-alpha by a line in log-log space for L0 on a grid below the lowest loss."""
    area = np.concatenate([f.area for f in features])
    loss = np.concatenate([f.loss for f in features])
    best = (np.inf, 0.0, 0.0, 0.0)
    for L0 in loss.min() - np.array([0.05, 0.1, 0.2, 0.4, 0.8]):
        slope, intercept = np.polyfit(np.log(area), np.log(loss - L0), 1)
        misfit = float(np.sum((L0 + np.exp(intercept) * area ** slope - loss) ** 2))
        best = min(best, (misfit, L0, intercept, -slope))
    return best[1], best[2], max(best[3], 1e-2)


# ---------------------------------------------------------------------- across model sizes

DEFAULT_SCALED = {"mpl": ("L0", "A", "B"), "anneal": ("L0", "A", "C")}  # the level, the power term and the drop scale:
# on the shipped 25M+100M curves (authors' protocol) sharing the rest costs <= 0.03 points of predicted error
SIZE_EXPONENT_BOUND = 5.0  # |b| of a parameter's power law a * N^b


def fit_across_sizes(curves: Mapping[str, pd.DataFrame], sizes: Mapping[str, float], law: str = "mpl",
                     fit_on: Sequence[str] | None = None, scaled: Sequence[str] | None = None) -> CurveFit:
    """Fit `law` jointly to curves of several model sizes and predict every curve at its own size N.

    The parameters named in `scaled` (default DEFAULT_SCALED[law]) are power laws a * N^b, fitted in the
    law's fit space (a log-parameter is linear in log N, any other is exp(linear in log N)); the others are
    shared by all sizes. `sizes` maps each curve to its N. Raises AnalysisError as `fit_curves` does, and for
    a curve without a size, an unknown parameter, or fewer than two sizes with curves to fit.
    """
    began = time.perf_counter()
    chosen = _check_request(curves, law, fit_on)
    curve_law = CURVE_LAWS[law]
    coordinates = scaled_coordinates(curve_law, DEFAULT_SCALED[law] if scaled is None else scaled)
    by_size = _names_by_size(curves, sizes, chosen)
    frames = {name: clean_curve(name, frame) for name, frame in curves.items()}
    peak = max(float(frame["lr"].max()) for frame in frames.values())
    features, notes = _all_features(frames, peak)
    fitted = {N: [features[n] for n in names if n in chosen] for N, names in by_size.items()}
    fitted = {N: group for N, group in fitted.items() if group}
    for N, group in fitted.items():
        _require_points(features, [n for n in by_size[N] if n in chosen], curve_law)
    log_ref = float(np.mean(np.log(list(fitted))))
    groups = [(float(np.log(N)) - log_ref, group) for N, group in fitted.items()]
    phi, objective = _minimise_across(curve_law, coordinates, groups)
    result = CurveFit(law=law, params={}, formula=curve_law.formula, objective=objective, notes=notes)
    for N, names in by_size.items():
        theta, _ = size_theta(curve_law, coordinates, phi, float(np.log(N)) - log_ref)
        result.sizes[_size_label(N)] = {"N": N, "params": curve_law.to_params(theta, peak)}
        for name in names:
            _score(result, name, name in chosen, features[name], curve_law.predict(theta, features[name])[0], N=N)
    result.params, result.scaling = _shared_and_scaling(result.sizes)
    result.seconds = time.perf_counter() - began
    return result


def scaled_coordinates(law: CurveLaw, names: Sequence[str]) -> tuple[int, ...]:
    """The fit-space indices of the parameters `names`; AnalysisError for a name the law does not have."""
    unknown = [name for name in names if name not in law.param_names]
    if unknown:
        raise AnalysisError(f"law {law.name} has no parameter {', '.join(unknown)}; the parameters that may scale "
                            f"with N are: {', '.join(law.param_names)}")
    return tuple(sorted({law.param_names.index(name) for name in names}))


def _names_by_size(curves: Mapping[str, pd.DataFrame], sizes: Mapping[str, float],
                   chosen: Sequence[str]) -> dict[float, list[str]]:
    """Curve names grouped by N (ascending); AnalysisError for a curve without a positive N or < 2 fitted sizes."""
    missing = [name for name in curves if not (sizes.get(name, 0) > 0)]
    if missing:
        raise AnalysisError(f"no model size N for curve {', '.join(missing)}; across sizes every curve needs its N")
    by_size: dict[float, list[str]] = {}
    for name in curves:
        by_size.setdefault(float(sizes[name]), []).append(name)
    with_fits = sorted(N for N, names in by_size.items() if any(n in chosen for n in names))
    if len(with_fits) < 2:
        raise AnalysisError(f"across sizes needs curves to fit at two or more model sizes; the curves to fit have "
                            f"{'N = ' + ', '.join(map(_size_label, with_fits)) if with_fits else 'no N'}: fit on "
                            f"curves of more sizes")
    return dict(sorted(by_size.items()))


def _size_label(N: float) -> str:
    from scaling.analysis.formatting import fmt_count

    return fmt_count(N)


def size_theta(law: CurveLaw, coordinates: Sequence[int], phi: np.ndarray, x: float) -> tuple[np.ndarray, np.ndarray]:
    """theta [p] at log(N / N_ref) = x from the joint vector phi, and d theta / d phi [p, q].

    phi holds the shared coordinates in order, then (u, v) per scaled coordinate j: theta_j = u + v x
    for a log-parameter, exp(u + v x) otherwise (a * N^b either way).
    """
    p = len(law.param_names)
    shared = [i for i in range(p) if i not in coordinates]
    theta, jac = np.empty(p), np.zeros((p, len(phi)))
    theta[shared] = phi[:len(shared)]
    jac[shared, np.arange(len(shared))] = 1.0
    for k, j in enumerate(coordinates):
        col = len(shared) + 2 * k
        value = phi[col] + phi[col + 1] * x
        theta[j] = value if j in law.log_coordinates else np.exp(min(value, 50.0))
        slope = 1.0 if j in law.log_coordinates else theta[j]
        jac[j, col], jac[j, col + 1] = slope, slope * x
    return theta, jac


def _joint_objective(law: CurveLaw, coordinates: Sequence[int],
                     groups: Sequence[tuple[float, list[CurveFeatures]]]) -> Objective:
    """phi -> (the Huber objective over every size's fitted points, its gradient)."""
    parts = [(x, huber_objective(law, group), sum(len(f.loss) for f in group)) for x, group in groups]
    total = sum(n for *_, n in parts)

    def objective(phi: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = 0.0, np.zeros(len(phi))
        for x, part, n in parts:
            theta, jac = size_theta(law, coordinates, phi, x)
            size_value, size_gradient = part(theta) if np.all(np.isfinite(theta)) else (np.inf, None)
            if not np.isfinite(size_value):
                return np.inf, np.zeros(len(phi))
            value += size_value * n / total
            gradient += jac.T @ size_gradient * (n / total)
        return value, gradient

    return objective


def _minimise_across(law: CurveLaw, coordinates: Sequence[int],
                     groups: Sequence[tuple[float, list[CurveFeatures]]]) -> tuple[np.ndarray, float]:
    """The best joint fit from starts built on each size's own fit (the shared values of one size, or their mean)."""
    objective = _joint_objective(law, coordinates, groups)
    bounds = _joint_bounds(law, coordinates)
    per_size = [_minimise(law, group, exhaustive=False)[0] for _, group in groups]
    best_phi, best_value = None, np.inf
    lower = np.array([-np.inf if lo is None else lo for lo, _ in bounds])
    upper = np.array([np.inf if hi is None else hi for _, hi in bounds])
    with _one_blas_thread():
        for phi0 in _joint_starts(law, coordinates, [x for x, _ in groups], per_size):
            phi, value = _descend(objective, np.clip(phi0, lower, upper), bounds)
            if value < best_value:
                best_phi, best_value = phi, value
    if best_phi is None:
        raise AnalysisError(f"the {law.name} fit across sizes found no finite loss from any start; check the curves")
    return best_phi, best_value


def _joint_bounds(law: CurveLaw, coordinates: Sequence[int]) -> list[tuple[float | None, float | None]]:
    """L-BFGS-B bounds of phi: a shared coordinate's own, a scaled one's on its value at N_ref, |b| bounded."""
    bounds = [law.bounds[i] for i in range(len(law.param_names)) if i not in coordinates]
    for j in coordinates:
        lo, hi = law.bounds[j]
        if j not in law.log_coordinates:  # u is the log of the coordinate
            lo, hi = (np.log(lo) if lo else None), (np.log(hi) if hi else None)
        bounds += [(lo, hi), (-SIZE_EXPONENT_BOUND, SIZE_EXPONENT_BOUND)]
    return bounds


def _joint_starts(law: CurveLaw, coordinates: Sequence[int], xs: Sequence[float],
                  per_size: Sequence[np.ndarray]) -> list[np.ndarray]:
    """phi from the sizes' own fits: scaled coordinates by a line through them in log N, shared ones from each
    size in turn and from their mean."""
    shared = [i for i in range(len(law.param_names)) if i not in coordinates]
    lines = []
    for j in coordinates:
        values = np.array([theta[j] for theta in per_size])
        values = values if j in law.log_coordinates else np.log(np.maximum(values, 1e-12))
        slope, intercept = np.polyfit(xs, values, 1)
        lines += [intercept, float(np.clip(slope, -SIZE_EXPONENT_BOUND, SIZE_EXPONENT_BOUND))]
    candidates = [theta[shared] for theta in per_size] + [np.mean([theta[shared] for theta in per_size], axis=0)]
    return [np.concatenate([candidate, lines]) for candidate in candidates]


def _shared_and_scaling(sizes: Mapping[str, dict]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The parameters equal at every size (papers' units), and a * N^b through the others' values (log-log line)."""
    entries = list(sizes.values())
    shared, scaling = {}, {}
    for name, value in entries[0]["params"].items():
        values = np.array([entry["params"][name] for entry in entries])
        if np.allclose(values, value, rtol=1e-9, atol=0.0):
            shared[name] = value
        elif np.all(values > 0):
            b, log_a = np.polyfit(np.log([entry["N"] for entry in entries]), np.log(values), 1)
            scaling[name] = {"a": float(np.exp(log_a)), "b": float(b)}
        else:
            scaling[name] = {"a": float("nan"), "b": float("nan")}
    return shared, scaling


# ---------------------------------------------------------------------- a sweep's curves (the report)


def sweep_curve_fit(runs: pd.DataFrame, long: pd.DataFrame | None, law: str = "mpl") -> CurveFit | None:
    """The curve law of a sweep (load_runs' run table and long curves) fitted as `--fit-on auto` fits it: per
    size the trunk and its shortest cooldown, or all runs but the longest; across sizes when there are several.

    None when the sweep has no schedule law to fit: no curves with a learning rate, or neither cooldown
    branches nor two schedules (runs of one size whose final rate, relative to their peak, differs).
    Raises AnalysisError when the fit cannot be made.
    """
    from scaling.analysis.curve_source import auto_fit_on, sweep_curves

    if long is None or "lr" not in long.columns or not (pd.to_numeric(long["lr"], errors="coerce") > 0).any():
        return None
    source = sweep_curves(runs, long)
    branches = "parent" in runs.columns and runs["parent"].notna().any()
    if not branches and not _several_schedules(source.curves, source.sizes):
        return None
    fit_on = auto_fit_on(source)
    if len(source.distinct_sizes()) > 1:
        return fit_across_sizes(source.curves, source.sizes, law, fit_on)
    return fit_curves(source.curves, law, fit_on)


def _several_schedules(curves: Mapping[str, pd.DataFrame], sizes: Mapping[str, float]) -> bool:
    """Whether two curves of one size follow different schedules: their rate, relative to its peak, ends more
    than 0.05 apart or averages more than 0.1 apart (cosine ~0.55, wsd ~0.9, constant 1 over a run)."""
    shapes: dict[float | None, list[tuple[float, float]]] = {}
    for name, frame in curves.items():
        lr = pd.to_numeric(frame.sort_values("step")["lr"], errors="coerce").dropna()
        if len(lr) and lr.max() > 0:
            shapes.setdefault(sizes.get(name), []).append((float(lr.iloc[-1] / lr.max()), float(lr.mean() / lr.max())))
    return any(abs(a[0] - b[0]) > 0.05 or abs(a[1] - b[1]) > 0.1
               for group in shapes.values() for a, b in itertools.combinations(group, 2))
