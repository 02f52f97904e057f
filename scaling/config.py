"""Compose and validate Hydra configs into typed objects.

This is the only module that talks to Hydra. Everything downstream receives a `Config`
(a tree of dataclasses); bad input is refused here with a one-line `ConfigError` that names
the key and the fix, before any data is loaded or any model is built.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

CONFIG_MODULE = "scaling.conf"
GROUPS = ("model", "data", "trainer", "optim", "logger", "launcher", "sweep", "experiment")


class ConfigError(ValueError):
    """A config problem, reported to the user as one line naming the key and the fix."""


# ---------------------------------------------------------------------------- model


@dataclass
class GPTConfig:
    """Decoder-only transformer. width = d_model, depth = number of blocks."""

    family: str = "gpt"
    width: int = 64
    depth: int = 2
    head_dim: int = 32  # heads = width // head_dim (at least 1), width must divide evenly
    mlp_ratio: int = 4
    vocab_size: int = 256
    dropout: float = 0.0
    tie_embeddings: bool = True
    preset: Optional[str] = None
    parametrization: str = "sp"  # "sp" today; "mup" is planned (DESIGN.md)


@dataclass
class CNNConfig:
    """AlexNet-style convnet. width scales every stage's channels, depth = conv blocks."""

    family: str = "cnn"
    width: int = 16
    depth: int = 3
    channel_mults: list[float] = field(default_factory=lambda: [1.0, 3.0, 6.0, 4.0, 4.0])
    classifier_hidden: Optional[int] = None  # None: derived from width (64 * width)
    dropout: float = 0.5
    stem: str = "auto"  # auto | alexnet | small
    preset: Optional[str] = None
    parametrization: str = "sp"


@dataclass
class TorchvisionConfig:
    """Any torchvision classification model by name (weights are never downloaded)."""

    family: str = "torchvision"
    name: str = "resnet18"
    width: Optional[int] = None
    depth: Optional[int] = None
    preset: Optional[str] = None
    parametrization: str = "sp"


# ----------------------------------------------------------------------------- data


@dataclass
class TextDataConfig:
    """A byte-level corpus. `name` is pystdlib (the running Python's stdlib) or files."""

    kind: str = "text"
    name: str = "pystdlib"
    paths: list[str] = field(default_factory=list)  # files or folders when name=files
    glob: str = "*"  # which files of a folder (pystdlib uses *.py)
    seq_len: int = 128
    val_tokens: int = 65536  # fixed held-out evaluation set size
    subset: Optional[int] = None  # unique training tokens drawn from (None: all)
    order_seed: int = 0  # data order; fixed so that smaller budgets nest in larger ones
    cache_dir: Optional[str] = None  # where the packed corpus lives (default ~/.cache/scaling)
    default_budget: int = 400_000  # tokens, used when no budget.* is given


@dataclass
class ImageDataConfig:
    """An image classification data set: digits (offline), torchvision sets, ImageFolder."""

    kind: str = "image"
    name: str = "digits"  # digits | cifar10 | cifar100 | mnist | fashionmnist | imagefolder
    root: Optional[str] = None  # data folder (default ~/.cache/scaling/data/<name>)
    download: bool = False
    val_size: Optional[int] = None  # held-out samples (torchvision sets use their test split)
    subset: Optional[int] = None  # unique training samples drawn from (None: all)
    augment: bool = False  # random crop and flip (CIFAR-style)
    image_size: Optional[int] = None  # resize to this square size (ImageFolder needs one)
    order_seed: int = 0
    default_budget: int = 20_000  # samples, used when no budget.* is given


# ------------------------------------------------------------------ training, budget


