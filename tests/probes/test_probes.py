"""Probes: metrics in the run table, trained vs untrained, pictures, the GPT probe and map.

One tiny digits CNN and one tiny GPT (on generated text) are trained once per module; the
CNN is probed through `scaling probe SWEEP_DIR`, the GPT through trainer.probe=true in the
worker that launchers run.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from scaling.launch.common import prepare
from scaling.launch.worker import train_folder
from scaling.plan import plan_run
from scaling.probes import ProbeError, probe_run
from scaling.probes import pictures
from scaling.commands.probe import arguments as configure_probe_parser, run as run_probe
from scaling.probes.embeddings import CHAR_CLASSES, char_class_table
from scaling.probes.knn import knn_accuracy, nearest_neighbours
from scaling.probes.organisation import class_distance_ratio
from scaling.store import RunFolder, load_runs
from scaling.train import train
from tests.conftest import TINY_CNN, TINY_GPT, tiny

FEW_CHECKS = ["trainer.val_every=1000", "trainer.checkpoint_every=1000", "trainer.log_every=50"]
# Width 2, depth 3: small enough that random features are poor (untrained kNN about 0.4 on
# digits); at large widths random features approach the pixel baseline (0.97), see the report.
CNN = [*TINY_CNN, "model.width=2", "model.depth=3", "model.dropout=0.1", "budget.samples=6000", *FEW_CHECKS]
MAX_SAMPLES = 500


def probe_cli(*argv: str) -> int:
    """`scaling probe ARGV` through the command's own parser."""
    parser = argparse.ArgumentParser(prog="scaling probe")
    configure_probe_parser(parser)
    return run_probe(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def cnn_sweep(tmp_path_factory) -> Path:
    """A trained tiny digits CNN, probed with `scaling probe SWEEP_DIR --untrained`."""
    root = tmp_path_factory.mktemp("cnn") / "runs"
    spec = plan_run(tiny(CNN, root, "sweep.name=digits_probe"))
    assert train(spec)["status"] == "completed"
    assert probe_cli(str(spec.path.parent), "--untrained", "--max-samples", str(MAX_SAMPLES)) == 0
    return spec.path.parent


def write_corpus(folder: Path, size: int = 100_000, seed: int = 0) -> None:
    """Code-like lines of words, numbers and punctuation: every character class occurs."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "value", "total", "count", "name", "item", "data"]
    lines: list[str] = []
    while sum(map(len, lines)) < size:
        a, b, n = rng.choice(words), rng.choice(words), rng.randint(0, 9999)
        lines.append(rng.choice([f"{a}_{n % 100} = {b} + {n};", f"# the {a} of {b} is {n}.",
                                 f'print({a}, "{b}", {n % 10})']))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory) -> Path:
    """A tiny GPT trained by the launchers' worker with trainer.probe=true."""
    base = tmp_path_factory.mktemp("gpt")
    write_corpus(base / "text")
    cfg = tiny(TINY_GPT, base / "runs", "data=text", f"data.paths=[{base / 'text'}]",
               f"data.cache_dir={base / 'cache'}", "budget.tokens=40000", "trainer.probe=true", *FEW_CHECKS)
    folder = prepare(plan_run(cfg))
    assert train_folder(folder.path)["status"] == "completed"
    return folder.path


# ------------------------------------------------------------------- pure pieces


def test_knn_accuracy_is_the_share_of_neighbours_with_the_label():
    points = np.array([[1, 0], [0.9, 0.1], [0.8, 0.3], [0, 1], [0.1, 0.9], [0.6, 0.7]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1, 0])
    # uncentred cosine, leave-one-out: the last point's nearest is point 2 (label 0), then 4 (1)
    assert nearest_neighbours(points, k=2, center=False)[5].tolist() == [2, 4]
    # every nearest point shares the label; points 3, 4, 5 each have one of two that does not
    assert knn_accuracy(points, labels, ks=(1, 2), center=False) == pytest.approx({1: 1.0, 2: 0.75})
    query = np.array([[1, 0.05]], dtype=np.float32)
    assert knn_accuracy(query, np.array([1]), points, labels, ks=(1, 2), center=False) == {1: 0.0, 2: 0.0}


def test_class_distance_ratio_matches_all_pairs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)) + np.repeat(rng.normal(scale=3, size=(4, 5)), 10, axis=0)
    labels = np.repeat(np.arange(4), 10)
    unit = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0), axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    same, off_diagonal = labels[:, None] == labels[None, :], ~np.eye(40, dtype=bool)
    expected = distance[same & off_diagonal].mean() / distance[~same].mean()
    assert class_distance_ratio(x, labels) == pytest.approx(expected)
    assert class_distance_ratio(x, labels) < 0.5  # well separated clusters
    assert class_distance_ratio(x, rng.permutation(labels)) == pytest.approx(1.0, abs=0.1)


def test_character_classes_of_bytes():
    table = char_class_table()
    assert [CHAR_CLASSES[table[ord(c)]] for c in "a7 .\n"] == ["letter", "digit", "space", "punct", "newline"]
    assert CHAR_CLASSES[table[0xE9]] == "other"


