"""Registered predictions: a fitted law's prediction of a run before it is trained, written once and scored
when the run completes.

    runs/<sweep>/predictions/<name>.json      (written by `scaling predict`, never overwritten)

One module owns the concept: what a target is (`parse_target`, `resolve_target`, `target_rows`), the
prediction at it (`predict_target`), the file (`prediction_record`, `write_prediction`,
`load_predictions`) and its scoring against the run table (`score`, `prediction_rows`).
Only the standard library at import time: `scaling status` reads these files.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from scaling.store import DONE, ENDED

FOLDER = "predictions"
FORMAT = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
POINT_KEYS = ("N", "D", "C")
ENDED_STATES = sorted(status.value for status in ENDED | DONE)  # a run that will not train on by itself
MATCH_TOL = 1e-3  # a run has a point's N and D when both agree to this relative tolerance
TARGET_HELP = ("a compute budget (3.3e12), a point (N=150000,D=3e6[,C=...]) or a run_id (or a unique prefix; "
               "run:ID when it reads as a number)")


@dataclass
class Target:
    """What a prediction is of: a compute budget, a point (N, D) or a run of the sweep."""

    kind: str  # "compute" | "point" | "run"
    spec: str  # as the user wrote it
    C: Optional[float] = None
    N: Optional[float] = None
    D: Optional[float] = None
    run_id: Optional[str] = None
    budget_flops: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def label(self) -> str:
        """A short text for tables: 'C 3.3e+12', 'N 150,000, D 3e+06' or 'run 1462f355c3'."""
        if self.kind == "compute":
            return f"C {self.C:.3g}"
        if self.kind == "point":
            return f"N {self.N:,.0f}, D {self.D:.3g}"
        return f"run {self.run_id}"


def parse_target(text: str) -> Target:
    """The target as written: a number is a compute budget, KEY=VALUE pairs a point, anything else a run_id
    (prefix). ValueError, saying how to write it, for anything malformed."""
    spec = text.strip()
    if spec.startswith("run:"):
        return _run_target(spec, spec[4:].strip())
    if "=" in spec:
        values = _point_values(spec)
        if set(values) == {"C"}:
            return Target("compute", spec, C=values["C"])
        if not {"N", "D"} <= set(values):
            raise ValueError(f"--target {spec!r} gives {', '.join(values)}; a point needs N and D "
                             "(N=150000,D=3e6), a compute budget is one number (3.3e12)")
        return Target("point", spec, **values)
    number = _number(spec)
    if number is not None:
        return Target("compute", spec, C=_positive("C", number, spec))
    return _run_target(spec, spec)


def _run_target(spec: str, run_id: str) -> Target:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", run_id):
        raise ValueError(f"--target {spec!r} is not {TARGET_HELP}")
    return Target("run", spec, run_id=run_id)


def _point_values(spec: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, text = part.partition("=")
        key, number = key.strip(), _number(text.strip())
        if key not in POINT_KEYS or key in values:
            raise ValueError(f"--target {spec!r}: {key!r} is not one of N, D, C (each once); write N=150000,D=3e6")
        if number is None:
            raise ValueError(f"--target {spec!r}: {key}={text.strip()!r} is not a number")
        values[key] = _positive(key, number, spec)
    return values


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _positive(key: str, value: float, spec: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--target {spec!r}: {key} must be a positive finite number")
    return value


def resolve_target(target: Target, runs: Any) -> Target:
    """The target with the facts the run table gives: a run's N, D, C and budget (its run_id completed from a
    unique prefix); a point's C from 6ND when not given. ValueError for a run the table does not have."""
    if target.kind == "point" and target.C is None:
        _point_compute(target, runs)
    if target.kind == "compute":
        _maybe_run_too(target, runs)
    if target.kind != "run":
        return target
    ids = [str(r) for r in runs["run_id"]] if "run_id" in runs.columns else []
    found = sorted({r for r in ids if r.startswith(target.run_id)})
    if not found:
        raise ValueError(f"--target {target.spec!r}: no run of the sweep has that run_id; `scaling status` lists "
                         f"them (a number is read as a compute budget)")
    if len(found) > 1:
        raise ValueError(f"--target {target.spec!r} is the start of {len(found)} run_ids ({', '.join(found[:5])}); "
                         "give more of the run_id")
    row = runs[runs["run_id"].astype(str) == found[0]].iloc[0]
    facts = {k: _float(row.get(k)) for k in ("N", "D", "C", "budget_flops")}
    if any(facts[k] is None for k in ("N", "D", "C")):
        raise ValueError(f"run {found[0]} has no N, D and C in its record; plan it again with `scaling sweep`")
    target.run_id = found[0]
    target.N, target.D, target.C, target.budget_flops = facts["N"], facts["D"], facts["C"], facts["budget_flops"]
    return target


