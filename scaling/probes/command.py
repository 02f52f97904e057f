"""`scaling probe RUN_DIR|SWEEP_DIR`: the command-line face of the probes package.

    scaling probe runs/digits_cnn                 every completed run, plus the ladder pictures
    scaling probe runs/digits_cnn/afa70f010a --untrained --max-samples 1000

Errors (no such folder, a run that is not completed) are one line on stderr and exit code 2;
a sweep in which some run could not be probed exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scaling.probes.runner import DEFAULT_MAX_SAMPLES, ProbeError

SHOWN = ("probe_knn1", "probe_knn5", "probe_linear", "probe_class_ratio", "probe_knn1_input",
         "probe_knn1_untrained")


def configure_probe_parser(parser: argparse.ArgumentParser) -> None:
    """Add `scaling probe`'s arguments to parser."""
    parser.add_argument("path", type=Path, help="a run folder (runs/SWEEP/RUN_ID) or a sweep folder (runs/SWEEP)")
    parser.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES, metavar="N",
                        help=f"held-out images (or byte positions of text) probed, and reference "
                             f"training items (default {DEFAULT_MAX_SAMPLES})")
    parser.add_argument("--untrained", action="store_true",
                        help="also probe each model untrained (same config and seed): probe_*_untrained columns")
    parser.add_argument("--no-pictures", dest="pictures", action="store_false", help="metrics only, no PNGs")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def run_probe(args: argparse.Namespace) -> int:
    """Run `scaling probe`; 0 when every completed run was probed."""
    from scaling.probes.runner import probe_run, probe_sweep

    if args.max_samples < 10:
        return _error(f"--max-samples {args.max_samples} is too few to find 5 neighbours; use at least 10")
    if not args.path.exists():
        return _error(f"{args.path} does not exist; give a run folder (runs/SWEEP/RUN_ID) or a sweep folder")
    options = {"max_samples": args.max_samples, "untrained": args.untrained, "pictures": args.pictures,
               "device": args.device}
    try:
        if (args.path / "record.json").exists():
            results = {args.path.name: probe_run(args.path, **options)}
        else:
            results = probe_sweep(args.path, **options)
    except ProbeError as exc:
        return _error(str(exc))
    if not results:
        return _error(f"{args.path} has no completed runs; train them first (scaling sweep ...)")
    print(format_results(results))
    if args.pictures:
        single = (args.path / "record.json").exists()
        print(f"pictures: {args.path / 'probes'}/" + ("" if single else " and probes/ in each run folder"))
    return 1 if any("error" in metrics for metrics in results.values()) else 0


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


def _error(message: str) -> int:
    print(f"scaling probe: error: {message}", file=sys.stderr)
    return 2
