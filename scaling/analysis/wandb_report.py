"""`scaling report SOURCE --wandb`: the report as one W&B run in the sweep's group (job type "report").

    settings = report_settings(["logger.project=P"], "runs/quickstart")   # checked before anything is fitted
    lines = log_report(an, written, settings, "runs/quickstart")          # what the command prints

The report run holds:
  runs            the run table as a wandb.Table: run_id, sweep, status, family, N, N_nonembed, D, C, loss,
                  tokens_per_param, then each config key that varies across the runs (dotted: model.width)
  figures/<name>  the report's interactive plotly figures (loss_vs_compute, loss_vs_params, isoflop, ...)
  laws            every fit: law, role, parameter, estimate and its bootstrap interval
  backtest        the runs held out of the backtest: observed and predicted loss, relative error
  summary         the prediction at the target compute (loss, interval, N_opt, D_opt), the allocation
                  exponent a with its interval, the backtest's mean error
  artifact        report.html and the PNG/SVG figures it links to (type "report")

Settings are those of `logger=wandb` (project, entity, mode, tags, dir): conf/logger/wandb.yaml's
defaults, then the logger section the sweep's runs were trained with (so the report joins their
project), then `logger.KEY=VALUE` after --wandb. As for training runs, mode auto is offline without
an API key, and a line says how to `wandb sync` the run. wandb is imported when a report is logged.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from scaling.analysis.analyse import Analysis
from scaling.config import ConfigError, LoggerConfig

SETTINGS = ("project", "entity", "mode", "tags", "dir")
TABLE_BASE = ("run_id", "sweep", "status", "family", "N", "N_nonembed", "D", "C", "loss", "tokens_per_param")
# Config sections and keys that say where and how a run ran, not what it is.
NOT_CONFIG = ("launcher.", "logger.", "run.", "sweep.", "trainer.threads", "trainer.progress", "trainer.devices",
              "trainer.accelerator", "data.cache_dir", "data.root", "data.download")
LAW_COLUMNS = ["law", "role", "parameter", "estimate", "lo", "hi", "level", "n_points"]
BACKTEST_COLUMNS = ["run", "C", "loss", "predicted", "rel_error"]


# ----------------------------------------------------------------------------- settings


def report_settings(tokens: Sequence[str], source: Path | str) -> LoggerConfig:
    """The W&B settings of a report: defaults, then the sweep's runs' logger section, then `tokens`.

    `tokens` are `logger.KEY=VALUE` (KEY one of SETTINGS; tags comma-separated) or `logger=wandb`.
    ConfigError (one line) for an unknown or bad setting, or when wandb is not installed.
    """
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("--wandb needs the wandb package: pip install wandb (or leave --wandb out)") from None
    settings = LoggerConfig(name="wandb", project="scaling")
    trained = runs_logger(source)
    if trained:
        settings = replace(settings, **{k: trained[k] for k in ("project", "entity", "mode", "tags") if k in trained})
    for token in tokens:
        settings = _apply(settings, token)
    from scaling.tracking import resolve_mode

    resolve_mode(settings.mode, True)  # a mode there is not: one line naming the modes
    return settings


def _apply(settings: LoggerConfig, token: str) -> LoggerConfig:
    key, sep, value = token.partition("=")
    if key == "logger" and value == "wandb":
        return settings
    name = key[len("logger."):] if key.startswith("logger.") else ""
    if not sep or name not in SETTINGS or not value:
        raise ConfigError(f"--wandb takes logger.KEY=VALUE settings (KEY: {', '.join(SETTINGS)}), not {token!r}; "
                          "put SOURCE before --wandb")
    if name == "tags":
        return replace(settings, tags=[t for t in re.split(r"[,\[\]\s]+", value) if t])
    return replace(settings, **{name: None if name == "entity" and value in ("null", "None") else value})


def runs_logger(source: Path | str) -> dict[str, Any]:
    """The logger section of the first run under `source` trained with logger=wandb ({} for none, or a file)."""
    from scaling.store import find_run_folders

    path = Path(source)
    if not path.is_dir():
        return {}
    for folder in find_run_folders(path):
        config = _config(folder)
        logger = config.get("logger") or {}
        if logger.get("name") == "wandb":
            return logger
    return {}


def _config(folder: Any) -> dict[str, Any]:
    """A run folder's config, or {} when it has none or it is unreadable (the table shows what there is)."""
    try:
        return folder.read_config()
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------- content


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value} (lists kept whole, as strings)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{dotted}."))
        else:
            out[dotted] = str(value) if isinstance(value, list) else value
    return out


