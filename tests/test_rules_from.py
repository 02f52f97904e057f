"""sweep.rules_from: a measured rule (scaling fit --law lr --save) sets each run's learning rate or batch size
at plan time; explicit sweep.rules win; a missing or malformed file is one line, exit 2, nothing planned."""

from __future__ import annotations

import json

import pytest

from scaling.cli import main
from scaling.config import ConfigError
from scaling.plan import plan_sweep
from scaling.store import planned_record

from tests.conftest import TINY_GPT

# The quickstart ladder's design without its own lr rule: the rule comes from the fit file.
LADDER = ["sweep=ladder", "model=gpt", "data=pystdlib", "trainer=cpu", "sweep.budgets=[2.2e11,6.8e11]",
          "sweep.sizes_per_budget=3", "sweep.span=0.3", "sweep.tokens_per_param_prior=60",
          "sweep.batch_rule=0.1 * C ** 0.3271", "model.head_dim=8", "model.depth=2"]


def fit_file(tmp_path, rules: dict) -> str:
    path = tmp_path / "lr_fit.json"
    path.write_text(json.dumps({"format": "scaling.lr_fit/1", "law": "lr", "rules": rules}))
    return str(path)


def test_a_ladder_trains_each_size_at_its_measured_rate(tmp_path):
    rule = "0.004 * (width / 64) ** -1.0"
    path = fit_file(tmp_path, {"sp": {"optim.lr": rule}, "mup": {"optim.lr": "0.003"}})
    plan = plan_sweep([*LADDER, f"run.root={tmp_path}", f"sweep.rules_from={path}"])
    rates = {spec.cfg.model.width: planned_record(spec)["lr"] for spec in plan.runs}  # what record.json carries
    assert len(rates) >= 4 and len(set(rates.values())) == len(rates)
    for width, lr in rates.items():
        assert lr == pytest.approx(0.004 * 64 / width)


def test_the_rule_of_the_sweeps_parametrization_is_used(tmp_path):
    path = fit_file(tmp_path, {"sp": {"optim.lr": "0.01"}, "mup": {"optim.lr": "0.003 * (width / 64) ** 0"}})
    plan = plan_sweep([*LADDER, f"run.root={tmp_path}", f"sweep.rules_from={path}", "model.parametrization=mup"])
    assert {spec.cfg.optim.lr for spec in plan.runs} == {0.003}


def test_explicit_rules_win_over_the_file(tmp_path):
    path = fit_file(tmp_path, {"sp": {"optim.lr": "0.5", "optim.batch_size": "int(4 * width / 32)"}})
    plan = plan_sweep([*TINY_GPT, f"run.root={tmp_path}", "model.width=32,64", f"sweep.rules_from={path}",
                       "++sweep.rules={optim.lr: '0.001 * width / 32'}"])
    runs = {spec.cfg.model.width: spec.cfg for spec in plan.runs}
    assert {w: cfg.optim.lr for w, cfg in runs.items()} == {32: 0.001, 64: 0.002}
    assert {w: cfg.optim.batch_size for w, cfg in runs.items()} == {32: 4, 64: 8}  # a batch rule from the file


@pytest.mark.parametrize("content, words", [
    (None, "sweep.rules_from: {path} does not exist; write it with scaling fit SWEEP --law lr --save"),
    ("[1, 2", "is not a readable JSON fit file"),
    (json.dumps({"format": "scaling.lr_fit/1", "rules": {"sp": ["optim.lr"]}}), "is not a fit file of scaling fit"),
    (json.dumps({"format": "scaling.lr_fit/1", "rules": {"mup": {"optim.lr": "0.01"}}}),
     "has rules for mup, not for model.parametrization=sp"),
])
def test_a_missing_or_malformed_file_is_refused_in_one_line(tmp_path, capsys, content, words):
    path = tmp_path / "fit.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="^[^\n]*$"):
        plan_sweep([*TINY_GPT, f"run.root={tmp_path}", "model.width=32,64", f"sweep.rules_from={path}"])
    assert main(["plan", *TINY_GPT, f"run.root={tmp_path}", "model.width=32,64", f"sweep.rules_from={path}"]) == 2
    err = capsys.readouterr().err
    assert words.format(path=path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "default").exists()  # nothing planned, nothing written
