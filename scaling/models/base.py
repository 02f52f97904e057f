"""What every model family's model is (ScalingModel), and building on the meta device cheaply."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from scaling.accounting import count_params

# In-place initialisers: torch.nn.init's and the Tensor methods they (and modules) call.
_INIT_NAMES = frozenset(
    [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    + ["normal_", "uniform_", "fill_", "zero_", "copy_", "erfinv_", "mul_", "add_", "clamp_",
       "exponential_", "random_", "bernoulli_", "log_normal_", "cauchy_", "geometric_"])


class SkipMetaInit(TorchFunctionMode):
    """Skip initialisers on meta tensors (only there: they have no values to initialise).

    Random fills on the meta device run torch._refs code that imports torch._dynamo on first
    use, which costs about a second: more than `scaling plan` may spend. The mode is
    thread-local, so a model built on a real device meanwhile is initialised as usual.
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes it by keyword
        if getattr(func, "__name__", "") in _INIT_NAMES and getattr(target, "is_meta", False):
            return target
        return func(*args, **kwargs)


class ScalingModel(nn.Module):
    """The interface every family implements; accounting and probes rely only on this."""

    def num_params(self, non_embedding: bool = False) -> int:
        """N; with non_embedding, Kaplan's count without vocabulary and position tables."""
        return count_params(self, non_embedding)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Parameters that count as embeddings (default: those of nn.Embedding layers)."""
        return [p for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]

    def flops_per_unit(self) -> float:
        """Training FLOPs (forward + backward) per token for text, per sample for images."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the output layer reads (the input of `output_layer()`)."""
        raise NotImplementedError

    def output_layer(self) -> nn.Linear:
        """The final nn.Linear that maps features to logits."""
        raise NotImplementedError
