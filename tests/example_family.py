"""An example model family: a multilayer perceptron on images (DEVELOPERS.md walks through it).

A family is this one module plus one YAML file, `model/mlp.yaml` (MLP_YAML below), in a config
folder Hydra searches. Inside the package the module would be `scaling/models/mlp.py` (found by
the registry on its own) and the YAML `scaling/conf/model/mlp.yaml`; from anywhere else, import
the module before composing and put the YAML's folder on Hydra's search path
(`hydra.searchpath=[file:///path/to/conf]`). Shapes: B batch, C channels, H x W image, F features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from scaling.data.base import DataInfo
from scaling.errors import ConfigError, require_positive
from scaling.models import Family, register_family
from scaling.models.base import ScalingModel

MLP_YAML = """\
# A multilayer perceptron on images; width = hidden units, depth = hidden layers.
defaults:
  - mlp_schema
family: mlp
width: 32
depth: 2
"""


@dataclass
class MLPConfig:
    """The family's keys (model.*): the shared ones, then its own (none here)."""

    family: str = "mlp"
    width: int = 32  # hidden units per layer
    depth: int = 2  # hidden layers
    preset: Optional[str] = None
    parametrization: str = "sp"


# Sizes are data: preset name -> config values.
PRESETS: dict[str, dict] = {"mlp-tiny": {"width": 16, "depth": 1}, "mlp-small": {"width": 64, "depth": 2}}


class MLP(ScalingModel):
    """Flatten, `depth` x (Linear, ReLU), then the output layer."""

    def __init__(self, cfg: MLPConfig, info: DataInfo) -> None:
        super().__init__()
        height, width = info.image_size
        self.widths = [info.channels * height * width] + [cfg.width] * cfg.depth
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(self.widths, self.widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.width, info.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> the last hidden layer [B, F]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> logits [B, classes]."""
        return self.head(self.features(x))

    def output_layer(self) -> nn.Linear:
        """The final Linear (F -> classes)."""
        return self.head

    def flops_per_unit(self) -> float:
        """Training FLOPs per image: 6 per matmul weight (forward and backward), less the first
        layer's input gradient (the pixels need none), as scaling.accounting counts them."""
        weights = [a * b for a, b in zip(self.widths, self.widths[1:])] + [self.widths[-1] * self.head.out_features]
        return 6.0 * sum(weights) - 2.0 * weights[0]


def build(cfg: MLPConfig, info: DataInfo) -> MLP:
    """An MLP for `info`'s image shape and classes."""
    if info.image_size is None or info.num_classes is None:
        raise ConfigError(f"data {info.name!r} has no image size or classes; model=mlp needs image data")
    return MLP(cfg, info)


def validate(cfg: MLPConfig) -> None:
    """Config checks, run when the config is composed (before any data or model is built)."""
    require_positive(cfg, "model", ["width", "depth"])


register_family(Family(name="mlp", schema=MLPConfig, build=build, data_kind="image", presets=PRESETS,
                       validate=validate))
