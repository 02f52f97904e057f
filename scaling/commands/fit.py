"""`scaling fit SOURCE ...`: fit a scaling law to a sweep folder or a CSV/Parquet run table.

    scaling fit runs/quickstart --law compute --holdout 2 --json
    scaling fit chinchilla.csv --columns 'N=Model Size,C=Training FLOP,loss=loss' --bootstrap 1000
    scaling fit runs/ladder --compare
    scaling fit data/loss_curves/25 --law curve --curve-law mpl --fit-on cosine_24000,constant_24000,wsdcon_9
    scaling fit runs/branches --law curve --fit-on auto   # several sizes: L0, A, B power laws of N, the rest shared
    scaling fit runs/lr_transfer --law lr --save runs/lr_transfer/lr_fit.json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from scaling.commands.base import Command, check_level, existing_path
from scaling.commands.errors import UsageError, guarded

SOURCE_HELP = "a sweep folder (runs/NAME) or a CSV/TSV/Parquet run table"
CURVE_SOURCE_HELP = "a sweep folder (runs/NAME) or a folder of CSV files with columns step, lr, loss"
CURVE_LAW = "curve"  # --law curve: a law of whole loss curves (scaling.analysis.curves)
NOT_FOR_CURVES = {"columns": "--columns", "where": "--where", "bootstrap": "--bootstrap", "holdout": "--holdout",
                  "compare": "--compare", "frontier": "--frontier", "predict": "--predict"}
LR_LAW = "lr"  # --law lr: the best learning rate (or batch size) per size (scaling.analysis.lr_transfer)
LR_OPTIONS = {"knob": "--knob", "against": "--against", "save": "--save"}
NOT_FOR_LR = {"holdout": "--holdout", "compare": "--compare", "frontier": "--frontier", "predict": "--predict"}
SINGLE_LAWS = {"compute": "C", "params": "N", "data": "D"}  # one-variable laws and what they read


def _holdout(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs or a fraction") from None
    return int(value) if value >= 1 and value == int(value) else value


def arguments(parser: argparse.ArgumentParser) -> None:
    """`scaling fit`'s arguments."""
    from scaling.analysis.curve_laws import CURVE_LAWS
    from scaling.analysis.laws import LAW_NAMES

    parser.add_argument("source", help=f"{SOURCE_HELP}; with --law curve, {CURVE_SOURCE_HELP}")
    parser.add_argument("--law", default="chinchilla", choices=[*LAW_NAMES, CURVE_LAW, LR_LAW],
                        help="chinchilla or kaplan: L(N, D); compute, params, data: L(C), L(N), L(D); "
                             "isoflop, envelope: Chinchilla's approaches 2 and 1; curve: a law of whole loss "
                             "curves under any learning-rate schedule; lr: the best learning rate per width as a "
                             "power law, and the sweep.rules line it gives (default: chinchilla). isoflop flags each "
                             "budget (too_few_sizes, edge, off_centre, weak_curvature, no_minimum, outlier_run) and "
                             "says what to add; edge, weak_curvature and no_minimum budgets are left out of the power "
                             "laws, the others kept")
    parser.add_argument("--curve-law", choices=list(CURVE_LAWS),
                        help="with --law curve: mpl (Luo et al. 2025's multi-power law) or anneal (Tissue et al. "
                             "2024's annealing law) (default: mpl)")
    parser.add_argument("--fit-on", metavar="NAME[,NAME...]",
                        help="with --law curve: the curves to fit (file stems or run_ids; a stem names it in every "
                             "size folder); the others are predicted (default: fit all). auto: per model size the trunk "
                             "and its shortest cooldown (a branches sweep), else all but the longest run")
    parser.add_argument("--across-sizes", nargs="?", const="", metavar="PARAM[,PARAM...]",
                        help="with --law curve: fit the curves of several model sizes jointly, these parameters "
                             "power laws a*N^b and the others shared (default: L0,A,B for mpl, L0,A,C for anneal); "
                             "automatic when SOURCE has curves of several N")
    parser.add_argument("--knob", choices=["lr", "batch_size"],
                        help="with --law lr: the setting whose best value is fitted (default: lr)")
    parser.add_argument("--against", choices=["width", "N", "N_nonembed", "C", "D"],
                        help="with --law lr: the size the best value is a power law of (default: width)")
    parser.add_argument("--save", metavar="FILE",
                        help="with --law lr: write the fit (rule, exponent, interval, points) as JSON for "
                             "sweep.rules_from")
    parser.add_argument("--columns", help="rename the table's columns: 'N=Model Size,C=Training FLOP,loss=loss' "
                                          "(D = C / (6 N) when only N and C are given)")
    parser.add_argument("--where", help="keep only rows matching a pandas query, e.g. \"family == 'gpt'\"")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="B",
                        help="bootstrap replicates (runs resampled) for confidence intervals "
                             "(--law lr: 1000 when not given)")
    parser.add_argument("--holdout", type=_holdout, metavar="K",
                        help="backtest: hold out the K highest-compute runs (or a fraction, e.g. 0.2)")
    parser.add_argument("--all-runs", dest="targets", action="store_false",
                        help="fit the held-out targets of a ladder too (sweep.holdout_budgets); by default the fit "
                             "never sees them and scores its prediction of each")
    parser.add_argument("--compare", action="store_true",
                        help="fit chinchilla, isoflop and envelope where the table allows; compare N_opt exponents")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log loss (default 1e-3)")
    parser.add_argument("--E", dest="irreducible", choices=("auto", "yes", "no"), default="auto",
                        help="one-variable laws: keep the irreducible loss E (yes), fit the pure power law (no), or "
                             "keep E only where the points support it by AICc (auto, the default)")
    parser.add_argument("--no-E", dest="irreducible", action="store_const", const="no", help="the same as --E no")
    parser.add_argument("--frontier", action="store_true",
                        help="first keep only the runs on the compute frontier (for --law compute on a grid sweep)")
    parser.add_argument("--predict", metavar="C[,C...]",
                        help="also print predictions (and intervals with --bootstrap) at these compute budgets")


