"""Image classification data sets: scikit-learn digits, torchvision sets, and ImageFolder.

Every source holds its training images in one store and its held-out images in another (or the
same store, with disjoint indices). The training indices are permuted once with
data.order_seed; a run that sees n samples sees the first n of that order (nested budgets),
wrapping around the pool (data.subset, or all) for repeated epochs. Augmentation (random crop
and horizontal flip) is drawn from a hash of data.order_seed and the sample's position in the
training stream, so a resumed or repeated run sees exactly the same pixels, while a repeated
epoch of the same image gets a different crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from scaling.config import ConfigError, ImageDataConfig
from scaling.data.base import DataInfo, DataSource

SPLIT_SEED = 0  # the held-out split never depends on data.order_seed
DEFAULT_VAL_FRACTION = 0.2  # digits and ImageFolder without data.val_size

# per-data-set channel mean and std of pixels in [0, 1] (training split)
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "digits": ((0.3053,), (0.3760,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
}

# data.name -> torchvision class name, and the per-split folder its files live in
TORCHVISION_SETS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "mnist": "MNIST",
                    "fashionmnist": "FashionMNIST"}


# -------------------------------------------------------------------------- stores


class TensorImages:
    """Images held in memory: uint8 or float pixels [N, C, H, W] and integer labels [N]."""

    def __init__(self, pixels: torch.Tensor, labels: np.ndarray, size: Optional[int] = None) -> None:
        self.pixels, self.labels, self.size = pixels, np.asarray(labels, dtype=np.int64), size

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        """Image `index` as floats in [0, 1], [C, H, W], resized to `size` when one is set."""
        x = self.pixels[index]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear",
                              antialias=True, align_corners=False)[0]
        return x


class FolderImages:
    """Images decoded from files on access, resized (shorter side) and centre-cropped to `size`."""

    def __init__(self, samples: list[tuple[str, int]], size: int) -> None:
        self.paths = [path for path, _ in samples]
        self.labels = np.array([label for _, label in samples], dtype=np.int64)
        self.size = size

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        """Image `index` as floats in [0, 1], [3, size, size]."""
        from PIL import Image
        from torchvision.transforms import functional as TF

        with Image.open(self.paths[index]) as img:
            img = img.convert("RGB")
            img = TF.center_crop(TF.resize(img, self.size), [self.size, self.size])
            return TF.to_tensor(img)


# ------------------------------------------------------------------------ datasets


def sample_hash(seed: int, position: int) -> int:
    """A 64-bit hash of (seed, position) (splitmix64): cheap per-sample random bits."""
    mask = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + position + 1) * 0xBF58476D1CE4E5B9 & mask
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & mask
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & mask
    return z ^ (z >> 31)


def augment(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Random crop (zero padding: 4 pixels at 32x32, scaled with the size) and horizontal flip.

    `bits` (a 64-bit random integer) picks the crop offsets and the flip, so the same bits give
    the same pixels.
    """
    height, width = x.shape[-2:]
    pad = max(1, round(4 * min(height, width) / 32))
    padded = F.pad(x, (pad, pad, pad, pad))
    top, left = (bits >> 8) % (2 * pad + 1), (bits >> 24) % (2 * pad + 1)
    x = padded[:, top:top + height, left:left + width]
    return x.flip(-1) if bits & 1 else x