def _point_compute(target: Target, runs: Any) -> None:
    """A point's C when not given: that of the sweep's runs with its N and D, else 6ND."""
    matched = runs[target_rows(target, runs)]["C"].map(_float).dropna() if "C" in runs.columns else []
    if len(matched):
        target.C = float(matched.mean())
        target.notes.append("C of the sweep's runs with this N and D")
    else:
        target.C = 6.0 * target.N * target.D
        target.notes.append("C = 6ND (the point gave no C and no run of the sweep has its N and D)")


def _maybe_run_too(target: Target, runs: Any) -> None:
    """A number that is also the start of a run_id (run_ids are hex) is ambiguous: say how to write either."""
    if "run_id" in runs.columns and any(str(r).startswith(target.spec) for r in runs["run_id"]):
        raise ValueError(f"--target {target.spec!r} reads as a compute budget and as the start of a run_id; "
                         f"write C={target.spec} or run:{target.spec}")


def _float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _same(a: Optional[float], b: Optional[float], tol: float) -> bool:
    return a is not None and b is not None and abs(a - b) <= tol * max(abs(a), abs(b))


def target_rows(target: Target, runs: Any) -> Any:
    """A boolean mask of the runs that are the target: the run; the runs of the budget (budget_flops); the runs
    with the point's N and D. A prediction is never fitted on them, and is scored against them."""
    import pandas as pd

    from scaling.ladder import is_target

    def column(name: str) -> pd.Series:
        return runs[name].map(_float) if name in runs.columns else pd.Series(None, index=runs.index, dtype=object)

    if target.kind == "run":
        return runs["run_id"].astype(str) == target.run_id
    if target.kind == "compute":
        return column("budget_flops").map(lambda b: is_target(b, [target.C])).astype(bool)
    return (column("N").map(lambda n: _same(n, target.N, MATCH_TOL))
            & column("D").map(lambda d: _same(d, target.D, MATCH_TOL))).astype(bool)


# --------------------------------------------------------------------------- the prediction


def check_law(law: str, variables: tuple[str, ...], target: Target) -> None:
    """ValueError when `law` (reading `variables`) cannot predict the loss at the target."""
    if target.kind == "compute":
        if "C" not in variables and not {"N", "D"} <= set(variables):
            raise ValueError(f"law {law} has no loss at a compute budget (it reads {', '.join(variables)} and gives "
                             "no compute-optimal allocation); use --law chinchilla, kaplan or compute, or a point "
                             "or run target")
    elif not set(variables) <= {"N", "D", "C"}:
        raise ValueError(f"law {law} reads {', '.join(variables)}; a target gives N, D and C only")


def predict_target(result: Any, target: Target, variables: tuple[str, ...], fitted: Any) -> dict[str, Any]:
    """The loss the fitted law predicts at the target, with its bootstrap interval when the fit has draws.

    At a compute budget a law of N and D is evaluated at its compute-optimal allocation. The allocation
    counts C = 6ND; the sweep counts FLOPs its own way, so C is first converted with the fitted runs'
    C / 6ND at the size the law picks (`C_per_6ND`).
    """
    import numpy as np

    if target.kind == "compute" and "C" not in variables:
        return _allocation_prediction(result, target.C, fitted)
    columns = {v: [getattr(target, v)] for v in variables}
    with np.errstate(all="ignore"):
        if result.samples is None:
            return _loss_entry(float(np.ravel(result.predict(**columns))[0]), None, None)
        frame = result.predict_interval(**columns).iloc[0]
    return _loss_entry(float(frame["estimate"]), float(frame["lo"]), float(frame["hi"]))


def _allocation_prediction(result: Any, C: float, fitted: Any) -> dict[str, Any]:
    import numpy as np

    ratio = 1.0
    N, r = _c_per_6nd(fitted)
    for _ in range(3):  # the ratio at the size the allocation picks, which depends on the ratio
        n_opt = float(result.optimal([C / ratio])["N_opt"].iloc[0])
        ratio = float(np.interp(np.log(n_opt), np.log(N), r)) if len(N) else 1.0
    with np.errstate(all="ignore"):
        frame = (result.predict_interval(C=[C / ratio]) if result.samples is not None
                 else result.optimal([C / ratio])).iloc[0]
    entry = _loss_entry(float(frame["loss"]), _float(frame.get("loss_lo")), _float(frame.get("loss_hi")))
    entry.update(N_opt=float(frame["N_opt"]), D_opt=float(frame["D_opt"]), C_per_6ND=ratio, C_6ND=C / ratio)
    for key in ("N_opt_lo", "N_opt_hi", "D_opt_lo", "D_opt_hi"):
        if key in frame.index:
            entry[key] = _float(frame[key])
    return entry


