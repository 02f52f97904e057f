"""From configs to RunSpecs: budget resolution, accounting of N, D and C, and run identity.

Planning spends nothing and writes nothing: it reads what the data is (`scaling.data.data_info`:
metadata and file sizes) and counts N and FLOPs on meta-device models.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scaling.config import Config, ConfigError, check_machine, to_dict
from scaling.train.schedule import unused_options

# Fields that do not change a run's result: where it runs, how it is logged, where it is kept.
_NOT_IDENTITY = {
    "launcher": None,
    "logger": None,
    "run": None,
    "sweep": None,
    "trainer": {"accelerator", "devices", "num_nodes", "strategy", "num_workers", "threads",
                "progress", "log_every", "val_every", "checkpoint_every", "compile", "probe",
                "fail_at_step", "fail_attempts", "trace_batches",
                "keep_steps", "branch_of", "branch_step"},
    "optim": {"grad_accum"},
    "data": {"cache_dir", "root", "download", "default_budget"},
    "budget": None,  # replaced by the resolved data size
}


@dataclass
class RunSpec:
    """A fully resolved run: its config, identity and planned size (N, D, C)."""

    cfg: Config
    run_id: str
    N: int
    N_nonembed: int
    D: int  # units seen in training (tokens or samples)
    D_unique: int  # size of the subset those units were drawn from
    C: float  # training FLOPs
    flops_per_unit: float
    unit: str  # "tokens" | "samples"
    steps: int  # optimizer steps
    units_per_step: int
    overrides: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The run folder: <run.root>/<sweep.name>/<run_id>."""
        return Path(self.cfg.run.root) / self.cfg.sweep.name / self.run_id

    @classmethod
    def from_record(cls, cfg: Config, run_id: str, record: dict[str, Any]) -> "RunSpec":
        """The RunSpec a run folder was planned as (config.yaml + its record), without planning again."""
        steps = int(record["steps"])
        return cls(cfg=cfg, run_id=run_id, N=int(record["N"]), N_nonembed=int(record["N_nonembed"]),
                   D=int(record["D"]), D_unique=int(record["D_unique"]), C=float(record["C"]),
                   flops_per_unit=float(record["flops_per_unit"]), unit=record["unit"], steps=steps,
                   units_per_step=int(record.get("units_per_step") or int(record["D"]) // steps))

    def summary(self) -> dict[str, Any]:
        """Plain fields for tables and JSON (no config objects)."""
        return {
            "run_id": self.run_id, "sweep": self.cfg.sweep.name, "family": self.cfg.model.family,
            "width": self.cfg.model.width, "depth": self.cfg.model.depth, "seed": self.cfg.seed,
            "N": self.N, "N_nonembed": self.N_nonembed, "D": self.D, "D_unique": self.D_unique,
            "C": self.C, "unit": self.unit, "steps": self.steps,
            "tokens_per_param": self.D / self.N if self.N else math.nan, **self.branch_fields(),
        }

    def branch_fields(self) -> dict[str, Any]:
        """A cooldown branch's parent trunk, branch step and own cost; a trunk's branch steps."""
        trainer = self.cfg.trainer
        if trainer.branch_of:
            own = self.C * (1 - trainer.branch_step / self.steps)  # the trunk paid for the rest
            return {"parent": trainer.branch_of, "branch_step": trainer.branch_step, "cost": own}
        if trainer.keep_steps:
            return {"trunk": True, "branch_steps": list(trainer.keep_steps), "cost": self.C}
        return {}


def run_id(cfg: Config, data_units: int) -> str:
    """A short stable hash of the resolved config minus fields that do not change the result."""
    ident = identity(cfg, data_units)
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def identity(cfg: Config, data_units: int) -> dict[str, Any]:
    """The config fields that define a run's result, with the budget as its resolved D."""
    full = to_dict(cfg)
    for section, keys in _NOT_IDENTITY.items():
        if keys is None:
            full.pop(section, None)
        else:
            for key in keys:
                full.get(section, {}).pop(key, None)
    _drop_later_defaults(full, cfg)
    for key in unused_options(cfg.optim):  # options of another schedule do not change this run
        full.get("optim", {}).pop(key, None)
    full["D"] = int(data_units)
    return full


def _drop_later_defaults(full: dict[str, Any], cfg: Config) -> None:
    """Leave out the fields a section added after run ids were pinned (its LATER_FIELDS) while at their default."""
    for section, values in full.items():
        obj = getattr(cfg, section, None)
        if not (dataclasses.is_dataclass(obj) and isinstance(values, dict)):
            continue
        defaults = {f.name: f.default for f in dataclasses.fields(obj)}
        for key in getattr(obj, "LATER_FIELDS", ()):
            if key in values and values[key] == defaults.get(key):
                del values[key]


def requested_units(cfg: Config, flops_per_unit: float) -> float:
    """The data size the budget asks for, in the data's own unit, before batch rounding."""
    budget = cfg.budget
    if budget.flops is not None:
        return budget.flops / flops_per_unit
    for value in (budget.tokens, budget.samples):
        if value is not None:
            return float(value)
    return float(cfg.data.default_budget)


def resolve(cfg: Config, info: Any, model: Any, overrides: list[str] | None = None) -> RunSpec:
    """Resolve a validated config against its data and (meta-device) model into a RunSpec."""
    cfg = copy.deepcopy(cfg)
    flops_per_unit = float(model.flops_per_unit())
    units_per_step = cfg.optim.batch_size * info.units_per_sample
    wanted = requested_units(cfg, flops_per_unit)
    if wanted < units_per_step:
        key = "budget.flops" if cfg.budget.flops is not None else f"budget.{info.unit}"
        raise ConfigError(
            f"{key} gives {wanted:,.0f} {info.unit}, less than one batch ({units_per_step:,} "
            f"{info.unit}); raise {key} or lower optim.batch_size")
    steps = max(1, round(wanted / units_per_step))
    from scaling.train.schedule import check_schedule, warmup_steps

    check_schedule(cfg.optim, steps, warmup_steps(cfg, steps))  # e.g. a wsd warmup past its decay start
    units = steps * units_per_step
    _fix_budget(cfg, info.unit, units)
    return RunSpec(
        cfg=cfg, run_id=run_id(cfg, units), N=int(model.num_params()),
        N_nonembed=int(model.num_params(non_embedding=True)), D=units,
        D_unique=min(units, info.train_units), C=flops_per_unit * units,
        flops_per_unit=flops_per_unit, unit=info.unit, steps=steps,
        units_per_step=units_per_step, overrides=list(overrides or []))


def _fix_budget(cfg: Config, unit: str, units: int) -> None:
    """Record the resolved D in the config's budget (keeping budget.flops for the record)."""
    setattr(cfg.budget, unit, units)


def meta_model(cfg: Config, info: Any) -> Any:
    """The config's model on the meta device: N and FLOPs at any size, nothing allocated."""
    from scaling.models import build_meta

    return build_meta(cfg.model, info)


def plan_run(cfg: Config, overrides: list[str] | None = None) -> RunSpec:
    """Resolve one config to train here: its data info and a meta-device model count N and
    FLOPs; an accelerator this machine lacks is refused."""
    from scaling.data import data_info

    check_machine(cfg)
    info = data_info(cfg.data)
    return resolve(cfg, info, meta_model(cfg, info), overrides)


# --------------------------------------------------------------------------- sweeps


@dataclass
class Skipped:
    """A sweep point the planner left out, and why."""

    point: dict[str, Any]
    reason: str


@dataclass
class Plan:
    """The runs of a sweep, the points it skipped, and the config it came from."""

    name: str
    mode: str
    runs: list[RunSpec]
    skipped: list[Skipped]
    cfg: Config = field(default_factory=Config)  # the sweep's config before any point is applied

    @property
    def sweep(self) -> Any:
        """The sweep spec (sweep.*)."""
        return self.cfg.sweep

    @property
    def launcher(self) -> Any:
        """The launcher config (launcher.*) that runs this plan."""
        return self.cfg.launcher

    @property
    def folder(self) -> Path:
        """The sweep's folder: <run.root>/<sweep.name>."""
        return Path(self.cfg.run.root) / self.name

    @property
    def family(self) -> str:
        """The model family of the sweep's base config."""
        return self.cfg.model.family if self.cfg.model is not None else ""

    def check_machine(self) -> None:
        """Refuse to launch here what this machine cannot train (e.g. trainer=gpu without CUDA)."""
        check_machine(self.cfg)


_EXPR_NAMES = {name: getattr(math, name) for name in ("log", "log2", "log10", "exp", "sqrt", "ceil", "floor", "pi")}
_EXPR_NAMES.update(min=min, max=max, round=round, int=int, float=float, abs=abs)


def _model_sizes(sweep: Any) -> list[dict[str, Any]]:
    sizes = [model_point(m) for m in sweep.models]
    if not sizes:
        raise ConfigError(f"sweep.models is empty; list widths or [width, depth] pairs for mode={sweep.mode}")
    return sizes


def _grid_points(sweep: Any, unit: str, planner: Any = None) -> list[dict[str, Any]]:
    return grid_points(dict(sweep.axes), [list(g) for g in sweep.zip], [dict(e) for e in sweep.exclude])


def _data_points(sweep: Any, unit: str, planner: Any = None) -> list[dict[str, Any]]:
    sizes = _model_sizes(sweep)
    if not sweep.data_sizes:
        raise ConfigError("sweep.data_sizes is empty; list data sizes (in the data's unit) for mode=data")
    return [{**m, f"budget.{unit}": int(d)} for m in sizes for d in sweep.data_sizes]


def _isoflop_points(sweep: Any, unit: str, planner: Any = None) -> list[dict[str, Any]]:
    sizes = _model_sizes(sweep)
    if not sweep.budgets:
        raise ConfigError("sweep.budgets is empty; list compute budgets in FLOPs for mode=isoflop")
    return [{**m, "budget.flops": float(c)} for c in sweep.budgets for m in sizes]


def _ladder_points(sweep: Any, unit: str, planner: "_Planner | None" = None) -> list[dict[str, Any]]:
    from scaling.ladder import ladder_points

    if planner is None:
        raise ConfigError("sweep.mode=ladder measures models while planning; plan it with plan_sweep")
    base = planner.config({}, {})
    return ladder_points(sweep, planner.size, planner.info(base).units_per_sample, _EXPR_NAMES, base_seed=base.seed)


# sweep.mode -> its points as {dotted key: value} dicts (unit: the data's, for budget keys; the planner, for
# modes whose points depend on measured model sizes)
SWEEP_MODES: dict[str, Callable[[Any, str, Any], list[dict[str, Any]]]] = {
    "none": lambda sweep, unit, planner=None: [{}],
    "grid": _grid_points,
    "data": _data_points,
    "isoflop": _isoflop_points,
    "branches": _data_points,  # each model's data sizes, as cooldown branches of one trunk (scaling.branches)
    "ladder": _ladder_points,
}


def check_mode(sweep: Any) -> None:
    """Refuse a sweep.mode there is not, listing the modes."""
    if sweep.mode not in SWEEP_MODES:
        raise ConfigError(f"sweep.mode={sweep.mode!r} is not a sweep mode; use one of {', '.join(SWEEP_MODES)}")


def sweep_points(sweep: Any, unit: str, planner: "_Planner | None" = None) -> list[dict[str, Any]]:
    """The sweep's points as {dotted key: value} dicts, in a deterministic order."""
    check_mode(sweep)
    points = SWEEP_MODES[sweep.mode](sweep, unit, planner)
    if sweep.mode in ("none", "grid") or not sweep.axes:
        return points
    extra = grid_points(dict(sweep.axes), [list(g) for g in sweep.zip], [dict(e) for e in sweep.exclude])
    return [{**point, **values} for point in points for values in extra]  # as Hydra combines sweeps


def model_point(entry: Any) -> dict[str, Any]:
    """A `sweep.models` entry (a width, or a [width, depth] pair) as overrides."""
    if isinstance(entry, (list, tuple)):
        if len(entry) != 2:
            raise ConfigError(f"sweep.models entry {list(entry)} is not [width, depth]; give pairs or plain widths")
        return {"model.width": int(entry[0]), "model.depth": int(entry[1])}
    return {"model.width": int(entry)}


def grid_points(axes: dict[str, list[Any]], zipped: list[list[str]],
                exclude: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cartesian product of axes; axes of one zip group advance together; exclusions dropped."""
    import itertools

    groups: list[list[str]] = []
    for group in zipped:
        missing = [k for k in group if k not in axes]
        if missing:
            raise ConfigError(f"sweep.zip names {missing[0]!r}, which is not in sweep.axes; add it to sweep.axes")
        lengths = {len(axes[k]) for k in group}
        if len(lengths) > 1:
            raise ConfigError(f"sweep.zip group {group} has axes of different lengths; give them equal lengths")
        groups.append(group)
    zipped_keys = {k for g in groups for k in g}
    groups += [[k] for k in axes if k not in zipped_keys]
    choices = [[dict(zip(g, values)) for values in zip(*(axes[k] for k in g))] for g in groups]
    points = [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*choices)]
    return [p for p in points if not any(all(p.get(k) == v for k, v in e.items()) for e in exclude)]


def evaluate_rule(key: str, expression: Any, env: dict[str, Any]) -> Any:
    """Evaluate one rule's expression (numbers pass through) with the point's variables."""
    if not isinstance(expression, str):
        return expression
    try:
        return eval(expression, {"__builtins__": {}}, {**_EXPR_NAMES, **env})  # noqa: S307 (user's own config)
    except Exception as exc:
        raise ConfigError(f"sweep.rules.{key}={expression!r} failed: {exc}; use width, depth, N, N_nonembed, "
                          "D, C and math functions") from exc


class _Planner:
    """Turns one composed sweep config into RunSpecs, caching data info across points."""

    def __init__(self, base: Any):
        self.base = base  # the composed (DictConfig) sweep config
        self._infos: dict[str, Any] = {}

    def info(self, cfg: Config) -> Any:
        from scaling.data import data_info

        key = repr(cfg.data)
        if key not in self._infos:
            self._infos[key] = data_info(cfg.data)
        return self._infos[key]

    def model(self, cfg: Config) -> Any:
        return meta_model(cfg, self.info(cfg))

    def size(self, width: int) -> Any:
        """The ladder's view of a width (rules applied): its N and FLOPs per unit, from a meta-device model."""
        from scaling.ladder import Size

        cfg = self.config({"model.width": width}, dict(self.base.sweep.rules))
        model = self.model(cfg)
        return Size(width=width, N=int(model.num_params()), flops_per_unit=float(model.flops_per_unit()))

    def config(self, point: dict[str, Any], rules: dict[str, Any]) -> Config:
        """Apply a point's values and the rules to the composed config; validate the result."""
        from scaling.config import finalize, set_values, to_object, with_values

        node = with_values(self.base, point)
        for key, expression in rules.items():
            set_values(node, {key: evaluate_rule(key, expression, self.rule_env(node, expression))})
        return finalize(to_object(node))

    def expand(self, sweep: Any, unit: str, overrides: list[str]) -> tuple[list[RunSpec], list[Skipped]]:
        """The sweep's runs, and the points left out (with why), in a deterministic order."""
        if sweep.mode == "branches" or (sweep.mode == "ladder" and sweep.branches):
            from scaling.branches import expand_branches

            return expand_branches(self, sweep, unit, overrides)
        runs, skipped, seen = [], [], set()
        for point in sweep_points(sweep, unit, self):
            cfg = self.config(point, dict(sweep.rules))
            info = self.info(cfg)
            spec = resolve(cfg, info, self.model(cfg), [*overrides, *_as_overrides(point)])
            reason = skip_reason(spec, sweep, info)
            if reason:
                skipped.append(Skipped(point, reason))
            elif spec.run_id in seen:
                skipped.append(Skipped(point, f"same run as {spec.run_id} (identical resolved config)"))
            else:
                seen.add(spec.run_id)
                runs.append(spec)
        if sweep.mode == "ladder" and not runs and skipped:
            raise ConfigError(f"no ladder run is kept: {skipped[0].reason}; lower sweep.min_steps or "
                              "sweep.batch_min, or raise the budgets")
        return runs, skipped

    def rule_env(self, node: Any, expression: Any) -> dict[str, Any]:
        """Variables a rule may use; N and C need a (meta-device) model, so only when asked."""
        from scaling.config import get_values, to_object

        values = get_values(node, ["model.width", "model.depth", "seed"])
        env = {key.rpartition(".")[2]: value for key, value in values.items()}
        if isinstance(expression, str) and re.search(r"\b(N|N_nonembed|D|C)\b", expression):
            cfg = to_object(node)
            spec = resolve(cfg, self.info(cfg), self.model(cfg))
            env.update(N=spec.N, N_nonembed=spec.N_nonembed, D=spec.D, C=spec.C)
        return env


def plan_sweep(overrides: list[str] | tuple[str, ...] = ()) -> Plan:
    """Compose the sweep config and expand it into RunSpecs (deterministic, trains nothing)."""
    from scaling.config import compose_config, refuse_non_finite, to_object
    from scaling.data import source

    base = compose_config(overrides)
    cfg = to_object(base)
    check_mode(cfg.sweep)
    refuse_non_finite(cfg.sweep, "sweep")
    if cfg.sweep.rules_from:
        cfg = to_object(_with_measured_rules(base, cfg))
    runs, skipped = _Planner(base).expand(cfg.sweep, source(cfg.data.kind).unit, list(overrides))
    return Plan(cfg.sweep.name, cfg.sweep.mode, runs, skipped, cfg)


def _with_measured_rules(base: Any, cfg: Config) -> Any:
    """The composed config with sweep.rules_from's rules (for its parametrization) before sweep.rules."""
    from omegaconf import open_dict

    from scaling.analysis.lr_transfer import read_rules

    parametrization = getattr(cfg.model, "parametrization", "sp")
    try:
        measured = read_rules(cfg.sweep.rules_from, parametrization)
    except ValueError as error:
        raise ConfigError(f"sweep.rules_from: {error}") from None
    with open_dict(base):
        base.sweep.rules = {**measured, **dict(cfg.sweep.rules)}
    return base


def _as_overrides(point: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in point.items()]


def skip_reason(spec: RunSpec, sweep: Any, info: Any) -> str | None:
    """Why an IsoFLOP or ladder point is left out (None to keep it)."""
    if sweep.mode not in ("isoflop", "ladder"):
        return None
    budget = spec.cfg.budget.flops
    gap = abs(spec.C / budget - 1.0)
    if gap > sweep.budget_tolerance:
        return f"C={spec.C:.3g} is {gap:.0%} off its budget {budget:.3g} after rounding to whole batches"
    if sweep.mode == "ladder":
        from scaling.ladder import steps_reason

        reason = steps_reason(spec.steps, sweep)
        if reason:
            return reason
    ratio = spec.D / spec.N
    if len(sweep.tokens_per_param) == 2:
        low, high = sweep.tokens_per_param
        if not low <= ratio <= high:
            return f"{spec.unit} per parameter {ratio:.3g} outside [{low:g}, {high:g}]"
    if spec.D > info.train_units and not sweep.allow_repeat:
        return f"D={spec.D:,} exceeds the {info.train_units:,} unique {spec.unit} available"
    return None
