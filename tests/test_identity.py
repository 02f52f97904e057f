"""Run identity is stable: the same configs plan the same run_ids as the version before (3338502).

A run_id names a run folder; if it changed, every existing sweep would retrain from scratch.
"""

from __future__ import annotations

import pytest

from scaling.plan import plan_sweep

PINNED = {
    ("experiment=quickstart",): ["60de2042c2", "5a5e6d5ffc", "46ced6569e", "602f8645d4", "8e2efb058c",
                                 "b64a699df0", "4a3ea97e3b", "650e343461", "b09a0643a6", "2bda5d5dff",
                                 "0711487a5a", "f38beb38b6", "989ffbac27", "8c928bf0a6", "0eeb3f1f27",
                                 "8136ef233a", "bd615e39e5", "e00286739b"],
    ("experiment=digits_cnn",): ["7d353a1ff7", "d8ba09dea4", "e37e6272d1", "3d184ce560", "afa70f010a"],
    ("experiment=gpt_isoflop",): ["6ab9c12c24", "59de754107", "177a1953e7", "ccf10b7d6b", "9bf366bca9",
                                  "c8f408bcea", "a9c7321be9", "7be16187e7", "81f3432ca2", "513ed97562",
                                  "5d899f4ae6", "66131eb39d", "e38ae96eac", "b2e748bfa2", "6e15c66144",
                                  "3f715b6532", "b1d5590de2"],
    ("model.width=32", "model.depth=1", "model.head_dim=16", "data.seq_len=32", "budget.tokens=12800"):
        ["da85e0d753"],
    ("model=cnn", "data=digits", "sweep=grid", "++sweep.axes={model.width:[4,8]}", "budget.samples=640"):
        ["e04a58882f", "54e7f8bb5d"],
}


@pytest.mark.parametrize("overrides", list(PINNED), ids=lambda o: o[0])
def test_run_ids_are_those_of_the_previous_version(overrides, tmp_path):
    plan = plan_sweep([*overrides, f"run.root={tmp_path}"])
    assert [spec.run_id for spec in plan.runs] == PINNED[overrides]
