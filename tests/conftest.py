"""Shared fixtures: compose the real config and shrink it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from scaling.config import Config, load_config
from scaling.data.base import DataInfo

# Tests never talk to W&B servers and use few threads on the 2-core CI machine.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

TINY_GPT = ["model=gpt", "model.width=32", "model.depth=1", "model.head_dim=16", "data.seq_len=32",
            "data.val_tokens=4096", "optim.batch_size=8", "trainer.val_every=10", "trainer.log_every=5",
            "trainer.checkpoint_every=10", "trainer.progress=false"]
TINY_CNN = ["model=cnn", "data=digits", "model.width=4", "model.depth=2", "optim.batch_size=32",
            "trainer.val_every=10", "trainer.log_every=5", "trainer.checkpoint_every=10",
            "trainer.progress=false"]


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    """A fresh runs/ folder for a test."""
    return tmp_path / "runs"


def tiny(base: list[str], runs_root: Path, *more: str) -> Config:
    """The real composed config, shrunk, writing into runs_root."""
    return load_config([*base, f"run.root={runs_root}", *more])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until `predicate()` is truthy and return its value; fail the test, naming `what`, if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def text_info(seq_len: int) -> DataInfo:
    """A byte-level text data set with contexts of seq_len tokens."""
    return DataInfo("text", "text", "tokens", 10_000, seq_len, vocab_size=256, seq_len=seq_len)


def image_info(size: int, channels: int = 3, classes: int = 10) -> DataInfo:
    """A square image classification data set."""
    return DataInfo("images", "image", "samples", 1_000, 1, channels=channels,
                    image_size=(size, size), num_classes=classes)
