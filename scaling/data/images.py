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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from scaling.data import Source, register_source
from scaling.data.base import DataInfo, DataSource
from scaling.errors import ConfigError, fail, require_positive


@dataclass
class ImageDataConfig:
    """An image classification data set: digits (offline), torchvision sets, ImageFolder."""

    kind: str = "image"
    name: str = "digits"  # digits | cifar10 | cifar100 | mnist | fashionmnist | imagefolder
    root: Optional[str] = None  # data folder (default ~/.cache/scaling/data/<name>)
    download: bool = False
    val_size: Optional[int] = None  # held-out samples (torchvision sets use their test split)
    subset: Optional[int] = None  # unique training samples drawn from (None: all)
    augment: bool = False  # random crop and flip (CIFAR-style)
    image_size: Optional[int] = None  # resize to this square size (ImageFolder needs one)
    order_seed: int = 0
    default_budget: int = 20_000  # samples, used when no budget.* is given


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


@dataclass(frozen=True)
class TorchvisionSet:
    """What a torchvision data set is, known without reading it."""

    cls: str  # its class in torchvision.datasets
    folder: str  # where its files are under data.root
    train: int  # images in the train split (trained on)
    test: int  # images in the test split (held out)
    classes: int
    shape: tuple[int, int, int]  # (C, H, W) of one image


TORCHVISION_SETS: dict[str, TorchvisionSet] = {
    "cifar10": TorchvisionSet("CIFAR10", "cifar-10-batches-py", 50_000, 10_000, 10, (3, 32, 32)),
    "cifar100": TorchvisionSet("CIFAR100", "cifar-100-python", 50_000, 10_000, 100, (3, 32, 32)),
    "mnist": TorchvisionSet("MNIST", "MNIST/raw", 60_000, 10_000, 10, (1, 28, 28)),
    "fashionmnist": TorchvisionSet("FashionMNIST", "FashionMNIST/raw", 60_000, 10_000, 10, (1, 28, 28)),
}
DIGITS_IMAGES, DIGITS_CLASSES, DIGITS_SHAPE = 1797, 10, (1, 8, 8)  # scikit-learn's load_digits()


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
        shape = tuple(self.train_store.image(int(self.train_ids[0])).shape)
        self.info = image_info(cfg, len(self.train_ids), len(self.val_ids), num_classes, shape)

    def train_dataset(self, num_samples: int, start: int = 0) -> Dataset:
        """Training samples start..num_samples-1 of the fixed order, wrapping around the pool."""
        if not 0 <= start <= num_samples:
            raise ValueError(f"need 0 <= start <= num_samples, got start={start}, num_samples={num_samples}")
        return ImageDataset(self.train_store, self.order[:self.pool], start, num_samples - start,
                            self.mean, self.std, self.augment_seed)

    def val_dataset(self) -> Dataset:
        """The fixed held-out set, never augmented."""
        return ImageDataset(self.val_store, self.val_ids, 0, len(self.val_ids), self.mean, self.std)


def image_info(cfg: ImageDataConfig, num_train: int, num_val: int, classes: int,
               shape: tuple[int, ...]) -> DataInfo:
    """The DataInfo of an image set: `shape` (C, H, W) of its images, resized when data.image_size says."""
    channels, height, width = shape if cfg.image_size is None else (shape[0], cfg.image_size, cfg.image_size)
    return DataInfo(name=cfg.name, kind="image", unit="samples", train_units=_pool_size(cfg, num_train),
                    units_per_sample=1, channels=channels, image_size=(height, width), num_classes=classes,
                    val_samples=num_val)


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


def digits_info(cfg: ImageDataConfig) -> DataInfo:
    """The digits' DataInfo, known without loading them."""
    val_size = _val_size(cfg, DIGITS_IMAGES, DIGITS_CLASSES)
    return image_info(cfg, DIGITS_IMAGES - val_size, val_size, DIGITS_CLASSES, DIGITS_SHAPE)


def default_root(name: str) -> Path:
    """Where a data set's files live unless data.root says otherwise."""
    return Path.home() / ".cache" / "scaling" / "data" / name


def _root(cfg: ImageDataConfig) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else default_root(cfg.name)


def _missing_files(cfg: ImageDataConfig, root: Path) -> ConfigError:
    return ConfigError(f"data.root={str(root)!r} has no {TORCHVISION_SETS[cfg.name].cls} files; put the data "
                       "set there or set data.download=true where the internet is reachable")


def _torchvision_split(cfg: ImageDataConfig, root: Path, train: bool):
    """One split of a torchvision set; its 'Dataset not found' becomes a one-line ConfigError."""
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[cfg.name].cls)
    try:
        return cls(str(root), train=train, download=cfg.download)
    except RuntimeError as exc:
        if "not found" not in str(exc).lower() and "corrupted" not in str(exc).lower():
            raise
        raise _missing_files(cfg, root) from None


def _idx_length(path: Path) -> int:
    """The item count in an IDX file's header (MNIST's format: magic, then big-endian sizes)."""
    with open(path, "rb") as handle:
        return int.from_bytes(handle.read(8)[4:8], "big")


def split_sizes(cfg: ImageDataConfig, root: Path) -> tuple[int, int]:
    """(train, test) images of a torchvision set: MNIST-style sets' file headers say, else the
    set's known sizes. Refused when the files are missing and data.download is off."""
    spec = TORCHVISION_SETS[cfg.name]
    folder = root / spec.folder
    if not folder.is_dir():
        if not cfg.download:
            raise _missing_files(cfg, root)
        return spec.train, spec.test
    headers = [folder / f"{split}-images-idx3-ubyte" for split in ("train", "t10k")]
    if all(path.is_file() for path in headers):
        return _idx_length(headers[0]), _idx_length(headers[1])
    return spec.train, spec.test


