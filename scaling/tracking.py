"""Weights & Biases: what runs and reports send to W&B, and the run table pulled back from it.

    logger=wandb                      scaling.train.wandb_logger.make_loggers(spec): a training run's W&B run,
                                      whose config is run_config(spec) and whose summary is run_summary(...)
    scaling report SRC --wandb        scaling.analysis.wandb_report: one report run in the sweep's group
    load_runs("wandb:ENT/PROJ/GRP")   pull_runs("wandb:ENT/PROJ/GRP") -> the run table (scaling pull writes it)

One W&B run per training attempt from scratch: its id is `<run_id>-<attempt>`, and an attempt that
resumes from a checkpoint reuses the id of the attempt it continues (resume="allow"), so a
resumed run continues its curve. The group is the sweep's name; the config the resolved run config
plus the run's size (N, N_nonembed, D, C, tokens_per_param) and `axes`, the value of each key its
sweep varies, so that W&B's grouping, parallel-coordinates and scatter panels see them; the
summary the run's row of the run table (its record's plain fields: N, N_nonembed, D, C,
status, ...) when the attempt starts, with the final status and loss when it ends: what `pull_runs`
reads back. Without an API key runs are kept offline (`<folder>/wandb/offline-run-*`) and a line
says how to `wandb sync` them. Every W&B run is finished when its training ends, fails or is
interrupted, so runs trained one after another in one process (the local launcher's workers) never
write into each other. This module imports neither Lightning nor wandb (wandb only when called).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import pandas as pd

from scaling.config import Config, ConfigError, to_dict
from scaling.plan import RunSpec
from scaling.store import TABLE_COLUMNS, RunFolder

MODES = ("auto", "online", "offline", "disabled")
# W&B run state -> run-table status, for runs whose summary has no status of ours.
STATE_TO_STATUS = {"finished": "completed", "failed": "failed", "crashed": "failed", "killed": "failed",
                   "running": "running", "pending": "planned", "preempted": "failed"}
# Summary keys that W&B and Lightning add and that are not run-table columns.
_SKIP_SUMMARY = {"epoch", "trainer/global_step"}
_INT_COLUMNS = ("width", "depth", "seed", "N", "N_nonembed", "D", "D_unique", "steps", "step")
SIZE_KEYS = ("N", "N_nonembed", "D", "C", "tokens_per_param", "unit")  # a training run's size, atop its W&B config
NO_KEY = " (no API key found; `wandb login` to log online)"


# --------------------------------------------------------------------------- logging


def api_key_available() -> bool:
    """Whether W&B has credentials (environment, ~/.netrc or settings); never prompts, never goes online."""
    import wandb

    try:
        return bool(wandb.login(prompt=False, verify=False))
    except Exception:  # a malformed key is as good as none for choosing the mode
        return False


def resolve_mode(mode: str, key_available: bool) -> Optional[str]:
    """The mode passed to wandb.init: auto is offline without a key, else W&B's own default (None)."""
    if mode not in MODES:
        raise ConfigError(f"logger.mode={mode} is not a mode; use one of {', '.join(MODES)}")
    if mode == "auto":
        return None if key_available else "offline"
    return mode


def choose_mode(mode: str) -> tuple[Optional[str], str]:
    """(the mode for wandb.init, why it is offline when that is for want of an API key, else "")."""
    key = api_key_available() if mode == "auto" else True
    return resolve_mode(mode, key), "" if key else NO_KEY


def sweep_axes(cfg: Config, unit: str) -> list[str]:
    """The dotted config keys a run's sweep sets per run: its mode's keys, its axes, then its rules.

    [] for a single run (sweep.mode=none). `unit` is the data's unit (the budget key of mode=data).
    """
    from scaling.ladder import point_keys
    from scaling.plan import sweep_points

    sweep = cfg.sweep
    if sweep.mode == "none":
        return []
    try:
        keys = point_keys(sweep) if sweep.mode == "ladder" else [key for point in sweep_points(sweep, unit)
                                                                 for key in point]
    except ConfigError:  # a run planned by an older version: its axes and rules still name what varies
        keys = []
    return list(dict.fromkeys([*keys, *sweep.axes, *sweep.rules]))


