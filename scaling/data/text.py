"""Byte-level text corpora (vocabulary 256), packed once into a uint8 file and memory-mapped.

The corpus is cut into non-overlapping windows of seq_len + 1 bytes (x is the first seq_len
bytes, y the same shifted by one). Windows are grouped into blocks; a few blocks spread evenly
over the corpus are held out for validation, so the held-out text comes from the whole corpus
(not only from the files that sort last) and never shares a byte with a training window. The
training windows are permuted once with data.order_seed; a run that sees n sequences sees the
first n of that order (nested budgets), wrapping around the pool for repeated epochs.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
import os
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from scaling.data import Source, register_source
from scaling.data.base import DataInfo, DataSource
from scaling.errors import ConfigError, fail, require_positive

VOCAB_SIZE = 256
PACK_FORMAT = "scaling-bytes-v1"  # part of the cache key: change it when the packing changes
VAL_BLOCKS = 64  # the held-out set is spread over about this many places in the corpus


@dataclass
class TextDataConfig:
    """A byte-level corpus. `name` is pystdlib (the running Python's stdlib) or files."""

    kind: str = "text"
    name: str = "pystdlib"
    paths: list[str] = field(default_factory=list)  # files or folders when name=files
    glob: str = "*"  # which files of a folder (pystdlib uses *.py)
    seq_len: int = 128
    val_tokens: int = 65536  # fixed held-out evaluation set size
    subset: Optional[int] = None  # unique training tokens drawn from (None: all)
    order_seed: int = 0  # data order; fixed so that smaller budgets nest in larger ones
    cache_dir: Optional[str] = None  # where the packed corpus lives (default ~/.cache/scaling)
    default_budget: int = 400_000  # tokens, used when no budget.* is given


# ------------------------------------------------------------------------- file lists


def walk_files(root: Path, pattern: str, skip_dirs: tuple[str, ...] = ()) -> list[Path]:
    """Files under `root` whose name matches `pattern`, sorted, not entering `skip_dirs` folders."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip_dirs]
        found.extend(Path(folder, name) for name in names if fnmatch.fnmatchcase(name, pattern))
    return sorted(path for path in found if path.is_file())


def stdlib_files(pattern: str = "*.py") -> list[Path]:
    """The running Python's standard-library files matching `pattern`, sorted, no site-packages."""
    return list(_stdlib_files(pattern))


@functools.lru_cache(maxsize=8)
def _stdlib_files(pattern: str) -> tuple[Path, ...]:
    # walked once per process (planning and building a run both ask): the library does not change
    root = Path(sysconfig.get_paths()["stdlib"])
    return tuple(walk_files(root, pattern, skip_dirs=("site-packages", "dist-packages", "__pycache__")))


def find_files(paths: list[str], pattern: str = "*") -> list[Path]:
    """Files named in `paths`, and files under the folders in `paths` whose name matches `pattern`."""
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in walk_files(path, pattern))
        else:
            raise ConfigError(f"data.paths has {raw!r}, which does not exist; "
                              "give existing files or folders in data.paths")
    return sorted(found)


def _stdlib_corpus(cfg: TextDataConfig) -> tuple[list[Path], str]:
    """The standard library's files (*.py unless data.glob narrows it), and where they are."""
    pattern = "*.py" if cfg.glob in ("*", "") else cfg.glob
    return stdlib_files(pattern), f"the standard library at {sysconfig.get_paths()['stdlib']!r}"


def _require_paths(cfg: TextDataConfig) -> None:
    if not cfg.paths:
        fail("data.paths", [], "is empty", "give files or folders: data.paths=[/path/a,/path/b]")


def _files_corpus(cfg: TextDataConfig) -> tuple[list[Path], str]:
    """The files and folders of data.paths, and how to name them."""
    _require_paths(cfg)
    return find_files(cfg.paths, cfg.glob), f"data.paths={cfg.paths!r}"


# data.name -> (the corpus files, in packing order; where they were looked for)
CORPORA: dict[str, Callable[[TextDataConfig], tuple[list[Path], str]]] = {
    "pystdlib": _stdlib_corpus, "files": _files_corpus}


def _corpus(cfg: TextDataConfig) -> Callable[[TextDataConfig], tuple[list[Path], str]]:
    if cfg.name not in CORPORA:
        fail("data.name", cfg.name, "is not a text corpus", f"use {' or '.join(CORPORA)}")
    return CORPORA[cfg.name]


