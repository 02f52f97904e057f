"""launcher=ray with launcher.tune_lr=[...]: a small learning-rate search for every planned run.

Each planned run (one rung of the ladder: a model size at a data size) becomes a group of runs
that differ only in optim.lr (each its own run folder and run_id, since the learning rate changes
the result). A group is one Tune experiment with ASHA on the validation loss, so a poor learning
rate stops early (status `stopped`) and compute goes to the promising ones; groups run one after
another, each using the whole cluster. The best completed run of each group is marked in its
record (`lr_search_best`), with every run of the group naming it (`lr_search_group`), so the run
table can keep one tuned run per size: `table[table.lr_search_best == True]`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import IO, Any

from scaling.config import RayLauncherConfig
from scaling.launch.common import Progress, prepare
from scaling.launch.ray_trial import stopped_error
from scaling.launch.ray_session import check_fits, concurrency, ray_session, trials_that_fit
from scaling.plan import Plan, RunSpec, run_id
from scaling.store import DONE, RunFolder, Status



def with_lr(spec: RunSpec, lr: float) -> RunSpec:
    """The same run at another learning rate (a run of its own: lr is part of its identity)."""
    cfg = copy.deepcopy(spec.cfg)
    cfg.optim.lr = float(lr)
    return dataclasses.replace(spec, cfg=cfg, run_id=run_id(cfg, spec.D), overrides=[*spec.overrides, f"optim.lr={lr}"])


def lr_groups(plan: Plan, lrs: list[float]) -> list[tuple[RunSpec, list[RunSpec]]]:
    """(planned run, its runs at each learning rate) for every planned run."""
    return [(spec, [with_lr(spec, lr) for lr in lrs]) for spec in plan.runs]


def asha(spec: RunSpec, launcher: RayLauncherConfig) -> Any:
    """ASHA over optimizer steps: milestones from tune_grace_steps (or the validation interval) up
    to the run's end; the runs it stops are noted in their job.json."""
    from ray.tune.schedulers import ASHAScheduler

    class NotingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == self.STOP and result.get("status") == "running":
                RunFolder(trial.config["folder"]).write_job(stopped_by_search_at=result.get("step"))
            return action

    grace = min(spec.steps, launcher.tune_grace_steps or spec.cfg.trainer.val_every)
    return NotingASHA(time_attr="step", max_t=spec.steps, grace_period=max(1, grace),
                      reduction_factor=launcher.tune_reduction_factor)


def record_stopped(runs: list[RunSpec], wait_s: float = 10.0) -> None:
    """Runs ASHA stopped get status `stopped` (final: a later sweep does not train them again).

    The trial records that itself as it ends; this covers a trial process that was gone first.
    """
    deadline = time.monotonic() + wait_s
    for run in runs:
        folder = RunFolder(run.path)
        if folder.read_job().get("stopped_by_search_at") is None:
            continue
        while folder.status in (Status.RUNNING, Status.INTERRUPTED) and time.monotonic() < deadline:
            time.sleep(0.2)  # the trial may still be writing its record
        folder.end_unfinished(Status.STOPPED, stopped_error)


def run_lr_search(plan: Plan, out: IO) -> int:
    """Search the learning rate for every planned run; the exit code (0: every group has a best run)."""
    from scaling.launch.ray import storage_path, tuner

    launcher: RayLauncherConfig = plan.launcher
    groups = lr_groups(plan, launcher.tune_lr)
    variants = [run for _, runs in groups for run in runs]
    pending = [(base, [r for r in runs if RunFolder(r.path).status not in DONE]) for base, runs in groups]
    pending = [(base, todo) for base, todo in pending if todo]
    left = [run for _, todo in pending for run in todo]
    print(f"sweep {plan.name}: learning-rate search over {list(launcher.tune_lr)} for {len(groups)} runs "
          f"({len(variants)} trials, {len(left)} to run, ASHA on the validation loss)", file=out, flush=True)
    if pending:
        storage = storage_path(plan, launcher)
        with ray_session(launcher, storage / "ray.log") as resources:
            check_fits(launcher, resources)
            parallel = concurrency(launcher, resources)
            progress = Progress(plan.name, len(variants), completed=len(variants) - len(left),
                                parallel=parallel or trials_that_fit(launcher, resources),
                                flops_left=sum(run.C for run in left), runs_left=len(left))
            for base, todo in pending:  # one ASHA experiment per planned run, one after another
                folders = [prepare(run).path for run in todo]
                name = f"{plan.name}-lr-{base.run_id}-{time.strftime('%Y%m%d-%H%M%S')}"
                tuner(todo, folders, launcher, storage, parallel, progress, out, name=name,
                      scheduler=asha(base, launcher)).fit()
                record_stopped(todo)
    return report_best(groups, out)


def best_of(runs: list[RunSpec]) -> RunSpec | None:
    """The completed run with the lowest final validation loss (None when none completed)."""
    scored = [(RunFolder(r.path).read_record(), r) for r in runs]
    scored = [(rec["loss"], r) for rec, r in scored
              if rec.get("status") == "completed" and isinstance(rec.get("loss"), (int, float))
              and math.isfinite(rec["loss"])]
    return min(scored, key=lambda item: item[0])[1] if scored else None


def report_best(groups: list[tuple[RunSpec, list[RunSpec]]], out: IO) -> int:
    """Mark each group's best run in the records and print one line per group."""
    code = 0
    for base, runs in groups:
        best = best_of(runs)
        for run in runs:
            folder = RunFolder(run.path)
            if folder.exists():
                folder.update_record(lr_search_group=base.run_id, lr_search_best=best is not None and run is best)
        cells = []
        for run in runs:
            record = RunFolder(run.path).read_record()
            loss = record.get("loss")
            done = record.get("status") == "completed"
            shown = f"{loss:.4f}" if done else f"{record.get('status')} at step {record.get('step')}"
            cells.append(f"{run.cfg.optim.lr:g}: {shown}")
        if best is None or any(RunFolder(r.path).status not in DONE for r in runs):
            code = 1
        verdict = f"best lr {best.cfg.optim.lr:g} ({best.run_id})" if best else "no learning rate completed"
        print(f"  w{base.cfg.model.width} d{base.cfg.model.depth} D={base.D:,}: {verdict}; {', '.join(cells)}",
              file=out, flush=True)
    return code
