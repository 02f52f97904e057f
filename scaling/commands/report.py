"""`scaling report SOURCE -o DIR`: figures (PNG, SVG) and a self-contained HTML report of a sweep.

    scaling report runs/quickstart -o report
    scaling report runs.parquet -o report --law compute --target-flops 1e18
    scaling report runs/quickstart --wandb [logger.project=P logger.entity=E logger.mode=offline]

SOURCE is a sweep folder, a CSV/Parquet run table, or a table pulled from W&B (`scaling pull`).
"""

from __future__ import annotations

import argparse
from typing import Any

from scaling.commands.base import Command, existing_path, writable_folder
from scaling.commands.errors import UsageError, guarded
from scaling.commands.fit import require_spread

SOURCE_HELP = "a sweep folder (runs/NAME), a CSV/Parquet run table, or a pulled W&B table"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (write FLOPs like 1e18)") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive finite number")
    return value


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling report`'s arguments."""
    from scaling.analysis.laws import LAW_NAMES

    parser.add_argument("source", help=SOURCE_HELP)
    parser.add_argument("-o", "--output", default="report", help="folder for report.html and the figures "
                                                                 "(default: report)")
    parser.add_argument("--law", default="chinchilla", choices=LAW_NAMES,
                        help="the law whose frontier the report draws (default chinchilla: L(N, D))")
    parser.add_argument("--target-flops", type=_positive_float, metavar="C",
                        help="extrapolate the frontier to this compute (default: the power of ten at least 10x "
                             "the largest run)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="B",
                        help="bootstrap replicates for the confidence bands (default 200; 0 for none)")
    parser.add_argument("--holdout", type=int, metavar="K",
                        help="backtest on the K most expensive runs (default: a sixth of the runs)")
    parser.add_argument("--columns", help="rename the table's columns: 'N=Model Size,C=Training FLOP,loss=loss'")
    parser.add_argument("--where", help="keep only rows matching a pandas query, e.g. \"family == 'gpt'\"")
    parser.add_argument("--title", help="the report's title (default: Scaling report: SWEEP)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--wandb", nargs="*", metavar="logger.KEY=VALUE",
                        help="also log the report as a W&B run in the sweep's group (the run table, figures, laws, "
                             "backtest, report.html); project, entity, mode as the sweep's runs had them, or "
                             "logger.project=P logger.entity=E logger.mode=offline|online|auto logger.tags=a,b")


@guarded
def run(args: argparse.Namespace) -> int:
    """Analyse the source, write the report, print a summary."""
    if args.bootstrap < 0 or (args.holdout is not None and args.holdout < 0):
        raise UsageError("--bootstrap and --holdout take a count >= 0")
    output = writable_folder(args.output, "-o")
    wandb_settings = _wandb_settings(args)
    source = _read(args)
    from scaling.analysis.analyse import analyse
    from scaling.analysis.report import write_report
    from scaling.analysis.series import target_prediction
    from scaling.analysis.targets import split_targets

    split = split_targets(source.runs, str(args.source), frontier=False)  # a ladder's targets are never fitted
    an = analyse(split.fitted, source.curves, args.law, target_flops=args.target_flops, bootstrap=args.bootstrap,
                 holdout=args.holdout, seed=args.seed, held_out=split.targets)
    an.predictions = _predictions(args.source)
    written = write_report(an, output, str(args.source), args.title)
    for line in summary_lines(an, target_prediction(an)):
        print(line)
    print(f"wrote {written['html']} and {len(written['figures'])} figure files in {output}")
    if wandb_settings is not None:
        from scaling.analysis.wandb_report import log_report

        for line in log_report(an, written, wandb_settings, args.source):
            print(line)
    return 0


def _predictions(source: str) -> list[dict]:
    """The predictions registered in a sweep folder (scaling predict); none for a table file."""
    from pathlib import Path

    from scaling.analysis.predictions import load_predictions

    return load_predictions(source) if Path(source).is_dir() else []


def _wandb_settings(args: argparse.Namespace) -> Any:
    """The W&B settings of --wandb (None without it), checked before anything is read or fitted."""
    if getattr(args, "wandb", None) is None:
        return None
    from scaling.analysis.wandb_report import report_settings

    return report_settings(args.wandb, args.source)


def _read(args: argparse.Namespace) -> Any:
    """The source's runs and curves, checked to have what a report needs."""
    from scaling.analysis.source import read_source

    source = read_source(existing_path(args.source, SOURCE_HELP), columns=args.columns, where=args.where,
                         curves=True)
    missing = [c for c in ("N", "D", "C", "loss") if c not in source.runs.columns]
    if missing:
        raise UsageError(f"{args.source} has no column {', '.join(missing)}; a run table needs N, D, C and loss "
                         "(rename with --columns 'N=...,C=...,loss=...')")
    require_spread(source.runs, args.law)
    return source


def summary_lines(an: Any, target: Any) -> list[str]:
    """What `scaling report` prints: the runs, the fit, the prediction at the target, the backtest."""
    from scaling.analysis.formatting import fmt_count, fmt_flops

    sweeps = sorted(map(str, an.runs["sweep"].dropna().unique())) if "sweep" in an.runs.columns else []
    count = len(an.held_out)
    held_out = f", {count} held-out target{'s' * (count != 1)} not fitted" if count else ""
    lines = [f"{len(an.runs)} runs ({len(an.usable)} completed with a loss{held_out}) from "
             f"{'sweep ' + ', '.join(sweeps) if sweeps else 'the table'}"]
    if an.main is None:
        lines.append(f"no {an.law} fit: {an.errors.get(an.law, '')}")
        return lines
    ci = an.main.ci.get("a") if an.main.ci else None
    allocation = f", N_opt ∝ C^{an.main.a:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") \
        if an.main.a is not None else ""
    lines.append(f"{an.law} fit of {an.main.n_points} runs{allocation}")
    unvaried = an.main.fit_info.get("unvaried")
    if unvaried:
        lines.append(f"no prediction: every fitted run has the same {' and '.join(unvaried)}, so the {an.law} "
                     "law is not identified beyond them")
    if target and "loss" in target:
        interval = f" [{target['lo']:.3f}, {target['hi']:.3f}]" if target.get("lo") == target.get("lo") else ""
        if interval and not target["lo"] <= target["loss"] <= target["hi"]:
            interval += " (the estimate outside its interval: these runs do not pin the law down)"
        sizes = f", N_opt {fmt_count(target['N_opt'])}, D_opt {fmt_count(target['D_opt'])}" if "N_opt" in target else ""
        lines.append(f"at C = {fmt_flops(target['C'])}: predicted loss {target['loss']:.3f}{interval}{sizes}")
    bt = an.main.backtest
    if bt:
        decades = f" over {bt['decades']:.2f} decades of compute" if bt.get("decades") is not None else ""
        lines.append(f"backtest: {bt['held_out']} most expensive runs predicted within "
                     f"{bt['mean_abs_rel_error']:.2%} on average{decades}")
    for name in ("isoflop", "envelope"):
        found = an.approaches.get(name)
        if found is not None and found.a is not None:
            ci = found.ci.get("a")
            lines.append(f"{name}: N_opt ∝ C^{found.a:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return lines + _prediction_lines(an)


def _prediction_lines(an: Any) -> list[str]:
    """The held-out targets' scores and the registered predictions, scored or pending."""
    from scaling.analysis.predictions import prediction_lines
    from scaling.analysis.targets import target_lines

    lines = target_lines(an.target_scores) if an.target_scores else []
    return lines + prediction_lines(an.predictions, an.runs)


COMMAND = Command(name="report", synopsis="SOURCE -o DIR", help="figures and an HTML report",
                  arguments=arguments, run=run)
