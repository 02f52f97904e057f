"""Any torchvision classification model by name, randomly initialised (weights are never
downloaded), behind the ScalingModel interface. One-channel images are repeated to three."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from scaling.accounting import training_flops
from scaling.data.base import DataInfo
from scaling.errors import ConfigError
from scaling.models import Family, register_family
from scaling.models.base import ScalingModel


@dataclass
class TorchvisionConfig:
    """Any torchvision classification model by name (weights are never downloaded)."""

    family: str = "torchvision"
    name: str = "resnet18"
    width: Optional[int] = None
    depth: Optional[int] = None
    preset: Optional[str] = None
    parametrization: str = "sp"


# Sizes are data: preset name -> config values.
PRESETS: dict[str, dict] = {
    "resnet18": {"name": "resnet18"},
    "resnet50": {"name": "resnet50"},
    "convnext-tiny": {"name": "convnext_tiny"},
    "vit-b-16": {"name": "vit_b_16"},
}


def classification_models() -> list[str]:
    """Names torchvision.models.get_model builds as image classifiers (no detection etc.)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _builder_kwargs(name: str, info: DataInfo) -> dict[str, Any]:
    """Extra constructor arguments some architectures need to fit the data."""
    if name in ("googlenet", "inception_v3"):
        return {"aux_logits": False, "init_weights": True}  # no auxiliary heads to train
    if name.startswith("vit_") and info.image_size and info.image_size[0] == info.image_size[1]:
        return {"image_size": info.image_size[0]}  # ViT's position table fixes the size
    return {}


class TorchvisionModel(ScalingModel):
    """A torchvision classifier; `net` holds it unchanged."""

    def __init__(self, net: nn.Module, name: str, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.input_shape = input_shape  # (C, H, W) of one sample as the data gives it
        self._flops_per_unit: Optional[float] = None

    def _to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] -> [B, 3, H, W] (a view); three-channel input passes unchanged."""
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> logits [B, classes]."""
        out = self.net(self._to_rgb(x))
        return out[0] if isinstance(out, tuple) else out  # (logits, aux...) named tuples

    def output_layer(self) -> nn.Linear:
        """The last nn.Linear of the network (its classifier's output layer)."""
        linears = [m for m in self.net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError(f"model.name={self.name!r} has no final nn.Linear for probes; "
                              f"use e.g. resnet18")
        return linears[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> the input of the output layer [B, F] (penultimate activation)."""
        captured: list[torch.Tensor] = []
        handle = self.output_layer().register_forward_pre_hook(
            lambda module, args: captured.append(args[0]))
        try:
            self.forward(x)
        finally:
            handle.remove()
        return captured[-1]

    def flops_per_unit(self) -> float:
        """Training FLOPs per image: 3 x the forward FLOPs of one sample (counted once;
        matmuls made outside Linear/Conv/MultiheadAttention modules are not seen)."""
        if self._flops_per_unit is None:
            device = next(self.parameters()).device
            sample = torch.zeros(1, *self.input_shape, device=device)  # [1, C, H, W]
            try:
                self._flops_per_unit = training_flops(self, sample)
            except (RuntimeError, AssertionError, ValueError) as exc:
                size = "x".join(map(str, self.input_shape[1:]))
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"model.name={self.name!r} does not run on {size} images "
                                  f"({reason}); use larger images or e.g. resnet18") from exc
        return self._flops_per_unit


def _get_model(name: str, **kwargs: Any) -> nn.Module:
    """torchvision's get_model with random weights. A constructor that reads tensor values
    (regnet's) cannot run on the meta device; it is built on the CPU and moved there."""
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except NotImplementedError:
        if torch.get_default_device().type != "meta":
            raise
        with torch.device("cpu"):
            net = torchvision.models.get_model(name, weights=None, **kwargs)
        return net.to("meta")


def build(cfg: TorchvisionConfig, info: DataInfo) -> TorchvisionModel:
    """torchvision.models.get_model(cfg.name, weights=None, num_classes=info.num_classes)."""
    names = classification_models()
    if cfg.name not in names:
        close = difflib.get_close_matches(str(cfg.name), names, n=1)
        raise ConfigError(f"model.name={cfg.name!r} is not a torchvision classification model; "
                          f"use e.g. {close[0] if close else 'resnet18'}")
    if info.image_size is None or info.num_classes is None:
        raise ConfigError(f"data {info.name!r} has no image size or classes; "
                          f"model=torchvision needs image data")
    net = _get_model(cfg.name, num_classes=info.num_classes, **_builder_kwargs(cfg.name, info))
    return TorchvisionModel(net, cfg.name, (info.channels or 3, *info.image_size))


register_family(Family(name="torchvision", schema=TorchvisionConfig, build=build, data_kind="image",
                       presets=PRESETS))
