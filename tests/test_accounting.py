"""N and FLOPs held against real counts: the parameters themselves and torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from scaling.accounting import (count_params, forward_flops, gpt_flops_per_token, run_totals,
                                training_flops)
from scaling.models import build_model
from scaling.models.cnn import CNNConfig
from scaling.models.gpt import GPTConfig
from scaling.models.torchvision_family import TorchvisionConfig
from tests.conftest import image_info, text_info


def measured_training_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FlopCounterMode's total for forward + backward of a cross-entropy loss. The math SDPA
    backend is forced because the counter has no formula for the CPU flash-attention kernel."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        logits = model(x)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
    return counter.get_total_flops()


# ------------------------------------------------------------------------- parameters


def test_count_params_counts_tied_tensors_once() -> None:
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    model = nn.ModuleDict({"embedding": embedding, "head": head, "body": nn.Linear(4, 4)})
    assert count_params(model) == 10 * 4 + 4 * 4 + 4
    assert count_params(model, non_embedding=True) == 4 * 4 + 4


@pytest.mark.parametrize("tied", [True, False])
def test_gpt_non_embedding_is_total_minus_tables(tied: bool) -> None:
    model = build_model(GPTConfig(width=32, depth=2, head_dim=16, tie_embeddings=tied), text_info(16))
    total = sum(p.numel() for p in model.parameters())
    tables = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    untied_head = 0 if tied else model.lm_head.weight.numel()
    assert model.num_params() == count_params(model) == total
    assert model.num_params(non_embedding=True) == total - tables - untied_head


def test_cnn_non_embedding_equals_total() -> None:
    model = build_model(CNNConfig(width=4, depth=2), image_info(8, 1))
    assert model.num_params(non_embedding=True) == model.num_params()


# ------------------------------------------------------------------------------ FLOPs


@pytest.mark.parametrize("width,depth,seq_len", [(32, 2, 16), (64, 1, 64), (48, 3, 32)])
def test_gpt_flops_match_flop_counter(width: int, depth: int, seq_len: int) -> None:
    torch.manual_seed(0)
    model = build_model(GPTConfig(width=width, depth=depth, head_dim=16), text_info(seq_len))
    tokens = torch.randint(0, 256, (2, seq_len))
    measured = measured_training_flops(model, tokens, tokens)
    predicted = model.flops_per_unit() * tokens.numel()
    assert predicted == gpt_flops_per_token(width, depth, seq_len, 256, 4) * tokens.numel()
    assert predicted == pytest.approx(measured, rel=0.10)


@pytest.mark.parametrize("size,channels,width,depth",
                         [(8, 1, 8, 3), (28, 1, 8, 3), (32, 3, 8, 4), (28, 1, 4, 5)])
def test_cnn_flops_match_flop_counter(size: int, channels: int, width: int, depth: int) -> None:
    torch.manual_seed(0)
    model = build_model(CNNConfig(width=width, depth=depth), image_info(size, channels))
    images, labels = torch.randn(2, channels, size, size), torch.randint(0, 10, (2,))
    measured = measured_training_flops(model, images, labels)
    assert model.flops_per_unit() * 2 == pytest.approx(measured, rel=0.10)


@pytest.mark.parametrize("size,stem", [(8, "small"), (32, "small"), (64, "alexnet")])
def test_cnn_flops_are_exact(size: int, stem: str) -> None:
    """As trained (no gradient for the images), 3 x forward less the first layer's input grad."""
    model = build_model(CNNConfig(width=4, depth=5), image_info(size))
    assert model.stem == stem
    images = torch.randn(2, 3, size, size)
    measured = measured_training_flops(model, images, torch.randint(0, 10, (2,)))
    assert model.flops_per_unit() * 2 == pytest.approx(measured, rel=1e-9)


def test_forward_flops_on_meta_match_counter_for_alexnet() -> None:
    with torch.device("meta"):
        model = build_model(CNNConfig(preset="alexnet"), image_info(224, 3, 1000))
        images = torch.zeros(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter:
        model(images)
    assert forward_flops(model, images) == counter.get_total_flops() == 1_428_376_960


def test_torchvision_flops_match_counter() -> None:
    model = build_model(TorchvisionConfig(name="resnet18"), image_info(16, 1))
    images = torch.randn(2, 1, 16, 16).expand(-1, 3, -1, -1).clone()
    labels = torch.randint(0, 10, (2,))
    exact = measured_training_flops(model.net, images, labels)
    assert model.flops_per_unit() * 2 == pytest.approx(exact, rel=1e-9)


def test_forward_flops_counts_multihead_attention() -> None:
    attention = nn.MultiheadAttention(16, 4, batch_first=True)
    tokens = torch.randn(2, 8, 16)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        attention(tokens, tokens, tokens, need_weights=False)
    assert forward_flops(attention, (tokens, tokens, tokens)) == counter.get_total_flops()


def test_forward_flops_leaves_batchnorm_statistics_alone() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    before = model[1].running_mean.clone()
    # one layer reading the images: forward + weight grad only (no input grad): 2 x forward
    assert training_flops(model, torch.randn(4, 1, 5, 5)) == 2 * 2 * (4 * 2 * 3 * 3) * 9
    assert model.training and torch.equal(model[1].running_mean, before)


# ----------------------------------------------------------------------------- totals


def test_run_totals() -> None:
    info = text_info(16)
    model = build_model(GPTConfig(width=32, depth=2, head_dim=16), info)
    totals = run_totals(model, info, units=1_000)
    assert totals["N"] == model.num_params()
    assert totals["N_nonembed"] == model.num_params(non_embedding=True)
    assert totals["D"] == 1_000
    assert totals["flops_per_unit"] == model.flops_per_unit()
    assert totals["C"] == pytest.approx(1_000 * model.flops_per_unit())


def test_run_totals_of_a_plain_module_counts_by_hooks() -> None:
    info = image_info(4, 1, 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    totals = run_totals(model, info, units=10)
    assert totals["flops_per_unit"] == 2 * 2 * 16 * 3  # no input grad for the only layer
    assert totals["C"] == 10 * 2 * 2 * 16 * 3
    assert totals["N"] == totals["N_nonembed"] == 16 * 3 + 3
