"""The Hydra-style front shared by train, plan and sweep: key=value overrides, --cfg job, --help."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from scaling.commands.errors import UsageError


MULTIRUN = ("-m", "--multirun")


@dataclass
class HydraArgs:
    """What a Hydra-style command line says: overrides, flags, and the --cfg kind when asked."""

    overrides: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    cfg: Optional[str] = None


def config_help(command: str) -> str:
    """Hydra-style help: the config groups and their options."""
    from scaling.config import available_options

    lines = [f"usage: scaling {command} [--cfg job] [key=value ...] [group=option ...]", "",
             "Config groups (choose one option with group=option):"]
    for group, names in available_options().items():
        shown = [n for n in names if not n.endswith("_schema")]
        lines.append(f"  {group:<10} {', '.join(shown) if shown else '(none)'}")
    lines += ["", "Override any key with key=value (e.g. model.width=128 budget.tokens=1000000);",
              "plan and sweep take Hydra's sweep grammar: model.width=16,32,64 optim.lr=choice(1e-3,3e-3) seed=range(3).",
              "--cfg job prints the composed config; -h/--help prints this."]
    return "\n".join(lines)


def split_hydra_args(argv: Sequence[str]) -> tuple[list[str], Optional[str], bool, list[str]]:
    """(overrides, --cfg value, --help given, other flags) from a Hydra-style argument list."""
    overrides, flags, cfg_kind, want_help = [], [], None, False
    items = list(argv)
    while items:
        arg = items.pop(0)
        if arg in ("-h", "--help"):
            want_help = True
        elif arg in ("--cfg", "-c"):
            cfg_kind = items.pop(0) if items else "job"
        elif arg.startswith("--cfg="):
            cfg_kind = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            overrides.append(arg)
    return overrides, cfg_kind, want_help, flags


def hydra_front(command: str, allowed: tuple[str, ...] = (), help_extra: str = "") -> Callable[[Sequence[str]], HydraArgs]:
    """The parse function of a Hydra-style command: --help answered here, unknown flags refused."""

    def parse(argv: Sequence[str]) -> HydraArgs:
        overrides, cfg_kind, want_help, flags = split_hydra_args(argv)
        if want_help:
            print(config_help(command) + help_extra)
            raise SystemExit(0)
        if any(f in MULTIRUN for f in flags):  # @hydra.main users' habit: plan and sweep take sweeps anyway
            if command == "train":
                raise UsageError("scaling train trains one config; use scaling sweep for -m/--multirun")
            flags = [f for f in flags if f not in MULTIRUN]
        unknown = [f for f in flags if f not in allowed]
        if unknown:
            takes = f"{', '.join(allowed)} and " if allowed else ""
            raise UsageError(f"unknown option {unknown[0]}; scaling {command} takes {takes}key=value overrides "
                             f"(see scaling {command} --help)")
        return HydraArgs(overrides, flags, cfg_kind)

    return parse


def print_config(args: HydraArgs) -> int:
    """`--cfg job`: print the composed config (nothing is planned or run)."""
    from scaling.config import compose_config, to_yaml

    print(to_yaml(compose_config(args.overrides)), end="")
    return 0

