"""`scaling probe RUN_DIR|SWEEP_DIR`: embedding-space metrics and pictures of trained runs.

    scaling probe runs/digits_cnn                 every completed run, plus the ladder pictures
    scaling probe runs/digits_cnn/afa70f010a --untrained --max-samples 1000

A sweep in which some run could not be probed exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from scaling.commands.base import Command, existing_path
from scaling.commands.errors import UsageError, guarded

PATH_HELP = "a run folder (runs/SWEEP/RUN_ID) or a sweep folder (runs/SWEEP)"
SHOWN = ("probe_knn1", "probe_knn5", "probe_linear", "probe_class_ratio", "probe_knn1_input",
         "probe_knn1_untrained")
MIN_SAMPLES = 10  # enough to find 5 neighbours


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling probe`'s arguments."""
    from scaling.probes.runner import DEFAULT_MAX_SAMPLES

    parser.add_argument("path", type=Path, help=PATH_HELP)
    parser.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES, metavar="N",
                        help=f"held-out images (or byte positions of text) probed, and reference "
                             f"training items (default {DEFAULT_MAX_SAMPLES})")
    parser.add_argument("--untrained", action="store_true",
                        help="also probe each model untrained (same config and seed): probe_*_untrained columns")
    parser.add_argument("--no-pictures", dest="pictures", action="store_false", help="metrics only, no PNGs")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


@guarded
def run(args: argparse.Namespace) -> int:
    """Probe one run or every completed run of a sweep; 0 when every one was probed."""
    from scaling.probes.runner import probe_run, probe_sweep

    if args.max_samples < MIN_SAMPLES:
        raise UsageError(f"--max-samples {args.max_samples} is too few to find 5 neighbours; "
                         f"use at least {MIN_SAMPLES}")
    path = existing_path(args.path, PATH_HELP)
    if not path.is_dir():
        raise UsageError(f"{path} is a file; give {PATH_HELP}")
    check_device(args.device)
    options = {"max_samples": args.max_samples, "untrained": args.untrained, "pictures": args.pictures,
               "device": args.device}
    single = (path / "record.json").exists()
    results = {path.name: probe_run(path, **options)} if single else probe_sweep(path, **options)
    if not results:
        raise UsageError(f"{path} has no completed runs; train them first (scaling sweep ...)")
    print(format_results(results))
    if args.pictures:
        print(f"pictures: {path / 'probes'}/" + ("" if single else " and probes/ in each run folder"))
    return 1 if any("error" in metrics for metrics in results.values()) else 0


def check_device(device: Optional[str]) -> None:
    """Refuse a device torch does not know, or a GPU this machine does not have."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"--device {device} is not a device; use cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: this machine has no CUDA GPU; use --device cpu")


def format_results(results: dict[str, dict]) -> str:
    """One line per run: its id, then the main probe metrics (or its error)."""
    shown = [name for name in SHOWN if any(name in m for m in results.values())]
    lines = ["run_id      " + " ".join(f"{name[6:]:>15}" for name in shown)]
    for run_id, metrics in results.items():
        if "error" in metrics:
            lines.append(f"{run_id:<11} error: {metrics['error']}")
            continue
        lines.append(f"{run_id:<11} " + " ".join(f"{metrics.get(name, float('nan')):>15.3f}" for name in shown))
    return "\n".join(lines)


COMMAND = Command(name="probe", synopsis="RUN_DIR|SWEEP_DIR",
                  help="embedding-space metrics and pictures of trained runs", arguments=arguments, run=run)