@dataclass
class TrainerConfig:
    """Where and how Lightning runs: devices, precision, evaluation and checkpoint cadence."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # int or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ...
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    val_every: int = 50  # optimizer steps between validations (and at the end)
    log_every: int = 10
    checkpoint_every: int = 50  # optimizer steps between checkpoints
    num_workers: int = 0
    threads: Optional[int] = None  # torch intra-op threads (None: torch's default)
    compile: bool = False
    progress: bool = True
    probe: bool = False  # probe the run's embeddings when it completes (scaling probe)
    fail_at_step: Optional[int] = None  # fault injection for testing recovery: raise at this step
    fail_attempts: int = 1  # ... on this many first attempts only (then the run goes through)
    trace_batches: bool = False  # append each step's batch hashes to the run's batches.txt (resume audits)


@dataclass
class OptimConfig:
    """AdamW with linear warmup, then optim.schedule over the run's own budget (scaling/train/schedule.py)."""

    # The names of scaling.train.schedule's SCHEDULES and DECAY_SHAPES (a test holds them equal).
    SCHEDULES: ClassVar[tuple[str, ...]] = ("cosine", "wsd", "constant", "linear")
    DECAY_SHAPES: ClassVar[tuple[str, ...]] = ("linear", "sqrt")
    # Added after run ids were pinned: at its default such a field is left out of the run
    # identity (scaling.plan.identity), so a config that does not set it keeps its run_id.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("schedule", "decay_fraction", "decay_shape")

    name: str = "adamw"
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_fraction: float = 0.05
    warmup_steps: Optional[int] = None  # overrides warmup_fraction when set
    schedule: str = "cosine"  # cosine | wsd | constant | linear; decays to min_lr_ratio * lr
    decay_fraction: float = 0.2  # wsd: the last fraction of the steps decays (the cooldown)
    decay_shape: str = "linear"  # wsd: linear | sqrt (1 - sqrt, Hägele et al. 2024)
    grad_clip: float = 1.0
    batch_size: int = 32  # global batch, in sequences or images, split across devices
    grad_accum: int = 1


@dataclass
class BudgetConfig:
    """How much the run trains: D in the data's unit, or C in FLOPs (D follows)."""

    tokens: Optional[int] = None
    samples: Optional[int] = None
    flops: Optional[float] = None


@dataclass
class RunConfig:
    """Where run folders go: <root>/<sweep.name>/<run_id>."""

    root: str = "runs"


# ------------------------------------------------------------------- logger, launcher


@dataclass
class LoggerConfig:
    """local: run folders only. wandb: also Weights & Biases (offline without an API key)."""

    name: str = "local"
    project: str = "scaling"
    entity: Optional[str] = None
    mode: str = "auto"  # auto (online with a key, else offline) | online | offline | disabled
    tags: list[str] = field(default_factory=list)
    dir: Optional[str] = None


@dataclass
class LauncherConfig:
    """launcher=local: this machine, `parallel` runs at a time (CPU threads divided)."""

    name: str = "local"
    parallel: int = 1


@dataclass
class RayLauncherConfig:
    """launcher=ray: each run is a Ray Tune trial (owned by scaling/launch/ray.py)."""

    name: str = "ray"
    parallel: int = 1  # unused by ray; kept so every launcher answers launcher.parallel
    address: Optional[str] = None  # None: embedded local Ray; "auto" or "ray://host:port": a cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU between small runs
    workers_per_trial: int = 1  # >1: a Ray Train TorchTrainer with Lightning's Ray strategy
    max_failures: int = 1  # trial retries
    max_concurrent: Optional[int] = None
    storage_path: Optional[str] = None  # Ray Tune's experiment folder (default <run.root>/<sweep>/.ray)
    # Learning-rate search per planned run (empty: off): each run is trained at every lr listed,
    # ASHA stops the poor ones early, and the best per run is marked in the records.
    tune_lr: list[float] = field(default_factory=list)
    tune_reduction_factor: float = 3.0  # ASHA keeps 1/this of the trials at each milestone
    tune_grace_steps: Optional[int] = None  # first ASHA milestone in optimizer steps (default trainer.val_every)


@dataclass
class SlurmLauncherConfig:
    """launcher=slurm: the plan as a SLURM job array (owned by scaling/launch/slurm.py)."""

    name: str = "slurm"
    parallel: int = 8  # array parallelism (%N)
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1  # = devices per node; srun --ntasks-per-node for DDP
    cpus_per_task: int = 1
    mem_gb: Optional[float] = None
    time_min: int = 60
    signal_delay_s: int = 90  # SIGUSR1 this long before the time limit: checkpoint and requeue
    max_requeues: int = 3  # requeues on that signal, at most (counted by SLURM_RESTART_COUNT)
    extra_sbatch: list[str] = field(default_factory=list)  # e.g. ["--constraint=a100"]
    poll_s: float = 5.0  # seconds between squeue polls of the attached sweep
    unreachable_s: float = 300.0  # give up (runs recorded failed) when squeue fails this long
    log_dir: Optional[str] = None  # default <run.root>/<sweep>/.slurm


# ---------------------------------------------------------------------------- sweep