def _torchvision_val_size(cfg: ImageDataConfig, num_test: int) -> int:
    """Held-out images: data.val_size of the test split (all of it by default)."""
    if cfg.val_size is not None and cfg.val_size > num_test:
        raise ConfigError(f"data.val_size={cfg.val_size} is larger than the {num_test} test "
                          f"samples of {cfg.name}; lower data.val_size or leave it unset")
    return num_test if cfg.val_size is None else cfg.val_size


def torchvision_info(cfg: ImageDataConfig) -> DataInfo:
    """A torchvision set's DataInfo from what is known of it (and MNIST's file headers)."""
    spec = TORCHVISION_SETS[cfg.name]
    num_train, num_test = split_sizes(cfg, _root(cfg))
    return image_info(cfg, num_train, _torchvision_val_size(cfg, num_test), spec.classes, spec.shape)


def _as_store(dataset, size: Optional[int]) -> TensorImages:
    """A torchvision set's raw arrays as a TensorImages store (no PIL on the hot path)."""
    pixels = torch.as_tensor(np.asarray(dataset.data))
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)  # -> [N, C, H, W]
    return TensorImages(pixels.contiguous(), np.asarray(dataset.targets), size)


def build_torchvision(cfg: ImageDataConfig) -> ImageSource:
    """CIFAR10/100, MNIST, FashionMNIST: the train split trains, the test split is held out."""
    root = _root(cfg)
    train, test = _torchvision_split(cfg, root, True), _torchvision_split(cfg, root, False)
    train_store, val_store = _as_store(train, cfg.image_size), _as_store(test, cfg.image_size)
    val_ids = np.arange(len(val_store))
    if _torchvision_val_size(cfg, len(val_store)) < len(val_store):
        val_ids = np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(val_store))[:cfg.val_size])
    return ImageSource(cfg, (train_store, np.arange(len(train_store))), (val_store, val_ids),
                       len(train.classes))


def folder_samples(cfg: ImageDataConfig) -> tuple[list[tuple[str, int]], int]:
    """((path, class index) of every image under data.root, number of classes), listed as
    torchvision's ImageFolder lists them; no image is opened."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not cfg.root:
        raise ConfigError("data.root=None is needed for imagefolder; set data.root=/path/to/class/folders")
    if cfg.image_size is None:
        raise ConfigError("data.image_size=None is needed for imagefolder; set for example data.image_size=32")
    root = str(Path(cfg.root).expanduser())
    try:
        classes, class_to_idx = find_classes(root)
        return make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS), len(classes)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"data.root={root!r} has no class folders with images; put one folder "
                          "of images per class there") from None


def imagefolder_info(cfg: ImageDataConfig) -> DataInfo:
    """An ImageFolder's DataInfo from its file list (three channels: images are read as RGB)."""
    samples, classes = folder_samples(cfg)
    val_size = _val_size(cfg, len(samples), 1)
    return image_info(cfg, len(samples) - val_size, val_size, classes, (3, cfg.image_size, cfg.image_size))


def build_imagefolder(cfg: ImageDataConfig) -> ImageSource:
    """One folder per class under data.root, resized to data.image_size; data.val_size held out."""
    samples, classes = folder_samples(cfg)
    store = FolderImages(samples, cfg.image_size)
    val_size = _val_size(cfg, len(store), 1)
    shuffled = np.random.default_rng(SPLIT_SEED).permutation(len(store))
    val_ids, train_ids = np.sort(shuffled[:val_size]), np.sort(shuffled[val_size:])
    return ImageSource(cfg, (store, train_ids), (store, val_ids), classes)


@dataclass(frozen=True)
class ImageSet:
    """How one data.name is described cheaply and built."""

    info: Callable[[ImageDataConfig], DataInfo]
    build: Callable[[ImageDataConfig], ImageSource]


IMAGE_SETS: dict[str, ImageSet] = {
    "digits": ImageSet(digits_info, build_digits),
    **{name: ImageSet(torchvision_info, build_torchvision) for name in TORCHVISION_SETS},
    "imagefolder": ImageSet(imagefolder_info, build_imagefolder),
}


def image_set(cfg: ImageDataConfig) -> ImageSet:
    """The image set data.name names; a one-line ConfigError if there is none."""
    if cfg.name not in IMAGE_SETS:
        fail("data.name", cfg.name, "is not an image data set", f"use one of {', '.join(IMAGE_SETS)}")
    return IMAGE_SETS[cfg.name]


def images_info(cfg: ImageDataConfig) -> DataInfo:
    """What the image set is (sizes, shape, classes), from metadata: nothing is loaded or written."""
    return image_set(cfg).info(cfg)


def build_images(cfg: ImageDataConfig) -> ImageSource:
    """The image source data.name names."""
    return image_set(cfg).build(cfg)


def validate(cfg: ImageDataConfig) -> None:
    """Sizes are positive, the set is one there is, and imagefolder has a root."""
    require_positive(cfg, "data", ["val_size", "subset", "image_size"])
    image_set(cfg)
    if cfg.name == "imagefolder" and not cfg.root:
        fail("data.root", None, "is needed for imagefolder", "set data.root=/path/to/class/folders")


register_source(Source(kind="image", schema=ImageDataConfig, unit="samples", info=images_info,
                       build=build_images, validate=validate,
                       choose="data=digits, data=cifar10, data=mnist, data=imagefolder, ..."))
