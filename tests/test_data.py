"""Data sets: nested training order, disjoint held-out sets, subsets, shapes, one-line errors."""

from __future__ import annotations

import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling.config import ConfigError, compose_config, to_object
from scaling.data import DataSource, build_data, data_info
from scaling.data.images import ImageDataConfig
from scaling.data.text import TextDataConfig

SEQ_LEN = 32


def one_line_error(cfg, *words: str) -> str:
    """Build `cfg`, expect a one-line ConfigError holding each of `words`; return the message."""
    with pytest.raises(ConfigError) as info:
        build_data(cfg)
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def same_items(a, b, count: int) -> bool:
    """The first `count` items of two datasets are equal (tensors and labels)."""
    for i in range(count):
        (xa, ya), (xb, yb) = a[i], b[i]
        if not torch.equal(xa, xb) or not (torch.equal(ya, yb) if torch.is_tensor(ya) else ya == yb):
            return False
    return True


# ----------------------------------------------------------------------------- text


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A small generated corpus: 12 text files (about 120 kB) and one file the glob leaves out."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["def", "return", "self", "import", "class", "for", "in", "if", "else", "x", "y", "(", ")"]
    for i in range(12):
        text = " ".join(rng.choice(words, size=2000)) + f"\n# file {i}\n"
        (root / ("sub" if i % 2 else ".") / f"f{i:02d}.txt").parent.mkdir(exist_ok=True)
        (root / ("sub" if i % 2 else ".") / f"f{i:02d}.txt").write_text(text)
    (root / "skip.bin").write_bytes(b"\x00" * 1000)
    return root


def text_cfg(corpus_dir: Path, cache: Path, **kw) -> TextDataConfig:
    """A files corpus config over the generated corpus, with a small held-out set."""
    args = dict(name="files", paths=[str(corpus_dir)], glob="*.txt", seq_len=SEQ_LEN,
                val_tokens=2048, cache_dir=str(cache))
    return TextDataConfig(**{**args, **kw})


@pytest.fixture(scope="module")
def text_source(corpus_dir, tmp_path_factory) -> DataSource:
    return build_data(text_cfg(corpus_dir, tmp_path_factory.mktemp("cache")))


def test_text_shapes_and_info(text_source, corpus_dir):
    total = sum(p.stat().st_size for p in corpus_dir.rglob("*.txt"))
    assert text_source.num_bytes == total  # skip.bin is not matched by the glob
    info = text_source.info
    assert (info.kind, info.unit, info.vocab_size, info.seq_len) == ("text", "tokens", 256, SEQ_LEN)
    assert info.units_per_sample == SEQ_LEN
    assert info.train_units == len(text_source.train_windows) * SEQ_LEN
    x, y = text_source.train_dataset(4)[0]
    assert x.shape == y.shape == (SEQ_LEN,) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[1:], y[:-1]) and 0 <= int(x.min()) and int(x.max()) < 256


def test_text_windows_are_corpus_bytes(text_source):
    corpus = np.fromfile(text_source.corpus, dtype=np.uint8)
    dataset = text_source.train_dataset(3)
    for i in range(3):
        start = dataset.window_id(i) * (SEQ_LEN + 1)
        x, y = dataset[i]
        assert x.tolist() == corpus[start:start + SEQ_LEN].tolist()
        assert y.tolist() == corpus[start + 1:start + SEQ_LEN + 1].tolist()


def test_text_validation_never_overlaps_training(text_source):
    val = text_source.val_dataset()
    assert len(val) == 2048 // SEQ_LEN and text_source.info.val_samples == len(val)
    covered = np.zeros(text_source.num_bytes, dtype=np.int64)
    for window in [*text_source.train_windows, *val.indices]:
        covered[window * (SEQ_LEN + 1):(window + 1) * (SEQ_LEN + 1)] += 1
    assert covered.max() == 1  # no byte (x or y) is read by both a training and a validation window
    assert not set(val.indices) & set(text_source.train_dataset(10_000).indices)
    num_windows = text_source.num_bytes // (SEQ_LEN + 1)
    assert val.indices.min() < num_windows // 4 and val.indices.max() > 3 * num_windows // 4  # spread


def test_text_nested_offset_and_wrap(text_source):
    small, big = text_source.train_dataset(20), text_source.train_dataset(60)
    assert same_items(small, big, 20)
    assert np.array_equal(small.indices, big.indices[:20])
    resumed = text_source.train_dataset(60, start=25)
    assert len(resumed) == 35 and same_items(resumed, torch.utils.data.Subset(big, range(25, 60)), 35)
    pool = len(text_source.train_windows)
    wrapped = text_source.train_dataset(pool + 7).indices
    assert len(set(wrapped[:pool])) == pool and np.array_equal(wrapped[pool:], wrapped[:7])


