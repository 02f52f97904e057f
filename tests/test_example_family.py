"""Adding a model family is one module plus one YAML file: the example MLP family composes,
plans and trains with the real config, and nothing else in the package names it."""

from __future__ import annotations


import pytest
import torch

from scaling.accounting import example_input, training_flops
from scaling.config import ConfigError, load_config
from scaling.models import build_model, family, param_groups
from scaling.plan import plan_run, plan_sweep
from scaling.train import train
from tests import example_family
from tests.conftest import image_info


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> list[str]:
    """Overrides that put the family's YAML file on Hydra's search path and choose it."""
    conf = tmp_path_factory.mktemp("conf")
    (conf / "model").mkdir()
    (conf / "model" / "mlp.yaml").write_text(example_family.MLP_YAML)
    return [f"hydra.searchpath=[file://{conf}]", "model=mlp", "data=digits", "optim.batch_size=32",
            "trainer.val_every=10", "trainer.log_every=5", "trainer.checkpoint_every=10", "trainer.progress=false"]


def test_composes_with_its_schema_and_checks(mlp):
    cfg = load_config([*mlp, "model.width=24"])
    assert isinstance(cfg.model, example_family.MLPConfig) and (cfg.model.width, cfg.model.depth) == (24, 2)
    assert load_config([*mlp, "model.preset=mlp-tiny"]).model.width == 16
    for overrides, words in [(["model.widht=8"], ["model.widht", "model.width"]),
                             (["model.depth=0"], ["model.depth", "positive"]),
                             (["data=pystdlib"], ["model='mlp' needs image data", "data=digits"]),
                             (["model.parametrization=mup"], ["model.parametrization", "use sp"])]:
        with pytest.raises(ConfigError) as error:
            load_config([*mlp, *overrides])
        assert "\n" not in str(error.value) and all(word in str(error.value) for word in words)


def test_plans_a_sweep_with_its_own_accounting(mlp, tmp_path):
    plan = plan_sweep([*mlp, "sweep=grid", "sweep.axes={model.width: [8, 16]}", "budget.samples=640",
                       f"run.root={tmp_path}"])
    assert [spec.cfg.model.width for spec in plan.runs] == [8, 16] and plan.family == "mlp"
    for spec in plan.runs:
        model = build_model(spec.cfg.model, image_info(8, 1, 10))
        assert spec.N == sum(p.numel() for p in model.parameters())
        assert spec.flops_per_unit == training_flops(model, example_input(image_info(8, 1, 10)))
    assert list(tmp_path.iterdir()) == []  # planning wrote nothing


def test_trains_a_few_steps_on_cpu(mlp, tmp_path):
    spec = plan_run(load_config([*mlp, "model.width=16", "budget.samples=640", f"run.root={tmp_path}"]))
    record = train(spec)
    assert record["status"] == "completed" and record["step"] == spec.steps == 20
    assert record["N"] == spec.N and record["family"] == "mlp"


def test_declares_the_defaults_it_does_not_write():
    declared = family("mlp")
    assert declared.parametrizations == ("sp",) and declared.probe_embedding == "image"
    model = build_model(example_family.MLPConfig(width=8, depth=1), image_info(8, 1, 10))
    groups = param_groups(example_family.MLPConfig(), model, load_config([]).optim)
    assert [len(g["params"]) for g in groups] == [2, 2] and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in groups[0]["params"]) and torch.is_tensor(groups[1]["params"][0])
