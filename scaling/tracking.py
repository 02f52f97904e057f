"""Weights & Biases: log runs with Lightning's WandbLogger, and pull them back as a run table.

    logger=wandb                      make_loggers(spec) -> [RunLogger]  (train() asks for them)
    load_runs("wandb:ENT/PROJ/GRP")   pull_runs("wandb:ENT/PROJ/GRP") -> the run table (scaling pull writes it)

One W&B run per training attempt from scratch: its id is `<run_id>-<attempt>`, and an attempt that
resumes from a checkpoint reuses the id of the attempt it continues (resume="allow"), so a
resumed run continues its curve. The group is the sweep's name, the config the resolved run config,
and the summary the run's row of the run table (its record's plain fields: N, N_nonembed, D, C,
status, ...) when the attempt starts, with the final status and loss when it ends: what `pull_runs`
reads back. Without an API key runs are kept offline in the run folder
(`<run>/wandb/offline-run-*`) and a line says how to `wandb sync` them. Every W&B run is finished
when its training ends, fails or is interrupted, so runs trained one after another in one process
(the local launcher's workers) never write into each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import pandas as pd
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from scaling.config import ConfigError, to_dict
from scaling.plan import RunSpec
from scaling.store import TABLE_COLUMNS, RunFolder

MODES = ("auto", "online", "offline", "disabled")
# W&B run state -> run-table status, for runs whose summary has no status of ours.
STATE_TO_STATUS = {"finished": "completed", "failed": "failed", "crashed": "failed", "killed": "failed",
                   "running": "running", "pending": "planned", "preempted": "failed"}
# Summary keys that W&B and Lightning add and that are not run-table columns.
_SKIP_SUMMARY = {"epoch", "trainer/global_step"}
_INT_COLUMNS = ("width", "depth", "seed", "N", "N_nonembed", "D", "D_unique", "steps", "step")


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


class RunLogger(WandbLogger):
    """Lightning's WandbLogger for one run: writes the run-table summary and always finishes its W&B run.

    Lightning calls `finalize("success")` after fit and again after a later validate, and
    `finalize("failed")` on any exception. The run is finished on failure at once, and on success
    once the validation at the final step is logged (train() validates after fit when fit's last
    validation came earlier, or never came). `make_loggers` finishes any W&B run still open before
    starting a new one, and wandb's exit hook finishes one left at process exit.
    """

    def __init__(self, *, spec: RunSpec, sync_hint: str = "", why_offline: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)  # deprecated in wandb; Lightning always passes it
        self._spec, self._folder = spec, RunFolder(spec.path)
        self._final_step = spec.steps
        self._sync_hint, self._why_offline = sync_hint, why_offline
        self._last: dict[str, float] = {}
        self._last_val_step: Optional[int] = None
        self._closed = False

    @property
    def experiment(self) -> Any:
        """The W&B run (created on first use, rank 0 only; a dummy elsewhere)."""
        fresh = self._experiment is None
        run = WandbLogger.experiment.fget(self)  # type: ignore[attr-defined]
        if fresh and self._experiment is not None:
            self._on_start(run)
        return run

    def _on_start(self, run: Any) -> None:
        # train() has recorded this attempt by now: the summary starts as the run's row does
        run.summary.update({**run_summary(self._spec, self._folder.read_record()), "status": "running"})
        if getattr(run, "offline", False):
            sync_dir = getattr(run.settings, "sync_dir", None) or self.save_dir
            print(f"W&B is offline{self._why_offline}: upload this run with `wandb sync {sync_dir}`{self._sync_hint}",
                  flush=True)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: Optional[int] = None) -> None:
        """Log to W&B and remember the latest values (the summary's final loss comes from them)."""
        if self._closed:
            return
        super().log_metrics(metrics, step)
        for key in ("train_loss", "val_loss", "val_accuracy"):
            if key in metrics:
                self._last[key] = float(metrics[key])
        if "val_loss" in metrics:
            self._last_val_step = step

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Log hyperparameters unless the run is already finished."""
        if not self._closed:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Finish the W&B run on failure, or on success once the final validation is logged."""
        super().finalize(status)
        if self._experiment is None or self._closed:
            return
        if status == "success" and self._last_val_step != self._final_step:
            return  # train() validates at the final step next; finalize("success") comes again after it
        self.close("completed" if status == "success" else "failed")

    @rank_zero_only
    def close(self, status: str) -> None:
        """Write the final summary (status, loss) and finish the W&B run (once)."""
        if self._experiment is None or self._closed:
            return
        self._closed = True
        final = {**run_summary(self._spec, self._folder.read_record()), "status": status, **self._last}
        if "val_loss" in self._last:
            final["loss"] = self._last["val_loss"]
        self._experiment.summary.update(final)
        self._experiment.finish(exit_code=0 if status == "completed" else 1)


def finish_active_run() -> None:
    """Finish a W&B run this process left open (so the next run never writes into it)."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


def make_loggers(spec: RunSpec) -> list[Any]:
    """The Lightning loggers for `spec` under its `logger` config ([] for logger=local).

    logger=wandb: one RunLogger (project, entity, group = sweep name, job type "train", tags,
    name = run_id, id = run_id-attempt, config = the resolved run config, dir = the run folder).
    """
    cfg = spec.cfg.logger
    if cfg.name == "local":
        return []
    if cfg.name != "wandb":
        raise ConfigError(f"logger={cfg.name} is not a logger; use local or wandb")
    finish_active_run()
    key = api_key_available() if cfg.mode == "auto" else True
    mode = resolve_mode(cfg.mode, key)
    folder = Path(cfg.dir) if cfg.dir else spec.path
    folder.mkdir(parents=True, exist_ok=True)
    sweep_root = Path(spec.cfg.run.root) / spec.cfg.sweep.name
    hint = "" if spec.cfg.sweep.mode == "none" else f" (the whole sweep: wandb sync {sweep_root}/*/wandb/offline-run-*)"
    tags = [*cfg.tags, spec.cfg.model.family, spec.cfg.data.name]
    return [RunLogger(spec=spec, sync_hint=hint,
                      why_offline="" if key else " (no API key found; `wandb login` to log online)",
                      project=cfg.project, entity=cfg.entity, group=spec.cfg.sweep.name, job_type="train",
                      tags=list(dict.fromkeys(tags)), name=spec.run_id, id=wandb_run_id(spec),
                      config=to_dict(spec.cfg), dir=str(folder), save_dir=str(folder), mode=mode)]


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
