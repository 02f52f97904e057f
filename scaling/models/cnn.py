"""AlexNet-style convnet whose size is (width, depth).

Stage i has round(width * channel_mults[i]) channels (the multipliers extend with their last
value); depth conv blocks (conv, ReLU), with max-pooling after blocks 1, 2 and the last, as in
AlexNet, but only while the feature map is at least as large as the pooling window; then an
adaptive average pool and a three-layer classifier (dropout, linear, ReLU, dropout, linear,
ReLU, linear). Stems: "alexnet" (11x11 stride 4, 3x3/2 pooling, 6x6 adaptive pool: exactly
torchvision's AlexNet at every size where that one runs), "small" (3x3 stride 1, 2x2/2 pooling,
adaptive pool to at most 6x6 so that small images do not replicate a tiny map), "auto"
(alexnet from 64 px, else small). model.parametrization=mup is μP relative to model.base_width
(scaling/models/mup.py). Shapes: B batch, C channels, H x W feature map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from torch import nn

from scaling.accounting import training_flops
from scaling.data.base import DataInfo
from scaling.errors import ConfigError, fail, require_positive
from scaling.models import Family, mup, register_family
from scaling.models.base import ScalingModel


@dataclass
class CNNConfig:
    """AlexNet-style convnet. width scales every stage's channels, depth = conv blocks."""

    # Added after run ids were pinned: left out of the run identity at its default (plan.identity).
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("base_width", "readout_zero_init")

    family: str = "cnn"
    width: int = 16
    depth: int = 3
    channel_mults: list[float] = field(default_factory=lambda: [1.0, 3.0, 6.0, 4.0, 4.0])
    classifier_hidden: Optional[int] = None  # None: derived from width (64 * width)
    dropout: float = 0.5
    stem: str = "auto"  # auto | alexnet | small
    preset: Optional[str] = None
    parametrization: str = "sp"  # sp | mup (μP: scaling/models/mup.py)
    base_width: int = 16  # mup: the width at which μP and SP coincide (hyperparameters tuned there)
    readout_zero_init: bool = False  # the output layer starts at zero (logits 0 at init, any width)


AUTO_ALEXNET_MIN_PX = 64  # "auto" uses the alexnet stem for inputs at least this large
ALEXNET_POOL = 6  # AlexNet's adaptive pool output (6x6)

# Sizes are data: preset name -> config values. `alexnet` is torchvision's AlexNet layout
# (64, 192, 384, 256, 256 channels; 4096-wide classifier): 61,100,840 parameters at 1000 classes.
PRESETS: dict[str, dict] = {
    "alexnet": {"width": 64, "depth": 5, "channel_mults": [1.0, 3.0, 6.0, 4.0, 4.0],
                "classifier_hidden": 4096, "dropout": 0.5},
    "cnn-tiny": {"width": 8, "depth": 3},
    "cnn-small": {"width": 16, "depth": 4},
    "cnn-base": {"width": 32, "depth": 5},
}

# (kernel, stride, padding) of block 0, block 1 and every later block, per stem.
CONV_SPECS: dict[str, list[tuple[int, int, int]]] = {
    "alexnet": [(11, 4, 2), (5, 1, 2), (3, 1, 1)],
    "small": [(3, 1, 1), (5, 1, 2), (3, 1, 1)],
}
POOL_WINDOW = {"alexnet": 3, "small": 2}  # max-pool window; the stride is always 2


def resolve_stem(stem: str, image_size: tuple[int, int]) -> str:
    """"auto" -> "alexnet" for images of at least 64 px on the short side, else "small"."""
    if stem != "auto":
        return stem
    return "alexnet" if min(image_size) >= AUTO_ALEXNET_MIN_PX else "small"


def stage_channels(cfg: CNNConfig, index: int) -> int:
    """Channels of conv block `index`: round(width * mult), mults extended by their last."""
    mults = cfg.channel_mults
    return max(1, round(cfg.width * mults[min(index, len(mults) - 1)]))


def _out_size(size: tuple[int, int], kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Spatial size after a conv or pool window (floor mode)."""
    return tuple((s + 2 * padding - kernel) // stride + 1 for s in size)  # type: ignore


def conv_stack(cfg: CNNConfig, in_channels: int, size: tuple[int, int],
               stem: str) -> tuple[nn.Sequential, int, tuple[int, int]]:
    """The conv blocks; returns (layers, channels out, feature map size out)."""
    layers: list[nn.Module] = []
    window = POOL_WINDOW[stem]
    for index in range(cfg.depth):
        kernel, stride, padding = CONV_SPECS[stem][min(index, 2)]
        channels = stage_channels(cfg, index)
        layers += [nn.Conv2d(in_channels, channels, kernel, stride, padding), nn.ReLU()]
        size = _out_size(size, kernel, stride, padding)
        if min(size) < 1:
            raise ConfigError(f"model.stem={stem!r} is too coarse for these images (block {index + 1} "
                              f"has no pixels left); use model.stem=small")
        if index in (0, 1, cfg.depth - 1) and min(size) >= window:
            layers.append(nn.MaxPool2d(window, stride=2))
            size = _out_size(size, window, 2, 0)
        in_channels = channels
    return nn.Sequential(*layers), in_channels, size


def classifier(in_features: int, hidden: int, dropout: float) -> nn.Sequential:
    """AlexNet's classifier up to the penultimate activation [B, hidden]."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
    )