def test_text_subset_pool(corpus_dir, tmp_path, text_source):
    source = build_data(text_cfg(corpus_dir, tmp_path, subset=10 * SEQ_LEN + 5))
    assert source.info.train_units == 10 * SEQ_LEN
    ids = source.train_dataset(25).indices
    assert np.array_equal(ids[:10], text_source.train_dataset(10).indices)  # first 10 of the full order
    assert np.array_equal(ids[10:20], ids[:10]) and np.array_equal(ids[20:], ids[:5])
    reordered = build_data(text_cfg(corpus_dir, tmp_path, order_seed=1)).train_dataset(10).indices
    assert not np.array_equal(reordered, ids[:10])


@pytest.mark.parametrize("changes", [{}, {"subset": 10 * SEQ_LEN + 5}, {"seq_len": 50, "val_tokens": 999},
                                     {"order_seed": 3}])
def test_text_info_is_the_built_info_and_writes_nothing(corpus_dir, tmp_path, changes):
    cfg = text_cfg(corpus_dir, tmp_path / "cache", **changes)
    info = data_info(cfg)
    assert not (tmp_path / "cache").exists()  # nothing packed, nothing made
    assert info == build_data(cfg).info


def test_text_info_refuses_what_the_builder_refuses(corpus_dir, tmp_path):
    for changes, key in [({"subset": 10**9}, "data.subset"), ({"val_tokens": 10**8}, "data.val_tokens"),
                         ({"glob": "*.md"}, "data.glob"), ({"name": "nope"}, "data.name")]:
        with pytest.raises(ConfigError, match=key):
            data_info(text_cfg(corpus_dir, tmp_path, **changes))
    assert os.listdir(tmp_path) == []


def test_text_cache_is_reused_and_atomic(corpus_dir, tmp_path):
    cfg = text_cfg(corpus_dir, tmp_path)
    first = build_data(cfg).corpus
    stamp = first.stat().st_mtime_ns
    assert build_data(cfg).corpus == first and first.stat().st_mtime_ns == stamp  # not packed again
    assert os.listdir(tmp_path) == [first.name]  # no temporary file left behind
    dataset = build_data(cfg).train_dataset(100)
    dataset[0]  # opens the memory map
    assert len(pickle.dumps(dataset)) < 50_000  # pickling (DataLoader workers) never copies the corpus


def test_text_errors_are_one_line(corpus_dir, tmp_path):
    one_line_error(text_cfg(corpus_dir, tmp_path, paths=[str(tmp_path / "nope")]), "data.paths", "nope")
    one_line_error(text_cfg(corpus_dir, tmp_path, glob="*.md"), "data.glob")
    one_line_error(text_cfg(corpus_dir, tmp_path, subset=10**9), "data.subset")
    one_line_error(text_cfg(corpus_dir, tmp_path, subset=SEQ_LEN - 1), "data.subset")
    one_line_error(text_cfg(corpus_dir, tmp_path, val_tokens=10**8), "data.val_tokens")
    assert os.listdir(tmp_path) == []  # refused before anything was packed


def test_pystdlib_corpus(tmp_path):
    cfg = to_object(compose_config(["data=pystdlib"])).data
    cfg.cache_dir = str(tmp_path)
    begin = time.perf_counter()
    source = build_data(cfg)
    packed = time.perf_counter() - begin
    assert source.num_bytes > 10_000_000 and source.corpus.stat().st_size == source.num_bytes
    stamp = source.corpus.stat().st_mtime_ns
    begin = time.perf_counter()
    cached = build_data(cfg)
    loaded = time.perf_counter() - begin
    assert cached.corpus.stat().st_mtime_ns == stamp and loaded < 1.0, (packed, loaded)
    assert data_info(cfg) == source.info
    assert source.info.train_units + len(source.val_windows) * cfg.seq_len <= source.num_bytes
    assert source.info.train_units > 10_000_000 and len(source.val_dataset()) == cfg.val_tokens // cfg.seq_len
    x, _ = source.val_dataset()[0]
    assert x.shape == (cfg.seq_len,)


# --------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def digits() -> DataSource:
    return build_data(to_object(compose_config(["model=cnn", "data=digits"])).data)


