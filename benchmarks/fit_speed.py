"""Fit speed: the vectorised multi-start fit against a plain scipy loop over the same starts.

    python benchmarks/fit_speed.py [DATA_DIR] [--subset 150] [--seed 0]

On the Chinchilla replication problem (240 runs, Hoffmann's 4,500-start grid, Huber delta 1e-3 on
log loss), it times:
  vectorised   scaling.analysis.fit_law: all 4,500 starts in one batched L-BFGS
  scipy exact  scipy.optimize.minimize(L-BFGS-B) start by start, with our exact gradient
  scipy numeric  the same with finite-difference gradients (the usual notebook loop, ~385 s here)
The scipy loops run on a random subset of the grid (the full loop takes minutes) and are scaled to
4,500 starts; the vectorised fit is also timed on that subset. One run each: a single measurement.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from scaling.analysis.fitting import fit_law, grid_starts, huber_objective
from scaling.analysis.laws import get_law

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chinchilla_svg_extracted.csv"


def problem(path: Path) -> tuple[dict, np.ndarray]:
    """(log N and log D, log loss) of the replication problem: the 5 highest losses dropped, D = C / 6N."""
    frame = pd.read_csv(path).sort_values("loss", kind="stable").iloc[:-5]
    N, C = frame["Model Size"].to_numpy(), frame["Training FLOP"].to_numpy()
    return {"N": np.log(N), "D": np.log(C / (6 * N))}, np.log(frame["loss"].to_numpy())


class Clock:
    """Wall and CPU seconds of a block (CPU time is what a busy shared machine distorts least)."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def scipy_loop(objective, starts: np.ndarray, exact: bool) -> float:
    """Best objective of scipy L-BFGS-B run start by start (the same objective, one start at a time)."""
    def fun(theta):
        f, g = objective(theta[None, :], np.zeros(1, dtype=int))
        return (f[0], g[0]) if exact else f[0]

    best = np.inf
    for x0 in starts:
        res = minimize(fun, x0, jac=exact, method="L-BFGS-B")
        if np.isfinite(res.fun):
            best = min(best, float(res.fun))
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the timings and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--subset", type=int, default=150, help="starts given to the scipy loops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logx, logy = problem(Path(args.data))
    law = get_law("chinchilla")
    grid = grid_starts(law)
    subset = grid[np.random.default_rng(args.seed).choice(len(grid), args.subset, replace=False)]
    objective = huber_objective(law, logx, logy, delta=1e-3)

    with Clock() as t_full:
        full = fit_law(law, logx, logy)
    with Clock() as t_part:
        part = fit_law(law, logx, logy, starts=subset)
    with Clock() as t_exact:
        best_exact = scipy_loop(objective, subset, exact=True)
    with Clock() as t_numeric:
        best_numeric = scipy_loop(objective, subset, exact=False)

    scale = len(grid) / len(subset)
    print(f"Chinchilla replication problem: {len(logy)} runs, {len(grid)} starts "
          f"(scipy on {len(subset)} of them, scaled x{scale:.0f}); seconds as wall / CPU")
    print(f"{'method':<34} {'seconds':>13} {'for 4,500 starts':>17} {'best objective':>16}")
    rows = [("vectorised, all 4,500 starts", t_full, 1.0, full.objective),
            ("vectorised, same subset", t_part, None, part.objective),
            ("scipy L-BFGS-B loop, exact grad", t_exact, scale, best_exact),
            ("scipy L-BFGS-B loop, numeric grad", t_numeric, scale, best_numeric)]
    for name, clock, factor, best in rows:
        scaled = f"{clock.cpu * factor:>12.1f} CPU" if factor else f"{'':>16}"
        print(f"{name:<34} {clock.wall:>6.2f} /{clock.cpu:>6.2f} {scaled} {best:>16.10f}")
    for label, t in (("wall", "wall"), ("CPU", "cpu")):
        part_s, full_s = getattr(t_part, t), getattr(t_full, t)
        exact_s, numeric_s = getattr(t_exact, t), getattr(t_numeric, t)
        print(f"speed-up ({label}): same starts {exact_s / part_s:.0f}x over scipy with exact gradients, "
              f"{numeric_s / part_s:.0f}x with numeric ones; full grid (scipy scaled) "
              f"{exact_s * scale / full_s:.0f}x and {numeric_s * scale / full_s:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