def test_colour_pictures_from_synthetic_embeddings(tmp_path: Path):
    """RGB kernels (AlexNet's 11x11 stem) and a colour atlas, without training anything."""
    import torch

    from scaling.probes.embeddings import shrink

    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(64, 3, 11, 11)).astype(np.float32)
    mosaic = pictures.kernel_mosaic(kernels)
    assert mosaic.shape == (8 * 12 + 1, 8 * 12 + 1, 3) and 0 <= mosaic.min() and mosaic.max() <= 1
    _assert_picture(pictures.kernel_grids([("w64", kernels), ("w32", kernels[:32])], tmp_path / "k.png"),
                    pictures.kernel_grid_figsize(2))
    labels = np.repeat(np.arange(3), 40)
    inputs = rng.normal(size=(120, 3, 16, 16)).astype(np.float32) + labels[:, None, None, None]
    features = np.concatenate([inputs.reshape(120, -1)[:, :40], 5 * np.eye(3)[labels]], axis=1)  # [120, 43]
    _assert_picture(pictures.activation_atlas(features, inputs, labels, tmp_path / "a.png"), pictures.ATLAS_FIGSIZE)
    assert shrink(torch.zeros(2, 3, 224, 160)).shape == (2, 3, 64, 46)


# -------------------------------------------------------------------------- CNN


def test_cnn_probe_metrics_join_the_run_table(cnn_sweep: Path):
    row = load_runs(cnn_sweep).iloc[0]
    for name in ("probe_knn1", "probe_knn5", "probe_knn1_input", "probe_knn5_input", "probe_linear",
                 "probe_class_ratio", "probe_knn1_untrained"):
        assert 0 <= row[name] <= 1, name
    assert row["probe_knn1_input"] > 0.9  # digits are easy in pixel space
    assert row["probe_knn1"] >= row["probe_knn1_untrained"] + 0.15
    assert row["probe_knn5"] >= row["probe_knn5_untrained"] + 0.15
    assert row["probe_linear"] >= row["probe_linear_untrained"] + 0.15
    assert row["probe_class_ratio"] < row["probe_class_ratio_untrained"] - 0.2


def _assert_picture(path: Path, figsize: tuple[float, float]) -> None:
    image = imread(path)  # [H, W, 4] floats in [0, 1]
    assert image.shape[:2] == pictures.pixel_size(figsize), path.name
    grey = image[..., :3].mean(axis=-1)
    assert grey.std() > 0.05, f"{path.name} is blank or constant"
    assert (grey < 0.9).mean() > 0.01, f"{path.name} has almost nothing drawn"


def test_cnn_pictures_have_their_sizes_and_content(cnn_sweep: Path):
    run = next(p for p in cnn_sweep.iterdir() if (p / "record.json").exists())
    probes = run / "probes"
    _assert_picture(probes / "neighbours.png", pictures.gallery_figsize(10, 5))
    _assert_picture(probes / "kernels.png", pictures.kernel_grid_figsize(1))
    _assert_picture(probes / "atlas.png", pictures.ATLAS_FIGSIZE)
    _assert_picture(cnn_sweep / "probes" / "kernels_by_width.png", pictures.kernel_grid_figsize(1))
    _assert_picture(cnn_sweep / "probes" / "probe_metrics.png", pictures.METRICS_FIGSIZE)
    assert str(probes / "atlas.png") in RunFolder(run).read_record()["probe"]["pictures"]


def test_untrained_probe_does_not_touch_the_record_and_refusals(cnn_sweep: Path, tmp_path: Path):
    run = next(p for p in cnn_sweep.iterdir() if (p / "record.json").exists())
    before = RunFolder(run).read_record()["metrics"]
    metrics = probe_run(run, max_samples=200, pictures=False, write=False)
    assert set(metrics) >= {"probe_knn1", "probe_linear"}
    assert RunFolder(run).read_record()["metrics"] == before
    RunFolder(tmp_path / "r").write_record({"status": "running"})
    with pytest.raises(ProbeError, match="not completed"):
        probe_run(tmp_path / "r")
    assert probe_cli(str(tmp_path / "nowhere")) == 2
    assert probe_cli(str(tmp_path / "r")) == 2
    damaged = Path(shutil.copytree(run, tmp_path / "damaged"))
    (damaged / "config.yaml").write_text("[1, 2]\n")
    with pytest.raises(ProbeError, match="holds a list, not a config; restore that run's config.yaml"):
        probe_run(damaged, max_samples=200, pictures=False, write=False)


# -------------------------------------------------------------------------- GPT


def test_gpt_probed_by_the_worker_when_trainer_probe_is_set(gpt_run: Path):
    row = load_runs(gpt_run).iloc[0]
    majority = 0.5  # letters are under half of the bytes of the generated corpus
    assert row["probe_linear"] > majority
    assert 0 <= row["probe_knn1"] <= 1 and 0 <= row["probe_class_ratio"] <= 1.5
    _assert_picture(gpt_run / "probes" / "byte_embeddings.png", pictures.byte_map_figsize(1))
    untrained = probe_run(gpt_run, max_samples=1000, untrained=True, pictures=False, write=False)
    assert untrained["probe_linear"] > untrained["probe_linear_untrained"]
