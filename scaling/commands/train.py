"""`scaling train [overrides]`: train one run from Hydra overrides."""

from __future__ import annotations

from typing import Any, Callable, Optional

from scaling.commands.base import Command, writable_folder
from scaling.commands.errors import guarded
from scaling.commands.hydra_front import HydraArgs, hydra_front, print_config


@guarded
def run(args: HydraArgs) -> int:
    """Train one run (probe it after when trainer.probe); 0 when it completed."""
    if args.cfg:
        return print_config(args)
    from scaling.config import load_config

    cfg = load_config(args.overrides)  # a config error is refused before torch is imported
    writable_folder(cfg.run.root, "run.root")
    from scaling.plan import plan_run
    from scaling.train import train

    spec = plan_run(cfg, args.overrides)
    record = train(spec, loggers_factory=_loggers_factory(cfg))
    if cfg.trainer.probe and record.get("status") == "completed":
        from scaling.probes import probe_finished

        probe_finished(spec.path)
    return 0 if record.get("status") in ("completed", None) else 1


def _loggers_factory(cfg: Any) -> Optional[Callable]:
    """The experiment-tracking loggers for a config (None for local only)."""
    if cfg.logger.name == "local":
        return None
    from scaling.train.wandb_logger import make_loggers

    return make_loggers


COMMAND = Command(name="train", synopsis="[overrides]", help="train one run (Hydra overrides, e.g. model.width=128)",
                  parse=hydra_front("train"), run=run)
