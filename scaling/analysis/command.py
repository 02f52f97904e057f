"""`scaling fit SOURCE ...`: the command-line face of the analysis package.

    scaling fit runs/quickstart --law compute --holdout 2 --json
    scaling fit chinchilla.csv --columns 'N=Model Size,C=Training FLOP,loss=loss' --bootstrap 1000
    scaling fit runs/ladder --compare

Errors (a bad table, an unknown column, too few runs) are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from scaling.analysis import compare, fit
from scaling.analysis.hygiene import AnalysisError
from scaling.analysis.laws import LAW_NAMES
from scaling.analysis.result import json_safe
from scaling.analysis.summary import format_comparison
from scaling.analysis.source import read_source


def _holdout(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs or a fraction") from None
    return int(value) if value >= 1 and value == int(value) else value


def configure_fit_parser(parser: argparse.ArgumentParser) -> None:
    """Add `scaling fit`'s arguments to parser."""
    parser.add_argument("source", help="a sweep folder (runs/NAME) or a CSV/TSV/Parquet run table")
    parser.add_argument("--law", default="chinchilla", choices=LAW_NAMES,
                        help="chinchilla or kaplan: L(N, D); compute, params, data: L(C), L(N), L(D); "
                             "isoflop, envelope: Chinchilla's approaches 2 and 1 (default: chinchilla)")
    parser.add_argument("--columns", help="rename the table's columns: 'N=Model Size,C=Training FLOP,loss=loss' "
                                          "(D = C / (6 N) when only N and C are given)")
    parser.add_argument("--where", help="keep only rows matching a pandas query, e.g. \"family == 'gpt'\"")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="B",
                        help="bootstrap replicates (runs resampled) for confidence intervals")
    parser.add_argument("--holdout", type=_holdout, metavar="K",
                        help="backtest: hold out the K highest-compute runs (or a fraction, e.g. 0.2)")
    parser.add_argument("--compare", action="store_true",
                        help="fit chinchilla, isoflop and envelope where the table allows; compare N_opt exponents")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log loss (default 1e-3)")
    parser.add_argument("--no-E", dest="irreducible", action="store_false",
                        help="one-variable laws without the irreducible loss E (pure power law)")
    parser.add_argument("--frontier", action="store_true",
                        help="first keep only the runs on the compute frontier (for --law compute on a grid sweep)")
    parser.add_argument("--predict", metavar="C[,C...]",
                        help="also print predictions (and intervals with --bootstrap) at these compute budgets")


def run_fit(args: argparse.Namespace) -> int:
    """Run `scaling fit`; 0 on success, 2 (with one line on stderr) on a bad table or request."""
    try:
        source = read_source(args.source, columns=args.columns, where=args.where,
                             curves=args.compare or args.law == "envelope")
        if args.compare:
            return _print_comparison(args, source)
        result = fit(source.runs, args.law, curves=source.curves, bootstrap=args.bootstrap, holdout=args.holdout,
                     seed=args.seed, level=args.level, frontier=args.frontier, **_law_options(args))
        result.fit_info["notes"] = source.notes + result.fit_info.get("notes", [])
        predictions = _predictions(result, args.predict)
    except (AnalysisError, ValueError, FileNotFoundError) as error:
        print(f"scaling fit: error: {error}", file=sys.stderr)
        return 2
    _print_result(args, result, predictions)
    return 0


def _law_options(args: argparse.Namespace) -> dict:
    if args.law in ("chinchilla", "kaplan"):
        return {"delta": args.delta}
    if args.law in ("compute", "params", "data"):
        return {"delta": args.delta, "irreducible": args.irreducible}
    return {}


def _predictions(result, spec: str | None):
    if not spec:
        return None
    try:
        budgets = [float(x) for x in spec.split(",")]
    except ValueError:
        raise AnalysisError(f"--predict {spec!r}: give compute budgets such as 1e21,1e22") from None
    if result.samples is not None:
        return result.predict_interval(C=budgets)
    predicted = result.predict(C=budgets)
    return predicted if hasattr(predicted, "to_dict") else {"C": budgets, "loss": list(predicted)}


def _print_result(args: argparse.Namespace, result, predictions) -> None:
    if args.json:
        out = result.to_dict()
        if predictions is not None:
            out["predictions"] = _records(predictions)
        print(json.dumps(out, indent=2))
        return
    print(result.summary())
    if predictions is not None:
        print("predictions:")
        print(predictions.to_string(index=False) if hasattr(predictions, "to_string") else predictions)


def _records(predictions):
    return json_safe(predictions.to_dict(orient="records") if hasattr(predictions, "to_dict") else predictions)


def _print_comparison(args: argparse.Namespace, source) -> int:
    comparison = compare(source.runs, curves=source.curves, bootstrap=args.bootstrap, seed=args.seed,
                         level=args.level)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_comparison(comparison))
    return 0
