"""Model families: a registry of them, presets as data, one builder per family.

A family is one module of this package that calls `register_family(Family(...))`: its config
schema, presets, builder, the data it trains on, its parametrizations, the optimizer's
parameter groups and how probes embed with it (see DEVELOPERS.md, "Adding a model family").
Every model a builder returns is a `scaling.models.base.ScalingModel`: it reports its parameter
count and training FLOPs per unit. This module imports no torch; the families are imported on
the first lookup.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from scaling.errors import ConfigError
from scaling.registry import Registry, require_fields

# Fields every family's schema has: the two size knobs and what the framework reads itself.
SCHEMA_FIELDS = ("family", "width", "depth", "preset", "parametrization")


def decay_groups(model: Any, model_cfg: Any, optim: Any) -> list[dict[str, Any]]:
    """AdamW's parameter groups in standard parametrization: weight decay on matrices and
    kernels (ndim >= 2), none on biases and norms; every group at optim.lr."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def no_checks(cfg: Any) -> None:
    """A family without config checks of its own."""


@dataclass(frozen=True)
class Family:
    """What a model family declares, in its own module."""

    name: str  # model.family; the YAML file extends the schema stored as <name>_schema
    schema: type  # config dataclass with SCHEMA_FIELDS (+ the family's own knobs)
    build: Callable[[Any, Any], Any]  # (model config, preset applied; DataInfo) -> ScalingModel
    data_kind: str  # the data.kind it trains on: "text" | "image"
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> config values
    validate: Callable[[Any], None] = no_checks  # config checks; ConfigError naming model.<key>
    parametrizations: tuple[str, ...] = ("sp",)  # model.parametrization values it builds
    # (model, model config, optim config) -> torch.optim parameter groups (per-group lr or
    # weight_decay); a parametrization such as muP scales learning rates here.
    param_groups: Callable[[Any, Any, Any], list[dict[str, Any]]] = decay_groups
    embedding: str = ""  # how probes embed with it: "text" | "image" ("": as its data_kind)

    @property
    def probe_embedding(self) -> str:
        """The embedding probes use: the declared one, else the data kind's."""
        return self.embedding or self.data_kind


FAMILIES: Registry[Family] = Registry("model family", "model.family", __name__, skip=("base",))


def register_family(family: Family) -> Family:
    """Register a family (call it at the bottom of the family's module)."""
    require_fields(family.schema, SCHEMA_FIELDS, "model family")
    if family.schema().family != family.name:
        raise TypeError(f"{family.schema.__name__}.family must default to {family.name!r}")
    return FAMILIES.register(family.name, family)


def family(name: str) -> Family:
    """The family called `name` (model.family); a one-line ConfigError if there is none."""
    return FAMILIES.get(name)


def presets(name: str) -> Mapping[str, Mapping[str, Any]]:
    """The named presets of a family: preset name -> the config values it sets."""
    return family(name).presets


def apply_preset(cfg: Any) -> Any:
    """A copy of `cfg` with its preset's values filled in (a plain copy when preset is None).
    The preset wins over the fields it names; fields it does not name keep their values."""
    if cfg.preset is None:
        return copy.deepcopy(cfg)
    table = presets(cfg.family)
    if cfg.preset not in table:
        raise ConfigError(f"model.preset={cfg.preset!r} is not a {cfg.family} preset; "
                          f"use one of {', '.join(table)}")
    return dataclasses.replace(copy.deepcopy(cfg), **copy.deepcopy(dict(table[cfg.preset])))


def build_model(cfg: Any, info: Any) -> Any:
    """Build the model that `cfg` (preset applied) describes for data shaped like `info`.
    `build_meta` builds it on the meta device, to count N and FLOPs without allocating."""
    cfg = apply_preset(cfg)
    return family(cfg.family).build(cfg, info)


def build_meta(cfg: Any, info: Any) -> Any:
    """The model on the meta device, its initialisers skipped: N and FLOPs at any size, nothing
    allocated (see base.SkipMetaInit for why the initialisers are skipped)."""
    import torch

    from scaling.models.base import SkipMetaInit

    with torch.device("meta"), SkipMetaInit():
        return build_model(cfg, info)


def param_groups(model_cfg: Any, model: Any, optim: Any) -> list[dict[str, Any]]:
    """The optimizer's parameter groups for `model`, as its family declares them."""
    return family(model_cfg.family).param_groups(model, model_cfg, optim)


__all__ = ["Family", "FAMILIES", "register_family", "family", "presets", "apply_preset",
           "build_model", "build_meta", "param_groups", "decay_groups"]