def _c_per_6nd(fitted: Any) -> tuple[Any, Any]:
    """(N, C / 6ND) of the fitted runs, sorted by N (averaged per N), for interpolation in log N."""
    import numpy as np
    import pandas as pd

    frame = fitted[["N", "D", "C"]].apply(pd.to_numeric, errors="coerce").dropna()
    frame = frame[(frame > 0).all(axis=1)]
    ratio = (frame["C"] / (6.0 * frame["N"] * frame["D"])).groupby(frame["N"]).mean().sort_index()
    return np.asarray(ratio.index, dtype=float), ratio.to_numpy(dtype=float)


def _loss_entry(loss: float, lo: Optional[float], hi: Optional[float]) -> dict[str, Any]:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return {"loss": loss, "lo": None, "hi": None, "interval": "none: fitted with --bootstrap 0"}
    entry = {"loss": loss, "lo": lo, "hi": hi,
             "interval": "bootstrap percentile interval of the law's prediction (parameter uncertainty only)"}
    if not lo <= loss <= hi:  # a percentile interval can miss an unstable fit's own estimate: say so
        entry["outside_interval"] = True
    return entry


def project_version() -> dict[str, Any]:
    """scaling's version and, when the package is a git checkout, the commit of its source tree (and whether it
    has uncommitted changes); None where git or the checkout is missing."""
    import scaling

    package = Path(scaling.__file__).resolve().parent
    commit, dirty = None, None
    top = _git(package, "rev-parse", "--show-toplevel")
    if top and _git(Path(top), "ls-files", "--error-unmatch", str(package / "__init__.py")) is not None:
        commit = _git(Path(top), "rev-parse", "HEAD")
        changes = _git(Path(top), "status", "--porcelain", "--untracked-files=no", "--", str(package))
        dirty = None if changes is None else bool(changes)
    return {"scaling": scaling.__version__, "git_commit": commit, "git_dirty": dirty}


def _git(folder: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def prediction_record(name: str, source: str, result: Any, target: Target, predicted: dict[str, Any],
                      excluded: list[dict], options: dict[str, Any]) -> dict[str, Any]:
    """The prediction file's content (format 1): provenance, the law, the runs fitted, the target, the loss."""
    from scaling.analysis.result import json_safe

    allocation = {k: getattr(result, k) for k in ("a", "b", "G")} if result.has_allocation else {}
    return json_safe({
        "format": FORMAT, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": project_version(), "source": str(source), "law": result.law, "formula": result.formula,
        "params": result.params, "allocation": allocation, "intervals": result.ci, "level": result.level,
        "bootstrap": options.get("bootstrap", 0), "seed": options.get("seed"), "frontier": options.get("frontier"),
        "fitted_runs": [str(r) for r in result.runs], "n_fitted": result.n_points, "excluded": excluded,
        "warnings": result.warnings, "target": {k: v for k, v in asdict(target).items()},
        "predicted": predicted})


# --------------------------------------------------------------------------- the file


def prediction_path(folder: Path | str, name: str) -> Path:
    """Where prediction `name` of a sweep folder lives; ValueError for a name that is not a plain file name."""
    if not NAME.match(name) or name.endswith(".json"):
        raise ValueError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (a file name without .json), "
                         "e.g. --name top-budget")
    return Path(folder) / FOLDER / f"{name}.json"