@guarded
def run(args: argparse.Namespace) -> int:
    """Fit and print the law (or the comparison); a bad table or request is a UsageError."""
    from scaling.analysis.laws import PARAMETRIC_LAWS
    from scaling.analysis.source import read_source
    from scaling.analysis.targets import score_targets, split_targets

    if args.law == CURVE_LAW:
        return _run_curve(args)
    if args.law == LR_LAW:
        return _run_lr(args)
    _check_options(args)
    try:
        source = read_source(existing_path(args.source, SOURCE_HELP), columns=args.columns, where=args.where,
                             curves=args.compare or args.law == "envelope")
        if args.compare:
            return _print_comparison(args, source)
        split = split_targets(source.runs, args.source if args.targets else None, args.frontier)
        source.runs = split.fitted
        result = _fit(args, source)
        result.excluded += split.excluded
        result.warnings += split.warnings
        if split.budgets and result.law in PARAMETRIC_LAWS:
            result.details["targets"] = score_targets(result, split.targets, split.fitted, args.frontier)
        predictions = _predictions(result, args.predict)
    except ValueError as error:  # pandas and numpy say what is wrong with the table in a ValueError
        raise UsageError(str(error)) from None
    _print_result(args, result, predictions)
    return 0


def _check_options(args: argparse.Namespace) -> None:
    if args.bootstrap < 0 or (args.holdout is not None and args.holdout < 0):
        raise UsageError("--bootstrap and --holdout take a count >= 0")
    check_level(args.level)
    if not args.delta > 0:
        raise UsageError(f"--delta {args.delta} must be positive (the Huber delta on log loss, e.g. 1e-3)")
    for option, flag in (("curve_law", "--curve-law"), ("fit_on", "--fit-on"), ("across_sizes", "--across-sizes")):
        if getattr(args, option) is not None:
            raise UsageError(f"{flag} goes with --law curve (a law of whole loss curves), not --law {args.law}")
    for option, flag in LR_OPTIONS.items():
        if getattr(args, option) is not None:
            raise UsageError(f"{flag} goes with --law lr (the best learning rate per size), not --law {args.law}")


def _run_curve(args: argparse.Namespace) -> int:
    """`--law curve`: fit a curve law to some curves of SOURCE, predict the others, print the errors."""
    from scaling.analysis.curve_source import fit_on_names, read_curve_source
    from scaling.analysis.curves import fit_across_sizes, fit_curves

    given = [flag for option, flag in {**NOT_FOR_CURVES, **LR_OPTIONS}.items()
             if getattr(args, option) not in (None, False, 0)]
    if given:
        raise UsageError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to --law curve; "
                         f"its options are --curve-law, --fit-on, --across-sizes and --json")
    source = read_curve_source(existing_path(args.source, CURVE_SOURCE_HELP))
    law, fit_on = args.curve_law or "mpl", fit_on_names(_names(args.fit_on), source)
    sizes = source.distinct_sizes()
    if args.across_sizes is not None and len(sizes) < 2:
        raise UsageError(f"--across-sizes needs curves of two or more model sizes; {args.source} has "
                         f"{len(sizes) or 'no'} size{'s' * (len(sizes) != 1)}: give a sweep of several models or a "
                         "folder of size folders (25M/, 100M/)")
    if len(sizes) > 1:
        scaled = _names(args.across_sizes) if args.across_sizes else None
        result = fit_across_sizes(source.curves, source.sizes, law=law, fit_on=fit_on, scaled=scaled)
    else:
        result = fit_curves(source.curves, law=law, fit_on=fit_on)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def _run_lr(args: argparse.Namespace) -> int:
    """`--law lr`: the best learning rate (or batch size) per size, its power law, the rule; --save writes it."""
    from scaling.analysis.lr_transfer import fit_lr, save_fit
    from scaling.analysis.source import read_source

    given = [flag for option, flag in {**NOT_FOR_LR, "curve_law": "--curve-law", "fit_on": "--fit-on",
                                       "across_sizes": "--across-sizes"}.items()
             if getattr(args, option) not in (None, False)]
    if given:
        raise UsageError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to --law lr; its options "
                         "are --knob, --against, --bootstrap, --level, --seed, --where, --columns, --save and --json")
    if args.bootstrap < 0 or not 0 < args.level < 1:
        raise UsageError("--bootstrap takes a count >= 0 and --level a number between 0 and 1, e.g. 0.95")
    source = read_source(existing_path(args.source, SOURCE_HELP), columns=args.columns, where=args.where)
    result = fit_lr(source.runs, knob=args.knob or "lr", against=args.against or "width",
                    bootstrap=args.bootstrap or 1000, seed=args.seed, level=args.level, source=str(args.source))
    result.notes += source.notes
    if args.save:
        save_fit(result, args.save)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    if args.save and not args.json:
        print(f"saved {args.save} (use it with sweep.rules_from={args.save})")
    return 0