@dataclass
class SweepConfig:
    """A sweep spec: which runs to plan. mode none is a single run (scaling train).

    grid: the cartesian product of `axes` (key -> values), axes in one `zip` group vary together,
      points matching every item of an `exclude` entry are dropped.
    data: every model of `models` at every size of `data_sizes` (nested: D in the data's unit).
    isoflop: every model of `models` at every compute budget of `budgets` (D = C / FLOPs per unit).
    `models` holds widths (with a model.depth rule) or [width, depth] pairs. `rules` set keys from
    expressions of width, depth, N, N_nonembed, D, C (e.g. optim.lr: 3e-3 * (N / 1e6) ** -0.25),
    applied in order after the axes.
    """

    name: str = "default"
    mode: str = "none"  # none | grid | data | isoflop
    axes: dict[str, Any] = field(default_factory=dict)
    zip: list[list[str]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    models: list[Any] = field(default_factory=list)
    data_sizes: list[float] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    rules: dict[str, Any] = field(default_factory=dict)
    tokens_per_param: list[float] = field(default_factory=list)  # isoflop: [min, max] of D / N
    allow_repeat: bool = False  # isoflop: keep points whose D exceeds the unique data
    budget_tolerance: float = 0.05  # isoflop: largest relative gap between C and its budget
    flops_per_second: Optional[float] = None  # this machine's achieved rate (None: measured)
    gpu_flops: float = 989e12  # peak of the GPU the totals are quoted for (H100 bf16 dense)
    utilisation: float = 0.4  # model FLOPs utilisation assumed for GPU hours


# --------------------------------------------------------------------------- root


@dataclass
class Config:
    """The whole resolved configuration of one run (or of a sweep before planning)."""

    model: Any = None
    data: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: Any = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seed: int = 0


def register_schemas() -> None:
    """Register the dataclasses with Hydra's ConfigStore, as schemas the YAML files extend."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, name, node in [
        ("model", "gpt_schema", GPTConfig),
        ("model", "cnn_schema", CNNConfig),
        ("model", "torchvision_schema", TorchvisionConfig),
        ("data", "text_schema", TextDataConfig),
        ("data", "image_schema", ImageDataConfig),
        ("trainer", "trainer_schema", TrainerConfig),
        ("optim", "optim_schema", OptimConfig),
        ("logger", "logger_schema", LoggerConfig),
        ("launcher", "launcher_schema", LauncherConfig),
        ("launcher", "ray_schema", RayLauncherConfig),
        ("launcher", "slurm_schema", SlurmLauncherConfig),
        ("sweep", "sweep_schema", SweepConfig),
    ]:
        cs.store(group=group, name=name, node=node)


register_schemas()


# ------------------------------------------------------------------------ compose


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides; Hydra's errors become ConfigError."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are user errors here
        raise ConfigError(_explain_hydra_error(exc, overrides)) from exc
    finally:
        GlobalHydra.instance().clear()


def load_config(overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Compose, convert to typed objects and validate; the one entry point for commands."""
    return finalize(to_object(compose_config(overrides)))


def finalize(cfg: Config) -> Config:
    """Expand the model preset (so width and depth are the real ones) and validate."""
    from scaling.models import apply_preset

    validate(cfg)
    cfg.model = apply_preset(cfg.model)
    validate(cfg)
    return cfg


def to_object(cfg: DictConfig) -> Config:
    """Turn a composed DictConfig into the typed `Config` tree."""
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:
        raise ConfigError(_explain_hydra_error(exc, ())) from exc
    assert isinstance(obj, Config)
    return obj


def to_yaml(cfg: Config | DictConfig) -> str:
    """The config as YAML text (what config.yaml in a run folder holds)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg) if isinstance(cfg, Config) else cfg)


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a typed Config from `to_dict` output (for example a run folder's config.yaml)."""
    data = dict(data)
    schema = OmegaConf.structured(Config)
    model_cls = {"gpt": GPTConfig, "cnn": CNNConfig, "torchvision": TorchvisionConfig}
    data_cls = {"text": TextDataConfig, "image": ImageDataConfig}
    launcher_cls = {"local": LauncherConfig, "ray": RayLauncherConfig, "slurm": SlurmLauncherConfig}
    launcher_name = (data.get("launcher") or {}).get("name", "local")
    merged = OmegaConf.merge(
        schema,
        {
            "model": OmegaConf.structured(model_cls[data["model"]["family"]]),
            "data": OmegaConf.structured(data_cls[data["data"]["kind"]]),
            "launcher": OmegaConf.structured(launcher_cls[launcher_name]),
        },
    )
    merged = OmegaConf.merge(merged, data)
    return to_object(merged)


def available_options() -> dict[str, list[str]]:
    """Each config group and the options it offers (for --help)."""
    from importlib import resources

    root = resources.files(CONFIG_MODULE)
    options: dict[str, list[str]] = {}
    for group in GROUPS:
        folder = root / group
        names = [p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")]
        options[group] = sorted(names)
    return options


# ----------------------------------------------------------------------- validation


def _fail(key: str, value: Any, problem: str, fix: str) -> None:
    raise ConfigError(f"{key}={value!r} {problem}; {fix}")


def _positive(cfg: Any, prefix: str, names: list[str]) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            _fail(f"{prefix}.{name}", value, "must be positive", f"set {prefix}.{name} to a number above 0")


def validate(cfg: Config) -> None:
    """Refuse impossible values with a one-line message naming the key and the fix."""
    _validate_model(cfg)
    _validate_data(cfg)
    _validate_training(cfg)
    _validate_budget(cfg)


def _validate_model(cfg: Config) -> None:
    model = cfg.model
    if isinstance(model, GPTConfig):
        _positive(model, "model", ["width", "depth", "head_dim", "mlp_ratio", "vocab_size"])
        if model.width > model.head_dim and model.width % model.head_dim:
            _fail("model.width", model.width, f"is not divisible into heads of model.head_dim={model.head_dim}",
                  f"use a multiple of {model.head_dim} or change model.head_dim")
        if cfg.data is not None and cfg.data.kind != "text":
            _fail("model", "gpt", "needs text data", "choose data=pystdlib or data=text")
    elif isinstance(model, CNNConfig):
        _positive(model, "model", ["width", "depth", "classifier_hidden"])
        if model.stem not in ("auto", "alexnet", "small"):
            _fail("model.stem", model.stem, "is not a stem", "use auto, alexnet or small")
    elif isinstance(model, TorchvisionConfig):
        pass
    else:
        raise ConfigError("model is not set; choose model=gpt, model=cnn or model=torchvision")
    if model.parametrization not in ("sp",):
        _fail("model.parametrization", model.parametrization, "is not supported yet", "use sp")
    if not isinstance(model, GPTConfig) and cfg.data is not None and cfg.data.kind != "image":
        _fail("model", model.family, "needs image data", "choose data=digits, data=cifar10, ...")
    if not 0.0 <= getattr(model, "dropout", 0.0) < 1.0:
        _fail("model.dropout", model.dropout, "must be in [0, 1)", "use for example 0.1")


def _validate_data(cfg: Config) -> None:
    data = cfg.data
    if isinstance(data, TextDataConfig):
        _positive(data, "data", ["seq_len", "val_tokens", "subset"])
        if data.name not in ("pystdlib", "files"):
            _fail("data.name", data.name, "is not a text corpus", "use pystdlib or files")
        if data.name == "files" and not data.paths:
            _fail("data.paths", [], "is empty", "give files or folders: data.paths=[/path/a,/path/b]")
    elif isinstance(data, ImageDataConfig):
        _positive(data, "data", ["val_size", "subset", "image_size"])
        names = ("digits", "cifar10", "cifar100", "mnist", "fashionmnist", "imagefolder")
        if data.name not in names:
            _fail("data.name", data.name, "is not an image data set", "use one of " + ", ".join(names))
        if data.name == "imagefolder" and not data.root:
            _fail("data.root", None, "is needed for imagefolder", "set data.root=/path/to/class/folders")
    else:
        raise ConfigError("data is not set; choose data=pystdlib, data=digits, ...")


def _validate_training(cfg: Config) -> None:
    _positive(cfg.optim, "optim", ["lr", "batch_size", "grad_accum", "warmup_steps"])
    _positive(cfg.trainer, "trainer", ["val_every", "log_every", "checkpoint_every", "num_nodes", "threads"])
    if not 0.0 <= cfg.optim.warmup_fraction < 1.0:
        _fail("optim.warmup_fraction", cfg.optim.warmup_fraction, "must be in [0, 1)", "use for example 0.05")
    if not 0.0 <= cfg.optim.min_lr_ratio <= 1.0:
        _fail("optim.min_lr_ratio", cfg.optim.min_lr_ratio, "must be in [0, 1]", "use for example 0.1")
    _validate_schedule(cfg.optim)
    if cfg.optim.grad_clip < 0:
        _fail("optim.grad_clip", cfg.optim.grad_clip, "must be >= 0", "use 0 to turn clipping off")
    precisions = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")
    if str(cfg.trainer.precision) not in precisions:
        _fail("trainer.precision", cfg.trainer.precision, "is not a precision", "use 32-true or bf16-mixed")
    devices = cfg.trainer.devices
    if not (devices == "auto" or (isinstance(devices, int) and devices > 0)):
        _fail("trainer.devices", devices, "must be a positive int or auto", "use for example trainer.devices=2")


def _validate_schedule(optim: OptimConfig) -> None:
    if optim.schedule not in OptimConfig.SCHEDULES:
        _fail("optim.schedule", optim.schedule, "is not a schedule", f"use one of {', '.join(OptimConfig.SCHEDULES)}")
    if not 0.0 < optim.decay_fraction <= 1.0:
        _fail("optim.decay_fraction", optim.decay_fraction, "must be in (0, 1]", "use for example 0.2")
    if optim.decay_shape not in OptimConfig.DECAY_SHAPES:
        _fail("optim.decay_shape", optim.decay_shape, "is not a decay shape", "use linear or sqrt")
    if optim.schedule == "wsd" and optim.warmup_steps is None and optim.warmup_fraction + optim.decay_fraction > 1:
        _fail("optim.warmup_fraction", optim.warmup_fraction, f"is longer than wsd's stable phase (the decay "
              f"takes the last optim.decay_fraction={optim.decay_fraction})", "lower one of the two")


def _validate_budget(cfg: Config) -> None:
    budget = cfg.budget
    given = [k for k in ("tokens", "samples", "flops") if getattr(budget, k) is not None]
    _positive(budget, "budget", given)
    if len(given) > 1:
        raise ConfigError(f"budget.{given[0]} and budget.{given[1]} are both set; give only one budget")
    unit = "tokens" if cfg.data.kind == "text" else "samples"
    other = "samples" if unit == "tokens" else "tokens"
    if getattr(budget, other) is not None:
        _fail(f"budget.{other}", getattr(budget, other), f"does not apply to {cfg.data.kind} data",
              f"use budget.{unit} or budget.flops")


# ------------------------------------------------------------------- error wording


def _explain_hydra_error(exc: BaseException, overrides: list[str] | tuple[str, ...]) -> str:
    """Turn Hydra/OmegaConf's multi-line errors into one line with the key and a fix."""
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    full = text + "\n" + (str(cause) if cause else "")
    key_match = re.search(r"full_key:\s*(\S+)", full)
    missing = re.search(r"Key '([^']+)' (?:is )?not in (?:struct|'?\w+'?)", full)
    if "Could not override" in full or missing:
        key = _override_key(full, key_match)
        return f"unknown config key '{key}'{_suggest(key)}; see `scaling train --cfg job` for the keys"
    if "could not be converted" in full or "Value '" in full and "is not a valid" in full:
        value = re.search(r"Value '([^']*)'", full)
        kind = re.search(r"converted to (\w+)|is not a valid value for (\w+)", full)
        key = key_match.group(1) if key_match else "a key"
        want = next((g for g in (kind.groups() if kind else ()) if g), "the right type")
        got = value.group(1) if value else "?"
        return f"{key}={got!r} is not a valid {want}; give {key} a value of type {want}"
    option = re.search(r"Could not find '([^']+)'", full)
    if option:
        group = option.group(1).split("/")[0]
        choices = available_options().get(group, [])
        return (f"no config option '{option.group(1)}'; choose {group}= one of "
                f"{', '.join(c for c in choices if not c.endswith('_schema'))}")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"config error: {first}"


def _override_key(full: str, key_match: re.Match | None) -> str:
    quoted = re.search(r"Could not override '([^']+)'", full)
    if quoted:
        return quoted.group(1)
    return key_match.group(1) if key_match else "?"


def _suggest(key: str) -> str:
    """' (did you mean 'model.width'?)' for a misspelt key, else ''."""
    head, _, leaf = key.rpartition(".")
    schema = {"model": [*GPTConfig.__dataclass_fields__, *CNNConfig.__dataclass_fields__,
                        *TorchvisionConfig.__dataclass_fields__],
              "data": [*TextDataConfig.__dataclass_fields__, *ImageDataConfig.__dataclass_fields__],
              "trainer": list(TrainerConfig.__dataclass_fields__),
              "optim": list(OptimConfig.__dataclass_fields__),
              "budget": list(BudgetConfig.__dataclass_fields__),
              "": list(Config.__dataclass_fields__)}.get(head, [])
    close = difflib.get_close_matches(leaf, schema, n=1)
    return f" (did you mean '{head + '.' if head else ''}{close[0]}'?)" if close else ""