def corpus_files(cfg: TextDataConfig) -> list[Path]:
    """The files a text config packs, in packing order; a one-line ConfigError if there are none."""
    files, where = _corpus(cfg)(cfg)
    files = [f for f in files if f.stat().st_size > 0]
    if not files:
        raise ConfigError(f"data.glob={cfg.glob!r} matched no non-empty files in {where}; "
                          "change data.glob or data.paths")
    return files


# ------------------------------------------------------------------------ packing


def corpus_key(files: list[Path]) -> str:
    """A short hash of the file list, sizes and modification times (the cache file's name)."""
    digest = hashlib.sha256(PACK_FORMAT.encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where packed corpora live unless data.cache_dir says otherwise."""
    return Path.home() / ".cache" / "scaling" / "corpora"


def pack_files(files: list[Path], dest: Path) -> int:
    """Concatenate the files' bytes into `dest` atomically (temporary file, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    total = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for path in files:
                total += out.write(path.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the cache is shared like any file
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return total


def ensure_packed(files: list[Path], dest: Path) -> bool:
    """Pack `files` into `dest` unless it already holds them; True when it packed."""
    expected = corpus_bytes(files)
    if dest.is_file() and dest.stat().st_size == expected:
        return False
    pack_files(files, dest)
    return True


# -------------------------------------------------------------------------- split


def split_windows(num_windows: int, num_val: int) -> tuple[np.ndarray, np.ndarray]:
    """(training window ids, held-out window ids): every k-th block of windows is held out.

    Blocks hold ceil(num_val / VAL_BLOCKS) windows; enough blocks to cover num_val windows are
    spread evenly over the corpus. Both arrays are sorted and disjoint.
    """
    block = max(1, math.ceil(num_val / VAL_BLOCKS))
    val_blocks = math.ceil(num_val / block)
    num_blocks = num_windows // block
    if num_blocks <= val_blocks:
        raise ValueError("corpus too small for the held-out set")
    stride = num_blocks // val_blocks
    first = np.arange(val_blocks, dtype=np.int64) * stride + stride // 2
    held_out = (first[:, None] * block + np.arange(block, dtype=np.int64)[None, :]).ravel()
    is_val = np.zeros(num_windows, dtype=bool)
    is_val[held_out] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ------------------------------------------------------------------------ datasets


class WindowDataset(Dataset):
    """Windows of a packed corpus: item i is window ids[(start + i) % len(ids)] as (x, y).

    The memory map is opened lazily in each process (DataLoader workers included), so pickling
    the dataset never copies the corpus.
    """

    def __init__(self, corpus: Path, seq_len: int, ids: np.ndarray, start: int, length: int) -> None:
        self.corpus, self.seq_len, self.ids = corpus, seq_len, ids
        self.start, self.length = start, length
        self._tokens: Optional[np.memmap] = None

    def __len__(self) -> int:
        return self.length

    def window_id(self, index: int) -> int:
        """The corpus window that item `index` reads."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        return int(self.ids[(self.start + index) % len(self.ids)])

    @property
    def indices(self) -> np.ndarray:
        """The corpus window id of every item (materialised; for checks and tests)."""
        positions = np.arange(self.start, self.start + self.length, dtype=np.int64)
        return self.ids[positions % len(self.ids)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tokens is None:
            self._tokens = np.memmap(self.corpus, dtype=np.uint8, mode="r")
        span = self.seq_len + 1
        offset = self.window_id(index) * span
        window = torch.from_numpy(np.array(self._tokens[offset:offset + span], dtype=np.int64))
        return window[:-1], window[1:]  # x, y: [seq_len] each

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tokens"] = None
        return state


class TextSource(DataSource):
    """A byte-level corpus with a fixed held-out set and a fixed nested training order."""

    def __init__(self, cfg: TextDataConfig, corpus: Path, num_bytes: int) -> None:
        self.corpus, self.seq_len, self.num_bytes = corpus, cfg.seq_len, num_bytes
        self.num_val = held_out_windows(cfg)
        self.train_windows, self.val_windows, self.pool = split_corpus(cfg, num_bytes)
        rng = np.random.default_rng(cfg.order_seed)
        self.order = self.train_windows[rng.permutation(len(self.train_windows))]
        self.info = corpus_info(cfg, self.pool)

    def train_dataset(self, num_samples: int, start: int = 0) -> Dataset:
        """Training sequences start..num_samples-1 of the fixed order, wrapping around the pool."""
        if not 0 <= start <= num_samples:
            raise ValueError(f"need 0 <= start <= num_samples, got start={start}, num_samples={num_samples}")
        return WindowDataset(self.corpus, self.seq_len, self.order[:self.pool], start, num_samples - start)

    def val_dataset(self) -> Dataset:
        """The first ceil(val_tokens / seq_len) held-out windows, in corpus order."""
        return WindowDataset(self.corpus, self.seq_len, self.val_windows[:self.num_val], 0, self.num_val)


def held_out_windows(cfg: TextDataConfig) -> int:
    """Windows in the held-out set: ceil(val_tokens / seq_len), at least one."""
    return max(1, math.ceil(cfg.val_tokens / cfg.seq_len))


def split_corpus(cfg: TextDataConfig, num_bytes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(training window ids, held-out window ids, training pool size in windows) of a corpus of
    `num_bytes` bytes; one-line ConfigErrors when the held-out set or data.subset do not fit."""
    num_windows = num_bytes // (cfg.seq_len + 1)
    train, val = _split_or_explain(cfg, num_windows, held_out_windows(cfg))
    return train, val, _pool_size(cfg, len(train))


def corpus_info(cfg: TextDataConfig, pool: int) -> DataInfo:
    """What a model builder and the accounting need to know of a corpus of `pool` training windows."""
    return DataInfo(name=cfg.name, kind="text", unit="tokens", train_units=pool * cfg.seq_len,
                    units_per_sample=cfg.seq_len, vocab_size=VOCAB_SIZE, seq_len=cfg.seq_len,
                    val_samples=held_out_windows(cfg))


def _split_or_explain(cfg: TextDataConfig, num_windows: int, num_val: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        return split_windows(num_windows, num_val)
    except ValueError:
        raise ConfigError(
            f"data.val_tokens={cfg.val_tokens} needs {num_val} windows of {cfg.seq_len + 1} bytes but "
            f"the corpus has only {num_windows}; lower data.val_tokens or data.seq_len, or add files"
        ) from None


def _pool_size(cfg: TextDataConfig, num_train: int) -> int:
    """Training windows drawn from: all of them, or the first subset // seq_len of the order."""
    if cfg.subset is None:
        return num_train
    pool = cfg.subset // cfg.seq_len
    if pool < 1:
        raise ConfigError(f"data.subset={cfg.subset} is less than one sequence of data.seq_len="
                          f"{cfg.seq_len} tokens; set data.subset to at least {cfg.seq_len}")
    if pool > num_train:
        raise ConfigError(f"data.subset={cfg.subset} is larger than the {num_train * cfg.seq_len} "
                          f"training tokens of data.name={cfg.name!r}; lower data.subset or leave it unset")
    return pool


def corpus_bytes(files: list[Path]) -> int:
    """The packed corpus's size: the files' sizes added up."""
    return sum(path.stat().st_size for path in files)


def text_info(cfg: TextDataConfig) -> DataInfo:
    """The corpus's DataInfo from its files' sizes: nothing is read, packed or written."""
    _, _, pool = split_corpus(cfg, corpus_bytes(corpus_files(cfg)))
    return corpus_info(cfg, pool)


def build_text(cfg: TextDataConfig) -> TextSource:
    """Find the corpus files, check the split and subset, then pack once into the cache."""
    files = corpus_files(cfg)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    corpus = cache_dir / f"{cfg.name}-{corpus_key(files)}.u8"
    source = TextSource(cfg, corpus, corpus_bytes(files))  # checks, no I/O
    ensure_packed(files, corpus)
    return source


def validate(cfg: TextDataConfig) -> None:
    """Sizes are positive, the corpus is one there is, and data.name=files has paths."""
    require_positive(cfg, "data", ["seq_len", "val_tokens", "subset"])
    _corpus(cfg)
    if cfg.name == "files":
        _require_paths(cfg)


register_source(Source(kind="text", schema=TextDataConfig, unit="tokens", info=text_info, build=build_text,
                       validate=validate, choose="data=pystdlib or data=text"))