class ImageDataset(Dataset):
    """Item i is store image ids[(start + i) % len(ids)], normalised, as (x [C, H, W], label)."""

    def __init__(self, store, ids: np.ndarray, start: int, length: int, mean: torch.Tensor,
                 std: torch.Tensor, augment_seed: Optional[int] = None) -> None:
        self.store, self.ids, self.start, self.length = store, ids, start, length
        self.mean, self.std, self.augment_seed = mean, std, augment_seed

    def __len__(self) -> int:
        return self.length

    @property
    def indices(self) -> np.ndarray:
        """The store index of every item (materialised; for checks and tests)."""
        positions = np.arange(self.start, self.start + self.length, dtype=np.int64)
        return self.ids[positions % len(self.ids)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        position = self.start + index  # position in the whole training stream
        store_index = int(self.ids[position % len(self.ids)])
        x = self.store.image(store_index)
        if self.augment_seed is not None:
            x = augment(x, sample_hash(self.augment_seed, position))
        x = (x - self.mean) / self.std
        return x, int(self.store.labels[store_index])


class ImageSource(DataSource):
    """An image data set: a training store and indices, a held-out store and indices."""

    def __init__(self, cfg: ImageDataConfig, train: tuple, val: tuple, num_classes: int) -> None:
        (self.train_store, self.train_ids), (self.val_store, self.val_ids) = train, val
        self.augment_seed = cfg.order_seed if cfg.augment else None
        rng = np.random.default_rng(cfg.order_seed)
        self.order = self.train_ids[rng.permutation(len(self.train_ids))]
        self.pool = _pool_size(cfg, len(self.train_ids))
        mean, std = STATS[cfg.name]
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        channels, height, width = self.train_store.image(int(self.train_ids[0])).shape
        self.info = DataInfo(
            name=cfg.name, kind="image", unit="samples", train_units=self.pool, units_per_sample=1,
            channels=channels, image_size=(height, width), num_classes=num_classes,
            val_samples=len(self.val_ids))

    def train_dataset(self, num_samples: int, start: int = 0) -> Dataset:
        """Training samples start..num_samples-1 of the fixed order, wrapping around the pool."""
        if not 0 <= start <= num_samples:
            raise ValueError(f"need 0 <= start <= num_samples, got start={start}, num_samples={num_samples}")
        return ImageDataset(self.train_store, self.order[:self.pool], start, num_samples - start,
                            self.mean, self.std, self.augment_seed)

    def val_dataset(self) -> Dataset:
        """The fixed held-out set, never augmented."""
        return ImageDataset(self.val_store, self.val_ids, 0, len(self.val_ids), self.mean, self.std)


def _pool_size(cfg: ImageDataConfig, num_train: int) -> int:
    if cfg.subset is None:
        return num_train
    if cfg.subset > num_train:
        raise ConfigError(f"data.subset={cfg.subset} is larger than the {num_train} training samples "
                          f"of data.name={cfg.name!r}; lower data.subset or leave it unset")
    return cfg.subset


# ------------------------------------------------------------------------ builders


def _val_size(cfg: ImageDataConfig, total: int, minimum: int) -> int:
    """data.val_size, or a fifth of the data; refused unless both splits keep `minimum` samples."""
    size = cfg.val_size if cfg.val_size is not None else max(minimum, round(DEFAULT_VAL_FRACTION * total))
    if not minimum <= size <= total - minimum:
        raise ConfigError(f"data.val_size={size} does not fit the {total} samples of data.name="
                          f"{cfg.name!r}; set data.val_size between {minimum} and {total - minimum}")
    return size


def build_digits(cfg: ImageDataConfig) -> ImageSource:
    """scikit-learn's 8x8 digits (offline), with a stratified held-out split of data.val_size."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]  # [N, 1, 8, 8]
    labels = digits.target.astype(np.int64)
    num_classes = int(labels.max()) + 1
    val_size = _val_size(cfg, len(labels), num_classes)
    train_ids, val_ids = train_test_split(np.arange(len(labels)), test_size=val_size,
                                          stratify=labels, random_state=SPLIT_SEED)
    store = TensorImages(pixels, labels, cfg.image_size)
    return ImageSource(cfg, (store, np.sort(train_ids)), (store, np.sort(val_ids)), num_classes)


def default_root(name: str) -> Path:
    """Where a data set's files live unless data.root says otherwise."""
    return Path.home() / ".cache" / "scaling" / "data" / name


def _torchvision_split(cfg: ImageDataConfig, root: Path, train: bool):
    """One split of a torchvision set; its 'Dataset not found' becomes a one-line ConfigError."""
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[cfg.name])
    try:
        return cls(str(root), train=train, download=cfg.download)
    except RuntimeError as exc:
        if "not found" not in str(exc).lower() and "corrupted" not in str(exc).lower():
            raise
        raise ConfigError(
            f"data.root={str(root)!r} has no {cls.__name__} files; put the data set there or set "
            "data.download=true where the internet is reachable") from None


def _as_store(dataset, size: Optional[int]) -> TensorImages:
    """A torchvision set's raw arrays as a TensorImages store (no PIL on the hot path)."""
    pixels = torch.as_tensor(np.asarray(dataset.data))
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)  # -> [N, C, H, W]
    return TensorImages(pixels.contiguous(), np.asarray(dataset.targets), size)


def build_torchvision(cfg: ImageDataConfig) -> ImageSource:
    """CIFAR10/100, MNIST, FashionMNIST: the train split trains, the test split is held out."""
    root = Path(cfg.root).expanduser() if cfg.root else default_root(cfg.name)
    train, test = _torchvision_split(cfg, root, True), _torchvision_split(cfg, root, False)
    train_store, val_store = _as_store(train, cfg.image_size), _as_store(test, cfg.image_size)
    val_ids = np.arange(len(val_store))
    if cfg.val_size is not None:
        if cfg.val_size > len(val_store):
            raise ConfigError(f"data.val_size={cfg.val_size} is larger than the {len(val_store)} test "
                              f"samples of {cfg.name}; lower data.val_size or leave it unset")
        val_ids = np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(val_store))[:cfg.val_size])
    return ImageSource(cfg, (train_store, np.arange(len(train_store))), (val_store, val_ids),
                       len(train.classes))


def build_imagefolder(cfg: ImageDataConfig) -> ImageSource:
    """One folder per class under data.root, resized to data.image_size; data.val_size held out."""
    from torchvision.datasets import ImageFolder

    if not cfg.root:
        raise ConfigError("data.root=None is needed for imagefolder; set data.root=/path/to/class/folders")
    if cfg.image_size is None:
        raise ConfigError("data.image_size=None is needed for imagefolder; set for example data.image_size=32")
    root = Path(cfg.root).expanduser()
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"data.root={str(root)!r} has no class folders with images; put one folder "
                          "of images per class there") from None
    store = FolderImages(folder.samples, cfg.image_size)
    val_size = _val_size(cfg, len(store), 1)
    shuffled = np.random.default_rng(SPLIT_SEED).permutation(len(store))
    val_ids, train_ids = np.sort(shuffled[:val_size]), np.sort(shuffled[val_size:])
    return ImageSource(cfg, (store, train_ids), (store, val_ids), len(folder.classes))


def build_images(cfg: ImageDataConfig) -> ImageSource:
    """The image source data.name names."""
    if cfg.name == "digits":
        return build_digits(cfg)
    if cfg.name in TORCHVISION_SETS:
        return build_torchvision(cfg)
    if cfg.name == "imagefolder":
        return build_imagefolder(cfg)
    names = ", ".join(["digits", *TORCHVISION_SETS, "imagefolder"])
    raise ConfigError(f"data.name={cfg.name!r} is not an image data set; use one of {names}")