def config_value(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key of a nested config dict (None where it is absent)."""
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_config(spec: RunSpec) -> dict[str, Any]:
    """A training run's W&B config: the resolved run config, its size (SIZE_KEYS) at the top, and `axes`
    ({dotted key: this run's value} for each key the sweep varies)."""
    config, summary = to_dict(spec.cfg), spec.summary()
    axes = {key: config_value(config, key) for key in sweep_axes(spec.cfg, spec.unit)}
    return {**config, **{key: summary[key] for key in SIZE_KEYS}, "axes": axes}


def wandb_run_id(spec: RunSpec) -> str:
    """`<run_id>-<attempt>`: a fresh attempt gets a new id, a resumed one the id of the attempt it continues.

    Read before train() records the new attempt: once a checkpoint exists every later attempt
    resumes, so the last fresh attempt is the number of attempts minus the number of resumes.
    """
    folder = RunFolder(spec.path)
    record = folder.read_record()
    attempts = int(record.get("attempts") or 0)
    if folder.last_checkpoint.exists() and attempts:
        return f"{spec.run_id}-{max(1, attempts - len(record.get('resumes') or []))}"
    return f"{spec.run_id}-{attempts + 1}"


def run_summary(spec: RunSpec, record: dict[str, Any]) -> dict[str, Any]:
    """A W&B run's summary: the run's record (its plain fields, as in the run table) and the RunSpec's summary."""
    fields = {key: value for key, value in record.items() if _scalar(value)}
    return {**fields, **spec.summary()}


def finish_active_run() -> None:
    """Finish a W&B run this process left open (so the next run never writes into it)."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


# ----------------------------------------------------------------------------- pulling


def parse_wandb_path(text: str) -> tuple[str, str, Optional[str]]:
    """'wandb:ENTITY/PROJECT[/GROUP]' -> (entity, project, group or None)."""
    body = text[len("wandb:"):] if text.startswith("wandb:") else None
    parts = body.strip("/").split("/") if body else []
    if body is None or len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"{text!r} is not a W&B path; write wandb:ENTITY/PROJECT or wandb:ENTITY/PROJECT/GROUP "
                         "(GROUP is the sweep name)")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def run_row(run: Any) -> dict[str, Any]:
    """One run-table row from a W&B run (its config, summary, group, state, name and id)."""
    config = dict(run.config or {})
    summary = {key: value for key, value in run.summary.items()}
    model = config.get("model") or {}
    row = {col: summary.get(col) for col in TABLE_COLUMNS}
    row.update(run_id=summary.get("run_id") or run.name, sweep=run.group or (config.get("sweep") or {}).get("name"),
               family=row["family"] or model.get("family"), width=_first(row["width"], model.get("width")),
               depth=_first(row["depth"], model.get("depth")), seed=_first(row["seed"], config.get("seed")))
    state = str(run.state).lower()
    row["status"] = summary.get("status")
    if row["status"] in (None, "running") and state != "running":  # a run that died without saying so
        row["status"] = STATE_TO_STATUS.get(state, state)
    for key, value in summary.items():
        if key not in row and not key.startswith("_") and key not in _SKIP_SUMMARY and _scalar(value):
            row[key] = value
    row.update(wandb_id=run.id, wandb_state=run.state)
    return row


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _one_per_run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one W&B run per run_id: the completed one, else the last one (runs come oldest first)."""
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = chosen.get(row["run_id"])
        if held is None or held.get("status") != "completed" or row.get("status") == "completed":
            chosen[row["run_id"]] = row
    return list(chosen.values())


def runs_to_table(runs: Iterable[Any], group: Optional[str] = None) -> pd.DataFrame:
    """The run table (load_runs' columns first) from W&B run objects, one row per run_id."""
    rows = [run_row(run) for run in runs if group is None or run.group == group]
    table = pd.DataFrame(_one_per_run(rows), columns=None if rows else TABLE_COLUMNS)
    for col in _INT_COLUMNS:
        if col in table.columns and table[col].notna().all():
            table[col] = table[col].astype("int64")
    for col in ("C", "loss"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table.sort_values(["sweep", "run_id"], kind="stable").reset_index(drop=True)


def pull_runs(path: str, api: Any = None) -> pd.DataFrame:
    """The run table of a W&B project (or one group = one sweep) from the W&B API.

    `path` is wandb:ENTITY/PROJECT[/GROUP]; `api` is a wandb.Api (made here when None).
    """
    entity, project, group = parse_wandb_path(path)
    if api is None:
        import wandb

        api = wandb.Api()
    runs = api.runs(f"{entity}/{project}", filters={"group": group} if group else None)
    return runs_to_table(runs, group)
