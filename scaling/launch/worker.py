"""`python -m scaling.launch.worker RUN_DIR`: train the run whose folder a launcher prepared.

Every launcher (local subprocesses, Ray trials, SLURM jobs) ends here, so a run is trained,
resumed and recorded the same way wherever it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def train_folder(folder: Path, threads: int | None = None) -> dict:
    """Rebuild the RunSpec from the folder's config.yaml and train it (resuming if possible)."""
    from scaling.config import from_dict
    from scaling.plan import plan_run
    from scaling.train import train

    cfg = from_dict(yaml.safe_load((folder / "config.yaml").read_text()))
    if threads:
        cfg.trainer.threads = threads
    spec = plan_run(cfg)
    if spec.run_id != folder.name:
        raise RuntimeError(f"{folder} holds run {spec.run_id}, not {folder.name}; the config was edited by hand")
    factory = None
    if cfg.logger.name != "local":
        from scaling.tracking import make_loggers

        factory = make_loggers
    return train(spec, loggers_factory=factory)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 when the run completed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m scaling.launch.worker")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    record = train_folder(args.folder, args.threads)
    return 0 if record.get("status") in ("completed", None) else 1


if __name__ == "__main__":
    sys.exit(main())