def write_prediction(folder: Path | str, record: dict[str, Any]) -> Path:
    """Write the prediction into `folder`/predictions/ once: the complete file appears under its name
    atomically, and FileExistsError if that name is taken (an existing prediction is never replaced)."""
    path = prediction_path(folder, record["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(str(path))
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)  # fails with EEXIST if the name appeared meanwhile: never a replace
    finally:
        os.unlink(temporary)
    return path


def load_predictions(folder: Path | str) -> list[dict[str, Any]]:
    """The predictions registered in a sweep folder, oldest first; an unreadable file is listed by its name
    with an `error`."""
    found = []
    for path in sorted((Path(folder) / FOLDER).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or "target" not in record or "predicted" not in record:
                raise ValueError("not a prediction file")
        except (OSError, ValueError) as error:
            record = {"name": path.stem, "error": f"{path}: {error}"}
        found.append({**record, "path": str(path)})
    return sorted(found, key=lambda r: (r.get("created") or "", r["name"]))


# --------------------------------------------------------------------------- scoring


def score(prediction: dict[str, Any], runs: Any) -> dict[str, Any]:
    """The prediction against the run table: state 'scored' (observed loss, the runs it comes from, relative
    error (predicted - observed) / observed, whether the interval covered it) or 'pending' (and why)."""
    if "error" in prediction:
        return {"state": "unreadable", "why": prediction["error"]}
    observed, used, why = _observed(Target(**prediction["target"]), runs)
    if observed is None:
        return {"state": "pending", "why": why}
    predicted = prediction["predicted"]
    return {"state": "scored", "observed": observed, "runs": used,
            "rel_error": (predicted["loss"] - observed) / observed,
            "covered": coverage(predicted.get("lo"), predicted.get("hi"), observed)}


def coverage(lo: Optional[float], hi: Optional[float], observed: float) -> Optional[bool]:
    """Whether the interval [lo, hi] holds the observed loss; None without an interval."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return bool(lo <= observed <= hi)


def coverage_word(covered: Optional[bool]) -> str:
    """How tables say it: covered, not covered, or no interval."""
    return "no interval" if covered is None else "covered" if covered else "not covered"


def _observed(target: Target, runs: Any) -> tuple[Optional[float], list[str], str]:
    """(observed loss, its runs, why there is none): the run's loss; the best completed run of the budget once
    every run of it has ended; the mean of the completed runs (seeds) at the point."""
    rows = runs[target_rows(target, runs)]
    what = f"budget {target.C:.3g}" if target.kind == "compute" else target.label()
    if not len(rows):
        return None, [], f"{what} is not in the sweep" if target.kind == "run" else f"no run of {what} in the sweep"
    status, loss = rows["status"].astype(str), rows["loss"].map(_float)
    done = (status == "completed") & loss.notna()
    if target.kind == "compute" and not status.isin(ENDED_STATES).all():
        return None, [], f"{int(done.sum())} of {len(rows)} runs of {what} completed"
    if not done.any():
        return None, [], f"{what}: {', '.join(sorted(set(status)))}"
    if target.kind == "compute":
        best = loss[done].astype(float).idxmin()
        return float(loss[best]), [str(rows.at[best, "run_id"])], ""
    return float(loss[done].astype(float).mean()), [str(r) for r in rows["run_id"][done]], ""


def prediction_rows(predictions: list[dict[str, Any]], runs: Any) -> list[dict[str, str]]:
    """Each prediction and its score as table cells: name, target, predicted [interval], observed, error,
    covered (yes / no / pending / no interval)."""
    rows = []
    for prediction in predictions:
        scored = score(prediction, runs)
        if scored["state"] == "unreadable":
            rows.append({"name": prediction["name"], "target": "-", "predicted": "-", "observed": "-", "error": "-",
                         "covered": scored["why"]})
            continue
        p = prediction["predicted"]
        interval = f" [{p['lo']:.4f}, {p['hi']:.4f}]" if p.get("lo") is not None else " (no interval)"
        row = {"name": prediction["name"], "target": Target(**prediction["target"]).label(),
               "predicted": f"{p['loss']:.4f}{interval}", "observed": "-", "error": "-",
               "covered": f"pending ({scored.get('why')})"}
        if scored["state"] == "scored":
            row.update(observed=f"{scored['observed']:.4f}", error=f"{scored['rel_error']:+.2%}",
                       covered=coverage_word(scored["covered"]))
        rows.append(row)
    return rows


def prediction_lines(predictions: list[dict[str, Any]], runs: Any) -> list[str]:
    """The registered predictions as a text table (what `scaling status` and `scaling report` print)."""
    if not predictions:
        return []
    rows = prediction_rows(predictions, runs)
    heads = {"name": "name", "target": "target", "predicted": "predicted [interval]", "observed": "observed",
             "error": "error", "covered": "covered"}
    widths = {k: max(len(heads[k]), *(len(r[k]) for r in rows)) for k in heads if k != "covered"}
    line = lambda r: "  ".join(f"{r[k]:<{w}}" for k, w in widths.items()) + f"  {r['covered']}"  # noqa: E731
    return [f"registered predictions ({len(rows)}):", line(heads), *map(line, rows)]
