"""launcher=ray: every not-yet-completed run of a plan is a Ray Tune trial.

A trial trains its prepared run folder exactly as the other launchers' workers do, so run folders,
records and the run table do not depend on the launcher. Resources per trial come from
`launcher.cpus_per_trial` and `launcher.gpus_per_trial` (fractions share a GPU); with
`launcher.workers_per_trial` > 1 a trial is a Ray Train TorchTrainer running Lightning under
Ray's DDP strategy. A crashed trial is retried `launcher.max_failures` times and resumes from its
run's checkpoint; running the same sweep again trains only what did not complete. A cooldown branch
(sweep.mode=branches) becomes a trial once its trunk has kept the checkpoint it starts from (ray_order).
Ray's own output goes to <run.root>/<sweep>/.ray/ray.log; the console shows the sweep's progress.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Optional

from scaling.config import RayLauncherConfig
from scaling.launch.common import Progress, prepare, split_pending, summarise
from scaling.launch.ray_session import (check_fits, check_launcher, check_trainer, concurrency, embedded_resources,
                                       ray_session, trials_that_fit)
from scaling.plan import Plan, RunSpec
from scaling.store import RunFolder, Status


DRIVER_MEMORY = 256 * 2**20  # bytes: what a Ray Train driver trial reserves instead of a CPU


def launch(plan: Plan, out: Optional[IO] = None) -> int:
    """Run every not-yet-completed run of the plan as a Ray Tune trial; the exit code (0: all completed)."""
    out = out or sys.stdout
    launcher: RayLauncherConfig = plan.launcher
    check_launcher(launcher)
    for spec in plan.runs:
        check_trainer(spec, launcher)
    if launcher.tune_lr:
        from scaling.launch.ray_lr import run_lr_search

        return run_lr_search(plan, out)
    import ray

    if launcher.address is None and not ray.is_initialized():
        check_fits(launcher, embedded_resources())
    done, todo = split_pending(plan)
    if not todo:
        print(f"sweep {plan.name}: nothing to train, all {len(done)} runs are already completed", file=out)
        return 0
    storage = storage_path(plan, launcher)
    with ray_session(launcher, storage / "ray.log") as resources:
        check_fits(launcher, resources)
        folders = [prepare(spec).path for spec in todo]
        parallel = concurrency(launcher, resources)
        print(f"sweep {plan.name}: {len(plan.runs)} runs, {len(done)} already completed, {len(todo)} to run "
              f"as Ray Tune trials ({describe(launcher, resources, parallel)}); logs in each run's train.log, "
              f"Ray's in {storage}", file=out, flush=True)
        if str(launcher.address).startswith("ray://"):
            print("  (Ray Client: Tune runs on the head node, so the per-run lines appear in its log; "
                  "the run folders must be on storage the cluster shares)", file=out, flush=True)
        progress = Progress(plan.name, len(plan.runs), completed=len(done), parallel=slots(launcher, resources, parallel),
                            flops_left=sum(s.C for s in todo), runs_left=len(todo))
        try:
            tuner(todo, folders, launcher, storage, parallel, progress, out).fit()
        except KeyboardInterrupt:
            mark_unfinished(todo, "the Ray sweep was interrupted")
            print(f"\nsweep {plan.name} interrupted; run the same command again to pick up where it stopped",
                  file=out, flush=True)
            raise
    mark_unfinished(todo, "the Ray sweep stopped before this run finished (Ctrl-C?)")
    text, code = summarise(plan, len(done))
    print(text, file=out, flush=True)
    return code


def storage_path(plan: Plan, launcher: RayLauncherConfig) -> Path:
    """Ray Tune's experiment folder: launcher.storage_path, or <run.root>/<sweep>/.ray (absolute)."""
    if launcher.storage_path:
        return Path(launcher.storage_path).expanduser().resolve()
    return (plan.folder / ".ray").resolve()


def slots(launcher: RayLauncherConfig, resources: dict[str, float], parallel: Optional[int]) -> int:
    """How many trials run at once (for the ETA)."""
    return parallel or trials_that_fit(launcher, resources)


