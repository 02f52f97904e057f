"""Learning-rate schedules (issue 12): the factors, their validation, run identity, and the logged lr."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scaling.config import ConfigError, OptimConfig, load_config
from scaling.plan import plan_run
from scaling.store import RunFolder
from scaling.train import train
from scaling.train.schedule import (DECAY_SHAPES, SCHEDULES, check_schedule, decay_start, lr_factor,
                                    schedule_for, warmup_steps)
from tests.conftest import TINY_GPT, tiny

TOTAL, WARM, FLOOR = 100, 10, 0.1


def factors(name: str, total: int = TOTAL, warm: int = WARM, **options: object) -> list[float]:
    """The schedule's factor at every step 0..total (the last one is the lr after the last update)."""
    return [SCHEDULES[name](s, total, warm, FLOOR, **options) for s in range(total + 1)]


def non_increasing(values: list[float]) -> bool:
    return all(a >= b for a, b in zip(values, values[1:]))


def test_the_registry_and_the_config_name_the_same_schedules():
    assert tuple(SCHEDULES) == OptimConfig.SCHEDULES
    assert tuple(DECAY_SHAPES) == OptimConfig.DECAY_SHAPES
    assert SCHEDULES["cosine"] is lr_factor


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_warms_up_linearly(name):
    values = factors(name)
    assert values[:WARM] == [(s + 1) / WARM for s in range(WARM)]
    assert values[WARM] == 1.0


