"""`python -m scaling.launch.worker RUN_DIR`: train the run whose folder a launcher prepared.

Every launcher (local subprocesses, Ray trials, SLURM jobs) ends here, so a run is trained,
resumed and recorded the same way wherever it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaling.plan import RunSpec


def planned_spec(folder: Path, threads: int | None = None) -> "RunSpec":
    """The RunSpec the launcher planned into `folder` (config.yaml + the planned record)."""
    from scaling.config import from_dict
    from scaling.plan import RunSpec, run_id
    from scaling.store import RunFolder

    run = RunFolder(folder)
    cfg = from_dict(run.read_config())
    cfg.run.root = str(folder.absolute().parent.parent)  # the folder may have moved since it was planned
    if threads:
        cfg.trainer.threads = threads
    spec = RunSpec.from_record(cfg, folder.name, run.read_record())
    if run_id(cfg, spec.D) != folder.name:
        raise RuntimeError(f"{folder} holds run {run_id(cfg, spec.D)}, not {folder.name}; the config was edited by hand")
    return spec


def train_folder(folder: Path, threads: int | None = None, callbacks: Any = None,
                 trainer_overrides: dict | None = None) -> dict:
    """Train the run a launcher planned into `folder` (resuming if possible).

    Any failure, before training starts (config, data, model) or during it, ends with the run
    recorded `failed` and its error; then the exception goes on. `callbacks` and
    `trainer_overrides` go to train() (a launcher's reporting and strategy).
    """
    from scaling.store import RunFolder, Status
    from scaling.train import train
    from scaling.train.run import error_text

    try:
        spec = planned_spec(folder, threads)
        factory = None
        if spec.cfg.logger.name != "local":
            from scaling.train.wandb_logger import make_loggers as factory
        record = train(spec, loggers_factory=factory, callbacks=callbacks, trainer_overrides=trainer_overrides)
        if spec.cfg.trainer.probe and record.get("status") == "completed":
            from scaling.probes import probe_finished

            probe_finished(folder)
        return record
    except Exception as exc:
        RunFolder(folder).end_unfinished(Status.FAILED, error_text(exc))
        raise


def run_logged(folder: Path, threads: int | None) -> int:
    """Train one run with this process's stdout and stderr sent to the run's train.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(folder / "train.log", "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        record = train_folder(folder, threads)
        return 0 if record.get("status") in ("completed", None) else 1
    except Exception:  # already recorded as failed by train(); the traceback goes to train.log
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve(threads: int | None) -> int:
    """Train the run folders named on stdin one after another, answering `CODE FOLDER` per run.

    A long-lived worker pays Python's and torch's start-up once for many small runs.
    """
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        if line.strip():
            folder = Path(line.strip())
            answers.write(f"{run_logged(folder, threads)} {folder}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 when the run completed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m scaling.launch.worker")
    parser.add_argument("folder", type=Path, nargs="?", help="the run folder (omit with --serve)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help="train folders named on stdin, one per line")
    parser.add_argument("--slurm", action="store_true", help="run as a task of a SLURM job (launcher=slurm)")
    args = parser.parse_args(argv)
    if args.slurm and args.folder is not None:
        from scaling.launch.preempt import PreemptSignal

        flag = PreemptSignal().install()  # before torch loads: an early signal must not kill the job
        from scaling.launch.slurm_job import run_task

        return run_task(args.folder, args.threads, os.environ, flag)
    if args.serve:
        return serve(args.threads)
    if args.folder is None:
        parser.error("give a run folder, or --serve")
    record = train_folder(args.folder, args.threads)
    return 0 if record.get("status") in ("completed", None) else 1


if __name__ == "__main__":
    sys.exit(main())
