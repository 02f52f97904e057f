"""μP, the maximal update parametrization, for AdamW: what the families share.

Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen, Gao (2022), "Tensor Programs V:
Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer" (arXiv:2203.03466), Table 3
(μP for Adam) in its multiplier form (Table 8, as the authors' `mup` package implements it). With
width_mult = width / base_width (μP and SP coincide at base_width):

| parameter                               | init                        | Adam learning rate  |
| --------------------------------------- | --------------------------- | ------------------- |
| input weights (embeddings, first conv)  | as SP (fan-in is fixed)     | lr                  |
| biases, norm gains                      | as SP (at base_width)       | lr                  |
| hidden weights (both fans grow)         | variance ~ 1/fan_in         | lr / width_mult     |
| output weights (the readout)            | as at base_width (or zero)  | lr, output x 1/width_mult |

and attention logits scaled by 1/head_dim instead of 1/sqrt(head_dim) (the paper's attention
rule; `attention_scale`). Hidden weights' weight decay is multiplied by width_mult, as mup's MuAdamW
does, so AdamW's decay per step (lr x weight_decay) does not change with width.

The readout. Under μP the logits' initial part shrinks like width^-1/2 (Table 3's output variance
1/fan_in^2); the part learned in the first steps is what stays of size 1, so the coordinate check
shows the logits shrinking with width at init until the first updates dominate them. An untied
readout may start at zero instead (model.readout_zero_init=true; the paper's Appendix D.2, the mup
package's examples): the logits are then exactly 0 at init at every width and the coordinate check
is flat from the first step. It is off by default: μP then equals SP exactly at base_width, and a
zero readout passes no gradient to the body at first, which costs short runs (measured: 200 steps
of a width-64 GPT, validation loss 2.52 with SP's readout init, 2.71 with a zero one, best of lr 0.002-0.008). A
readout tied to the token embedding cannot start at zero.

Why not the `mup` package: version 1.0.0 (2022, the latest) runs on our torch, but it installs
seaborn and torchvision, builds two extra models (base and delta) per model to infer shapes, keeps
them as attributes on every parameter (which checkpoints do not carry), and its readout rescaling
must run exactly once. A family knows which of its weights are hidden; that is all this needs.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from scaling.errors import require_positive

PARAMETRIZATIONS = ("sp", "mup")


def width_mult(cfg: Any) -> float:
    """width / base_width under mup; 1 under sp (and at the base width)."""
    return cfg.width / cfg.base_width if cfg.parametrization == "mup" else 1.0


def validate_base_width(cfg: Any) -> None:
    """model.base_width must be positive (it is read only under mup, but checked under both)."""
    require_positive(cfg, "model", ["base_width"])


def attention_scale(head_dim: float, base_head_dim: float) -> float:
    """μP's attention-logit scale sqrt(base_head_dim) / head_dim: 1/head_dim, times the constant
    that makes it SP's 1/sqrt(head_dim) at the base width (the mup package's "8/d" for d=64)."""
    return math.sqrt(base_head_dim) / head_dim


class Readout(nn.Linear):
    """The output layer: an nn.Linear whose input is multiplied by `output_mult` (1/width_mult
    under μP, mup's MuReadout). At 1 it is exactly nn.Linear."""

    output_mult: float = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., fan_in] -> [..., fan_out]."""
        if self.output_mult == 1.0:
            return super().forward(x)
        return F.linear(x * self.output_mult, self.weight, self.bias)


@torch.no_grad()
def rescale_(tensors: Iterable[Optional[torch.Tensor]], factor: float) -> None:
    """Multiply tensors in place (None skipped); nothing at factor 1, so SP stays bit-identical."""
    if factor == 1.0:
        return
    for tensor in tensors:
        if tensor is not None:
            tensor.mul_(factor)


def param_groups(model: Any, model_cfg: Any, optim: Any) -> list[dict[str, Any]]:
    """AdamW's groups: SP's `decay_groups` under sp; under mup the model's `hidden_weights()` at
    lr / width_mult (weight decay x width_mult), everything else at lr as in SP."""
    from scaling.models import decay_groups

    if model_cfg.parametrization != "mup":
        return decay_groups(model, model_cfg, optim)
    mult = width_mult(model_cfg)
    hidden = list(model.hidden_weights())
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden_ids]
    # Groups at optim.lr first: metrics.csv logs the first group's rate as the run's.
    groups = [{"params": [p for p in rest if p.ndim >= 2], "lr": optim.lr, "weight_decay": optim.weight_decay},
              {"params": [p for p in rest if p.ndim < 2], "lr": optim.lr, "weight_decay": 0.0},
              {"params": [p for p in hidden if p.requires_grad], "lr": optim.lr / mult,
               "weight_decay": optim.weight_decay * mult}]
    return [group for group in groups if group["params"]]



# --------------------------------------------------------------------- the coordinate check

# Modules whose output repeats their input (or that draw nothing of their own).
_NOT_RECORDED = (nn.Dropout, nn.Identity, nn.ModuleList, nn.ModuleDict)


def coordinates(model: nn.Module, optimizer: torch.optim.Optimizer,
                batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[dict[str, Any]]:
    """The coordinate check's measurement (the mup package's `get_coord_data`): train on `batches`,
    one optimizer step each, and record the RMS of every module's output in each step's forward
    pass (step 1 is at init). Rows: {"layer", "step", "rms"}."""
    records: list[dict[str, Any]] = []
    model.train()
    for step, (x, y) in enumerate(batches, 1):
        handles = [module.register_forward_hook(_recorder(records, name, step))
                   for name, module in model.named_modules() if name and not isinstance(module, _NOT_RECORDED)]
        try:
            logits = model(x)  # text: [B, T, V]; image: [B, classes]
        finally:
            for handle in handles:
                handle.remove()
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return records


def _recorder(records: list[dict[str, Any]], name: str, step: int) -> Any:
    """A forward hook appending the RMS of a module's tensor output (other outputs are skipped)."""

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            rms = output.detach().float().pow(2).mean().sqrt().item()
            records.append({"layer": name, "step": step, "rms": rms})

    return hook
