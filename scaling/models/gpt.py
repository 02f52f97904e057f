"""Decoder-only transformer in the style of nanoGPT (GPT-2 layout, byte-level vocabulary).

width = d_model, depth = number of blocks; heads = max(1, width // head_dim); the MLP is
mlp_ratio * width wide; the context is the data's seq_len (learned position embeddings).
model.parametrization=mup is μP relative to model.base_width (scaling/models/mup.py).
Shapes: B batch, T time (<= seq_len), C width, H heads, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from scaling.accounting import gpt_flops_per_token
from scaling.data.base import DataInfo
from scaling.errors import ConfigError, fail, require_positive
from scaling.models import Family, mup, register_family
from scaling.models.base import ScalingModel

INIT_STD = 0.02


@dataclass
class GPTConfig:
    """Decoder-only transformer. width = d_model, depth = number of blocks."""

    # Added after run ids were pinned: left out of the run identity at its default (plan.identity).
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("base_width", "readout_zero_init")

    family: str = "gpt"
    width: int = 64
    depth: int = 2
    head_dim: int = 32  # heads = width // head_dim (at least 1), width must divide evenly
    mlp_ratio: int = 4
    vocab_size: int = 256
    dropout: float = 0.0
    tie_embeddings: bool = True
    preset: Optional[str] = None
    parametrization: str = "sp"  # sp | mup (μP: scaling/models/mup.py)
    base_width: int = 64  # mup: the width at which μP and SP coincide (hyperparameters tuned there)
    readout_zero_init: bool = False  # an untied lm head starts at zero (logits 0 at init, any width)


# Sizes are data: preset name -> config values (minGPT's small ones, then GPT-2's).
PRESETS: dict[str, dict] = {
    "gpt-nano": {"width": 48, "depth": 3, "head_dim": 16},
    "gpt-micro": {"width": 128, "depth": 4, "head_dim": 32},
    "gpt-mini": {"width": 192, "depth": 6, "head_dim": 32},
    "gpt2-small": {"width": 768, "depth": 12, "head_dim": 64},
    "gpt2-medium": {"width": 1024, "depth": 24, "head_dim": 64},
    "gpt2-large": {"width": 1280, "depth": 36, "head_dim": 64},
    "gpt2-xl": {"width": 1600, "depth": 48, "head_dim": 64},
}


def num_heads(width: int, head_dim: int) -> int:
    """Attention heads for a width: width // head_dim, at least one."""
    return max(1, width // head_dim)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused qkv projection."""

    def __init__(self, width: int, heads: int, dropout: float, scale: Optional[float] = None) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.scale = scale  # attention-logit scale; None: 1/sqrt(head size) (SP)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)  # residual projection (scaled init)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]."""
        batch, time, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)  # each [B, T, C]
        shape = (batch, time, self.heads, width // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # each [B, H, T, C/H]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=self.scale)  # [B, H, T, C/H]
        y = y.transpose(1, 2).contiguous().view(batch, time, width)  # [B, T, C]
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise GELU MLP, width -> mlp_ratio * width -> width."""

    def __init__(self, width: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(width, mlp_ratio * width)
        self.proj = nn.Linear(mlp_ratio * width, width)  # residual projection (scaled init)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]."""
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # hidden [B, T, mlp_ratio*C]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float,
                 scale: Optional[float] = None) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout, scale)
        self.ln_mlp = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]."""
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class GPT(ScalingModel):
    """Token and position embeddings, `depth` blocks, final LayerNorm, (tied) lm head."""

    def __init__(self, cfg: GPTConfig, seq_len: int) -> None:
        super().__init__()
        self.width, self.depth, self.seq_len = cfg.width, cfg.depth, seq_len
        self.vocab_size, self.mlp_ratio = cfg.vocab_size, cfg.mlp_ratio
        heads = num_heads(cfg.width, cfg.head_dim)
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.position_embedding = nn.Embedding(seq_len, cfg.width)
        self.dropout = nn.Dropout(cfg.dropout)
        scale = mup_attention_scale(cfg)
        self.blocks = nn.ModuleList(
            Block(cfg.width, heads, cfg.mlp_ratio, cfg.dropout, scale) for _ in range(cfg.depth))
        self.ln_final = nn.LayerNorm(cfg.width)
        self.lm_head = mup.Readout(cfg.width, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight
        self.tied = cfg.tie_embeddings
        self._init_weights()
        if cfg.parametrization == "mup":
            self._apply_mup(mup.width_mult(cfg))
        if cfg.readout_zero_init:
            nn.init.zeros_(self.lm_head.weight)

    def _apply_mup(self, width_mult: float) -> None:
        """μP from SP's init: hidden weights' std / sqrt(width_mult) (variance by fan-in, SP's at the
        base width), logits x 1/width_mult (also through a tied head)."""
        mup.rescale_(self.hidden_weights(), width_mult ** -0.5)
        self.lm_head.output_mult = 1.0 / width_mult

    def hidden_weights(self) -> list[nn.Parameter]:
        """The matrices whose fan-in and fan-out both grow with width (μP's hidden weights)."""
        layers = [layer for block in self.blocks
                  for layer in (block.attn.qkv, block.attn.proj, block.mlp.fc, block.mlp.proj)]
        return [layer.weight for layer in layers]

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases, residual projections / sqrt(2 depth)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        residual_std = INIT_STD / math.sqrt(2 * self.depth)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Token and position tables, and the lm head when it is not tied (Kaplan's N)."""
        tables = [self.token_embedding.weight, self.position_embedding.weight]
        return tables if self.tied else tables + [self.lm_head.weight]

    def flops_per_unit(self) -> float:
        """Training FLOPs per token at the full context (see accounting.gpt_flops_per_token)."""
        return gpt_flops_per_token(self.width, self.depth, self.seq_len, self.vocab_size,
                                   self.mlp_ratio)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [B, T] long -> hidden states after the final LayerNorm [B, T, C]."""
        time = idx.shape[1]
        if time > self.seq_len:
            raise ValueError(f"sequence of {time} tokens is longer than the context {self.seq_len}")
        positions = torch.arange(time, device=idx.device)  # [T]
        x = self.token_embedding(idx) + self.position_embedding(positions)  # [B, T, C]
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)  # [B, T, C]
        return self.ln_final(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [B, T] long -> logits [B, T, V]."""
        return self.lm_head(self.features(idx))

    def output_layer(self) -> nn.Linear:
        """The lm head (its weight is the token embedding when tied)."""
        return self.lm_head


def mup_attention_scale(cfg: GPTConfig) -> Optional[float]:
    """The attention-logit scale: None (SDPA's 1/sqrt(head size)) under sp; μP's, relative to
    the head size at base_width, under mup."""
    if cfg.parametrization != "mup":
        return None
    head_size = cfg.width / num_heads(cfg.width, cfg.head_dim)
    base_head_size = cfg.base_width / num_heads(cfg.base_width, cfg.head_dim)
    return mup.attention_scale(head_size, base_head_size)


def build(cfg: GPTConfig, info: DataInfo) -> GPT:
    """A GPT for `info`'s context length; refuses a width its heads do not divide."""
    heads = num_heads(cfg.width, cfg.head_dim)
    if cfg.width % heads:
        raise ConfigError(f"model.width={cfg.width} is not divisible by its {heads} heads; "
                          f"use a multiple of model.head_dim={cfg.head_dim}")
    if info.seq_len is None:
        raise ConfigError(f"data {info.name!r} has no seq_len; model=gpt needs text data")
    if info.vocab_size is not None and info.vocab_size > cfg.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.vocab_size} is smaller than the data's "
                          f"{info.vocab_size} symbols; set model.vocab_size={info.vocab_size}")
    return GPT(cfg, info.seq_len)


def validate(cfg: GPTConfig) -> None:
    """Sizes are positive and the width splits into heads of head_dim."""
    require_positive(cfg, "model", ["width", "depth", "head_dim", "mlp_ratio", "vocab_size"])
    mup.validate_base_width(cfg)
    if cfg.readout_zero_init and cfg.tie_embeddings:
        fail("model.readout_zero_init", True, "would zero the token embedding the head is tied to",
             "set model.tie_embeddings=false as well")
    if cfg.width > cfg.head_dim and cfg.width % cfg.head_dim:
        fail("model.width", cfg.width, f"is not divisible into heads of model.head_dim={cfg.head_dim}",
             f"use a multiple of {cfg.head_dim} or change model.head_dim")


register_family(Family(name="gpt", schema=GPTConfig, build=build, data_kind="text", presets=PRESETS,
                       validate=validate, parametrizations=mup.PARAMETRIZATIONS, param_groups=mup.param_groups))
