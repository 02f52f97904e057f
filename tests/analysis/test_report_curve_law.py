"""The report's loss-curve law (issue 12, item 4): observed curves against the law's, fitted solid and predicted
dashed, with each curve's errors; a branches sweep written through scaling.store as a real one leaves it
(metrics.csv with step, lr, train_loss; a branch's curve holds its trunk's rows up to its branch step)."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.store import RunFolder, load_runs
from tests.analysis.test_curves import PAPER_25M, mpl_per_step, wsd_lr

TOKENS_PER_STEP = 256
LOG_EVERY = 5


def _params(N: float) -> dict:
    return {**PAPER_25M, "L0": 30.0 * N ** -0.2, "A": 0.1 * N ** 0.1, "B": 20.0 * N ** 0.15}


def _write(root, run_id: str, record: dict, lr: np.ndarray, N: float) -> None:
    steps = np.arange(LOG_EVERY, len(lr), LOG_EVERY)
    loss = mpl_per_step(lr, steps, _params(N))
    folder = RunFolder(root / run_id)
    folder.path.mkdir(parents=True)
    C = 6 * N * (len(lr) - 1) * TOKENS_PER_STEP
    folder.write_record({"run_id": run_id, "sweep": "br", "status": "completed", "family": "gpt", "N": N, "C": C,
                         "D": (len(lr) - 1) * TOKENS_PER_STEP, "loss": float(loss[-1]), **record})
    folder.write_metrics([{"step": int(s), "D_seen": int(s) * TOKENS_PER_STEP, "C_seen": float(6 * N * s * TOKENS_PER_STEP),
                           "lr": float(lr[s]), "train_loss": float(v), "val_loss": float(v)}
                          for s, v in zip(steps, loss)])


def branches_sweep(root, sizes=(2e4, 6e4), ends=(400, 800, 1200), decay=0.2) -> None:
    """Per model a constant-rate trunk to the last branch point and a cooldown (linear, to 0.1 of the peak) per D."""
    for m, N in enumerate(sizes):
        trunk_end = int(ends[-1] * (1 - decay))
        _write(root, f"trunk{m}", {"trunk": True, "cost": 1.0}, wsd_lr(trunk_end + 1), N)
        for b, end in enumerate(ends):
            step = int(end * (1 - decay))
            _write(root, f"b{m}{b}", {"parent": f"trunk{m}", "branch_step": step, "cost": 1.0},
                   wsd_lr(end + 1, decay_from=step), N)


@pytest.mark.slow
def test_report_draws_the_curve_law_and_tables_each_curves_errors(tmp_path):
    from scaling.analysis.analyse import analyse
    from scaling.analysis.report import write_report

    branches_sweep(tmp_path / "br")
    runs, curves = load_runs(tmp_path / "br", curves=True)
    an = analyse(runs, curves, law="chinchilla", bootstrap=0, holdout=0)
    fit, why = an.curve_law
    assert why == "" and fit.law == "mpl" and set(fit.scaling) == {"L0", "A", "B"}
    fitted = sorted(name for name, info in fit.curves.items() if info["fitted"])
    assert fitted == ["b00", "b10", "trunk0", "trunk1"]  # per size the trunk and its shortest cooldown
    assert fit.predicted_errors()["mean_rel_err"] < 1e-3 and fit.predicted_errors()["curves"] == 4
    assert an.curve_law[0] is fit  # fitted once for the figure and the table
    written = write_report(an, tmp_path / "report", "br")
    assert (tmp_path / "report" / "curve_law.png").exists() and (tmp_path / "report" / "branches.png").exists()
    page = written["html"].read_text()
    assert 'id="curve-law"' in page and "data:image/png;base64," in page
    table = page.split("id='curve-errors'")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 8 and table.count("predicted") == 4 and "b12" in table
    assert "saved" in page  # the compute the branches saved, in the branches figure's caption


def test_no_curve_law_without_branches_or_several_schedules(tmp_path):
    from scaling.analysis.curves import sweep_curve_fit

    branches_sweep(tmp_path / "br", sizes=(2e4,), ends=(400,))
    runs, curves = load_runs(tmp_path / "br", curves=True)
    assert sweep_curve_fit(runs, curves) is not None  # a trunk and one branch: fitted, nothing predicted
    alone = runs[runs["parent"].isna()]
    assert sweep_curve_fit(alone, curves[curves["run_id"].isin(alone["run_id"])]) is None  # one constant run
    assert sweep_curve_fit(runs, curves.drop(columns="lr")) is None  # no learning rate logged


def test_several_schedules_are_told_apart_by_their_rate_not_their_budget():
    import pandas as pd

    from scaling.analysis.curves import sweep_curve_fit

    def cosine(total: int) -> np.ndarray:
        lr = 3e-4 * (0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(total) / total)))
        lr[:100] = np.linspace(0, 3e-4, 100)
        return lr

    schedules = {"cos_short": cosine(1500), "cos_long": cosine(3000), "wsd": wsd_lr(3000, decay_from=2400)}
    long = pd.concat([pd.DataFrame({"run_id": name, "step": np.arange(100, len(lr), 20), "lr": lr[100::20],
                                    "train_loss": 5.0 - np.arange(100, len(lr), 20) / 3000.0})
                      for name, lr in schedules.items()])
    runs = pd.DataFrame({"run_id": list(schedules), "N": 1e4, "D": [1500.0, 3000.0, 3000.0]})
    cosines = ["cos_short", "cos_long"]
    assert sweep_curve_fit(runs[runs["run_id"].isin(cosines)], long[long["run_id"].isin(cosines)], "anneal") is None
    fit = sweep_curve_fit(runs, long, "anneal")  # cosine and wsd end at the same rate, but differ
    assert sorted(n for n, info in fit.curves.items() if not info["fitted"]) == ["cos_long"]  # the first longest
