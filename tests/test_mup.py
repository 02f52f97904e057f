"""μP (model.parametrization=mup): init, multipliers, optimizer groups, identity and refusals."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

from scaling.config import ConfigError, OptimConfig, load_config
from scaling.models import build_model, param_groups
from scaling.models.cnn import CNNConfig
from scaling.models.gpt import GPTConfig, mup_attention_scale
from scaling.plan import identity, plan_run
from scaling.train import ScalingModule, train
from tests.conftest import TINY_GPT, image_info, text_info, tiny


def built(cfg, info, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(cfg, info)


def group_of(groups: list[dict], param: torch.Tensor) -> dict:
    """The one group that holds `param`."""
    [group] = [g for g in groups if any(p is param for p in g["params"])]
    return group


@pytest.mark.parametrize("tied", [True, False])
def test_mup_at_the_base_width_is_sp(tied: bool) -> None:
    sp_cfg = GPTConfig(width=64, depth=2, head_dim=16, tie_embeddings=tied)
    mup_cfg = dataclasses.replace(sp_cfg, parametrization="mup", base_width=64)
    sp, mup = built(sp_cfg, text_info(16)), built(mup_cfg, text_info(16))
    for (name, a), b in zip(sp.state_dict().items(), mup.state_dict().values()):
        assert torch.equal(a, b), name
    tokens = torch.randint(0, 256, (2, 16))
    assert torch.equal(sp(tokens), mup(tokens))
    optim = OptimConfig(lr=1e-3, weight_decay=0.1)
    sp_groups, mup_groups = param_groups(sp_cfg, sp, optim), param_groups(mup_cfg, mup, optim)
    for p_sp, p_mup in zip(sp.parameters(), mup.parameters()):
        a, b = group_of(sp_groups, p_sp), group_of(mup_groups, p_mup)
        assert (a.get("lr", optim.lr), a["weight_decay"]) == (b["lr"], b["weight_decay"])


def test_mup_gpt_groups_scale_hidden_learning_rates_only() -> None:
    cfg = GPTConfig(width=256, depth=2, head_dim=32, parametrization="mup", base_width=64)
    model = built(cfg, text_info(16))
    optim = OptimConfig(lr=1e-2, weight_decay=0.1)
    groups = param_groups(cfg, model, optim)
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in model.parameters())
    block = model.blocks[1]
    for hidden in (block.attn.qkv.weight, block.attn.proj.weight, block.mlp.fc.weight, block.mlp.proj.weight):
        assert (group_of(groups, hidden)["lr"], group_of(groups, hidden)["weight_decay"]) == (1e-2 / 4, 0.1 * 4)
    for table in (model.token_embedding.weight, model.position_embedding.weight):  # input weights (and the tied head)
        assert (group_of(groups, table)["lr"], group_of(groups, table)["weight_decay"]) == (1e-2, 0.1)
    for vector in (block.attn.qkv.bias, block.ln_mlp.weight, model.ln_final.bias):
        assert (group_of(groups, vector)["lr"], group_of(groups, vector)["weight_decay"]) == (1e-2, 0.0)
    assert groups[0]["lr"] == 1e-2  # metrics.csv logs the first group's rate as the run's


def test_mup_gpt_init_logits_and_attention() -> None:
    cfg = GPTConfig(width=256, depth=4, head_dim=32, parametrization="mup", base_width=64)
    model = built(cfg, text_info(16))
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)  # variance by fan-in
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8) / 2, rel=0.05)
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)  # input weights as SP
    tokens = torch.randint(0, 256, (2, 16))
    plain = torch.nn.functional.linear(model.features(tokens), model.lm_head.weight)
    torch.testing.assert_close(model(tokens), plain / 4)  # logits x base_width / width, through the tied head
    assert model.blocks[0].attn.scale == pytest.approx(1 / math.sqrt(32))  # head size 32 at every width here
    # the head size changes with width only below head_dim (one head): there 1/head_size, not its sqrt
    narrow = GPTConfig(width=16, head_dim=32, parametrization="mup", base_width=64)
    assert mup_attention_scale(narrow) == pytest.approx(math.sqrt(32) / 16)
    assert mup_attention_scale(dataclasses.replace(narrow, parametrization="sp")) is None


def test_an_untied_readout_may_start_at_zero() -> None:
    cfg = GPTConfig(width=128, depth=1, head_dim=32, tie_embeddings=False, parametrization="mup",
                    readout_zero_init=True)
    model = built(cfg, text_info(8))
    assert not model.lm_head.weight.any()
    assert not model(torch.randint(0, 256, (1, 8))).any()
    assert not built(CNNConfig(width=4, readout_zero_init=True), image_info(16, 1)).head.weight.any()


def test_mup_cnn_hidden_layers_readout_and_groups() -> None:
    sp_cfg = CNNConfig(width=32, depth=3, dropout=0.0)
    mup_cfg = dataclasses.replace(sp_cfg, parametrization="mup", base_width=8)
    sp, mup = built(sp_cfg, image_info(16, 1)), built(mup_cfg, image_info(16, 1))
    sp_convs, mup_convs = ([c for c in m.convs if isinstance(c, torch.nn.Conv2d)] for m in (sp, mup))
    assert torch.equal(sp_convs[0].weight, mup_convs[0].weight)  # input weights as SP
    assert torch.equal(sp_convs[1].weight, mup_convs[1].weight)  # PyTorch's init is already by fan-in
    torch.testing.assert_close(mup_convs[1].bias, sp_convs[1].bias * 2)  # biases back to the base width's size
    torch.testing.assert_close(mup.head.weight, sp.head.weight * 2)  # the readout as at the base width
    assert mup.head.output_mult == 0.25
    optim = OptimConfig(lr=1e-2, weight_decay=0.0)
    groups = param_groups(mup_cfg, mup, optim)
    assert [group_of(groups, p)["lr"] for p in mup.hidden_weights()] == [1e-2 / 4] * 4  # 2 convs, 2 linears
    assert group_of(groups, mup_convs[0].weight)["lr"] == group_of(groups, mup.head.weight)["lr"] == 1e-2


def test_training_applies_the_schedule_to_each_groups_own_rate(tmp_path) -> None:
    cfg = load_config([*TINY_GPT, "model.width=64", "model.base_width=32", "model.parametrization=mup",
                       "optim.lr=0.01", "optim.warmup_steps=4", f"run.root={tmp_path}"])
    spec = plan_run(cfg)
    module = ScalingModule(build_model(cfg.model, text_info(32)), spec)
    schedule = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    optimizer = schedule.optimizer
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [0.01 / 2 / 4, 0.01 / 4]  # warmup step 0: 1/4
    optimizer.step()
    schedule.step()
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [0.01 / 2 / 2, 0.01 / 2]


def test_base_width_is_out_of_the_run_identity_at_its_default() -> None:
    plain, moved = load_config(TINY_GPT), load_config([*TINY_GPT, "model.base_width=128"])
    assert "base_width" not in identity(plain, 1000)["model"]
    assert identity(moved, 1000)["model"]["base_width"] == 128


@pytest.mark.parametrize("overrides, words", [
    (["model.base_width=0"], ["model.base_width=0", "must be positive"]),
    (["model=cnn", "data=digits", "model.base_width=-4"], ["model.base_width=-4", "must be positive"]),
    (["model=torchvision", "data=digits", "model.parametrization=mup"],
     ["model.parametrization='mup'", "is not a parametrization of model=torchvision", "use sp"]),
    (["model=cnn", "data=digits", "model.parametrization=mup", "model.classifier_hidden=256"],
     ["model.classifier_hidden=256", "grow with model.width"]),
    (["model.parametrization=mu"], ["model.parametrization='mu'", "use sp or mup"]),
    (["model.readout_zero_init=true"], ["model.readout_zero_init=True", "tied", "model.tie_embeddings=false"]),
])
def test_bad_mup_input_is_one_line(overrides, words) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(overrides)
    assert "\n" not in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_mup_refuses_a_preset_whose_hidden_size_is_fixed() -> None:
    with pytest.raises(ConfigError, match="model.classifier_hidden=4096"):
        build_model(CNNConfig(preset="alexnet", parametrization="mup"), image_info(64, 3))


def test_a_mup_run_trains_and_logs_optim_lr(runs_root) -> None:
    cfg = tiny(TINY_GPT, runs_root, "model.width=64", "model.base_width=32", "model.parametrization=mup",
               "budget.tokens=5120", "optim.warmup_steps=1", "optim.schedule=constant", "trainer.log_every=1")
    record = train(plan_run(cfg))
    assert record["status"] == "completed" and math.isfinite(record["loss"])
    logged = pd.read_csv(plan_run(cfg).path / "metrics.csv")["lr"].dropna()
    assert logged.iloc[-1] == pytest.approx(cfg.optim.lr)  # the run's rate, not the hidden groups' lr / 2
