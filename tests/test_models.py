"""Model families: shapes, presets, the shared interface, building on the meta device."""

from __future__ import annotations

import math
import time
from importlib import resources

import pytest
import torch
import torchvision
from torch import nn

from scaling.config import OptimConfig
from scaling.errors import ConfigError
from scaling.models import FAMILIES, apply_preset, build_meta, build_model, family, param_groups, presets
from scaling.models.base import ScalingModel, SkipMetaInit
from scaling.models.cnn import CNNConfig, stage_channels
from scaling.models.gpt import GPTConfig
from scaling.models.torchvision_family import TorchvisionConfig
from tests.conftest import image_info, text_info

ALEXNET_PARAMS = 61_100_840


def numel(model: nn.Module) -> int:
    """Parameters counted directly (tied tensors once, as Module.parameters yields them)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- presets


def test_alexnet_preset_is_torchvision_alexnet() -> None:
    with torch.device("meta"):
        ours = build_model(CNNConfig(preset="alexnet"), image_info(224, 3, 1000))
        reference = torchvision.models.alexnet()
    assert ours.num_params() == numel(reference) == ALEXNET_PARAMS
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    assert [stage_channels(apply_preset(CNNConfig(preset="alexnet")), i) for i in range(5)] == \
        [64, 192, 384, 256, 256]


def test_apply_preset_returns_a_filled_copy() -> None:
    cfg = GPTConfig(preset="gpt2-small")
    filled = apply_preset(cfg)
    assert (filled.width, filled.depth, filled.head_dim) == (768, 12, 64)
    assert (cfg.width, cfg.depth) == (64, 2)  # the original is untouched
    plain = CNNConfig(width=4)
    copied = apply_preset(plain)
    assert copied == plain and copied is not plain and copied.channel_mults is not plain.channel_mults


def test_every_preset_is_a_dict_of_config_fields() -> None:
    for declared in FAMILIES:
        for name, values in presets(declared.name).items():
            assert set(values) <= set(declared.schema.__dataclass_fields__), (declared.name, name)


# --------------------------------------------------------------------------- registry


def test_every_family_of_the_package_is_registered_with_its_yaml() -> None:
    assert {"gpt", "cnn", "torchvision"} <= set(FAMILIES.names())
    for name in ("gpt", "cnn", "torchvision"):
        declared = family(name)
        assert declared.schema().family == name and declared.data_kind in ("text", "image")
        yaml = (resources.files("scaling.conf") / "model" / f"{name}.yaml").read_text()
        assert f"- {name}_schema" in yaml and f"family: {name}" in yaml


def test_a_misspelt_family_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="model.family='gtp' is not a model family \\(did you mean 'gpt'\\?\\)"):
        family("gtp")


@pytest.mark.parametrize("cfg, info", [(GPTConfig(width=32, depth=2, head_dim=16), text_info(16)),
                                       (CNNConfig(width=4, depth=3), image_info(16, 1)),
                                       (TorchvisionConfig(name="resnet18"), image_info(16, 1))])
def test_meta_build_counts_as_a_real_one(cfg, info) -> None:
    meta, real = build_meta(cfg, info), build_model(cfg, info)
    assert next(meta.parameters()).is_meta and not next(real.parameters()).is_meta
    assert [p.shape for p in meta.parameters()] == [p.shape for p in real.parameters()]
    assert meta.num_params(non_embedding=True) == real.num_params(non_embedding=True)
    assert meta.flops_per_unit() == real.flops_per_unit()


def test_skipping_meta_initialisers_leaves_real_tensors_alone() -> None:
    torch.manual_seed(0)
    plain = nn.Linear(8, 8)
    torch.manual_seed(0)
    with SkipMetaInit():
        inside = nn.Linear(8, 8)
    assert torch.equal(plain.weight, inside.weight) and float(inside.weight.detach().abs().sum()) > 0


def test_default_param_groups_decay_matrices_only() -> None:
    model = build_model(GPTConfig(width=32, depth=1, head_dim=16), text_info(8))
    optim = OptimConfig(weight_decay=0.3)
    decay, no_decay = param_groups(GPTConfig(), model, optim)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.3, 0.0)
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters() if p.ndim >= 2}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in model.parameters() if p.ndim < 2}


def test_unknown_preset_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        apply_preset(GPTConfig(preset="gpt5"))
    assert "\n" not in str(error.value) and "gpt2-small" in str(error.value)


# -------------------------------------------------------------------------------- GPT


def test_gpt_shapes_and_interface() -> None:
    model = build_model(GPTConfig(width=32, depth=2, head_dim=16), text_info(16))
    tokens = torch.randint(0, 256, (3, 10))  # shorter than the context is fine
    assert isinstance(model, ScalingModel)
    assert model(tokens).shape == (3, 10, 256)
    assert model.features(tokens).shape == (3, 10, 32)
    assert model.output_layer() is model.lm_head
    assert model.lm_head.weight is model.token_embedding.weight  # tied
    assert model.num_params() == numel(model)
    torch.testing.assert_close(model.output_layer()(model.features(tokens)), model(tokens))


def test_gpt_heads_and_untied_head() -> None:
    narrow = build_model(GPTConfig(width=16, depth=1, head_dim=32), text_info(8))
    assert narrow.blocks[0].attn.heads == 1
    untied = build_model(GPTConfig(width=64, depth=1, head_dim=16, tie_embeddings=False), text_info(8))
    assert untied.blocks[0].attn.heads == 4
    assert untied.lm_head.weight is not untied.token_embedding.weight
    assert untied.num_params() == numel(untied)


def test_gpt_is_causal() -> None:
    model = build_model(GPTConfig(width=32, depth=2, head_dim=16), text_info(8)).eval()
    tokens = torch.randint(0, 256, (1, 8))
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % 256
    torch.testing.assert_close(model(tokens)[:, :-1], model(changed)[:, :-1])


def test_gpt_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    model = build_model(GPTConfig(width=128, depth=8, head_dim=32), text_info(8))
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 8)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(residual, rel=0.05)


def test_gpt_refuses_a_width_its_heads_do_not_divide() -> None:
    with pytest.raises(ConfigError, match="model.width"):
        build_model(GPTConfig(width=100, depth=1, head_dim=32), text_info(8))  # 3 heads


def test_large_gpt_builds_on_meta_quickly() -> None:
    width, depth, seq_len, vocab = 2048, 24, 2048, 256
    start = time.perf_counter()
    with torch.device("meta"):
        model = build_model(GPTConfig(width=width, depth=depth, head_dim=128), text_info(seq_len))
    per_block = 12 * width * width + 13 * width  # weights, biases and two LayerNorms
    expected = depth * per_block + 2 * width + (vocab + seq_len) * width
    assert model.num_params() == expected
    assert model.num_params(non_embedding=True) == expected - (vocab + seq_len) * width
    assert model.flops_per_unit() > 6 * depth * 12 * width * width
    assert time.perf_counter() - start < 5.0
    assert next(model.parameters()).device.type == "meta"


# -------------------------------------------------------------------------------- CNN


@pytest.mark.parametrize("size,channels,stem", [(8, 1, "small"), (28, 1, "small"),
                                                (32, 3, "small"), (64, 3, "alexnet")])
def test_cnn_shapes_and_interface(size: int, channels: int, stem: str) -> None:
    model = build_model(CNNConfig(width=4, depth=5), image_info(size, channels, 7))
    images = torch.randn(2, channels, size, size)
    assert model.stem == stem
    assert model(images).shape == (2, 7)
    assert model.features(images).shape == (2, 64 * 4)
    assert model.first_conv().in_channels == channels
    assert isinstance(model.first_conv(), nn.Conv2d)
    assert model.output_layer().out_features == 7
    assert model.num_params() == numel(model)


def test_cnn_channels_extend_the_last_multiplier() -> None:
    cfg = CNNConfig(width=10, depth=7, channel_mults=[1.0, 2.5])
    assert [stage_channels(cfg, i) for i in range(7)] == [10, 25, 25, 25, 25, 25, 25]
    model = build_model(cfg, image_info(8))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [10, 25, 25, 25, 25, 25, 25]


def test_cnn_classifier_hidden_is_configurable() -> None:
    model = build_model(CNNConfig(width=4, depth=2, classifier_hidden=12), image_info(8))
    assert model.output_layer().in_features == 12


def test_cnn_alexnet_stem_refuses_tiny_images() -> None:
    with pytest.raises(ConfigError, match="model.stem"):
        build_model(CNNConfig(width=4, depth=2, stem="alexnet"), image_info(4))


# ------------------------------------------------------------------------ torchvision


def test_torchvision_resnet18_on_one_channel_8x8() -> None:
    model = build_model(TorchvisionConfig(name="resnet18"), image_info(8, 1, 10))
    images = torch.randn(2, 1, 8, 8)
    assert model(images).shape == (2, 10)
    assert model.features(images).shape == (2, 512)
    assert model.output_layer() is model.net.fc
    reference = torchvision.models.get_model("resnet18", weights=None, num_classes=10)
    assert model.num_params() == model.num_params(non_embedding=True) == numel(reference)


def test_torchvision_bad_name_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        build_model(TorchvisionConfig(name="x"), image_info(8))
    assert str(error.value) == ("model.name='x' is not a torchvision classification model; "
                                "use e.g. resnet18")


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ConfigError, match="model.family"):
        build_model(GPTConfig(family="rnn"), text_info(8))


def test_torchvision_builds_on_meta_even_when_its_constructor_reads_tensors() -> None:
    with torch.device("meta"):
        model = build_model(TorchvisionConfig(name="regnet_x_400mf"), image_info(32))
    assert next(model.parameters()).device.type == "meta"
    assert model.num_params() > 0 and model.flops_per_unit() > 0


def test_torchvision_too_small_images_are_one_line() -> None:
    with torch.device("meta"):
        model = build_model(TorchvisionConfig(name="vgg11"), image_info(8))
    with pytest.raises(ConfigError) as error:
        model.flops_per_unit()
    assert "\n" not in str(error.value) and "model.name='vgg11'" in str(error.value)
