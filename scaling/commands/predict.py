"""`scaling predict SWEEP --target TARGET --name NAME`: register a law's prediction before the target is trained.

    scaling predict runs/quickstart --target 4.8e12 --name top-budget
    scaling predict runs/quickstart --target N=150000,D=3e6 --name mid --law kaplan
    scaling predict runs/quickstart --target 8fcdf08dc3 --name one-run --law compute --frontier

The law is fitted to the sweep's runs, never to a ladder's held-out targets nor to the target itself,
and the prediction is written once to runs/<sweep>/predictions/NAME.json (scaling.analysis.predictions);
`scaling status` and `scaling report` score it when the target completes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scaling.commands.base import Command, check_level, existing_path
from scaling.commands.errors import UsageError, guarded

SWEEP_HELP = "a sweep folder (runs/NAME)"
# Measured on the quickstart ladder's 15 fitted runs (one core): chinchilla 1.4 s CPU at 1000 replicates, 1.0 s at
# 200; between seeds the 95% interval's ends move by < 0.004 at 1000 and up to 0.01 at 200.
DEFAULT_BOOTSTRAP = 1000


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling predict`'s arguments."""
    from scaling.analysis.laws import PARAMETRIC_LAWS
    from scaling.analysis.predictions import TARGET_HELP

    parser.add_argument("source", help=SWEEP_HELP)
    parser.add_argument("--target", required=True, help=f"what to predict: {TARGET_HELP}")
    parser.add_argument("--name", required=True, help="the prediction's name: the file predictions/NAME.json, "
                                                      "never overwritten")
    parser.add_argument("--law", default="chinchilla", choices=list(PARAMETRIC_LAWS),
                        help="chinchilla or kaplan: L(N, D), at a compute budget its compute-optimal point; compute, "
                             "params, data: L(C), L(N), L(D) (default: chinchilla)")
    parser.add_argument("--frontier", action="store_true",
                        help="fit only the frontier: the best run of each ladder budget, then the runs no cheaper run "
                             "beats (for --law compute)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="B",
                        help=f"bootstrap replicates for the intervals (default {DEFAULT_BOOTSTRAP}; 0: no interval)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


@guarded
def run(args: argparse.Namespace) -> int:
    """Check everything, fit, write the prediction file once, print what was registered."""
    from scaling.analysis.predictions import write_prediction

    folder = _sweep_folder(args)
    path = _new_path(folder, args.name)
    record = _prediction(args, folder)
    try:
        path = write_prediction(folder, record)
    except FileExistsError:
        raise UsageError(_taken(path)) from None
    for line in _lines(record, path):
        print(line)
    return 0


def _sweep_folder(args: argparse.Namespace) -> Path:
    if args.bootstrap < 0:
        raise UsageError("--bootstrap takes a count >= 0")
    check_level(args.level)
    folder = existing_path(args.source, SWEEP_HELP)
    if not folder.is_dir():
        raise UsageError(f"{folder} is a file; predictions are registered in a sweep folder: give {SWEEP_HELP}")
    return folder


def _new_path(folder: Path, name: str) -> Path:
    from scaling.analysis.predictions import prediction_path

    try:
        path = prediction_path(folder, name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if path.exists():
        raise UsageError(_taken(path))
    return path


def _taken(path: Path) -> str:
    return f"{path} already exists and a registered prediction is never overwritten; pick another --name"


def _prediction(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Parse and resolve the target, fit the law without the held-out targets and the target, predict."""
    import numpy as np

    from scaling.analysis import fit
    from scaling.analysis.laws import get_law
    from scaling.analysis.predictions import (check_law, parse_target, predict_target, prediction_record,
                                              resolve_target, target_rows)
    from scaling.analysis.source import read_source
    from scaling.analysis.targets import split_targets
    from scaling.commands.fit import require_spread

    variables = get_law(args.law).variables
    runs = read_source(folder).runs
    try:
        target = resolve_target(parse_target(args.target), runs)
        check_law(args.law, variables, target)
    except ValueError as error:
        raise UsageError(str(error)) from None
    itself = target_rows(target, runs)
    split = split_targets(runs[~itself], str(folder), args.frontier)
    excluded = [{"run": str(r), "reason": "the prediction's target"} for r in runs.loc[itself, "run_id"]]
    excluded += [{"run": str(r), "reason": "a held-out target of the ladder (sweep.holdout_budgets)"}
                 for r in split.targets["run_id"]]
    require_spread(split.fitted, args.law)
    try:
        with np.errstate(all="ignore"):  # overflow in far-off starts and resamples is expected, not news
            result = fit(split.fitted, args.law, bootstrap=args.bootstrap, seed=args.seed, level=args.level,
                         frontier=args.frontier)
        _check_identified(result, target, split.fitted)
        predicted = predict_target(result, target, variables, split.fitted)
    except ValueError as error:
        raise UsageError(str(error)) from None
    options = {"bootstrap": args.bootstrap, "seed": args.seed, "frontier": args.frontier}
    return prediction_record(args.name, str(folder), result, target, predicted,
                             excluded + split.excluded + result.excluded, options)


def _check_identified(result: Any, target: Any, fitted: Any) -> None:
    """Refuse a target away from the one value of a law variable every fitted run shares (ValueError)."""
    for name in result.fit_info.get("unvaried", []):
        value = float(fitted[name].iloc[0])
        wanted = getattr(target, name, None)
        if wanted is None or abs(float(wanted) / value - 1) > 1e-6:
            raise ValueError(f"every fitted run has {name} = {value:,.0f}, so law {result.law} is not identified at "
                             f"{target.label()}; add runs at other {name} (or predict at {name} = {value:,.0f})")


def _lines(record: dict[str, Any], path: Path) -> list[str]:
    from collections import Counter

    from scaling.analysis.predictions import Target

    p, target = record["predicted"], Target(**record["target"])
    interval = (f" [{p['lo']:.4f}, {p['hi']:.4f}] ({record['level']:.0%}, {record['bootstrap']} bootstrap replicates)"
                if p["lo"] is not None else " (no interval: --bootstrap 0)")
    lines = [f"prediction {record['name']}: {record['law']} law at {target.label()}: loss {p['loss']:.4f}{interval}"]
    if p.get("outside_interval"):
        lines.append("  note: the estimate lies outside its interval: the resampled fits disagree with the fit to all "
                     "runs, so these runs do not pin the law down (see scaling fit's warnings)")
    if "N_opt" in p:
        lines.append(f"  at its compute-optimal point N_opt {p['N_opt']:,.0f}, D_opt {p['D_opt']:,.0f} "
                     f"(C / 6ND = {p['C_per_6ND']:.3f}, from the fitted runs)")
    reasons = Counter(_reason(e["reason"]) for e in record["excluded"])
    left_out = f"; left out {', '.join(f'{n} {why}' for why, n in reasons.items())}" if reasons else ""
    lines.append(f"  fitted on {record['n_fitted']} runs{left_out}")
    version = record["version"]
    commit = f", commit {version['git_commit'][:10]}" + (" with uncommitted changes" if version["git_dirty"] else "") \
        if version["git_commit"] else ""
    lines.append(f"wrote {path} (scaling {version['scaling']}{commit}); `scaling status` scores it once the target "
                 "completes")
    return lines


def _reason(reason: str) -> str:
    """A short name for why a run was left out of the fit."""
    for start, short in (("the prediction's target", "as the target"), ("a held-out target", "as held-out targets"),
                         ("status", "not completed")):
        if reason.startswith(start):
            return short
    return "off the frontier" if "frontier" in reason else reason


COMMAND = Command(name="predict", synopsis="SWEEP --target T", help="register a law's prediction of a run to come",
                  arguments=arguments, run=run)
