"""The LightningModule that trains any model family."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from scaling.plan import RunSpec
from scaling.train.schedule import schedule_for


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class ScalingModule(pl.LightningModule):
    """Next-byte prediction for text, classification for images."""

    def __init__(self, model: torch.nn.Module, spec: RunSpec):
        super().__init__()
        self.model = model
        self.spec = spec
        self.kind = spec.cfg.data.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self.model(x)  # text: [B, T, V]; image: [B, classes]
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        correct = (logits.argmax(-1) == y).float().mean()
        return loss, correct

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss became {loss.item()} at step {self.global_step}")
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, correct = self._loss(batch)
        size = batch[0].size(0)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val_accuracy", correct, sync_dist=True, batch_size=size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_states" in checkpoint:  # dropout and augmentation go on as if never stopped
            set_rng_states(checkpoint["rng_states"])

    def configure_optimizers(self) -> Any:
        from scaling.models import param_groups

        cfg = self.spec.cfg.optim
        groups = param_groups(self.spec.cfg.model, self.model, cfg)  # the family's (μP scales them)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_for(self.spec.cfg, self.spec.steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


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