def test_digits_shapes_and_labels(digits):
    info = digits.info
    assert (info.kind, info.unit, info.units_per_sample) == ("image", "samples", 1)
    assert (info.channels, info.image_size, info.num_classes) == (1, (8, 8), 10)
    assert info.train_units == 1797 - 360 and info.val_samples == 360
    x, y = digits.train_dataset(5)[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    labels = [digits.val_dataset()[i][1] for i in range(360)]
    assert set(labels) == set(range(10)) and min(np.bincount(labels)) >= 30  # stratified
    pixels = torch.stack([digits.train_dataset(1437)[i][0] for i in range(1437)])
    assert abs(float(pixels.mean())) < 0.1 and abs(float(pixels.std()) - 1) < 0.1  # normalised


def test_digits_split_disjoint(digits):
    train, val = set(digits.train_ids.tolist()), set(digits.val_ids.tolist())
    assert not train & val and len(train | val) == 1797
    assert not set(digits.train_dataset(5000).indices) & val


def test_images_nested_offset_subset_and_wrap(digits):
    small, big = digits.train_dataset(50), digits.train_dataset(300)
    assert same_items(small, big, 50)
    assert same_items(digits.train_dataset(300, start=120), torch.utils.data.Subset(big, range(120, 300)), 20)
    cfg = to_object(compose_config(["model=cnn", "data=digits", "data.subset=100"])).data
    subset = build_data(cfg)
    assert subset.info.train_units == 100
    ids = subset.train_dataset(250).indices
    assert np.array_equal(ids[:100], big.indices[:100])
    assert np.array_equal(ids[100:200], ids[:100]) and np.array_equal(ids[200:], ids[:50])
    cfg.subset = 5000
    one_line_error(cfg, "data.subset")


def test_augment_deterministic_and_training_only(digits):
    cfg = to_object(compose_config(["model=cnn", "data=digits", "data.augment=true"])).data
    augmented = build_data(cfg)
    plain, flipped = digits.train_dataset(64), augmented.train_dataset(64)
    assert same_items(flipped, augmented.train_dataset(64), 64)  # same pixels every time
    assert not same_items(plain, flipped, 64)
    assert all(plain[i][1] == flipped[i][1] for i in range(64))
    assert same_items(digits.val_dataset(), augmented.val_dataset(), 360)  # held-out set untouched


@pytest.mark.parametrize("overrides", [[], ["data.val_size=100"], ["data.image_size=16", "data.subset=500"]])
def test_digits_info_is_the_built_info(overrides):
    cfg = to_object(compose_config(["model=cnn", "data=digits", *overrides])).data
    assert data_info(cfg) == build_data(cfg).info


def test_missing_cifar10_is_one_line_error(tmp_path):
    cfg = to_object(compose_config(["model=cnn", "data=cifar10", f"data.root={tmp_path}"])).data
    message = one_line_error(cfg, "data.root", str(tmp_path), "CIFAR10", "data.download=true")
    assert message.startswith("data.root=")
    with pytest.raises(ConfigError, match="data.download=true"):
        data_info(cfg)


def test_torchvision_info_from_metadata_downloads_nothing(tmp_path):
    cfg = ImageDataConfig(name="cifar100", root=str(tmp_path / "cifar"), download=True, val_size=2000)
    info = data_info(cfg)
    assert (info.train_units, info.val_samples, info.num_classes, info.channels, info.image_size) == (
        50_000, 2000, 100, 3, (32, 32))
    assert list(tmp_path.iterdir()) == []


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-format (IDX, big-endian) uint8 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_local_files(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("t10k", 12)):
        write_idx(tmp_path / "MNIST" / "raw" / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        write_idx(tmp_path / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte", np.arange(count) % 10)
    cfg = ImageDataConfig(name="mnist", root=str(tmp_path), augment=True, subset=30)
    source = build_data(cfg)
    info = source.info
    assert data_info(cfg) == info  # read from the files' headers
    assert (info.channels, info.image_size, info.num_classes, info.train_units, info.val_samples) == (
        1, (28, 28), 10, 30, 12)
    x, y = source.train_dataset(31)[30]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y < 10
    assert source.train_dataset(31).indices[30] == source.train_dataset(1).indices[0]


# ----------------------------------------------------------------------- imagefolder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes of six generated PNGs each, 12x10 pixels, one class in grey scale."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["cat", "dog", "owl"]):
        (tmp_path / name).mkdir()
        for i in range(6):
            pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).convert("L" if name == "owl" else "RGB")
            image.save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_imagefolder(image_folder):
    cfg = to_object(compose_config(["model=cnn", "data=imagefolder", f"data.root={image_folder}",
                                    "data.image_size=8", "data.val_size=4", "data.augment=true"])).data
    source = build_data(cfg)
    info = source.info
    assert (info.channels, info.image_size, info.num_classes, info.train_units, info.val_samples) == (
        3, (8, 8), 3, 14, 4)
    assert data_info(cfg) == info
    assert not set(source.train_ids.tolist()) & set(source.val_ids.tolist())
    x, y = source.train_dataset(20)[15]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y in (0, 1, 2)
    assert same_items(source.train_dataset(5), source.train_dataset(20), 5)
    vx, vy = source.val_dataset()[3]
    assert vx.shape == (3, 8, 8) and vy in (0, 1, 2)


def test_imagefolder_errors(tmp_path, image_folder):
    one_line_error(ImageDataConfig(name="imagefolder", root=str(tmp_path / "none"), image_size=8), "data.root")
    one_line_error(ImageDataConfig(name="imagefolder", root=str(image_folder)), "data.image_size")
    one_line_error(ImageDataConfig(name="imagefolder", root=str(image_folder), image_size=8, val_size=18),
                   "data.val_size")
    one_line_error(ImageDataConfig(name="nope"), "data.name")
