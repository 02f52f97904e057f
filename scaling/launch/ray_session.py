"""The Ray session a sweep runs on: check the launcher config, start or join Ray, keep it quiet.

With no `launcher.address` an embedded Ray is started, sized to this machine, and shut down at
the end; with `auto` or `ray://host:port` the sweep joins that cluster (and leaves it running).
A Ray session this process already holds (a notebook, the tests) is used as it is.
"""

from __future__ import annotations

import logging
import math
import os
import re
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from scaling.config import ConfigError, RayLauncherConfig
from scaling.plan import RunSpec

ADDRESS = re.compile(r"^(auto|ray://[\w.\-]+:\d+|[\w.\-]+:\d+)$")


def check_launcher(launcher: RayLauncherConfig) -> None:
    """Refuse launcher settings Ray would fail on later (one line, naming the key and the fix)."""
    if launcher.address is not None and not ADDRESS.match(str(launcher.address)):
        raise ConfigError(f"launcher.address={launcher.address!r} is not a Ray address; use auto, "
                          "ray://HOST:PORT or HOST:PORT, or leave it unset for an embedded Ray")
    if launcher.cpus_per_trial <= 0:
        raise ConfigError(f"launcher.cpus_per_trial={launcher.cpus_per_trial} must be positive; "
                          "set it to the CPUs each trial (each worker of a trial) may use, e.g. 1")
    gpus = launcher.gpus_per_trial
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise ConfigError(f"launcher.gpus_per_trial={gpus} must be 0, a fraction up to 1 (runs share a "
                          "GPU) or a whole number; Ray cannot schedule other fractions")
    if launcher.workers_per_trial < 1:
        raise ConfigError(f"launcher.workers_per_trial={launcher.workers_per_trial} must be 1 or more; "
                          "use 1 for one process per run, N for N-process DDP through Ray Train")
    if launcher.max_failures < 0:
        raise ConfigError(f"launcher.max_failures={launcher.max_failures} must be 0 or more; "
                          "it is how many times a crashed trial is retried")
    if launcher.tune_lr and launcher.workers_per_trial > 1:
        raise ConfigError(f"launcher.tune_lr={list(launcher.tune_lr)} with launcher.workers_per_trial="
                          f"{launcher.workers_per_trial}: the learning-rate search runs one process per trial; "
                          "search with workers_per_trial=1, then train the best learning rate with more workers")
    if any(lr <= 0 for lr in launcher.tune_lr) or launcher.tune_reduction_factor <= 1:
        raise ConfigError(f"launcher.tune_lr={list(launcher.tune_lr)} launcher.tune_reduction_factor="
                          f"{launcher.tune_reduction_factor}: learning rates must be positive and the "
                          "reduction factor above 1 (ASHA keeps 1/factor of the trials at each milestone)")
    if launcher.max_concurrent is not None and launcher.max_concurrent < 1:
        raise ConfigError(f"launcher.max_concurrent={launcher.max_concurrent} must be 1 or more; "
                          "leave it unset to let Ray's resources decide")


def check_trainer(spec: RunSpec, launcher: RayLauncherConfig) -> None:
    """Refuse a run whose trainer settings do not fit a Ray trial (devices come from the launcher)."""
    trainer = spec.cfg.trainer
    if str(trainer.devices) not in ("1", "auto") or trainer.num_nodes != 1:
        raise ConfigError(f"trainer.devices={trainer.devices} trainer.num_nodes={trainer.num_nodes}: under "
                          "launcher=ray each process drives one device; for N processes set "
                          "launcher.workers_per_trial=N and leave trainer.devices=1, trainer.num_nodes=1")
    if launcher.gpus_per_trial > 0 and trainer.accelerator == "cpu":
        raise ConfigError(f"launcher.gpus_per_trial={launcher.gpus_per_trial} but trainer.accelerator=cpu "
                          "would leave the GPU idle; set trainer.accelerator=gpu (or auto)")
    if launcher.gpus_per_trial == 0 and trainer.accelerator == "gpu":
        raise ConfigError("trainer.accelerator=gpu but launcher.gpus_per_trial=0 gives trials no GPU; "
                          "set launcher.gpus_per_trial (a fraction shares a GPU between runs)")
    if launcher.tune_lr and (trainer.branch_of or trainer.keep_steps):
        raise ConfigError(f"launcher.tune_lr={list(launcher.tune_lr)} with sweep.mode=branches: each learning rate "
                          "would need its own trunk; search the learning rate in a sweep without branches, "
                          "then set optim.lr for the branches sweep")


