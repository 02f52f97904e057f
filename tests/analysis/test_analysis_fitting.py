"""The pieces under a fit: exact gradients, the batched L-BFGS, allocation formulas, the Huber loss."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.analysis.fitting import CONVERGED, STALLED, grid_starts, huber, huber_objective, lbfgs
from scaling.analysis.laws import (chinchilla_allocation, chinchilla_loss, get_law, kaplan_allocation, kaplan_loss,
                                   optimal_allocation)

RNG = np.random.default_rng(0)
N = np.geomspace(1e7, 1e10, 30) * np.exp(0.1 * RNG.standard_normal(30))
D = np.geomspace(1e9, 1e12, 30)[::-1] * np.exp(0.3 * RNG.standard_normal(30))
LOGX = {"N": np.log(N), "D": np.log(D), "C": np.log(6 * N * D)}
LOGY = np.log(chinchilla_loss(N, D, 1.69, 406.4, 410.7, 0.34, 0.28) * np.exp(0.01 * RNG.standard_normal(30)))

THETAS = {
    "chinchilla": np.array([[0.5, 6.0, 6.0, 0.3, 0.3], [-1.0, 25.0, 0.0, 2.0, 0.0], [0.2, 3.0, 9.0, 0.1, 0.5]]),
    "kaplan": np.array([[30.0, 25.0, 0.08, 0.1], [20.0, 30.0, 0.2, 0.05]]),
    "compute": np.array([[0.3, 3.0, 0.05], [-2.0, 10.0, 0.3]]),
}


@pytest.mark.parametrize("name", ["chinchilla", "kaplan", "compute", "pure"])
def test_gradient_matches_finite_differences(name):
    law = get_law("compute", irreducible=False) if name == "pure" else get_law(name)
    thetas = THETAS["compute"][:, 1:] if name == "pure" else THETAS[name]
    objective = huber_objective(law, LOGX, LOGY, delta=0.05)  # a delta both branches of the Huber see
    f, g = objective(thetas, np.arange(len(thetas)))
    eps = 1e-6
    for i in range(thetas.shape[1]):
        step = np.zeros_like(thetas)
        step[:, i] = eps
        f_up, _ = objective(thetas + step, np.arange(len(thetas)))
        f_down, _ = objective(thetas - step, np.arange(len(thetas)))
        np.testing.assert_allclose(g[:, i], (f_up - f_down) / (2 * eps), rtol=1e-4, atol=1e-8)


def test_objective_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    theta = THETAS["chinchilla"][0]
    f, g = huber_objective(get_law("chinchilla"), LOGX, LOGY, delta=1e-3)(theta[None], np.arange(1))
    t = torch.tensor(theta, requires_grad=True)
    e, a, b, alpha, beta = t
    terms = torch.stack([a - alpha * torch.tensor(LOGX["N"]), b - beta * torch.tensor(LOGX["D"]),
                         e.expand(len(LOGY))])
    loss = torch.nn.functional.huber_loss(torch.logsumexp(terms, 0), torch.tensor(LOGY), delta=1e-3, reduction="sum")
    loss.backward()
    assert f[0] == pytest.approx(loss.item(), rel=1e-10)
    np.testing.assert_allclose(g[0], t.grad.numpy(), rtol=1e-8)


def test_huber_pieces():
    value, slope = huber(np.array([-1.0, -0.001, 0.0, 0.0005, 2.0]), delta=0.001)
    np.testing.assert_allclose(value, [0.001 * (1 - 0.0005), 0.5e-6, 0.0, 0.125e-6, 0.001 * (2 - 0.0005)])
    np.testing.assert_allclose(slope, [-0.001, -0.001, 0.0, 0.0005, 0.001])


def test_batched_lbfgs_on_rosenbrock():
    def rosenbrock(x, rows):
        f = 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2
        g = np.stack([-400 * x[:, 0] * (x[:, 1] - x[:, 0] ** 2) - 2 * (1 - x[:, 0]), 200 * (x[:, 1] - x[:, 0] ** 2)], 1)
        return f, g

    starts = np.array([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0], [-3.0, -3.0], [1.0, 1.0]])
    minima = lbfgs(rosenbrock, starts, max_iter=2000, ftol=1e-14)
    np.testing.assert_allclose(minima.x, np.ones_like(starts), atol=1e-4)
    assert set(minima.status) <= {CONVERGED, STALLED}
    assert minima.iterations[-1] <= 1  # the start at the optimum stops at once


def test_nonfinite_starts_are_dropped_not_fatal():
    def partly_broken(x, rows):
        f = np.where(x[:, 0] > 5, np.nan, (x[:, 0] - 1) ** 2)
        return f, 2 * (x - 1)

    minima = lbfgs(partly_broken, np.array([[0.0], [10.0]]))
    assert minima.x[0, 0] == pytest.approx(1.0) and not np.isfinite(minima.f[1])


def test_hoffmann_grid_has_4500_starts():
    starts = grid_starts(get_law("chinchilla"))
    assert starts.shape == (4500, 5)
    assert grid_starts(get_law("chinchilla"), {"e": [0.0]}).shape == (900, 5)
    with pytest.raises(ValueError, match="does not have"):
        grid_starts(get_law("chinchilla"), {"E": [0.0]})


def test_chinchilla_allocation_is_the_constrained_minimum():
    params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    alloc = chinchilla_allocation(params["A"], params["B"], params["alpha"], params["beta"])
    for C in (1e20, 1e24):
        N = np.geomspace(1e6, 1e14, 200001)
        best = N[np.argmin(chinchilla_loss(N, C / (6 * N), **params))]
        n_opt, d_opt = optimal_allocation(C, **alloc)
        assert n_opt == pytest.approx(best, rel=1e-3)
        assert n_opt * d_opt == pytest.approx(C / 6)


def test_kaplan_allocation_is_the_constrained_minimum():
    params = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    alloc = kaplan_allocation(**params)
    C = 1e22
    N = np.geomspace(1e6, 1e14, 200001)
    best = N[np.argmin(kaplan_loss(N, C / (6 * N), **params))]
    assert optimal_allocation(C, **alloc)[0] == pytest.approx(best, rel=1e-3)


def test_law_loss_matches_formula():
    law = get_law("chinchilla")
    params = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    np.testing.assert_allclose(law.loss(params, N=N, D=D), chinchilla_loss(N, D, **params), rtol=1e-12)
    kaplan = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    np.testing.assert_allclose(get_law("kaplan").loss(kaplan, N=N, D=D), kaplan_loss(N, D, **kaplan), rtol=1e-12)


def test_screened_grid_reaches_the_full_grids_optimum():
    from scaling.analysis.fitting import fit_law
    from scaling.analysis.synthetic import isoflop_table

    table = isoflop_table(budgets=np.geomspace(1e17, 1e20, 8), sizes=10, seeds=3, seed=1)  # 240 runs
    law = get_law("chinchilla")
    logx = {v: np.log(table[v].to_numpy()) for v in law.variables}
    logy = np.log(table["loss"].to_numpy())
    full = fit_law(law, logx, logy, screen_runs=0)
    screened = fit_law(law, logx, logy, screen_runs=60, refine=10)
    assert full.screen is None and screened.screen_runs == 60 and len(screened.minima.f) == 10
    assert screened.n_starts == full.n_starts == 4500  # the whole grid ran, on 60 of the runs
    assert screened.objective <= full.objective * (1 + 1e-9)
    np.testing.assert_allclose(screened.theta, full.theta, rtol=1e-4, atol=1e-5)
    assert len(screened.distinct_optima(3)) >= 1
