"""Compose and validate Hydra configs into typed objects.

This is the only module that talks to Hydra. Everything downstream receives a `Config`
(a tree of dataclasses); bad input is refused here with a one-line `ConfigError` that names
the key and the fix, before any data is loaded or any model is built. The schemas of the
model and data groups are not written here: each model family and data source declares its
own (scaling.models, scaling.data), and this module asks those registries for them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Optional

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from scaling.data import SOURCES, source
from scaling.errors import ConfigError, fail, require_positive
from scaling.models import FAMILIES, apply_preset, family

CONFIG_MODULE = "scaling.conf"
GROUPS = ("model", "data", "trainer", "optim", "logger", "launcher", "sweep", "experiment")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")  # Lightning's names


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
    keep_steps: list[int] = field(default_factory=list)  # also keep checkpoints/step-K.ckpt at these steps (a trunk)
    branch_of: Optional[str] = None  # a cooldown branch: the trunk's run_id (a sibling folder) ...
    branch_step: Optional[int] = None  # ... and the step of the trunk's checkpoint it starts from
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
    ladder: per compute budget (`budgets`, or `budget_range` + `budget_count`), `sizes_per_budget`
      widths whose N is spaced evenly in log N within +-`span` decades of the prior's optimum
      N_opt = sqrt(C / (6 tokens_per_param_prior)), or of the IsoFLOP fit of an earlier ladder's runs
      (`prior`: its folder, runs/NAME); batch from `batch_rule` (in the data's unit,
      of C), in [batch_min, batch_max] samples, lowered so each run takes >= `min_steps` steps.
      `holdout_budgets` (K: the top K budgets, or a list of budgets) are targets the fit never sees;
      `holdout_sizes` (if set) keeps only that many central sizes at a target budget;
      `seed_repeats` repeats the smallest budget over seeds (the noise floor). With `branches` each width
      trains one constant-rate trunk and its budgets are wsd cooldowns branched from it (as mode=branches;
      a width's batch is then the rule at the budget where it is the expected optimum).
    `models` holds widths (with a model.depth rule) or [width, depth] pairs. `rules` set keys from
    expressions of width, depth, N, N_nonembed, D, C (e.g. optim.lr: 3e-3 * (N / 1e6) ** -0.25),
    applied in order after the axes. `rules_from` is a fit file of `scaling fit SWEEP --law lr --save FILE`:
    its rules for the sweep's model.parametrization come first, and sweep.rules win over them.
    """

    # Added after run ids were pinned (scaling.plan.identity leaves them out while at their default;
    # the sweep section is outside run identity anyway).
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "budget_range", "budget_count", "tokens_per_param_prior", "sizes_per_budget", "span", "batch_rule",
        "batch_min", "batch_max", "min_steps", "holdout_budgets", "holdout_sizes", "width_step", "max_width",
        "seed_repeats", "rules_from", "prior", "branches")

    name: str = "default"
    mode: str = "none"  # none | grid | data | isoflop | ladder
    axes: dict[str, Any] = field(default_factory=dict)
    zip: list[list[str]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    models: list[Any] = field(default_factory=list)
    data_sizes: list[float] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    rules: dict[str, Any] = field(default_factory=dict)
    rules_from: Optional[str] = None  # a fit file (scaling fit --law lr --save): its rules, then sweep.rules
    tokens_per_param: list[float] = field(default_factory=list)  # isoflop: [min, max] of D / N
    allow_repeat: bool = False  # isoflop: keep points whose D exceeds the unique data
    budget_tolerance: float = 0.05  # isoflop: largest relative gap between C and its budget
    flops_per_second: Optional[float] = None  # this machine's achieved rate (None: measured)
    gpu_flops: float = 989e12  # peak of the GPU the totals are quoted for (H100 bf16 dense)
    utilisation: float = 0.4  # model FLOPs utilisation assumed for GPU hours
    budget_range: list[float] = field(default_factory=list)  # ladder: [low, high] FLOPs, log-spaced
    budget_count: int = 0  # ladder: how many budgets in budget_range
    tokens_per_param_prior: float = 20.0  # ladder: the expected compute-optimal D / N
    prior: Optional[str] = None  # ladder: a sweep folder (or run table) whose IsoFLOP fit gives N_opt(C) instead
    sizes_per_budget: int = 5  # ladder: model sizes per budget
    span: float = 0.5  # ladder: sizes within +-span decades of N around the expected optimum
    batch_rule: str = "0.292 * C ** 0.3271"  # ladder: batch in the data's unit (DeepSeek LLM's B_opt)
    batch_min: int = 4  # ladder: fewest samples (sequences) per batch
    batch_max: int = 512  # ladder: most samples per batch
    min_steps: int = 200  # ladder: fewest optimizer steps a run may take (fewer: skipped)
    holdout_budgets: Any = 0  # ladder: K (the top K budgets) or a list of budgets: fit targets
    holdout_sizes: int = 0  # ladder: a target budget trains only its this many central sizes (0: all)
    width_step: int = 8  # ladder: widths searched are multiples of this
    max_width: int = 8192  # ladder: the widest model searched
    seed_repeats: int = 1  # ladder: seeds of the smallest budget's runs (2 or more measure the noise floor)
    branches: bool = False  # ladder: each width one constant-rate trunk, its budgets wsd cooldowns branched from it


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


LAUNCHER_SCHEMAS = {"local": LauncherConfig, "ray": RayLauncherConfig, "slurm": SlurmLauncherConfig}
_FIXED_SCHEMAS = [("trainer", "trainer_schema", TrainerConfig), ("optim", "optim_schema", OptimConfig),
                  ("logger", "logger_schema", LoggerConfig), ("launcher", "launcher_schema", LauncherConfig),
                  ("launcher", "ray_schema", RayLauncherConfig), ("launcher", "slurm_schema", SlurmLauncherConfig),
                  ("sweep", "sweep_schema", SweepConfig)]
_stored: set[tuple[Optional[str], str, type]] = set()


def schemas() -> list[tuple[str, str, type]]:
    """(group, name, dataclass) of every schema the YAML files extend: the fixed groups' and
    each registered model family's and data source's (<family>_schema, <kind>_schema)."""
    return [*_FIXED_SCHEMAS, *[("model", f"{f.name}_schema", f.schema) for f in FAMILIES],
            *[("data", f"{s.kind}_schema", s.schema) for s in SOURCES]]


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (each once; families registered later join)."""
    store = ConfigStore.instance()
    for group, name, node in [(None, "config_schema", Config), *schemas()]:
        if (group, name, node) not in _stored:
            store.store(group=group, name=name, node=node)
            _stored.add((group, name, node))


# ------------------------------------------------------------------------ compose


def compose_config(overrides: list[str] | tuple[str, ...] = (), sweeps: bool = True) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides; Hydra's errors become ConfigError.

    Hydra's sweep grammar (`model.width=16,32,64`, `optim.lr=choice(1e-3,3e-3)`, `seed=range(3)`)
    becomes axes of sweep.axes: a grid (mode none becomes grid), or, for the other modes, a
    product with the mode's own points. `sweeps=False` (scaling train) refuses them.
    """
    register_schemas()
    plain, axes = split_sweeps(overrides)
    if axes and not sweeps:
        key, values = next(iter(axes.items()))
        raise ConfigError(f"{key}={','.join(map(str, values))} is a sweep of {len(values)} values; scaling train "
                          "trains one config: use scaling sweep (scaling plan shows the runs)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            node = compose(config_name="config", overrides=plain)
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are user errors here
        raise ConfigError(_explain_hydra_error(exc, overrides)) from exc
    finally:
        GlobalHydra.instance().clear()
    return _with_axes(node, axes) if axes else node


def split_sweeps(overrides: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, list[Any]]]:
    """(plain overrides, {key: values} of the sweep overrides), parsed by Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # a grammar error: Hydra's message names the override
        raise ConfigError(_explain_hydra_error(exc, overrides)) from exc
    plain, axes = [], {}
    for text, override in zip(overrides, parsed):
        if not override.is_sweep_override():
            plain.append(text)
        elif override.key_or_group in GROUPS:
            raise ConfigError(f"{text} sweeps the config group {override.key_or_group}; sweep keys (model.width=16,32), "
                              f"and run one sweep per {override.key_or_group} option")
        else:
            axes[override.key_or_group] = list(override.sweep_iterator())
    return plain, axes


def _with_axes(node: DictConfig, axes: dict[str, list[Any]]) -> DictConfig:
    """The composed config with the command line's sweep axes added to sweep.axes."""
    merged = {**OmegaConf.to_container(node.sweep.axes), **axes}
    with open_dict(node):
        node.sweep.axes = merged
        if node.sweep.mode == "none":
            node.sweep.mode = "grid"
    return node


def load_config(overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Compose one run's config (no sweeps), convert to typed objects and validate."""
    return finalize(to_object(compose_config(overrides, sweeps=False)))


def finalize(cfg: Config) -> Config:
    """Expand the model preset (so width and depth are the real ones) and validate."""
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


def with_values(node: DictConfig, values: dict[str, Any]) -> DictConfig:
    """A copy of a composed config with dotted keys set (`{"model.width": 64}`); see set_values."""
    node = copy.deepcopy(node)
    set_values(node, values)
    return node


def set_values(node: DictConfig, values: dict[str, Any]) -> None:
    """Set dotted keys of a composed config in place, type-checked as overrides are; a one-line
    ConfigError for an unknown key or a wrong type."""
    for key, value in values.items():
        try:
            OmegaConf.update(node, key, value, merge=False, force_add=False)
        except Exception as exc:  # OmegaConf raises many types; all are user errors here
            raise ConfigError(_explain_hydra_error(exc, [f"{key}={value}"])) from exc


def get_values(node: DictConfig, keys: list[str]) -> dict[str, Any]:
    """Dotted keys of a composed config and their values (None for a key it lacks)."""
    return {key: OmegaConf.select(node, key) for key in keys}


def to_yaml(cfg: Config | DictConfig) -> str:
    """The config as YAML text (what config.yaml in a run folder holds)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg) if isinstance(cfg, Config) else cfg)


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists, as OmegaConf.to_container would give it
    (a float field holding an int gives a float), without building OmegaConf nodes."""
    return _plain(cfg, Any)


def _plain(value: Any, hint: Any) -> Any:
    if dataclasses.is_dataclass(value):
        hints = _field_types(type(value))
        return {f.name: _plain(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(value)}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(value, (list, tuple)):
        return [_plain(item, args[0] if args else Any) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item, args[-1] if args else Any) for key, item in value.items()}
    if float in (hint, *args) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a typed Config from `to_dict` output (for example a run folder's config.yaml)."""
    launcher_name = (data.get("launcher") or {}).get("name", "local")
    if launcher_name not in LAUNCHER_SCHEMAS:
        fail("launcher.name", launcher_name, "is not a launcher", f"use one of {', '.join(LAUNCHER_SCHEMAS)}")
    merged = OmegaConf.merge(
        OmegaConf.structured(Config),
        {
            "model": OmegaConf.structured(family(data["model"]["family"]).schema),
            "data": OmegaConf.structured(source(data["data"]["kind"]).schema),
            "launcher": OmegaConf.structured(LAUNCHER_SCHEMAS[launcher_name]),
        },
    )
    return to_object(OmegaConf.merge(merged, data))


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


def validate(cfg: Config) -> None:
    """Refuse impossible values with a one-line message naming the key and the fix."""
    refuse_non_finite(cfg, "")
    _validate_data(cfg)
    _validate_model(cfg)
    _validate_optim(cfg.optim)
    _validate_trainer(cfg.trainer)
    _validate_budget(cfg)
    _validate_run(cfg)
    _validate_sweep(cfg.sweep)


def refuse_non_finite(value: Any, key: str) -> None:
    """Refuse NaN and infinities anywhere in a config tree (dataclasses, dicts, lists)."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            refuse_non_finite(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(value, dict):
        for name, item in value.items():
            refuse_non_finite(item, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_non_finite(item, f"{key}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        fail(key, value, "is not a finite number", f"give {key} a finite number")


def _require_range(key: str, value: float, low: float, high: float, example: str, closed: bool = False) -> None:
    """Refuse a value outside [low, high) ([low, high] when closed)."""
    if not (low <= value <= high if closed else low <= value < high):
        fail(key, value, f"must be in [{low:g}, {high:g}{']' if closed else ')'}", f"use for example {example}")


def _validate_model(cfg: Config) -> None:
    model = cfg.model
    if model is None:
        raise ConfigError(f"model is not set; choose model={' or model='.join(FAMILIES.names())}")
    spec = family(model.family)
    spec.validate(model)
    if cfg.data is not None and cfg.data.kind != spec.data_kind:
        fail("model", model.family, f"needs {spec.data_kind} data", f"choose {source(spec.data_kind).choose}")
    if model.parametrization not in spec.parametrizations:
        fail("model.parametrization", model.parametrization, f"is not a parametrization of model={model.family}",
             f"use {' or '.join(spec.parametrizations)}")
    if hasattr(model, "dropout"):
        _require_range("model.dropout", model.dropout, 0.0, 1.0, "0.1")


def _validate_data(cfg: Config) -> None:
    if cfg.data is None:
        raise ConfigError("data is not set; choose data=pystdlib, data=digits, ...")
    source(cfg.data.kind).validate(cfg.data)


def _validate_optim(optim: OptimConfig) -> None:
    require_positive(optim, "optim", ["lr", "eps", "batch_size", "grad_accum", "warmup_steps"])
    _require_range("optim.beta1", optim.beta1, 0.0, 1.0, "0.9")
    _require_range("optim.beta2", optim.beta2, 0.0, 1.0, "0.95")
    _require_range("optim.warmup_fraction", optim.warmup_fraction, 0.0, 1.0, "0.05")
    _require_range("optim.min_lr_ratio", optim.min_lr_ratio, 0.0, 1.0, "0.1", closed=True)
    _validate_schedule(optim)
    if optim.weight_decay < 0:
        fail("optim.weight_decay", optim.weight_decay, "must be >= 0", "use 0 for no weight decay")
    if optim.grad_clip < 0:
        fail("optim.grad_clip", optim.grad_clip, "must be >= 0", "use 0 to turn clipping off")
    _validate_schedule(optim)


def _validate_trainer(trainer: TrainerConfig) -> None:
    require_positive(trainer, "trainer", ["val_every", "log_every", "checkpoint_every", "num_nodes", "threads"])
    if trainer.num_workers < 0:
        fail("trainer.num_workers", trainer.num_workers, "must be >= 0", "use 0 to load data in the training process")
    precisions = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")
    if str(trainer.precision) not in precisions:
        fail("trainer.precision", trainer.precision, "is not a precision", "use 32-true or bf16-mixed")
    devices = trainer.devices
    if not (devices == "auto" or (isinstance(devices, int) and devices > 0)):
        fail("trainer.devices", devices, "must be a positive int or auto", "use for example trainer.devices=2")
    if trainer.accelerator not in ACCELERATORS:
        fail("trainer.accelerator", trainer.accelerator, "is not an accelerator", f"use one of {', '.join(ACCELERATORS)}")


def _validate_schedule(optim: OptimConfig) -> None:
    if optim.schedule not in OptimConfig.SCHEDULES:
        fail("optim.schedule", optim.schedule, "is not a schedule", f"use one of {', '.join(OptimConfig.SCHEDULES)}")
    if not 0.0 < optim.decay_fraction <= 1.0:
        fail("optim.decay_fraction", optim.decay_fraction, "must be in (0, 1]", "use for example 0.2")
    if optim.decay_shape not in OptimConfig.DECAY_SHAPES:
        fail("optim.decay_shape", optim.decay_shape, "is not a decay shape", "use linear or sqrt")
    if optim.schedule == "wsd" and optim.warmup_steps is None and optim.warmup_fraction + optim.decay_fraction > 1:
        fail("optim.warmup_fraction", optim.warmup_fraction, f"is longer than wsd's stable phase (the decay "
             f"takes the last optim.decay_fraction={optim.decay_fraction})", "lower one of the two")


def _validate_sweep(sweep: SweepConfig) -> None:
    """The ladder's knobs (checked in every mode: they are plain numbers with one meaning)."""
    require_positive(sweep, "sweep", ["tokens_per_param_prior", "span", "sizes_per_budget", "min_steps",
                                      "batch_min", "width_step", "max_width", "seed_repeats"])
    for key, rule in sweep.rules.items():
        if isinstance(rule, (dict, list)):  # +sweep.rules.model.depth=... nests instead of naming one dotted key
            fail(f"sweep.rules.{key}", rule, "is not a rule (an expression or a number)",
                 "name the key whole, e.g. ++sweep.rules={model.depth:'max(1, round(width / 32))'}")
    if sweep.holdout_sizes < 0:
        fail("sweep.holdout_sizes", sweep.holdout_sizes, "must be >= 0", "use 0 for all sizes, or e.g. 3")
    if sweep.batch_max < sweep.batch_min:
        fail("sweep.batch_max", sweep.batch_max, f"is below sweep.batch_min={sweep.batch_min}",
             "raise sweep.batch_max or lower sweep.batch_min")
    if sweep.budget_range and (len(sweep.budget_range) != 2 or not 0 < sweep.budget_range[0] < sweep.budget_range[1]):
        fail("sweep.budget_range", list(sweep.budget_range), "is not [low, high] with 0 < low < high",
             "give two budgets in FLOPs, e.g. sweep.budget_range=[1e11,1e13]")
    if sweep.budget_range and sweep.budget_count < 2:
        fail("sweep.budget_count", sweep.budget_count, "must be >= 2 with sweep.budget_range",
             "set sweep.budget_count, e.g. 5")
    holdout = sweep.holdout_budgets
    if isinstance(holdout, bool) or not (isinstance(holdout, int) and holdout >= 0 or isinstance(holdout, (list, tuple))):
        fail("sweep.holdout_budgets", holdout, "is not a count >= 0 or a list of budgets",
             "use 1 (the top budget) or a list, e.g. [1e13]")


def _validate_budget(cfg: Config) -> None:
    budget = cfg.budget
    given = [k for k in ("tokens", "samples", "flops") if getattr(budget, k) is not None]
    require_positive(budget, "budget", given)
    if len(given) > 1:
        raise ConfigError(f"budget.{given[0]} and budget.{given[1]} are both set; give only one budget")
    unit = source(cfg.data.kind).unit
    other = "samples" if unit == "tokens" else "tokens"
    if getattr(budget, other) is not None:
        fail(f"budget.{other}", getattr(budget, other), f"does not apply to {cfg.data.kind} data",
             f"use budget.{unit} or budget.flops")


def _validate_run(cfg: Config) -> None:
    """run.root must be (or become) a folder; launcher.parallel must be positive."""
    root = Path(cfg.run.root).expanduser()
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == root else f"is inside a file ({existing})"
        fail("run.root", cfg.run.root, where, "give a folder (made when missing), e.g. run.root=runs")
    if cfg.launcher is not None and hasattr(cfg.launcher, "parallel"):
        require_positive(cfg.launcher, "launcher", ["parallel"])


def trains_here(cfg: Config) -> bool:
    """Whether the config's runs train on this machine (no launcher, local, or an embedded Ray)."""
    launcher = cfg.launcher
    return launcher is None or launcher.name == "local" or (launcher.name == "ray" and not launcher.address)


def check_machine(cfg: Config) -> None:
    """Refuse an accelerator (or more GPUs) than this machine has, when the runs train here.
    Not part of `validate`: a sweep may be planned on a laptop for a GPU cluster."""
    trainer = cfg.trainer
    if not trainer_wants_gpu(trainer) or not trains_here(cfg):
        return
    import torch

    have = torch.cuda.device_count()
    if have == 0:
        fail("trainer.accelerator", trainer.accelerator, "needs a CUDA GPU and this machine has none",
             "use trainer=cpu, or run it where there is a GPU (launcher=slurm or launcher=ray)")
    if isinstance(trainer.devices, int) and trainer.devices > have:
        fail("trainer.devices", trainer.devices, f"is more GPUs than this machine's {have}",
             f"use trainer.devices={have} or fewer")


def trainer_wants_gpu(trainer: TrainerConfig) -> bool:
    """Whether the trainer asks for a CUDA GPU by name (auto takes what there is)."""
    return trainer.accelerator in ("gpu", "cuda")


# ------------------------------------------------------------------- error wording


def _explain_hydra_error(exc: BaseException, overrides: list[str] | tuple[str, ...]) -> str:
    """Turn Hydra/OmegaConf's multi-line errors into one line with the key and a fix."""
    text = str(exc)
    causes, cause = [], exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 5:
        causes.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    full = "\n".join([text, *causes])
    key_match = re.search(r"full_key:\s*(\S+)", full)
    missing = re.search(r"Key '([^']+)' (?:is )?not in (?:struct|'?\w+'?)", full)
    if "Could not override" in full or missing:
        key = _override_key(full, key_match)
        inner = key_match.group(1) if key_match else ""
        if inner.startswith(key + "."):  # key={...} merges into a dict that lacks one of the keys given
            return (f"{key}={{...}} adds '{inner[len(key) + 1:]}', which {key} does not have; write "
                    f"++{key}={{...}} to add keys (list every entry you want)")
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
    close = difflib.get_close_matches(leaf, _section_fields().get(head, []), n=1)
    return f" (did you mean '{head + '.' if head else ''}{close[0]}'?)" if close else ""


def _section_fields() -> dict[str, list[str]]:
    """Each config section and its keys; model and data take every family's and source's."""
    fields: dict[str, list[str]] = {"": list(Config.__dataclass_fields__)}
    for group, _, schema in [*schemas(), ("budget", "", BudgetConfig), ("run", "", RunConfig)]:
        fields.setdefault(group, []).extend(f for f in schema.__dataclass_fields__ if f not in fields[group])
    return fields
