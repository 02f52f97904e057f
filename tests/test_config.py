"""Composing and validating the real Hydra config tree."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
import yaml

from scaling.cli import main
from scaling.config import ConfigError, available_options, from_dict, load_config, to_dict, to_yaml
from scaling.data.text import TextDataConfig
from scaling.models.cnn import CNNConfig
from scaling.models.gpt import GPTConfig
from scaling.plan import plan_run, plan_sweep


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
    (["budget.flops=inf"], ["budget.flops=inf", "not a finite number", "finite"]),
    (["optim.lr=nan"], ["optim.lr=nan", "not a finite number"]),
    (["sweep.budgets=[1e12,inf]"], ["sweep.budgets[1]=inf", "finite"]),
    (["optim.beta1=1.0"], ["optim.beta1=1.0", "[0, 1)", "0.9"]),
    (["optim.beta2=-0.5"], ["optim.beta2=-0.5", "[0, 1)"]),
    (["optim.eps=0"], ["optim.eps=0", "positive"]),
    (["optim.weight_decay=-0.1"], ["optim.weight_decay=-0.1", ">= 0"]),
    (["optim.min_lr_ratio=2"], ["optim.min_lr_ratio=2.0", "[0, 1]"]),
    (["trainer.num_workers=-1"], ["trainer.num_workers=-1", ">= 0"]),
    (["trainer.accelerator=gpus"], ["trainer.accelerator='gpus'", "is not an accelerator", "cpu, gpu"]),
    (["launcher.parallel=0"], ["launcher.parallel=0", "positive"]),
    (["model.family=rnn"], ["model.family='rnn'", "is not a model family", "use one of cnn, gpt", "torchvision"]),
    (["model=torchvision", "data=digits", "model.parametrization=mup"],
     ["model.parametrization='mup'", "model=torchvision", "use sp"]),
    (["model.preset=gpt5"], ["model.preset='gpt5'", "gpt2-small"]),
    (["model=cnn", "data=digits", "model.stem=big"], ["model.stem='big'", "alexnet"]),
    (["data.name=wiki"], ["data.name='wiki'", "pystdlib or files"]),
    (["model=cnn", "data=digits", "data.name=svhn"], ["data.name='svhn'", "cifar10"]),
    (["data.kind=audio"], ["data.kind='audio'", "image, text"]),
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


def test_run_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("")
    for root, problem in [(tmp_path / "taken", "is a file"), (tmp_path / "taken" / "runs", "is inside a file")]:
        with pytest.raises(ConfigError, match=f"run.root=.*{problem}.*give a folder"):
            load_config([f"run.root={root}"])
    assert load_config([f"run.root={tmp_path / 'new' / 'runs'}"]).run.root.endswith("runs")


def test_unknown_sweep_mode_lists_the_modes():
    with pytest.raises(ConfigError) as error:
        plan_sweep(["sweep.mode=ladderz", "sweep.models=[]"])
    from scaling.plan import SWEEP_MODES

    assert str(error.value) == f"sweep.mode='ladderz' is not a sweep mode; use one of {', '.join(SWEEP_MODES)}"
    assert "none, grid, data, isoflop" in str(error.value)
    with pytest.raises(ConfigError, match=r"sweep.data_sizes\[1\]=inf is not a finite number"):
        plan_sweep(["experiment=gpt_data", "sweep.data_sizes=[1000,inf]"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_this_machine_lacks_is_refused_where_runs_train_here():
    with pytest.raises(ConfigError) as error:
        plan_run(load_config(["trainer=gpu"]))
    assert str(error.value).startswith("trainer.accelerator='gpu' needs a CUDA GPU") and "trainer=cpu" in str(error.value)
    plan = plan_sweep(["trainer=gpu", "sweep=grid"])  # planning a GPU sweep here is fine
    with pytest.raises(ConfigError, match="trainer.accelerator='gpu'"):
        plan.check_machine()  # ... launching it here is not
    plan_run(load_config(["trainer=gpu", "launcher=slurm"]))  # SLURM runs it elsewhere


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpus_this_machine_has_are_accepted_and_no_more():
    plan_run(load_config(["trainer=gpu"]))
    too_many = torch.cuda.device_count() + 1
    with pytest.raises(ConfigError, match=f"trainer.devices={too_many} is more GPUs than this machine's"):
        plan_run(load_config(["trainer=gpu", f"trainer.devices={too_many}"]))


@pytest.mark.parametrize("overrides", [[], ["model=cnn", "data=digits", "launcher=ray"],
                                       ["model=torchvision", "data=cifar10", "launcher=slurm"]])
def test_a_run_folders_config_reads_back_as_the_same_typed_config(overrides):
    cfg = load_config(overrides)
    back = from_dict(yaml.safe_load(to_yaml(cfg)))
    assert to_dict(back) == to_dict(cfg)
    assert [type(back.model), type(back.data), type(back.launcher)] == [
        type(cfg.model), type(cfg.data), type(cfg.launcher)]
