"""Parameter counts and training FLOPs: the N and C of every scaling law.

Conventions (held against real counts in tests/test_accounting.py):

- N is the number of parameters, each shared (tied) tensor counted once: `count_params`.
- Non-embedding N (Kaplan et al. 2020) leaves out the vocabulary and position tables: the token
  embedding, the position embedding, and an untied unembedding (the output embedding; when it is
  tied it *is* the token embedding, so it is left out once). These tables are lookups whose size
  follows the vocabulary and context, not the model's depth, and including them bends the
  small-model end of L(N). A module says which parameters are embeddings through an
  `embedding_parameters()` method; without one, the parameters of its `nn.Embedding` layers are.
  Vision models have no embeddings, so their non-embedding N equals N.
- C is training compute in FLOPs: forward + backward = 3 x forward, one multiply-add = 2 FLOPs.
  Only matrix products are counted (Linear, Conv, attention scores); biases, norms, activations,
  pooling and softmax are left out, as in Kaplan, Chinchilla and `torch.utils.flop_counter`.
- A lookup costs no FLOPs, but the unembedding is a matmul of width x vocab per token, so it is
  counted in FLOPs even when its weights are tied to the (free) embedding lookup.
- Attention FLOPs count the full T x T score matrix, as `torch` computes it with `is_causal=True`
  (PaLM's convention); a causal kernel that skips the masked half does about half of this.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch
from torch import nn

from scaling.data.base import DataInfo

TensorOrTuple = Union[torch.Tensor, tuple]


# ------------------------------------------------------------------------- parameters


def embedding_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters that count as embeddings: `module.embedding_parameters()` if it has one,
    else the weights of its nn.Embedding layers. Each tensor appears once."""
    if hasattr(module, "embedding_parameters"):
        params = list(module.embedding_parameters())
    else:
        params = [p for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
    unique = {id(p): p for p in params}
    return list(unique.values())


def count_params(module: nn.Module, non_embedding: bool = False) -> int:
    """N: the number of parameters (tied tensors once); with non_embedding, Kaplan's count
    (total minus token, position and untied output embeddings). Works on the meta device."""
    total = sum(p.numel() for p in module.parameters())
    if not non_embedding:
        return total
    return total - sum(p.numel() for p in embedding_parameters(module))


# ------------------------------------------------------------------------ transformer


def gpt_matmul_params(width: int, depth: int, vocab_size: int, mlp_ratio: int = 4) -> int:
    """Weights that take part in a matmul per token: per block the qkv (3 w^2) and output (w^2)
    projections and the MLP (2 * mlp_ratio * w^2), plus the unembedding (w * vocab)."""
    per_block = (4 + 2 * mlp_ratio) * width * width
    return depth * per_block + width * vocab_size


def gpt_flops_per_token(width: int, depth: int, seq_len: int, vocab_size: int,
                        mlp_ratio: int = 4) -> float:
    """Training FLOPs per token of a decoder-only transformer (PaLM, appendix B):
    6 * matmul weights (unembedding included, tied or not) + 12 * depth * seq_len * width for
    the attention scores (QK^T) and the weighted values (AV), full T x T as torch computes it."""
    dense = 6 * gpt_matmul_params(width, depth, vocab_size, mlp_ratio)
    attention = 12 * depth * seq_len * width
    return float(dense + attention)


# ------------------------------------------------------------------------- any module


def _conv_flops(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """2 x multiply-adds of a (transposed) convolution, from its shapes."""
    kernel = math.prod(module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 2 * inputs[0].numel() * (module.out_channels // module.groups) * kernel
    return 2 * output.numel() * (module.in_channels // module.groups) * kernel


def _linear_flops(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> int:
    """2 x multiply-adds of a Linear layer applied to every row of its input."""
    rows = output.numel() // module.out_features
    return 2 * rows * module.in_features * module.out_features


def _attention_flops(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> int:
    """nn.MultiheadAttention: q, k, v and output projections plus scores and weighted values
    (its projections are called functionally, so Linear hooks never see them)."""
    query = args[0] if len(args) > 0 else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs["key"]
    embed, kdim, vdim = module.embed_dim, module.kdim, module.vdim
    q_rows, k_rows = query.numel() // embed, key.numel() // kdim
    key_len = key.shape[1] if (module.batch_first and key.dim() == 3) else key.shape[0]
    projections = q_rows * embed * embed * 2 + k_rows * (kdim + vdim) * embed
    scores_and_values = 2 * q_rows * key_len * embed
    return 2 * (projections + scores_and_values)


def forward_flops(module: nn.Module, example_input: TensorOrTuple) -> float:
    """Forward FLOPs of one call on `example_input` (the whole batch), counted from layer shapes
    by forward hooks on Conv*, Linear and MultiheadAttention modules. Runs in eval mode without
    grad and restores the mode; on the meta device nothing is allocated or computed. Matmuls made
    outside such modules (functional F.linear, torch.matmul) are not seen."""
    return float(sum(layer_flops(module, example_input)))


def layer_flops(module: nn.Module, example_input: TensorOrTuple) -> list[float]:
    """Forward FLOPs of each Conv*, Linear and MultiheadAttention call, in execution order."""
    total: list[float] = []

    def on_layer(layer: nn.Module, inputs: tuple, output: Any) -> None:
        if isinstance(layer, nn.modules.conv._ConvNd):
            total.append(_conv_flops(layer, inputs, output))
        elif isinstance(layer, nn.Linear):
            total.append(_linear_flops(layer, inputs, output))

    def on_attention(layer: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        total.append(_attention_flops(layer, args, kwargs))

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.MultiheadAttention):
            handles.append(layer.register_forward_hook(on_attention, with_kwargs=True))
        elif isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear)):
            handles.append(layer.register_forward_hook(on_layer))
    _run_eval(module, example_input)
    for handle in handles:
        handle.remove()
    return total


def _run_eval(module: nn.Module, example_input: TensorOrTuple) -> None:
    """One forward in eval mode without grad (BatchNorm statistics stay untouched)."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(*args)
    finally:
        module.train(was_training)


def training_flops(module: nn.Module, example_input: TensorOrTuple) -> float:
    """Training FLOPs (forward + backward) of one step on `example_input`.

    The backward pass computes two products (input grad, weight grad) per forward one, so 3 x
    forward, except that the first layer of an image model reads the data itself, whose
    gradient nobody needs: its input-grad product is never computed and is not counted.
    """
    flops = layer_flops(module, example_input)
    first = example_input[0] if isinstance(example_input, tuple) else example_input
    skipped = flops[0] if flops and first.is_floating_point() else 0.0
    return 3.0 * sum(flops) - skipped


def example_input(info: DataInfo, batch: int = 1, device: Any = None) -> torch.Tensor:
    """A zero batch shaped like the data: LongTensor [batch, seq_len] for text,
    FloatTensor [batch, C, H, W] for images."""
    if info.kind == "text":
        return torch.zeros(batch, info.seq_len, dtype=torch.long, device=device)
    height, width = info.image_size
    return torch.zeros(batch, info.channels, height, width, device=device)


def flops_per_unit(model: nn.Module, info: DataInfo) -> float:
    """Training FLOPs per token (text) or per sample (images): the model's own
    `flops_per_unit()` when it has one, else counted by hooks on one example."""
    if hasattr(model, "flops_per_unit"):
        return float(model.flops_per_unit())
    device = next(model.parameters()).device
    return training_flops(model, example_input(info, 1, device)) / info.units_per_sample


def run_totals(model: nn.Module, info: DataInfo, units: int) -> dict[str, Any]:
    """What a run record holds about size and compute after `units` tokens or samples of
    training: N, N_nonembed, D (= units, in info.unit), C = flops_per_unit * D, flops_per_unit."""
    per_unit = flops_per_unit(model, info)
    return {
        "N": count_params(model),
        "N_nonembed": count_params(model, non_embedding=True),
        "D": int(units),
        "C": per_unit * units,
        "flops_per_unit": per_unit,
    }
