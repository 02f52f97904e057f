"""`scaling sweep [overrides]`: run a sweep's plan (skips completed runs, resumes the rest)."""

from __future__ import annotations

from scaling.commands.base import Command, writable_folder
from scaling.commands.errors import UsageError, guarded
from scaling.commands.hydra_front import HydraArgs, hydra_front, print_config

@guarded
def run(args: HydraArgs) -> int:
    """Plan the sweep and hand the plan to its launcher; 1 when a run did not complete."""
    if args.cfg:
        return print_config(args)
    from scaling.plan import plan_sweep

    plan = plan_sweep(args.overrides)
    if not plan.runs:
        raise UsageError("the sweep plans no runs; check sweep.* (scaling plan shows what was skipped and why)")
    writable_folder(plan.cfg.run.root, "run.root")
    plan.check_machine()
    from scaling.launch import launch_plan

    return launch_plan(plan)


COMMAND = Command(name="sweep", synopsis="[overrides]",
                  help="run a sweep's plan (skips completed runs, resumes the rest)",
                  parse=hydra_front("sweep"), run=run)
