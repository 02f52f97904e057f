"""logger=wandb for training: Lightning's WandbLogger for one run (RunLogger), and the loggers train() asks for.

    make_loggers(spec) -> [RunLogger]   (train()'s loggers_factory under logger=wandb)

What a run sends (id, group, config, summary, offline mode) is decided in `scaling.tracking`, which
imports no Lightning so that pulling and reporting never pay for it; this module is the Lightning side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from scaling.config import ConfigError
from scaling.plan import RunSpec
from scaling.store import RunFolder
from scaling.tracking import choose_mode, finish_active_run, run_config, run_summary, wandb_run_id


class RunLogger(WandbLogger):
    """Lightning's WandbLogger for one run: writes the run-table summary and always finishes its W&B run.

    Lightning calls `finalize("success")` after fit and again after a later validate, and
    `finalize("failed")` on any exception. The run is finished on failure at once, and on success
    once the validation at the final step is logged (fit validates at its last step; train()
    validates after fit only when that did not happen, as when resuming a run that reached it). `make_loggers` finishes any W&B run still open before
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
        # Lightning logs a validation inside fit at the optimizer steps made before the last one
        # (final_step - 1 at the end of fit), and one after fit (trainer.validate) at final_step
        if status == "success" and (self._last_val_step or 0) < self._final_step - 1:
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




def make_loggers(spec: RunSpec) -> list[Any]:
    """The Lightning loggers for `spec` under its `logger` config ([] for logger=local).

    logger=wandb: one RunLogger (project, entity, group = sweep name, job type "train", tags,
    name = run_id, id = run_id-attempt, config = `run_config(spec)`, dir = the run folder).
    """
    cfg = spec.cfg.logger
    if cfg.name == "local":
        return []
    if cfg.name != "wandb":
        raise ConfigError(f"logger={cfg.name} is not a logger; use local or wandb")
    finish_active_run()
    mode, why_offline = choose_mode(cfg.mode)
    folder = Path(cfg.dir) if cfg.dir else spec.path
    folder.mkdir(parents=True, exist_ok=True)
    sweep_root = Path(spec.cfg.run.root) / spec.cfg.sweep.name
    hint = "" if spec.cfg.sweep.mode == "none" else f" (the whole sweep: wandb sync {sweep_root}/*/wandb/offline-run-*)"
    tags = [*cfg.tags, spec.cfg.model.family, spec.cfg.data.name]
    return [RunLogger(spec=spec, sync_hint=hint,
                      why_offline=why_offline,
                      project=cfg.project, entity=cfg.entity, group=spec.cfg.sweep.name, job_type="train",
                      tags=list(dict.fromkeys(tags)), name=spec.run_id, id=wandb_run_id(spec),
                      config=run_config(spec), dir=str(folder), save_dir=str(folder), mode=mode)]