def describe(launcher: RayLauncherConfig, resources: dict[str, float], parallel: Optional[int]) -> str:
    """`2 CPU per trial, up to 4 at once on 8 CPU 0 GPU`."""
    per = f"{launcher.cpus_per_trial:g} CPU"
    if launcher.gpus_per_trial:
        per += f" {launcher.gpus_per_trial:g} GPU"
    if launcher.workers_per_trial > 1:
        per = f"{launcher.workers_per_trial} workers x {per}"
    cluster = f"{resources.get('CPU', 0):g} CPU {resources.get('GPU', 0):g} GPU"
    return f"{per} per trial, up to {slots(launcher, resources, parallel)} at once on {cluster}"


def param_space(launcher: RayLauncherConfig, storage: Path) -> dict[str, Any]:
    """What every trial needs to know besides its run folder (which RunsInOrder gives): the sweep's
    directory, threads, workers and resources, where Ray Train keeps its state."""
    return {"cwd": os.getcwd(), "threads": max(1, int(launcher.cpus_per_trial)), "workers": launcher.workers_per_trial,
            "cpus_per_worker": launcher.cpus_per_trial, "gpus_per_worker": launcher.gpus_per_trial,
            "train_storage": str(storage / "train")}


def trainable(launcher: RayLauncherConfig) -> Any:
    """The trial function with its resources: one process per run, or a Ray Train driver."""
    from ray import tune

    from scaling.launch.ray_trial import train_run, train_run_distributed

    if launcher.workers_per_trial > 1:  # the driver holds no CPU (its TorchTrainer's workers do), some memory
        return tune.with_resources(train_run_distributed, {"cpu": 0, "memory": DRIVER_MEMORY})
    resources = {"cpu": launcher.cpus_per_trial, "gpu": launcher.gpus_per_trial}
    return tune.with_resources(train_run, resources)


def tuner(todo: list[RunSpec], folders: list[Path], launcher: RayLauncherConfig, storage: Path,
          parallel: Optional[int], progress: Progress, out: IO, name: Optional[str] = None,
          scheduler: Any = None) -> Any:
    """A Tuner with one trial per run folder, in plan order (a branch once its trunk is ready for it:
    RunsInOrder), named by run_id.

    With a `scheduler` (ASHA for the learning-rate search) trials report every validation's loss
    and the scheduler may stop them early.
    """
    from ray import tune

    from scaling.launch.ray_order import RunsInOrder
    from scaling.launch.ray_progress import SweepProgress

    space = param_space(launcher, storage)
    search = {"search_alg": RunsInOrder(todo, folders)}
    if scheduler is not None:
        space["search"] = True
        search.update(scheduler=scheduler, metric="loss", mode="min")
    return tune.Tuner(
        trainable(launcher),
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=len(todo), max_concurrent_trials=trial_limit(todo, launcher, parallel),
            reuse_actors=launcher.workers_per_trial == 1 and scheduler is None,
            trial_name_creator=run_id_of, trial_dirname_creator=run_id_of, **search),
        run_config=tune.RunConfig(
            name=name or f"{todo[0].cfg.sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=launcher.max_failures), verbose=0,
            callbacks=[SweepProgress(todo, progress, launcher.max_failures, out)]),
    )


def trial_limit(todo: list[RunSpec], launcher: RayLauncherConfig, parallel: Optional[int]) -> int:
    """Tune's max_concurrent_trials: launcher.max_concurrent, else every run up to what the cluster holds or
    200 (Tune's own minimum of pending trials). Without a limit Tune keeps one pending trial of a searcher
    (RunsInOrder) at a time, so trials would start one by one."""
    import ray

    return parallel or min(len(todo), max(200, trials_that_fit(launcher, ray.cluster_resources())))


def run_id_of(trial: Any) -> str:
    """A trial's name and folder name: the run_id of its run folder."""
    return Path(trial.config["folder"]).name


def mark_unfinished(todo: list[RunSpec], error: str) -> None:
    """Runs that Tune left unfinished (a stopped sweep) are recorded `interrupted`."""
    for spec in todo:
        RunFolder(spec.path).end_unfinished(Status.INTERRUPTED, error)
