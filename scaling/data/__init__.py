"""Data sets: byte-level text corpora and image classification sets behind one contract.

`build_data(cfg.data)` returns a `DataSource`: its `info` (what the model builder and the
accounting need), a nested training order (`train_dataset(num_samples, start)`) and a fixed
held-out set (`val_dataset()`). Every problem with the data is a one-line `ConfigError`.
"""

from __future__ import annotations

from scaling.config import ConfigError, ImageDataConfig, TextDataConfig
from scaling.data.base import DataInfo, DataSource

__all__ = ["DataInfo", "DataSource", "build_data"]


def build_data(cfg: TextDataConfig | ImageDataConfig) -> DataSource:
    """The data source a data config describes; a one-line ConfigError if it cannot be built."""
    if isinstance(cfg, TextDataConfig):
        from scaling.data.text import build_text

        return build_text(cfg)
    if isinstance(cfg, ImageDataConfig):
        from scaling.data.images import build_images

        return build_images(cfg)
    raise ConfigError("data is not set; choose data=pystdlib, data=text, data=digits, data=cifar10, ...")
