"""The contract between data sets and the trainer: DataInfo and DataSource."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # no torch import: the registry and the planner read DataInfo only
    from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataInfo:
    """What a model builder and the accounting need to know about a data set."""

    name: str
    kind: str  # "text" | "image"
    unit: str  # "tokens" | "samples": the unit D is counted in
    train_units: int  # unique training units available (after data.subset)
    units_per_sample: int  # seq_len for text (tokens per training sequence), 1 for images
    vocab_size: Optional[int] = None  # text
    seq_len: Optional[int] = None  # text
    channels: Optional[int] = None  # image
    image_size: Optional[tuple[int, int]] = None  # image (height, width)
    num_classes: Optional[int] = None  # image
    val_samples: int = 0


class DataSource(ABC):
    """A data set, split into a fixed nested training order and a fixed held-out set.

    Training sample i is the same for every budget (nested subsets): a run that sees n samples
    sees samples 0..n-1 of one fixed order, wrapping around the unique pool when n exceeds it.
    Text samples are (x, y) LongTensors of shape [seq_len] (y is x shifted by one byte);
    image samples are (x: FloatTensor [C, H, W], y: int label).
    """

    info: DataInfo

    @abstractmethod
    def train_dataset(self, num_samples: int, start: int = 0) -> Dataset:
        """Samples start..num_samples-1 of the fixed training order, as a map-style dataset."""

    @abstractmethod
    def val_dataset(self) -> Dataset:
        """The fixed held-out evaluation set (never trained on)."""
