"""Launchers: run a plan's runs somewhere (local, ray, slurm) into the same run folders.

A launcher is one module that declares `launch(plan) -> int` (0 when every run completed):
plan in, records out. Its settings come from `plan.launcher` (config group `launcher`);
every run it starts ends in `scaling.launch.worker`, which trains a prepared run folder.
Adding a launcher is one module plus its entry here and its config schema and YAML.
"""

from __future__ import annotations

import importlib
from typing import Any

LAUNCHERS = {"local": "scaling.launch.local", "ray": "scaling.launch.ray", "slurm": "scaling.launch.slurm"}


def launch_plan(plan: Any) -> int:
    """Hand the plan to the launcher its config names; the sweep's exit code."""
    from scaling.config import ConfigError

    name = plan.launcher.name
    if name not in LAUNCHERS:
        raise ConfigError(f"launcher={name} is not a launcher; use one of {', '.join(LAUNCHERS)}")
    return importlib.import_module(LAUNCHERS[name]).launch(plan)