class ConvNet(ScalingModel):
    """Conv blocks, adaptive average pool, classifier, output layer."""

    def __init__(self, cfg: CNNConfig, channels: int, image_size: tuple[int, int],
                 num_classes: int) -> None:
        super().__init__()
        self.input_shape = (channels, *image_size)  # (C, H, W) of one sample
        stem = resolve_stem(cfg.stem, image_size)
        self.convs, conv_channels, size = conv_stack(cfg, channels, image_size, stem)
        pool = (ALEXNET_POOL,) * 2 if stem == "alexnet" else tuple(min(ALEXNET_POOL, s) for s in size)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        hidden = cfg.classifier_hidden or 64 * cfg.width
        self.classifier = classifier(conv_channels * pool[0] * pool[1], hidden, cfg.dropout)
        self.head = mup.Readout(hidden, num_classes)
        self.stem = stem
        self._flops_per_unit: Optional[float] = None
        if cfg.parametrization == "mup":
            self._apply_mup(mup.width_mult(cfg))
        if cfg.readout_zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _apply_mup(self, width_mult: float) -> None:
        """μP from PyTorch's init, whose weight variance is already 1/fan_in: hidden biases and the
        readout back to their size at the base width (as mup's set_base_shapes rescales them),
        logits x 1/width_mult."""
        layers = self.hidden_layers()
        mup.rescale_([m.bias for m in layers] + [self.head.weight, self.head.bias], width_mult ** 0.5)
        self.head.output_mult = 1.0 / width_mult

    def hidden_layers(self) -> list[nn.Module]:
        """Every conv after the first and the classifier's linears: both fans grow with width."""
        convs = [m for m in self.convs if isinstance(m, nn.Conv2d)][1:]
        return convs + [m for m in self.classifier if isinstance(m, nn.Linear)]

    def hidden_weights(self) -> list[nn.Parameter]:
        """μP's hidden weights (their learning rate is scaled by 1/width_mult)."""
        return [m.weight for m in self.hidden_layers()]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> penultimate activation [B, hidden]."""
        x = self.pool(self.convs(x))  # [B, C_last, h, w] -> [B, C_last, ph, pw]
        return self.classifier(torch.flatten(x, 1))  # [B, C_last*ph*pw] -> [B, hidden]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> logits [B, classes]."""
        return self.head(self.features(x))

    def output_layer(self) -> nn.Linear:
        """The final Linear (hidden -> classes)."""
        return self.head

    def first_conv(self) -> nn.Conv2d:
        """The first convolution (the kernels a probe draws)."""
        return self.convs[0]

    def flops_per_unit(self) -> float:
        """Training FLOPs per image: 3 x the forward FLOPs of one sample (counted once)."""
        if self._flops_per_unit is None:
            device = next(self.parameters()).device
            sample = torch.zeros(1, *self.input_shape, device=device)  # [1, C, H, W]
            self._flops_per_unit = training_flops(self, sample)
        return self._flops_per_unit


def build(cfg: CNNConfig, info: DataInfo) -> ConvNet:
    """A ConvNet for `info`'s image shape, channels and classes."""
    if info.image_size is None or info.num_classes is None:
        raise ConfigError(f"data {info.name!r} has no image size or classes; model=cnn needs image data")
    validate(cfg)
    return ConvNet(cfg, info.channels or 3, tuple(info.image_size), info.num_classes)


def validate(cfg: CNNConfig) -> None:
    """Sizes are positive and the stem is one there is."""
    require_positive(cfg, "model", ["width", "depth", "classifier_hidden"])
    mup.validate_base_width(cfg)
    if cfg.parametrization == "mup" and cfg.classifier_hidden is not None:
        fail("model.classifier_hidden", cfg.classifier_hidden, "is fixed, but under model.parametrization=mup "
             "every hidden size must grow with model.width", "leave model.classifier_hidden unset (null)")
    if cfg.stem not in ("auto", *CONV_SPECS):
        fail("model.stem", cfg.stem, "is not a stem", "use auto, alexnet or small")


register_family(Family(name="cnn", schema=CNNConfig, build=build, data_kind="image", presets=PRESETS,
                       validate=validate, parametrizations=mup.PARAMETRIZATIONS, param_groups=mup.param_groups))
