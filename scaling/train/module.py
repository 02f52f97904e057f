"""The LightningModule that trains any model family."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from scaling.plan import RunSpec
from scaling.train.schedule import schedule_for


class Diverged(RuntimeError):
    """The training loss became NaN or infinite at optimizer step `step`."""

    def __init__(self, loss: float, step: int):
        super().__init__(f"training loss became {loss} at step {step}")
        self.step = step


class ScalingModule(pl.LightningModule):
    """Next-byte prediction for text, classification for images.

    A training step never waits for the device: its loss stays there, kept (with its step) until
    `check_finite` looks at all the kept losses at once (one device-to-host transfer) where
    something is recorded or saved (a logging step, a checkpoint, a validation). A diverged run
    still ends `diverged` at the step where its loss first became NaN or infinite, and nothing
    computed after that step is ever recorded.
    """

    def __init__(self, model: torch.nn.Module, spec: RunSpec):
        super().__init__()
        self.model = model
        self.spec = spec
        self.kind = spec.cfg.data.kind
        if spec.cfg.trainer.compile:
            model.compile()  # in place: the state dict's keys (checkpoints, resume) stay the model's own
        self._unchecked: list[tuple[int, torch.Tensor]] = []  # (step, loss) since the last check
        self._diverged: Optional[tuple[int, float]] = None  # (step, loss) of the first non-finite loss
        self.last_loss: Optional[torch.Tensor] = None  # the latest micro-batch's training loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _logits_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self.model(x)  # text: [B, T, V]; image: [B, classes]
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        _, loss = self._logits_loss(batch)
        # Kept on the device: RecordMetrics reads (and logs) it on logging steps only. A per-step
        # self.log costs Lightning's bookkeeping on every step, and a progress-bar metric a sync.
        self.last_loss = loss.detach()
        self._unchecked.append((self.global_step, self.last_loss))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.trainer.global_step >= self.trainer.max_steps:
            # Lightning validates within fit when asked to stop: the final validation then costs
            # no second trainer set-up (trainer.validate), and the last checkpoint comes after it
            self.trainer.should_stop = True

    def diverged_step(self) -> Optional[int]:
        """The optimizer step whose loss first became non-finite, or None (one device-to-host
        transfer when steps ran since the last call, none otherwise)."""
        if self._unchecked and self._diverged is None:
            losses = torch.stack([loss for _, loss in self._unchecked])
            bad = ~torch.isfinite(losses)
            found, first = torch.stack([bad.any().long(), bad.long().argmax()]).tolist()
            if found:
                self._diverged = (self._unchecked[first][0], float(losses[first]))
        self._unchecked.clear()
        return None if self._diverged is None else self._diverged[0]

    def check_finite(self) -> None:
        """Raise Diverged when a training loss so far was NaN or infinite."""
        if self.diverged_step() is not None:
            step, loss = self._diverged
            raise Diverged(loss, step)

    def on_validation_start(self) -> None:
        self.check_finite()  # never validate (and record) a model that has diverged

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits, loss = self._logits_loss(batch)
        correct = (logits.argmax(-1) == batch[1]).float().mean()
        size = batch[0].size(0)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val_accuracy", correct, sync_dist=True, batch_size=size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:  # dropout and augmentation go on as if never stopped
            set_rng_states(checkpoint["rng_states"])
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
        if progress and checkpoint.get("global_step", 0) < self.spec.steps:
            # A trunk's checkpoint at its own last step (a branch starts there) says its stream ended; this run's
            # goes on, and Lightning would otherwise start a second pass over the planned batches.
            progress["is_last_batch"] = False

    def configure_optimizers(self) -> Any:
        from scaling.models import param_groups

        cfg = self.spec.cfg.optim
        groups = param_groups(self.spec.cfg.model, self.model, cfg)  # the family's (μP scales them)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                                      fused=self._fused())
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_for(self.spec.cfg, self.spec.steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _fused(self) -> bool:
        """Fused AdamW on CUDA (one kernel per step, step counts on the device) unless a GradScaler
        unscales gradients (16-mixed), which would have Lightning refuse to clip them."""
        return self.device.type == "cuda" and not str(self.spec.cfg.trainer.precision).startswith("16")

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Optional[str] = None) -> None:
        # Lightning's mixed-precision plugin refuses to clip for any optimizer that could unscale
        # (fused ones), though bf16 has no scaler; clip as it would, by the global norm.
        if gradient_clip_val and getattr(optimizer, "defaults", {}).get("fused"):
            torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)


def rng_states() -> dict[str, Any]:
    """The random generators' states (python, numpy, torch CPU and CUDA)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]  # loads weights_only
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` saved."""
    import random

    import numpy as np

    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