def varying_config(source: Path | str) -> pd.DataFrame:
    """run_id plus each config key whose value differs between the runs under `source` (empty for a file)."""
    from scaling.store import find_run_folders

    path = Path(source)
    folders = find_run_folders(path) if path.is_dir() else []
    rows = [{"run_id": f.path.name, **flat(_config(f))} for f in folders]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["run_id"])
    keep = [c for c in frame.columns if c != "run_id" and not c.startswith(NOT_CONFIG)
            and frame[c].astype(str).nunique() > 1]
    return frame[["run_id", *keep]]


def run_rows(runs: pd.DataFrame, source: Path | str) -> pd.DataFrame:
    """The report run's table: TABLE_BASE columns (tokens_per_param = D / N where missing), then varying config keys."""
    table = runs.copy()
    if "tokens_per_param" not in table.columns and {"N", "D"} <= set(table.columns):
        table["tokens_per_param"] = pd.to_numeric(table["D"]) / pd.to_numeric(table["N"])
    base = [c for c in TABLE_BASE if c in table.columns]
    config = varying_config(source)
    if "run_id" in table.columns and len(config.columns) > 1:
        config = config.assign(run_id=config["run_id"].astype(str))
        return table[base].assign(run_id=table["run_id"].astype(str)).merge(config, on="run_id", how="left")
    extra = [c for c in ("width", "depth", "seed") if c in table.columns and table[c].nunique() > 1]
    return table[base + extra]


def plain(value: Any) -> Any:
    """A table cell W&B can store: Python scalars, None for NaN and missing values."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    return None if pd.isna(value) else str(value)


def law_rows(an: Analysis) -> list[list[Any]]:
    """One row per fitted parameter (and a, b, G) of the main fit and each approach, with its interval."""
    rows = []
    fits = ([(an.law, "main", an.main)] if an.main is not None else []) + \
        [(name, "approach", result) for name, result in an.approaches.items()]
    for name, role, result in fits:
        values = dict(result.params)
        if result.has_allocation:
            values.update(a=result.a, b=result.b, G=result.G)
        for parameter, estimate in values.items():
            lo, hi = (result.ci or {}).get(parameter) or (None, None)
            rows.append([plain(v) for v in (name, role, parameter, estimate, lo, hi, result.level, result.n_points)])
    return rows


def backtest_rows(an: Analysis) -> list[list[Any]]:
    """The backtest's held-out runs: run, C, observed loss, predicted loss, relative error."""
    bt = an.main.backtest if an.main is not None else None
    return [[plain(r.get(c)) for c in BACKTEST_COLUMNS] for r in (bt or {}).get("runs", [])]


def report_summary(an: Analysis) -> dict[str, Any]:
    """The report run's summary: counts, the prediction at the target, the allocation exponent, the backtest."""
    from scaling.analysis.series import target_prediction

    # not "runs", "laws", "backtest": the summary holds the logged tables under those keys
    out: dict[str, Any] = {"law": an.law, "n_runs": len(an.runs), "n_usable": len(an.usable),
                           "n_fitted": an.main.n_points if an.main is not None else 0}
    target = target_prediction(an) or {}
    for key, name in (("C", "target_C"), ("loss", "predicted_loss"), ("lo", "predicted_loss_lo"),
                      ("hi", "predicted_loss_hi"), ("N_opt", "N_opt"), ("D_opt", "D_opt")):
        if key in target:
            out[name] = plain(target[key])
    if an.main is not None and an.main.a is not None:
        out["a"] = an.main.a
        lo_hi = (an.main.ci or {}).get("a")
        if lo_hi:
            out["a_lo"], out["a_hi"] = plain(lo_hi[0]), plain(lo_hi[1])
    bt = an.main.backtest if an.main is not None else None
    if bt:
        out.update(backtest_mean_abs_rel_error=bt["mean_abs_rel_error"],
                   backtest_max_abs_rel_error=bt["max_abs_rel_error"], backtest_held_out=bt["held_out"])
    return {k: v for k, v in out.items() if v is not None}


