"""Data sources: a registry of source kinds (text corpora, image sets) behind one contract.

A source kind is one module of this package that calls `register_source(Source(...))`: its
config schema (data.kind selects it), its config checks, its cheap `info` and its builder.
`data_info(cfg.data)` says what the data is (vocabulary, classes, shapes, sizes) from metadata
and file sizes, reading no data and writing nothing: all that planning needs. `build_data(cfg.data)`
returns the `DataSource` training reads: a nested training order (`train_dataset(num_samples,
start)`) and a fixed held-out set (`val_dataset()`). Every problem with the data is a one-line
`ConfigError`. This module imports no torch; the source modules are imported on the first lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from scaling.data.base import DataInfo, DataSource
from scaling.registry import Registry, require_fields

__all__ = ["DataInfo", "DataSource", "Source", "SOURCES", "register_source", "source", "data_info",
           "build_data"]


@dataclass(frozen=True)
class Source:
    """What a data source kind declares, in its own module."""

    kind: str  # data.kind; the YAML files extend the schema stored as <kind>_schema
    schema: type  # config dataclass: kind, name, subset, order_seed, default_budget, ...
    unit: str  # "tokens" | "samples": D's unit, and the budget.<unit> key that sets it
    info: Callable[[Any], DataInfo]  # cheap and side-effect free: metadata, file sizes
    build: Callable[[Any], DataSource]  # the data itself (may read, pack or cache files)
    validate: Callable[[Any], None]  # config checks; ConfigError naming data.<key>
    choose: str  # how to pick one, for messages: "data=pystdlib or data=text"


SOURCES: Registry[Source] = Registry("data kind", "data.kind", __name__, skip=("base",))

# Fields every source schema has: what the planner and the run identity read themselves.
SCHEMA_FIELDS = ("kind", "name", "subset", "order_seed", "default_budget")


def register_source(source: Source) -> Source:
    """Register a source kind (call it at the bottom of the source's module)."""
    require_fields(source.schema, SCHEMA_FIELDS, "data source")
    if source.unit not in ("tokens", "samples"):
        raise TypeError(f"Source {source.kind!r}: unit must be tokens or samples (the budget keys)")
    return SOURCES.register(source.kind, source)


def source(kind: str) -> Source:
    """The source kind called `kind` (data.kind); a one-line ConfigError if there is none."""
    return SOURCES.get(kind)


def data_info(cfg: Any) -> DataInfo:
    """What the data a config names is, without reading or writing any data."""
    return source(cfg.kind).info(cfg)


def build_data(cfg: Any) -> DataSource:
    """The data source a data config describes; a one-line ConfigError if it cannot be built."""
    return source(cfg.kind).build(cfg)
