"""The report draws cooldown trunks with their branches and says how much compute the branches saved (issue 12, item 4).

The run folders are written through scaling.store (records and metrics.csv as a branches sweep leaves
them: a trunk row with `trunk` and `cost`, branch rows with `parent`, `branch_step` and `cost`, a
branch's curve holding the trunk's rows up to its branch step)."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.store import RunFolder, load_runs

TOKENS_PER_STEP = 256


def _loss(N: float, D: float) -> float:
    return 1.7 + 400 / N**0.34 + 400 / D**0.28


def _write(root, run_id: str, record: dict, steps: np.ndarray, loss: np.ndarray) -> None:
    folder = RunFolder(root / run_id)
    folder.path.mkdir(parents=True)
    folder.write_record({"run_id": run_id, "sweep": "br", "status": "completed", "family": "gpt", **record})
    folder.write_metrics([{"step": int(s), "D_seen": int(s) * TOKENS_PER_STEP, "C_seen": float(6 * record["N"] * s) *
                           TOKENS_PER_STEP, "train_loss": float(v), "val_loss": float(v)} for s, v in zip(steps, loss)])


def _branches_sweep(root, sizes=(2e4, 6e4), branch_steps=(40, 80, 160), decay=0.2) -> None:
    """Per model: a constant-rate trunk to the last branch point, and a cooldown to each D from its branch step."""
    for m, N in enumerate(sizes):
        trunk_steps = np.arange(0, branch_steps[-1] + 1, 10)
        trunk_loss = np.array([_loss(N, max(s, 1) * TOKENS_PER_STEP) * 1.05 for s in trunk_steps])  # not annealed
        C_trunk = 6 * N * branch_steps[-1] * TOKENS_PER_STEP
        _write(root, f"trunk{m}", {"N": N, "D": branch_steps[-1] * TOKENS_PER_STEP, "C": C_trunk, "trunk": True,
                                   "cost": C_trunk, "loss": float(trunk_loss[-1]), "width": 16 * (m + 1)},
               trunk_steps, trunk_loss)
        for b, step in enumerate(branch_steps):
            end = int(step / (1 - decay))
            steps = np.arange(0, end + 1, 10)
            annealed = np.clip((steps - step) / (end - step), 0, 1)
            loss = np.array([_loss(N, max(s, 1) * TOKENS_PER_STEP) for s in steps]) * (1.05 - 0.05 * annealed)
            C = 6 * N * end * TOKENS_PER_STEP
            _write(root, f"b{m}{b}", {"N": N, "D": end * TOKENS_PER_STEP, "C": C, "parent": f"trunk{m}",
                                      "branch_step": step, "cost": C * (1 - step / end), "loss": float(loss[-1]),
                                      "width": 16 * (m + 1)}, steps, loss)


def test_table_savings_counts_trunks_and_branches_own_cost(tmp_path):
    from scaling.branches import table_savings

    _branches_sweep(tmp_path / "br")
    runs = load_runs(tmp_path / "br")
    saved = table_savings(runs)
    N, steps, end = np.array([2e4, 6e4]), np.array([40, 80, 160]), np.array([50, 100, 200])
    independent = float(np.sum(6 * N[:, None] * end[None, :] * TOKENS_PER_STEP))
    spent = float(np.sum(6 * N * 160 * TOKENS_PER_STEP) + np.sum(6 * N[:, None] * (end - steps)[None, :] *
                                                                TOKENS_PER_STEP))
    assert saved["trunks"] == 2 and saved["branches"] == 6
    assert saved["independent"] == pytest.approx(independent) and saved["spent"] == pytest.approx(spent)
    assert saved["ratio"] == pytest.approx(spent / independent) and saved["ratio"] < 0.7
    assert table_savings(runs[runs["parent"].isna()]) is None  # no branches, nothing to say


def test_report_draws_each_trunk_with_its_branches_and_the_savings(tmp_path):
    from scaling.analysis.analyse import analyse
    from scaling.analysis.report import write_report
    from scaling.analysis.series import branch_trees

    _branches_sweep(tmp_path / "br")
    runs, curves = load_runs(tmp_path / "br", curves=True)
    an = analyse(runs, curves, law="chinchilla", bootstrap=0, holdout=0)
    trees = branch_trees(an)
    assert [t["run_id"] for t in trees] == ["trunk0", "trunk1"] and trees[0]["colour"] != trees[1]["colour"]
    branch = trees[0]["branches"][1]
    assert branch["branch_step"] == 80 and branch["curve"]["D_seen"][0] == 80 * TOKENS_PER_STEP  # leaves at its step
    assert branch["curve"]["D_seen"][-1] == branch["D"] == 100 * TOKENS_PER_STEP
    assert trees[0]["curve"]["D_seen"][-1] == 160 * TOKENS_PER_STEP and len(trees[0]["branches"]) == 3
    written = write_report(an, tmp_path / "report", "br")
    assert (tmp_path / "report" / "branches.png").exists()
    page = written["html"].read_text()
    assert 'data-figure="branches"' in page and "branch b01 from step 80" in page
    assert "the 2 trunks and 6 branches spent" in page and "saved." in page