def plain_arrays(value: Any) -> Any:
    """A figure's JSON with typed arrays ({dtype, bdata[, shape]}, how plotly.py 6+ writes numpy arrays) as lists.

    W&B draws logged figures with its own plotly.js, which need not read typed arrays; lists it always draws.
    """
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            import base64

            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = value.get("shape")
            if shape:
                array = array.reshape([int(n) for n in str(shape).split(",")])
            return array.tolist()
        return {key: plain_arrays(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_arrays(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def report_group(runs: pd.DataFrame, source: Path | str) -> str:
    """The W&B group: the sweep's name (sweeps joined by +), or the source's name for a table without one."""
    sweeps = sorted(map(str, runs["sweep"].dropna().unique())) if "sweep" in runs.columns else []
    return "+".join(sweeps) if sweeps else Path(str(source)).stem


# ----------------------------------------------------------------------------- logging


def log_report(an: Analysis, written: dict[str, Any], settings: LoggerConfig, source: Path | str) -> list[str]:
    """Log the report run (tables, figures, summary, artifact) and finish it; the lines to print.

    `written` is write_report's answer (report.html and the figure files). W&B writes its run into
    `settings.dir`, else the report's folder (`<folder>/wandb/offline-run-*` when offline).
    """
    import plotly.graph_objects as go
    import wandb

    from scaling.analysis.interactive import plotly_figures
    from scaling.tracking import choose_mode, finish_active_run

    mode, why_offline = choose_mode(settings.mode)
    group, html = report_group(an.runs, source), Path(written["html"])
    folder = Path(settings.dir) if settings.dir else html.parent
    folder.mkdir(parents=True, exist_ok=True)
    finish_active_run()
    try:
        run = wandb.init(project=settings.project, entity=settings.entity, group=group, job_type="report",
                         name=f"report-{an.law}", tags=list(dict.fromkeys([*settings.tags, "report"])),
                         config={"source": str(source), "law": an.law, "target_C": plain(an.target_C),
                                 "level": an.level}, dir=str(folder), mode=mode, settings=wandb.Settings(silent=True))
    except wandb.Error as error:
        raise ConfigError(f"W&B refused the report run: {error}; check logger.project/entity or use "
                          "logger.mode=offline") from None
    try:
        table = run_rows(an.runs, source)
        logged = {"runs": wandb.Table(columns=list(table.columns),
                                      data=[[plain(v) for v in row] for row in table.itertuples(index=False)]),
                  "laws": wandb.Table(columns=LAW_COLUMNS, data=law_rows(an))}
        if backtest_rows(an):
            logged["backtest"] = wandb.Table(columns=BACKTEST_COLUMNS, data=backtest_rows(an))
        logged.update({f"figures/{name}": wandb.Plotly(go.Figure(plain_arrays(figure.to_plotly_json())))
                       for name, figure in plotly_figures(an).items()})
        run.log(logged)
        run.summary.update(report_summary(an))
        artifact = wandb.Artifact(_artifact_name(group), type="report", metadata={"source": str(source), "law": an.law},
                                  description=f"scaling report of {group}: report.html and its figures")
        for path in [html, *written["figures"]]:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
    except BaseException:
        _finish(run, 1)
        raise
    _finish(run, 0)
    return [_where(run, group, why_offline, settings)]


def _finish(run: Any, exit_code: int) -> None:
    """Finish the run and stop W&B's service process: only then is the offline run's file complete on disk
    (run.finish() can return before the service has flushed it)."""
    import wandb

    run.finish(exit_code=exit_code)
    wandb.teardown()


def _artifact_name(group: str) -> str:
    return "report-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", group)


def _where(run: Any, group: str, why_offline: str, settings: LoggerConfig) -> str:
    if getattr(run, "offline", False) or run.settings.mode == "offline":
        return (f"W&B report run {run.id} (group {group}, project {settings.project}) is offline{why_offline}: "
                f"upload it with `wandb sync {run.settings.sync_dir}`")
    return f"W&B report run {run.id} (group {group}): {run.url}"

