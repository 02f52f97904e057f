"""`scaling sweep [overrides]`: run a sweep's plan (skips completed runs, resumes the rest)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaling.commands.base import Command, writable_folder
from scaling.commands.errors import UsageError, guarded
from scaling.commands.hydra_front import HydraArgs, hydra_front, print_config

if TYPE_CHECKING:  # scaling.plan imports Hydra: only where it is used, to keep `scaling --help` fast
    from scaling.plan import Plan


@guarded
def run(args: HydraArgs) -> int:
    """Plan the sweep and hand the plan to its launcher; 1 when a run did not complete."""
    if args.cfg:
        return print_config(args)
    from scaling.plan import plan_sweep

    plan = plan_sweep(args.overrides)
    if not plan.runs:
        raise UsageError("the sweep plans no runs; check sweep.* (scaling plan shows what was skipped and why)")
    writable_folder(plan.runs[0].cfg.run.root, "run.root")
    return launch_plan(plan)


# TODO(lead): replace by scaling.launch.launch_plan
def launch_plan(plan: Plan) -> int:
    """Hand the plan to the launcher its config names."""
    launcher = plan.runs[0].cfg.launcher
    if launcher.name == "local":
        from scaling.launch.local import run_local

        return run_local(plan, parallel=launcher.parallel)
    if launcher.name == "ray":
        from scaling.launch.ray import run_ray

        return run_ray(plan)
    if launcher.name == "slurm":
        from scaling.launch.slurm import run_slurm

        return run_slurm(plan)
    raise UsageError(f"launcher={launcher.name} is not a launcher; use local, ray or slurm")


COMMAND = Command(name="sweep", synopsis="[overrides]",
                  help="run a sweep's plan (skips completed runs, resumes the rest)",
                  parse=hydra_front("sweep"), run=run)