def cosine_before_issue_12(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """lr_factor as it was before schedules had names (70c782f): the default must not move by one bit."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("total", [1, 2, 37, 437])
def test_the_default_config_gives_exactly_the_cosine_factors_of_before(total):
    cfg = load_config(["experiment=gpt_data"])
    at, warm = schedule_for(cfg, total), warmup_steps(cfg, total)
    assert [at(s) for s in range(total + 1)] == [cosine_before_issue_12(s, total, warm, 0.1) for s in range(total + 1)]
    assert [lr_factor(s, total, 0, 0.2) for s in range(total + 1)] == [
        cosine_before_issue_12(s, total, 0, 0.2) for s in range(total + 1)]


def test_constant_stays_at_one_after_warmup():
    assert factors("constant")[WARM:] == [1.0] * (TOTAL + 1 - WARM)


def test_linear_decays_in_a_straight_line_to_the_floor():
    values = factors("linear")
    assert math.isclose(values[55], FLOOR + (1 - FLOOR) * 0.5) and math.isclose(values[-1], FLOOR)
    steps = [a - b for a, b in zip(values[WARM:], values[WARM + 1:])]
    assert all(math.isclose(d, (1 - FLOOR) / (TOTAL - WARM)) for d in steps)


@pytest.mark.parametrize("shape", list(DECAY_SHAPES))
def test_wsd_holds_then_decays_over_the_last_fraction(shape):
    values = factors("wsd", decay_fraction=0.2, decay_shape=shape)
    assert decay_start(TOTAL, 0.2) == 80
    assert values[WARM:81] == [1.0] * (81 - WARM)
    assert values[81] < 1.0 and non_increasing(values[80:]) and math.isclose(values[-1], FLOOR)


def test_sqrt_cools_down_faster_than_linear():
    linear = factors("wsd", decay_shape="linear")
    root = factors("wsd", decay_shape="sqrt")
    assert all(r < lin for r, lin in zip(root[81:TOTAL], linear[81:TOTAL]))
    assert math.isclose(root[85], FLOOR + (1 - FLOOR) * (1 - math.sqrt(0.25)))


@pytest.mark.parametrize("fraction,total,start", [(0.2, 10, 8), (0.1, 7, 6), (0.3, 10, 7), (1.0, 5, 0), (0.01, 3, 2)])
def test_decay_start_leaves_at_least_the_fraction_to_decay(fraction, total, start):
    assert decay_start(total, fraction) == start


@pytest.mark.parametrize("override,key", [
    ("optim.schedule=cosin", "optim.schedule"),
    ("optim.decay_fraction=0", "optim.decay_fraction"),
    ("optim.decay_fraction=1.5", "optim.decay_fraction"),
    ("optim.decay_shape=cube", "optim.decay_shape"),
])
def test_bad_schedule_settings_are_refused_in_one_line(override, key):
    with pytest.raises(ConfigError) as err:
        load_config([override])
    text = str(err.value)
    assert key in text and "\n" not in text and ";" in text
    if key == "optim.schedule":
        assert "cosine, wsd, constant, linear" in text


def test_wsd_refuses_a_warmup_longer_than_its_stable_phase():
    with pytest.raises(ConfigError, match="optim.warmup_fraction.*stable phase"):
        load_config(["optim.schedule=wsd", "optim.warmup_fraction=0.5", "optim.decay_fraction=0.6"])
    cfg = load_config(["optim.schedule=wsd", "optim.warmup_steps=90"])  # known only once steps are
    with pytest.raises(ConfigError, match=r"optim.warmup_steps=90 gives 90 warmup steps.*step 80 of 100"):
        schedule_for(cfg, 100)
    check_schedule(cfg.optim, 200, 90)  # fits in a longer run
    load_config(["optim.schedule=cosine", "optim.warmup_fraction=0.5", "optim.decay_fraction=0.6"])


def test_schedule_fields_at_their_default_keep_the_run_id(tmp_path):
    base = ["model.width=32", "model.depth=1", "model.head_dim=16", "data.seq_len=32", "budget.tokens=12800",
            f"run.root={tmp_path}"]
    pinned = plan_run(load_config(base)).run_id
    assert pinned == "da85e0d753"  # tests/test_identity.py pins it too
    same = ["optim.schedule=cosine", "optim.decay_fraction=0.2", "optim.decay_shape=linear"]
    assert plan_run(load_config([*base, *same])).run_id == pinned
    others = {plan_run(load_config([*base, *o])).run_id for o in
              [["optim.schedule=wsd"], ["optim.schedule=constant"], ["optim.schedule=linear"],
               ["optim.schedule=wsd", "optim.decay_fraction=0.3"], ["optim.schedule=wsd", "optim.decay_shape=sqrt"]]}
    assert len(others) == 5 and pinned not in others
    # wsd's options do not change a cosine run (scaling.plan.identity leaves out other schedules' options)
    assert plan_run(load_config([*base, "optim.decay_fraction=0.3", "optim.decay_shape=sqrt"])).run_id == pinned


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "wsd-sqrt", "constant", "linear"])
def test_metrics_csv_logs_the_exact_lr_of_each_step(schedule, runs_root):
    name, _, shape = schedule.partition("-")
    cfg = tiny(TINY_GPT, runs_root, "budget.tokens=5120", "trainer.log_every=1", "trainer.threads=1",
               f"optim.schedule={name}", f"optim.decay_shape={shape or 'linear'}", "optim.warmup_steps=3")
    spec = plan_run(cfg)
    assert train(spec)["status"] == "completed"
    metrics = pd.read_csv(RunFolder(spec.path).metrics_path)
    at = schedule_for(spec.cfg, spec.steps)
    assert list(metrics["step"]) == list(range(1, spec.steps + 1))  # 20 steps, each logged
    assert list(metrics["lr"]) == [cfg.optim.lr * at(step) for step in metrics["step"]]


@pytest.mark.parametrize("total", [50, 100, 333])
def test_wsd_follows_a_constant_trunk_exactly_until_its_decay_starts(total):
    """A cooldown branch of a constant-rate trunk (issue 12 item 2) is the wsd run of its own D."""
    start = decay_start(total, 0.2)
    trunk = [SCHEDULES["constant"](s, 4 * total, WARM, FLOOR) for s in range(start + 1)]
    assert factors("wsd", total=total)[:start + 1] == trunk
