"""`scaling <command>`: train, plan, sweep, status, fit, report, probe, pull."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from scaling.config import ConfigError

USAGE = """usage: scaling <command> [options]

commands:
  train   [overrides]            train one run (Hydra overrides, e.g. model.width=128)
  plan    [overrides]            show the runs a sweep would make, with N, D, C and time
  sweep   [overrides]            run a sweep's plan (skips completed runs, resumes the rest)
  status  SWEEP_DIR              runs by status, with their loss
  fit     SOURCE                 fit a scaling law to a sweep folder or a CSV/Parquet table
  report  SOURCE -o DIR          figures and an HTML report
  probe   RUN_DIR|SWEEP_DIR      embedding-space metrics and pictures of trained runs
  pull    wandb:ENTITY/PROJECT   rebuild the run table from Weights & Biases

`scaling <command> --help` for a command's options."""


def _error(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------- hydra-style


def config_help(command: str) -> str:
    """Hydra-style help: the config groups and their options."""
    from scaling.config import available_options

    lines = [f"usage: scaling {command} [--cfg job] [key=value ...] [group=option ...]", "",
             "Config groups (choose one option with group=option):"]
    for group, names in available_options().items():
        shown = [n for n in names if not n.endswith("_schema")]
        lines.append(f"  {group:<10} {', '.join(shown) if shown else '(none)'}")
    lines += ["", "Override any key with key=value (e.g. model.width=128 budget.tokens=1000000).",
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


def hydra_front(command: str, argv: Sequence[str], allowed: tuple[str, ...] = (),
                help_extra: str = "") -> tuple[list[str], list[str], Optional[int]]:
    """The shared front of train, plan and sweep: (overrides, flags, exit code if handled here).

    --help and --cfg job are answered here (Hydra's conventions); unknown flags are refused.
    """
    from scaling.config import compose_config, to_yaml

    overrides, cfg_kind, want_help, flags = split_hydra_args(argv)
    if want_help:
        print(config_help(command) + help_extra)
        return overrides, flags, 0
    unknown = [f for f in flags if f not in allowed]
    if unknown:
        takes = f"{', '.join(allowed)} and " if allowed else ""
        return overrides, flags, _error(f"unknown option {unknown[0]}; scaling {command} takes {takes}key=value "
                                        f"overrides (see scaling {command} --help)")
    if cfg_kind:
        print(to_yaml(compose_config(overrides)), end="")
        return overrides, flags, 0
    return overrides, flags, None


# ---------------------------------------------------------------------------- train


def cmd_train(argv: Sequence[str]) -> int:
    """Train one run from Hydra overrides."""
    from scaling.config import load_config

    overrides, _, code = hydra_front("train", argv)
    if code is not None:
        return code
    cfg = load_config(overrides)
    from scaling.plan import plan_run
    from scaling.train import train

    spec = plan_run(cfg, overrides)
    record = train(spec, loggers_factory=_loggers_factory(cfg))
    if cfg.trainer.probe and record.get("status") == "completed":
        from scaling.probes import probe_finished

        probe_finished(spec.path)
    return 0 if record.get("status") in ("completed", None) else 1


def _loggers_factory(cfg) -> Optional[Callable]:
    """The experiment-tracking loggers for a config (None for local only)."""
    if cfg.logger.name == "local":
        return None
    from scaling.tracking import make_loggers

    return make_loggers


# ---------------------------------------------------------------------- plan, sweep


def cmd_plan(argv: Sequence[str]) -> int:
    """Show the runs a sweep would make; trains nothing."""
    import json

    from scaling.plan import plan_sweep
    from scaling.planview import flop_rate, format_plan, plan_json

    overrides, flags, code = hydra_front("plan", argv, ("--json",), "\n--json prints the plan as JSON.")
    if code is not None:
        return code
    plan = plan_sweep(overrides)
    rate, source = flop_rate(plan, plan.runs[0].cfg.sweep.flops_per_second if plan.runs else None)
    if "--json" in flags:
        print(json.dumps(plan_json(plan, rate, source), indent=2))
    else:
        print(format_plan(plan, rate, source))
    return 0


def cmd_sweep(argv: Sequence[str]) -> int:
    """Run a sweep's plan with the configured launcher."""
    from scaling.plan import plan_sweep

    overrides, _, code = hydra_front("sweep", argv)
    if code is not None:
        return code
    plan = plan_sweep(overrides)
    if not plan.runs:
        return _error("the sweep plans no runs; check sweep.* (scaling plan shows what was skipped and why)")
    return launch(plan)


def launch(plan) -> int:
    """Hand the plan to the launcher its config names."""
    from scaling.launch import launch_plan

    return launch_plan(plan)


# --------------------------------------------------------------------------- status


def cmd_status(argv: Sequence[str]) -> int:
    """Runs of a sweep folder by status, with their loss."""
    parser = argparse.ArgumentParser(prog="scaling status", description="runs by status, with their loss")
    parser.add_argument("sweep_dir")
    args = parser.parse_args(argv)
    from scaling.status import print_status

    return print_status(args.sweep_dir)


def _subcommand(prog: str, description: str, module: str, configure: str, run: str) -> Callable[[Sequence[str]], int]:
    """A subcommand whose argparse options and body live in `module` (imported on use)."""

    def command(argv: Sequence[str]) -> int:
        import importlib

        target = importlib.import_module(module)
        parser = argparse.ArgumentParser(prog=f"scaling {prog}", description=description)
        getattr(target, configure)(parser)
        return getattr(target, run)(parser.parse_args(argv))

    command.__doc__ = description
    return command


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": cmd_train,
    "plan": cmd_plan,
    "sweep": cmd_sweep,
    "status": cmd_status,
    "fit": _subcommand("fit", "fit a scaling law to a sweep folder or a CSV/Parquet run table",
                       "scaling.analysis.command", "configure_fit_parser", "run_fit"),
    "report": _subcommand("report", "figures and a self-contained HTML report of a sweep or table",
                          "scaling.report_command", "configure_report_parser", "run_report"),
    "probe": _subcommand("probe", "embedding-space metrics and pictures of trained runs",
                         "scaling.probes.command", "configure_probe_parser", "run_probe"),
    "pull": _subcommand("pull", "rebuild the run table from Weights & Biases",
                        "scaling.pull_command", "configure_pull_parser", "run_pull"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `scaling` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return _error(f"unknown command '{command}'; run `scaling --help` for the commands")
    try:
        return COMMANDS[command](rest)
    except ConfigError as exc:
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `scaling fit ... --json | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