def _names(spec: str | None) -> list[str] | None:
    """--fit-on 'a,b' as ['a', 'b'] (None when not given; [] when it names nothing)."""
    return None if spec is None else [name.strip() for name in spec.split(",") if name.strip()]


def _fit(args: argparse.Namespace, source: Any) -> Any:
    from scaling.analysis import fit

    require_spread(source.runs, args.law)
    result = fit(source.runs, args.law, curves=source.curves, bootstrap=args.bootstrap, holdout=args.holdout,
                 seed=args.seed, level=args.level, frontier=args.frontier, **_law_options(args))
    result.fit_info["notes"] = source.notes + result.fit_info.get("notes", [])
    return result


def require_spread(runs: Any, law: str) -> None:
    """Refuse runs that all have the same sizes (N, D or C the law reads): no exponent can be fitted to them."""
    from scaling.analysis.hygiene import exclusion_reasons
    from scaling.analysis.laws import PARAMETRIC_LAWS, get_law

    variables = [v for v in get_law(law).variables if v in runs.columns] if law in PARAMETRIC_LAWS else []
    usable = runs[exclusion_reasons(runs, [*variables, "loss"]) == ""] if variables and "loss" in runs else runs[:0]
    if len(usable) > 1 and all(usable[v].nunique() <= 1 for v in variables):
        varying = [name for name, column in SINGLE_LAWS.items() if column in usable and usable[column].nunique() > 1]
        instead = f" (or a law of what does vary: --law {varying[0]})" if varying else ""
        raise UsageError(f"the {len(usable)} usable runs do not vary {' or '.join(variables)} (all the same), so law "
                         f"{law} cannot be fitted; fit runs of different sizes{instead}")


def _law_options(args: argparse.Namespace) -> dict:
    if args.law in ("chinchilla", "kaplan"):
        return {"delta": args.delta}
    if args.law in ("compute", "params", "data"):
        return {"delta": args.delta, "irreducible": {"yes": True, "no": False}.get(args.irreducible, "auto")}
    return {}


def _predictions(result: Any, spec: str | None) -> Any:
    if not spec:
        return None
    try:
        budgets = [float(x) for x in spec.split(",")]
    except ValueError:
        raise UsageError(f"--predict {spec!r}: give compute budgets such as 1e21,1e22") from None
    if result.samples is not None:
        return result.predict_interval(C=budgets)
    predicted = result.predict(C=budgets)
    return predicted if hasattr(predicted, "to_dict") else {"C": budgets, "loss": list(predicted)}


def _print_result(args: argparse.Namespace, result: Any, predictions: Any) -> None:
    if args.json:
        out = result.to_dict()
        if predictions is not None:
            out["predictions"] = _records(predictions)
        print(json.dumps(out, indent=2))
        return
    print(result.summary())
    if "targets" in result.details:
        from scaling.analysis.targets import target_lines

        print("\n".join(target_lines(result.details["targets"])))
    if predictions is not None:
        print("predictions:")
        print(predictions.to_string(index=False) if hasattr(predictions, "to_string") else predictions)


def _records(predictions: Any) -> Any:
    from scaling.analysis.result import json_safe

    return json_safe(predictions.to_dict(orient="records") if hasattr(predictions, "to_dict") else predictions)


def _print_comparison(args: argparse.Namespace, source: Any) -> int:
    from scaling.analysis import compare
    from scaling.analysis.summary import format_comparison

    comparison = compare(source.runs, curves=source.curves, bootstrap=args.bootstrap, seed=args.seed,
                         level=args.level)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison))
    return 0


COMMAND = Command(name="fit", synopsis="SOURCE", help="fit a scaling law to a sweep folder or a CSV/Parquet table",
                  arguments=arguments, run=run)
