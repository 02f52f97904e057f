"""Planning: grids, IsoFLOP budgets, rules, determinism, and run identity.

Run identity is stable: the same configs plan the same run_ids as the version before (3338502).
A run_id names a run folder; if it changed, every existing sweep would retrain from scratch.
"""

from __future__ import annotations

import json

import pytest
import torch

from scaling.cli import main
from scaling.config import ConfigError, load_config
from scaling.data import build_data
from scaling.models import build_model
from scaling.plan import grid_points, plan_sweep

def test_grid_zip_and_exclusions():
    axes = {"a": [1, 2], "b": [10, 20], "c": ["x", "y"]}
    points = grid_points(axes, [["a", "b"]], [{"a": 2, "c": "y"}])
    assert points == [{"a": 1, "b": 10, "c": "x"}, {"a": 1, "b": 10, "c": "y"}, {"a": 2, "b": 20, "c": "x"}]
    with pytest.raises(ConfigError, match="sweep.zip"):
        grid_points(axes, [["a", "nope"]], [])


def test_isoflop_plan_matches_budgets_and_accounting(capsys):
    assert main(["plan", "experiment=gpt_isoflop", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    budgets = {}
    for run in plan["runs"]:
        cfg = load_config(["experiment=gpt_isoflop", f"model.width={run['width']}", f"model.depth={run['depth']}"])
        info = build_data(cfg.data).info
        with torch.device("meta"):
            model = build_model(cfg.model, info)
        assert run["N"] == model.num_params()
        assert run["C"] == pytest.approx(model.flops_per_unit() * run["D"])
        budget = min((1e13 * k for k in (3, 10, 30)), key=lambda b: abs(run["C"] / b - 1))
        assert abs(run["C"] / budget - 1) <= 0.05
        budgets.setdefault(budget, []).append(run["N"])
    assert len(budgets) >= 3 and all(len(sizes) >= 5 for sizes in budgets.values())
    assert plan["skipped"] and all(s["reason"] for s in plan["skipped"])
    assert plan["totals"]["runs"] == len(plan["runs"]) and plan["totals"]["gpu_hours"] > 0


def test_plan_is_deterministic_and_rules_apply():
    first = plan_sweep(["experiment=gpt_data"])
    second = plan_sweep(["experiment=gpt_data"])
    assert [r.run_id for r in first.runs] == [r.run_id for r in second.runs]
    assert len(first.runs) == 18 and len({r.N for r in first.runs}) >= 6 and len({r.D for r in first.runs}) >= 2
    assert max(r.N for r in first.runs) / min(r.N for r in first.runs) >= 10
    depths = {r.cfg.model.width: r.cfg.model.depth for r in first.runs}
    assert depths[32] == 1 and depths[64] == 2 and depths[96] == 3


PINNED = {
    ("experiment=gpt_data",): ["60de2042c2", "5a5e6d5ffc", "46ced6569e", "602f8645d4", "8e2efb058c",
                                 "b64a699df0", "4a3ea97e3b", "650e343461", "b09a0643a6", "2bda5d5dff",
                                 "0711487a5a", "f38beb38b6", "989ffbac27", "8c928bf0a6", "0eeb3f1f27",
                                 "8136ef233a", "bd615e39e5", "e00286739b"],
    ("experiment=quickstart",): ["98b7ccc017", "8ab9879529", "a9656b60d7", "e8bf8dc5e7", "e16bcbc04c", "b6677c8920",
                                 "1a4fba61c3", "f0de5e0e1d", "f463976feb", "77f94343b3", "69fb6c2f89", "8d72f6672b",
                                 "befd38e448", "a987faad76", "839feb6436", "287af1a623", "b9d06a293f", "a266cc5c5d",
                                 "bbf3b300d3", "ea1649b4b3", "8fcdf08dc3"],
    ("experiment=quickstart_v1",): ["334adb7dad", "2203452b9c", "c363db3db2", "bd4886fba0", "e64c7c5122", "942232277e",
                                 "72d40b6556", "be5b809fa8", "027c5ca739", "fdd51d75e3", "856ddea0c0", "52f6465939",
                                 "5dc77640a7", "21e616837c", "08e1bcb233", "453c32deec", "a5f0b73a48", "1462f355c3"],
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


def test_hydra_sweep_grammar_makes_a_grid_and_combines_with_an_experiment(capsys):
    grid = plan_sweep(["model.width=16,32", "optim.lr=choice(1e-3,3e-3)", "seed=range(2)", "budget.tokens=12800"])
    assert grid.mode == "grid" and len(grid.runs) == 8
    assert {(r.cfg.model.width, r.cfg.optim.lr, r.cfg.seed) for r in grid.runs} == {
        (w, lr, s) for w in (16, 32) for lr in (1e-3, 3e-3) for s in (0, 1)}
    quick = plan_sweep(["experiment=gpt_data"])
    both = plan_sweep(["experiment=gpt_data", "optim.lr=1e-3,3e-3"])  # the experiment's points x the new axis
    assert len(both.runs) == 2 * len(quick.runs) and {r.cfg.optim.lr for r in both.runs} == {1e-3, 3e-3}
    assert main(["plan", "-m", "model.width=16,32", "budget.tokens=12800"]) == 0  # -m/--multirun: a synonym
    assert "2 runs" in capsys.readouterr().out
    for argv, says in ((["train", "model.width=16,32"], "use scaling sweep"), (["train", "-m"], "use scaling sweep"),
                       (["plan", "model=gpt,cnn"], "sweeps the config group model")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_sweep_planned_without_a_gpu_is_estimated_on_one_gpu(capsys):
    assert main(["plan", "experiment=gpt_isoflop", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    totals, sweep = plan["totals"], {"gpu_flops": 989e12, "utilisation": 0.4}
    assert totals["rate_source"].startswith("no GPU on this machine")
    assert totals["flops_per_second"] == pytest.approx(sweep["gpu_flops"] * sweep["utilisation"])
    run = plan["runs"][0]
    assert run["est_seconds"] == pytest.approx(run["C"] / totals["flops_per_second"] + run["steps"] * 0.01)
    assert main(["plan", "experiment=gpt_isoflop"]) == 0
    assert " on one GPU at 3.96e+14 FLOP/s" in capsys.readouterr().out.splitlines()[-1]


def test_options_of_another_schedule_do_not_change_a_run():
    """A cosine run ignores wsd's cooldown options: setting them keeps its run_id; a wsd run's changes."""
    cosine, wsd = ("model.width=32", "model.depth=1", "budget.tokens=12800"), ("optim.schedule=wsd",)
    ids = {extra: plan_sweep([*cosine, *extra]).runs[0].run_id
           for extra in [(), ("optim.decay_shape=sqrt", "optim.decay_fraction=0.3"), wsd, (*wsd, "optim.decay_shape=sqrt")]}
    assert len(set(ids.values())) == 3
    assert ids[()] == ids[("optim.decay_shape=sqrt", "optim.decay_fraction=0.3")]
