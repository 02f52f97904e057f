"""Representations before the output layer, extracted in batches from a frozen model.

Images (CNN, torchvision): `model.features(x)` is the penultimate activation [B, hidden]; the
probe keeps those and the (normalised) input pixels of at most `max_samples` images, shrunk to
at most MAX_INPUT_SIDE pixels a side (the pixel-space baseline and the pictures use them).
Text (GPT): `model.features(idx)` is the final hidden state [B, T, C]; the probe keeps its mean
over each sequence [n_seq, C] and a sample of `positions_per_sequence` positions per sequence
[n_pos, C], with the byte at each kept position and the byte that follows it (the target).
Nothing but these arrays stays in memory: batches are read, embedded and dropped.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

# Character classes of a byte (the label a GPT probe predicts for the next byte).
CHAR_CLASSES = ("letter", "digit", "space", "punct", "newline", "other")
INPUT_CONTEXT = 4  # bytes of context in the raw-input baseline for text (one-hot each)
MAX_INPUT_SIDE = 64  # kept input images are shrunk to at most this many pixels a side


def char_class_table() -> np.ndarray:
    """[256] int: the CHAR_CLASSES index of every byte value."""
    table = np.full(256, CHAR_CLASSES.index("other"), dtype=np.int64)
    for chars, name in [(string.ascii_letters, "letter"), (string.digits, "digit"), (" \t", "space"),
                        (string.punctuation, "punct"), ("\n\r", "newline")]:
        table[[ord(c) for c in chars]] = CHAR_CLASSES.index(name)
    return table


@dataclass
class ImageEmbeddings:
    """Penultimate activations of images, their labels and their (normalised) pixels."""

    features: np.ndarray  # [n, hidden] float32
    labels: np.ndarray  # [n] int
    inputs: np.ndarray  # [n, C, H, W] float32, as the model saw them (normalised; shrunk when large)

    @property
    def flat_inputs(self) -> np.ndarray:
        """[n, C*H*W]: the raw-input space of the baseline."""
        return self.inputs.reshape(len(self.inputs), -1)


@dataclass
class TextEmbeddings:
    """Final hidden states of byte sequences, pooled per sequence and sampled per position."""

    sequences: np.ndarray  # [n_seq, C] mean over each sequence's positions
    positions: np.ndarray  # [n_pos, C] hidden state at the sampled positions
    sequence_of_position: np.ndarray  # [n_pos] which sequence a sampled position belongs to
    contexts: np.ndarray  # [n_pos, INPUT_CONTEXT] the bytes up to and including the position (-1: none)
    next_bytes: np.ndarray  # [n_pos] the byte that follows the position (what the model predicts)

    @property
    def next_classes(self) -> np.ndarray:
        """[n_pos] the character class of the next byte (the probe's label)."""
        return char_class_table()[self.next_bytes]

    @property
    def flat_inputs(self) -> np.ndarray:
        """[n_pos, INPUT_CONTEXT * 257]: one-hot of the last bytes (the raw-input baseline)."""
        onehot = np.zeros((len(self.contexts), INPUT_CONTEXT, 257), dtype=np.float32)
        rows, cols = np.indices(self.contexts.shape)
        onehot[rows, cols, self.contexts + 1] = 1.0  # slot 0 stands for "before the sequence"
        return onehot.reshape(len(self.contexts), -1)


def first_items(dataset: Dataset, max_samples: int | None) -> Dataset:
    """The first `max_samples` items of a dataset (all when None or larger)."""
    if max_samples is None or max_samples >= len(dataset):
        return dataset
    return Subset(dataset, range(max_samples))


def shrink(x: torch.Tensor, side: int = MAX_INPUT_SIDE) -> torch.Tensor:
    """[B, C, H, W] images area-averaged down to at most `side` pixels a side (unchanged if small)."""
    height, width = x.shape[-2:]
    scale = side / max(height, width)
    if scale >= 1:
        return x
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return torch.nn.functional.interpolate(x, size=size, mode="area")


@torch.no_grad()
def image_embeddings(model: nn.Module, dataset: Dataset, max_samples: int | None = None,
                     batch_size: int = 256, device: str | torch.device = "cpu") -> ImageEmbeddings:
    """Embed the first `max_samples` images of `dataset` with `model.features` (eval mode)."""
    model.eval()
    features, labels, inputs = [], [], []
    for x, y in DataLoader(first_items(dataset, max_samples), batch_size=batch_size, shuffle=False):
        features.append(model.features(x.to(device)).float().cpu().numpy())  # [B, hidden]
        labels.append(np.asarray(y))
        inputs.append(shrink(x.float()).numpy())  # [B, C, h, w]
    return ImageEmbeddings(np.concatenate(features), np.concatenate(labels), np.concatenate(inputs))


@torch.no_grad()
def text_embeddings(model: nn.Module, dataset: Dataset, max_sequences: int | None = None,
                    positions_per_sequence: int = 16, batch_size: int = 32,
                    device: str | torch.device = "cpu", seed: int = 0) -> TextEmbeddings:
    """Embed the first `max_sequences` sequences with `model.features`: mean-pooled and sampled."""
    model.eval()
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("seq", "pos", "which", "ctx", "next")}
    offset = 0
    for x, y in DataLoader(first_items(dataset, max_sequences), batch_size=batch_size, shuffle=False):
        hidden = model.features(x.to(device)).float().cpu()  # [B, T, C]
        batch, time = x.shape
        picks = np.sort(np.stack([rng.choice(time, min(positions_per_sequence, time), replace=False)
                                  for _ in range(batch)]), axis=1)  # [B, P]
        rows = np.repeat(np.arange(batch), picks.shape[1])
        cols = picks.ravel()
        parts["seq"].append(hidden.mean(dim=1).numpy())  # [B, C]
        parts["pos"].append(hidden[rows, cols].numpy())  # [B*P, C]
        parts["which"].append(rows + offset)
        parts["ctx"].append(_contexts(x.numpy(), rows, cols))
        parts["next"].append(y.numpy()[rows, cols])
        offset += batch
    seq, pos, which, ctx, nxt = (np.concatenate(parts[k]) for k in ("seq", "pos", "which", "ctx", "next"))
    return TextEmbeddings(seq, pos, which, ctx, nxt)


def _contexts(tokens: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[n, INPUT_CONTEXT] the bytes at cols-INPUT_CONTEXT+1 .. cols of each row (-1 before the start)."""
    offsets = np.arange(-INPUT_CONTEXT + 1, 1)  # [K]
    where = cols[:, None] + offsets[None, :]  # [n, K]
    context = tokens[rows[:, None], np.clip(where, 0, None)]
    return np.where(where >= 0, context, -1).astype(np.int64)


# A family's `embedding` (scaling.models.Family) -> how its probes embed data.
EMBEDDERS: dict[str, Callable[..., ImageEmbeddings | TextEmbeddings]] = {
    "image": image_embeddings, "text": text_embeddings}


def embedder(family: str) -> Callable[..., ImageEmbeddings | TextEmbeddings]:
    """The embedding function probes use for a model family (as the family declares it)."""
    from scaling.models import family as lookup

    return EMBEDDERS[lookup(family).probe_embedding]
