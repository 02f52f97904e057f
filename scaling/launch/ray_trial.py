"""What runs inside Ray: a Tune trial trains one prepared run folder, as every launcher's worker does.

One process per run: `train_run` (a Tune function trainable) calls `train_folder` in the trial's
actor. N processes per run: `train_run_distributed` is the trial's driver; it starts a Ray Train
TorchTrainer whose workers (`train_worker`) run Lightning with Ray's DDP strategy and environment.
Either way the run's output goes to its train.log and the final loss is reported to Tune.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl

from scaling.store import RunFolder, Status

def stopped_error(record: dict[str, Any]) -> str:
    """The record's error text for a run the search stopped."""
    return f"stopped early at step {record.get('step')} by the learning-rate search (ASHA)"


@contextmanager
def in_run_folder(folder: Path, cwd: str) -> Iterator[None]:
    """Work from the sweep's directory (Tune moves trials into their own) with output to train.log.

    Restores the directory and the stdout/stderr descriptors afterwards: Ray may reuse the process.
    """
    if not os.path.isdir(cwd):  # a relative run.root would land in Tune's trial folder
        raise RuntimeError(f"the sweep's directory {cwd} does not exist on this Ray node; put run.root on "
                           "storage every node shares and give it as an absolute path")
    sys.stdout.flush()
    sys.stderr.flush()
    saved_cwd, saved_fds = os.getcwd(), (os.dup(1), os.dup(2))
    os.chdir(cwd)
    try:
        with open(folder / "train.log", "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, target in zip(saved_fds, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(saved_cwd)


def without_trunk(folder: Path) -> dict[str, Any] | None:
    """A branch whose trunk ended without the checkpoint it starts from is recorded failed, naming the trunk
    and its failure (its record returned; it never trains); None for every run that may train."""
    from scaling.launch.common import trunk_missing
    from scaling.launch.worker import planned_spec

    reason = trunk_missing(planned_spec(folder))
    if reason is None:
        return None
    print(reason, flush=True)
    return RunFolder(folder).finish(Status.FAILED, error=reason)


def final_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """What a trial reports to Tune at the end: the run's final loss and where it stopped."""
    loss = record.get("loss")
    return {"loss": float(loss) if isinstance(loss, (int, float)) else math.nan,
            "step": int(record.get("step") or 0), "status": str(record.get("status")),
            "run_id": record.get("run_id"), "attempts": int(record.get("attempts") or 0)}


class ReportToTune(pl.Callback):
    """Reports each validation's loss to Tune (rank 0 of a single-process trial), so Tune's
    schedulers (ASHA) and its result tables follow the run as it trains."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from ray import tune

        metrics = trainer.callback_metrics
        final = trainer.global_step >= trainer.max_steps  # reported by the trial once the record is final
        if "val_loss" in metrics and trainer.is_global_zero and not trainer.sanity_checking and not final:
            tune.report({"loss": float(metrics["val_loss"]), "step": trainer.global_step, "status": "running"})


def train_run(config: dict[str, Any]) -> None:
    """Tune function trainable: train the run folder config["folder"] with config["threads"] threads.

    With config["search"] the run reports every validation, and a run the scheduler stops is
    recorded `stopped`.
    """
    from ray import tune

    from scaling.launch.worker import train_folder

    folder = Path(config["folder"])
    searching = bool(config.get("search"))
    try:
        with in_run_folder(folder, config["cwd"]):
            record = without_trunk(folder) or train_folder(
                folder, config["threads"], callbacks=(lambda checkpoint: [ReportToTune()]) if searching else None)
    except SystemExit:  # Tune ends a trial that its scheduler stopped with SystemExit at a report
        if searching:
            RunFolder(folder).end_unfinished(Status.STOPPED, stopped_error)
        raise
    tune.report(final_metrics(record))


# ------------------------------------------------------------------- Ray Train (N workers)


class PrepareForRay(pl.Callback):
    """Runs ray.train.lightning.prepare_trainer on the Trainer that train() builds."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from ray.train.lightning import prepare_trainer

        prepare_trainer(trainer)


def ray_trainer_overrides() -> dict[str, Any]:
    """Lightning Trainer arguments for a Ray Train worker, as Ray's Lightning guide sets them."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    return {"strategy": RayDDPStrategy(), "plugins": [RayLightningEnvironment()],
            "devices": "auto", "num_nodes": 1}


def train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: train the run folder under DDP; every worker reports once at the end."""
    import ray.train

    from scaling.launch.worker import train_folder

    folder = Path(config["folder"])
    with in_run_folder(folder, config["cwd"]):
        record = train_folder(folder, config["threads"], callbacks=lambda checkpoint: [PrepareForRay()],
                              trainer_overrides=ray_trainer_overrides())
    ray.train.report(final_metrics(record) if record else {})


def train_run_distributed(config: dict[str, Any]) -> None:
    """Tune function trainable for workers_per_trial > 1: drive a TorchTrainer for one run.

    Worker failures surface here as an exception, so Tune's FailureConfig retries the whole run
    (which resumes from its checkpoint); Ray Train itself does not retry. A branch whose trunk ended
    without its checkpoint is recorded failed without starting any worker.
    """
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    with in_run_folder(Path(config["folder"]), config["cwd"]):
        failed = without_trunk(Path(config["folder"]))
    if failed:
        tune.report(final_metrics(failed))
        return
    gpus = float(config["gpus_per_worker"])
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if gpus > 0 else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=int(config["workers"]), use_gpu=gpus > 0,
            resources_per_worker={"CPU": float(config["cpus_per_worker"]), **({"GPU": gpus} if gpus else {})}),
        run_config=ray.train.RunConfig(
            name=f"{Path(config['folder']).name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=config["train_storage"], callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0),
            # train() prints to train.log itself; Ray Train's print-to-log patch would double each line
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}),
    )
    trainer.fit()
