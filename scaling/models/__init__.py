"""Model families: one builder per family, presets as data, one shared interface.

`build_model(cfg, info)` dispatches on `cfg.family` (gpt | cnn | torchvision). Every model it
returns is a `ScalingModel`: it reports its parameter count and training FLOPs per unit, and
exposes its features, output layer (and for CNNs its first convolution) to the probes.
The family modules are imported lazily, so `scaling.models.gpt` can import `ScalingModel`
from here and building a GPT never imports torchvision.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Union

import torch
from torch import nn

from scaling.accounting import count_params
from scaling.config import CNNConfig, ConfigError, GPTConfig, TorchvisionConfig
from scaling.data.base import DataInfo

ModelConfig = Union[GPTConfig, CNNConfig, TorchvisionConfig]


class ScalingModel(nn.Module):
    """The interface every family implements; accounting and probes rely only on this."""

    def num_params(self, non_embedding: bool = False) -> int:
        """N; with non_embedding, Kaplan's count without vocabulary and position tables."""
        return count_params(self, non_embedding)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters that count as embeddings (default: those of nn.Embedding layers)."""
        return [p for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]

    def flops_per_unit(self) -> float:
        """Training FLOPs (forward + backward) per token for text, per sample for images."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the output layer reads (the input of `output_layer()`)."""
        raise NotImplementedError

    def output_layer(self) -> nn.Linear:
        """The final nn.Linear that maps features to logits."""
        raise NotImplementedError


def _family_module(family: str) -> Any:
    """The module implementing a family (imported on first use)."""
    if family == "gpt":
        from scaling.models import gpt as module
    elif family == "cnn":
        from scaling.models import cnn as module
    elif family == "torchvision":
        from scaling.models import torchvision_family as module
    else:
        raise ConfigError(f"model.family={family!r} is not a model family; use gpt, cnn or torchvision")
    return module


def presets(family: str) -> dict[str, dict[str, Any]]:
    """The named presets of a family: preset name -> the config values it sets."""
    return _family_module(family).PRESETS


def apply_preset(cfg: ModelConfig) -> ModelConfig:
    """A copy of `cfg` with its preset's values filled in (a plain copy when preset is None).
    The preset wins over the fields it names; fields it does not name keep their values."""
    if cfg.preset is None:
        return copy.deepcopy(cfg)
    table = presets(cfg.family)
    if cfg.preset not in table:
        raise ConfigError(f"model.preset={cfg.preset!r} is not a {cfg.family} preset; "
                          f"use one of {', '.join(table)}")
    return dataclasses.replace(copy.deepcopy(cfg), **copy.deepcopy(table[cfg.preset]))


def build_model(cfg: ModelConfig, info: DataInfo) -> ScalingModel:
    """Build the model that `cfg` (preset applied) describes for data shaped like `info`.
    Build under `with torch.device("meta"):` to count N and FLOPs without allocating."""
    cfg = apply_preset(cfg)
    return _family_module(cfg.family).build(cfg, info)


__all__ = ["ScalingModel", "build_model", "apply_preset", "presets"]