def trial_needs(launcher: RayLauncherConfig) -> dict[str, float]:
    """CPUs and GPUs one trial holds at once (all of its workers)."""
    workers = launcher.workers_per_trial
    return {"CPU": launcher.cpus_per_trial * workers, "GPU": launcher.gpus_per_trial * workers}


def check_fits(launcher: RayLauncherConfig, resources: dict[str, float]) -> None:
    """Refuse a trial larger than the whole Ray cluster (Tune would wait for it forever)."""
    for name, need in trial_needs(launcher).items():
        have = float(resources.get(name, 0.0))
        if need > have + 1e-9:
            key = "cpus_per_trial" if name == "CPU" else "gpus_per_trial"
            raise ConfigError(f"launcher.{key}={getattr(launcher, key)} x launcher.workers_per_trial="
                              f"{launcher.workers_per_trial} needs {need:g} {name}s but the Ray cluster has "
                              f"{have:g}; lower them or join a larger cluster (launcher.address)")


def embedded_resources() -> dict[str, float]:
    """What an embedded Ray will offer, known before starting it: this machine's CPUs (GPUs are
    counted by Ray itself, so they are not limited here)."""
    return {"CPU": float(os.cpu_count() or 1), "GPU": math.inf}


def trials_that_fit(launcher: RayLauncherConfig, resources: dict[str, float]) -> int:
    """How many trials the cluster's CPUs and GPUs hold at once (at least 1)."""
    fits = [math.floor(float(resources.get(name, 0.0)) / need + 1e-9)
            for name, need in trial_needs(launcher).items() if need > 0]
    return max(1, min(fits))


def concurrency(launcher: RayLauncherConfig, resources: dict[str, float]) -> Optional[int]:
    """How many trials may run at once: the config's max_concurrent, or, for Ray Train trials
    (whose workers Tune does not count), as many as the cluster's resources hold."""
    if launcher.max_concurrent is not None or launcher.workers_per_trial == 1:
        return launcher.max_concurrent
    return trials_that_fit(launcher, resources)


@contextmanager
def ray_session(launcher: RayLauncherConfig, log_path: Path) -> Iterator[dict[str, float]]:
    """Start or join Ray for the sweep; yields the cluster's resources; shuts down what it started.

    Ray's own console output (start-up notes, Tune's tables and error tracebacks) goes to log_path.
    """
    import ray

    started = False
    with ray_output_to(log_path) as divert:
        if not ray.is_initialized():
            try:
                ray.init(**init_arguments(launcher))
            except ConnectionError as exc:
                raise ConfigError(unreachable(launcher.address, exc)) from exc
            started = True
            divert()  # ray.init() resets Ray's logger
        try:
            yield dict(ray.cluster_resources())
        finally:
            if started:
                ray.shutdown()


def unreachable(address: Optional[str], exc: BaseException) -> str:
    """The one-line error for a cluster that could not be joined."""
    hint = "check the address and that its port is reachable from here"
    if str(address).startswith("ray://"):
        hint = ("check that the head's Ray Client port is reachable and, as clusters use token "
                "authentication since Ray 2.59, set RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN) here")
    return f"launcher.address={address}: could not join the Ray cluster ({exc}); {hint}"


def init_arguments(launcher: RayLauncherConfig, cpus: Optional[int] = None) -> dict[str, Any]:
    """ray.init() arguments: an embedded Ray sized to this machine, or the cluster at the address."""
    quiet = {"log_to_driver": False, "configure_logging": False}  # ray_output_to() has Ray's logger
    if launcher.address:
        return {"address": launcher.address, **quiet}
    return {"num_cpus": cpus or os.cpu_count() or 1, "include_dashboard": False, **quiet}


@contextmanager
def ray_output_to(log_path: Path) -> Iterator[Callable[[], None]]:
    """Send Ray's driver-side logging and printing to a file while the block runs.

    Yields a function that sends Ray's logger to the file again (after something reset it).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("ray")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    with open(log_path, "a", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

        def divert() -> None:
            logger.handlers, logger.propagate = [handler], False
            logger.setLevel(logging.INFO)

        divert()
        try:
            yield divert
        finally:
            logger.handlers, logger.propagate = saved[0], saved[1]
            logger.setLevel(saved[2])
