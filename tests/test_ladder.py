"""The ladder planner (sweep.mode=ladder) and the held-out targets that `scaling fit` scores.

Planning only (meta-device models); the fit test writes run folders with losses from a known law.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from scaling.cli import main
from scaling.config import ConfigError, to_yaml
from scaling.ladder import (Size, batch_samples, expected_optimum, held_out_budgets, ladder_budgets,
                            wanted_sizes)
from scaling.plan import plan_sweep
from scaling.store import RunFolder, Status

QUICK = ["experiment=quickstart_v1"]  # 18 runs, 3 sizes a budget: the tests that write known losses into a ladder
DESIGNS = pytest.mark.parametrize("design", ["experiment=quickstart", "experiment=quickstart_v1"])


def _by_budget(plan) -> dict[float, list]:
    budgets: dict[float, list] = {}
    for spec in plan.runs:
        budgets.setdefault(spec.cfg.budget.flops, []).append(spec)
    return budgets


def _sweep(**fields) -> SimpleNamespace:
    base = dict(budgets=[1e11, 1e12, 1e13], budget_range=[], budget_count=0, holdout_budgets=0,
                tokens_per_param_prior=20.0, sizes_per_budget=5, span=0.5, batch_rule="0.292 * C ** 0.3271",
                batch_min=4, batch_max=512, min_steps=200, holdout_sizes=0)
    return SimpleNamespace(**{**base, **fields})


@DESIGNS
def test_sizes_bracket_the_prior_optimum_per_budget(design, tmp_path):
    plan = plan_sweep([design, f"run.root={tmp_path}"])
    budgets, targets = _by_budget(plan), held_out_budgets(plan.sweep)
    assert len(budgets) >= 4 and targets == [max(budgets)]
    for C, specs in budgets.items():
        n_opt = expected_optimum(C, plan.sweep.tokens_per_param_prior)
        sizes = sorted(spec.N for spec in specs)
        wanted = (plan.sweep.holdout_sizes or plan.sweep.sizes_per_budget) if C in targets else plan.sweep.sizes_per_budget
        assert wanted - 1 <= len(sizes) <= wanted, f"budget {C:g} kept {len(sizes)} sizes"
        if len(sizes) == 1:  # a target of one run: the width nearest the expected optimum
            assert abs(math.log10(sizes[0] / n_opt)) < 0.1
            continue
        assert sizes[0] < n_opt < sizes[-1]
        spread = plan.sweep.span * (len(sizes) - 1) / (plan.sweep.sizes_per_budget - 1)
        assert math.log10(sizes[-1] / sizes[0]) >= spread  # sizes spread over about +-span decades
        assert all(abs(spec.C / C - 1) <= plan.sweep.budget_tolerance for spec in specs)


def test_wanted_sizes_are_even_in_log_n_around_the_optimum():
    sweep = _sweep(sizes_per_budget=5, span=0.5)
    sizes = wanted_sizes(1.2e13, sweep)
    logs = [math.log10(n) for n in sizes]
    assert logs[2] == pytest.approx(math.log10(expected_optimum(1.2e13, 20.0)))
    assert [b - a for a, b in zip(logs, logs[1:])] == pytest.approx([0.25] * 4)
    assert wanted_sizes(1.2e12, _sweep(sizes_per_budget=1)) == [pytest.approx(1e5)]
    assert wanted_sizes(1.2e13, _sweep(holdout_sizes=3), target=True) == sizes[1:4]
    assert wanted_sizes(1.2e13, _sweep(holdout_sizes=3), target=False) == sizes


def test_batch_follows_the_rule_and_keeps_min_steps():
    small = [Size(width=64, N=100_000, flops_per_unit=7e5)]
    # the rule alone: 0.292 C^0.3271 tokens at C = 1e13, in 128-token sequences
    rule = round(0.292 * 1e13 ** 0.3271 / 128)
    assert batch_samples(1e13, small, _sweep(min_steps=1), 128, {}) == rule
    # lowered so the largest model (fewest tokens) still takes min_steps steps
    tokens = 1e13 / 7e5
    assert batch_samples(1e13, small, _sweep(min_steps=5000), 128, {}) == math.floor(tokens / (5000 * 128))
    assert batch_samples(1e13, small, _sweep(min_steps=1, batch_max=8), 128, {}) == 8
    assert batch_samples(1e9, small, _sweep(min_steps=1000), 128, {}) == 4  # never below batch_min


@DESIGNS
def test_plan_keeps_min_steps_and_batch_grows_with_compute(design, tmp_path):
    plan = plan_sweep([design, f"run.root={tmp_path}"])
    assert all(spec.steps >= plan.sweep.min_steps for spec in plan.runs)
    batches = [specs[0].cfg.optim.batch_size for _, specs in sorted(_by_budget(plan).items())]
    assert all(len({s.cfg.optim.batch_size for s in specs}) == 1 for specs in _by_budget(plan).values())
    assert batches == sorted(batches) and batches[-1] > batches[0]


def test_runs_short_of_min_steps_are_skipped_with_the_reason(tmp_path):
    plan = plan_sweep([*QUICK, f"run.root={tmp_path}", "sweep.min_steps=1500", "sweep.batch_min=8"])
    assert plan.runs and plan.skipped
    assert all(spec.steps >= 1500 for spec in plan.runs)
    assert any("fewer than sweep.min_steps=1500" in s.reason for s in plan.skipped)


def test_holdout_budgets_mark_the_top_or_listed_budgets():
    assert held_out_budgets(_sweep(holdout_budgets=1)) == [1e13]
    assert held_out_budgets(_sweep(holdout_budgets=2)) == [1e12, 1e13]
    assert held_out_budgets(_sweep(holdout_budgets=[1e12])) == [1e12]
    assert held_out_budgets(_sweep(holdout_budgets=0)) == []
    with pytest.raises(ConfigError, match="not a budget of the ladder"):
        held_out_budgets(_sweep(holdout_budgets=[2e12]))
    with pytest.raises(ConfigError, match="leaving none to fit"):
        held_out_budgets(_sweep(holdout_budgets=3))


def test_budget_range_and_count():
    assert ladder_budgets(_sweep(budgets=[], budget_range=[1e11, 1e13], budget_count=3)) == [1e11, 1e12, 1e13]


@pytest.mark.parametrize("overrides, words", [
    (["sweep.budgets=[]"], "sweep.budgets is empty"),
    (["sweep.span=0"], "sweep.span=0.0 must be positive"),
    (["sweep.span=-1"], "sweep.span=-1.0 must be positive"),
    (["sweep.tokens_per_param_prior=0"], "sweep.tokens_per_param_prior=0.0 must be positive"),
    (["sweep.min_steps=1000000"], "no ladder run is kept"),
    (["sweep.holdout_budgets=[7e11]"], "not a budget of the ladder"),
    (["sweep.budget_range=[1e12,1e11]", "sweep.budget_count=3"], "sweep.budget_range"),
    (["sweep.batch_rule=C ** q"], "sweep.batch_rule"),
])
def test_bad_ladders_are_refused_in_one_line(overrides, words, tmp_path, capsys):
    assert main(["plan", *QUICK, f"run.root={tmp_path}", *overrides]) != 0
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_plan_shows_the_design(tmp_path, capsys):
    assert main(["plan", *QUICK, f"run.root={tmp_path}", "sweep.flops_per_second=1e11"]) == 0
    out = capsys.readouterr().out
    assert "expected N_opt" in out and "target" in out and "total:" in out
    assert main(["plan", *QUICK, f"run.root={tmp_path}", "sweep.flops_per_second=1e11", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    top = max(r["C"] for r in plan["runs"])
    assert all(r["target"] == (r["C"] > top / 1.2) for r in plan["runs"])
    assert len(plan["ladder"]["budgets"]) >= 4


def _chinchilla(N: float, D: float) -> float:
    return 1.2 + 40.0 / N ** 0.3 + 60.0 / D ** 0.28


def _write_ladder(root, law=_chinchilla) -> list:
    plan = plan_sweep([*QUICK, f"run.root={root}"])
    for spec in plan.runs:
        folder = RunFolder(spec.path)
        folder.plan(spec, to_yaml(spec.cfg))
        folder.finish(Status.COMPLETED, loss=law(spec.N, spec.D))
    return plan.runs


def test_fit_never_sees_the_targets_and_scores_them(tmp_path, capsys):
    runs = _write_ladder(tmp_path)
    top = max(spec.cfg.budget.flops for spec in runs)
    targets = {spec.run_id for spec in runs if spec.cfg.budget.flops == top}
    assert main(["fit", str(tmp_path / "quickstart_v1"), "--law", "chinchilla", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_points"] == len(runs) - len(targets)
    scored = result["details"]["targets"]
    assert {r["run"] for r in scored["runs"]} == targets and scored["decades"] >= 0.5
    assert abs(scored["mean_abs_rel_error"]) < 1e-3  # the law the losses came from
    assert main(["fit", str(tmp_path / "quickstart_v1"), "--law", "compute", "--frontier"]) == 0
    out = capsys.readouterr().out
    assert "targets: 1 held-out run " in out and "not the best run of its budget" in out
    assert main(["fit", str(tmp_path / "quickstart_v1"), "--law", "chinchilla", "--all-runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] == len(runs)



def test_a_budget_whose_best_run_is_its_smallest_size_is_named(tmp_path, capsys):
    """The frontier of a ladder takes each budget's best run; when that is an end of the sizes tried the
    budget's optimum may lie beyond it, and the fit says where to add sizes."""
    import math

    def centred(N: float, D: float) -> float:  # falls with C; at each C lowest at the prior's N_opt
        return 1 + (6 * N * D) ** -0.1 + 0.01 * (math.log(N) - 0.5 * math.log(N * D / 60)) ** 2

    _write_ladder(tmp_path / "centred", centred)
    assert main(["fit", str(tmp_path / "centred" / "quickstart_v1"), "--law", "compute", "--frontier"]) == 0
    assert "the best run is the" not in capsys.readouterr().out
    runs = _write_ladder(tmp_path / "small", lambda N, D: 1 + N / 1e7 + 1 / D ** 0.1)  # smaller is better
    assert main(["fit", str(tmp_path / "small" / "quickstart_v1"), "--law", "compute", "--frontier"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "the best run is the" in x)
    fitted = sorted({spec.cfg.budget.flops for spec in runs})[:-1]  # the top budget is the held-out target
    assert line.startswith("warning: frontier: at budgets ") and "smallest size tried" in line
    assert line.count("(N = ") == len(fitted) and "add smaller sizes" in line


def test_a_damaged_config_does_not_hide_the_targets(tmp_path, capsys):
    runs = _write_ladder(tmp_path)
    top = max(spec.cfg.budget.flops for spec in runs)
    fitted = next(spec for spec in runs if spec.cfg.budget.flops < top)
    RunFolder(fitted.path).config_path.write_text("[1, 2]\n")
    assert main(["fit", str(tmp_path / "quickstart_v1"), "--law", "chinchilla", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["details"]["targets"]
    assert scored["budgets"] == [top] and scored["scored"] == 3


def test_a_budget_s_best_point_averages_its_seeds_and_keeps_them_all():
    """The frontier of a ladder with seeds: the best point of a budget by its seeds' mean loss, not the luckiest
    seed, with every seed of that point kept (the target's three seeds are scored against their mean)."""
    import pandas as pd

    from scaling.analysis.targets import budget_best

    runs = pd.DataFrame({"run_id": ["a0", "a1", "b0", "c0", "c1", "d0"],
                         "budget_flops": [1e9, 1e9, 1e9, 2e9, 2e9, 2e9], "N": [1e4, 1e4, 2e4, 1e4, 1e4, 2e4],
                         "D": [1e5, 1e5, 5e4, 2e5, 2e5, 1e5], "loss": [1.0, 1.4, 1.1, 2.0, 2.2, 2.3]})
    kept, dropped = budget_best(runs)
    assert list(kept["run_id"]) == ["b0", "c0", "c1"]  # a0's 1.0 is one lucky seed of a point averaging 1.2
    assert sorted(d["run"] for d in dropped) == ["a0", "a1", "d0"]

def test_targets_not_completed_are_not_scored(tmp_path, capsys):
    runs = _write_ladder(tmp_path)
    top = max(spec.cfg.budget.flops for spec in runs)
    for spec in runs:
        if spec.cfg.budget.flops == top:
            RunFolder(spec.path).finish(Status.PLANNED, loss=None)
    assert main(["fit", str(tmp_path / "quickstart_v1"), "--law", "chinchilla", "--holdout", "2"]) == 0
    out = capsys.readouterr().out
    assert "none completed yet" in out and "backtest: held out the 3" in out  # 2 asked, the budget held out whole


def test_seed_repeats_repeat_the_smallest_budget_over_seeds(tmp_path):
    plan = plan_sweep([*QUICK, f"run.root={tmp_path}", "sweep.seed_repeats=3", "seed=4"])
    budgets = _by_budget(plan)
    smallest = min(budgets)
    assert sorted(spec.cfg.seed for spec in budgets[smallest]) == [4, 4, 4, 5, 5, 5, 6, 6, 6]
    assert len({spec.run_id for spec in budgets[smallest]}) == 9
    widths = {seed: sorted(s.cfg.model.width for s in budgets[smallest] if s.cfg.seed == seed) for seed in (4, 5, 6)}
    assert widths[4] == widths[5] == widths[6]
    assert all(spec.cfg.seed == 4 for C, specs in budgets.items() if C != smallest for spec in specs)


def test_a_prior_from_an_earlier_ladder_centres_the_next_one(tmp_path, capsys):
    def profiles(spec) -> float:  # IsoFLOP profiles with their minima at N = 0.4 (C/6)^0.45, not at the D/N prior
        best = 0.4 * (spec.C / 6) ** 0.45
        return 1.5 + (spec.C / 1e11) ** -0.1 + 0.1 * math.log(spec.N / best) ** 2

    plan = plan_sweep([*QUICK, f"run.root={tmp_path / 'first'}"])
    for spec in plan.runs:
        folder = RunFolder(spec.path)
        folder.plan(spec, to_yaml(spec.cfg))
        folder.finish(Status.COMPLETED, loss=profiles(spec))
    earlier = tmp_path / "first" / "quickstart_v1"
    from scaling.analysis import fit
    from scaling.store import load_runs

    fitted = load_runs(earlier)
    found = fit(fitted[fitted["budget_flops"] < 3e12], "isoflop")  # the held-out budget is never fitted
    plan = plan_sweep([*QUICK, f"run.root={tmp_path / 'second'}", f"sweep.prior={earlier}", "sweep.name=second"])
    from scaling.ladder import ladder_prior

    prior = ladder_prior(plan.sweep)
    assert prior.a == pytest.approx(found.a) and prior.G == pytest.approx(found.G)
    assert prior.a == pytest.approx(0.45, abs=0.02)
    assert str(earlier) in prior.source
    for C, specs in _by_budget(plan).items():
        sizes = sorted(spec.N for spec in specs)
        assert sizes[0] < prior.optimum(C) < sizes[-1]  # each budget's sizes bracket the fitted optimum
    assert main(["plan", *QUICK, f"run.root={tmp_path / 'second'}", f"sweep.prior={earlier}"]) == 0
    assert f"ladder: prior from {earlier}: N_opt = " in capsys.readouterr().out
    assert main(["plan", *QUICK, f"sweep.prior={tmp_path / 'nothing'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1


def test_point_keys_are_the_keys_of_the_ladders_points(tmp_path):
    from scaling.ladder import point_keys

    for repeats in (1, 2):
        plan = plan_sweep([*QUICK, f"run.root={tmp_path}", f"sweep.seed_repeats={repeats}"])
        varying = {key for key in ("model.width", "budget.flops", "optim.batch_size", "seed")
                   if len({str(_value(spec.cfg, key)) for spec in plan.runs}) > 1}
        assert varying == set(point_keys(plan.sweep))


def _value(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_a_ladder_of_branches_trains_each_width_once(tmp_path):
    """sweep.branches: the same (width, budget) points as the ladder, each width one trunk they branch from."""
    from scaling.branches import savings

    plan = plan_sweep([*QUICK, "sweep.branches=true", f"run.root={tmp_path}"])
    alone = plan_sweep([*QUICK, f"run.root={tmp_path}"])
    trunks = {s.run_id: s for s in plan.runs if s.cfg.trainer.keep_steps}
    branches = [s for s in plan.runs if s.cfg.trainer.branch_of]
    assert len(trunks) + len(branches) == len(plan.runs)
    assert {(b.cfg.model.width, b.cfg.budget.flops) for b in branches} == \
        {(s.cfg.model.width, s.cfg.budget.flops) for s in alone.runs}
    assert sorted(t.cfg.model.width for t in trunks.values()) == sorted({b.cfg.model.width for b in branches})
    for branch in branches:
        trunk = trunks[branch.cfg.trainer.branch_of]
        assert branch.cfg.optim.schedule == "wsd" and trunk.cfg.optim.schedule == "constant"
        assert branch.cfg.optim.batch_size == trunk.cfg.optim.batch_size  # a width's budgets share its batches
        assert branch.cfg.trainer.branch_step in trunk.cfg.trainer.keep_steps
        assert abs(branch.C / branch.cfg.budget.flops - 1) <= plan.sweep.budget_tolerance
        assert branch.steps >= plan.sweep.min_steps
    assert max(trunk.steps for trunk in trunks.values()) == max(max(t.cfg.trainer.keep_steps) for t in trunks.values())
    assert savings(plan.runs)["ratio"] < 0.85  # with the quickstart's 40% cooldowns (0.75 with 20%)


def test_a_ladder_of_branches_refuses_rules_of_d_or_c(tmp_path, capsys):
    rules = "sweep.rules={model.depth:2,optim.weight_decay:'0.1 * (D / 1e6)'}"
    assert main(["plan", *QUICK, "sweep.branches=true", f"run.root={tmp_path}", rules]) == 2
    assert "adds 'optim.weight_decay', which sweep.rules does not have; write ++sweep.rules={...}" in \
        capsys.readouterr().err  # a new key in a dict needs Hydra's ++
    assert main(["plan", *QUICK, "sweep.branches=true", f"run.root={tmp_path}", "++" + rules]) == 2
    assert "depends on D or C" in capsys.readouterr().err
