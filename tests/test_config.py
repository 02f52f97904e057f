"""Composing and validating the real Hydra config tree."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from scaling.cli import main
from scaling.config import ConfigError, available_options, load_config
from scaling.data.text import TextDataConfig
from scaling.models.cnn import CNNConfig
from scaling.models.gpt import GPTConfig


def test_defaults_compose_to_typed_objects():
    cfg = load_config([])
    assert isinstance(cfg.model, GPTConfig) and isinstance(cfg.data, TextDataConfig)
    assert cfg.model.width == 64 and cfg.data.name == "pystdlib" and cfg.logger.name == "local"


def test_groups_and_options_are_listed():
    options = available_options()
    assert {"gpt", "cnn", "torchvision"} <= set(options["model"])
    assert {"pystdlib", "digits", "cifar10", "mnist", "imagefolder"} <= set(options["data"])
    assert {"cpu", "gpu", "ddp"} <= set(options["trainer"])


def test_cnn_on_digits_composes():
    cfg = load_config(["model=cnn", "data=digits", "model.width=8"])
    assert isinstance(cfg.model, CNNConfig) and cfg.model.width == 8 and cfg.data.kind == "image"


@pytest.mark.parametrize("overrides, words", [
    (["model.widht=64"], ["model.widht", "model.width"]),
    (["model.width=-3"], ["model.width", "positive"]),
    (["model.width=abc"], ["model.width"]),
    (["model=nosuch"], ["model/nosuch", "gpt"]),
    (["model=cnn"], ["needs image data"]),
    (["model.width=48", "model.head_dim=32"], ["model.width", "divisible"]),
    (["budget.tokens=10", "budget.flops=1e9"], ["budget.tokens", "budget.flops"]),
    (["data=digits", "model=cnn", "budget.tokens=100"], ["budget.tokens", "budget.samples"]),
    (["optim.lr=0"], ["optim.lr"]),
])
def test_bad_input_is_one_line_naming_the_key(overrides, words):
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_cli_bad_key_exits_nonzero_fast_with_one_line():
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scaling.cli", "train", "model.widht=64"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: unknown config key 'model.widht' (did you mean 'model.width'?); "
                     "see `scaling train --cfg job` for the keys"]
    assert time.monotonic() - start < 10


def test_cli_help_and_cfg_job(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "model" in out and "gpt, " in out and "digits" in out
    assert main(["train", "--cfg", "job", "model.width=96"]) == 0
    out = capsys.readouterr().out
    assert "width: 96" in out and "budget:" in out
