"""Probe a trained run (or every completed run of a sweep): metrics into record.json, PNGs
into <run>/probes/.

The probe set is fixed: the first `max_samples` held-out items (`val_dataset()`) are the
queries, the first training items (`train_dataset(n)`) the reference set that neighbours are
looked up in and linear probes are fitted on. Images are labelled by class; byte positions of a
GPT by the character class of the byte that follows them (what the model is about to predict).

Metrics (all prefixed probe_, so the run table and the report pick them up):
  probe_knn1, probe_knn5        share of a query's 1 / 5 nearest reference embeddings with its label
  probe_knn1_input, ..._input   the same in raw input space (pixels; one-hot of the last bytes)
  probe_linear                  accuracy of a logistic regression on the frozen embeddings
  probe_class_ratio             within-class / between-class cosine distance (lower: more organised)
  probe_class_ratio_input       the same in raw input space
  probe_*_untrained             the embedding metrics of the same config untrained (same seed)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from scaling.probes.embeddings import image_embeddings, text_embeddings
from scaling.probes.knn import knn_accuracy, nearest_neighbours
from scaling.probes.linear import linear_probe_accuracy
from scaling.probes.organisation import class_distance_ratio

DEFAULT_MAX_SAMPLES = 2000  # images, or sampled byte positions of text
POSITIONS_PER_SEQUENCE = 8  # byte positions sampled from each probed sequence
GALLERY_QUERIES, GALLERY_K = 10, 5
EMBEDDING_METRICS = ("probe_knn1", "probe_knn5", "probe_linear", "probe_class_ratio")


class ProbeError(ValueError):
    """A run that cannot be probed (no config, not completed, no checkpoint): one line with the fix."""


# ------------------------------------------------------------------------- loading


def load_run(run_dir: Path | str, untrained: bool = False, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(cfg, model in eval mode on `device`, data source) of a run folder.

    untrained: the same model freshly initialised with the run's seed (as training began).
    """
    from scaling.config import from_dict
    from scaling.data import build_data
    from scaling.models import build_model
    from scaling.store import RunFolder

    run_dir = Path(run_dir)
    try:
        config = RunFolder(run_dir).read_config()
    except FileNotFoundError:
        raise ProbeError(f"{run_dir} has no config.yaml; give a run folder (runs/SWEEP/RUN_ID) or a sweep folder") from None
    except ValueError as error:
        raise ProbeError(f"{error}; restore that run's config.yaml, or probe another run") from None
    cfg = from_dict(config)
    data = build_data(cfg.data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # what pl.seed_everything(cfg.seed) does for torch in train()
        model = build_model(cfg.model, data.info)
    if not untrained:
        model.load_state_dict(model_state(run_dir / "checkpoints" / "last.ckpt"))
    return cfg, model.to(device).eval(), data


def model_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The model's weights from a Lightning checkpoint (keys without the module's "model.")."""
    if not checkpoint.exists():
        raise ProbeError(f"{checkpoint} does not exist; train the run first (scaling train / scaling sweep)")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {key[len("model."):]: value for key, value in state.items() if key.startswith("model.")}


def default_device() -> str:
    """cuda when a GPU is visible, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------- metrics


def _embedding_metrics(query, query_labels, reference, reference_labels, suffix: str = "") -> dict[str, float]:
    knn = knn_accuracy(query, query_labels, reference, reference_labels, ks=(1, 5))
    return {f"probe_knn1{suffix}": knn[1], f"probe_knn5{suffix}": knn[5],
            f"probe_class_ratio{suffix}": class_distance_ratio(query, query_labels)}


def image_probe_sets(data, max_samples: int) -> tuple[Any, Any]:
    """(query set: held-out images, reference set: the first training images)."""
    reference = data.train_dataset(min(max_samples, data.info.train_units))
    if getattr(reference, "augment_seed", None) is not None:
        reference.augment_seed = None  # the reference images as they are, not randomly cropped
    return data.val_dataset(), reference


def probe_images(model, data, max_samples: int, device: str, baselines: bool = True) -> tuple[dict, dict]:
    """(metrics, embeddings {"query", "reference"}) of an image model on the probe set."""
    query_set, reference_set = image_probe_sets(data, max_samples)
    query = image_embeddings(model, query_set, max_samples, device=device)
    reference = image_embeddings(model, reference_set, max_samples, device=device)
    metrics = _embedding_metrics(query.features, query.labels, reference.features, reference.labels)
    metrics["probe_linear"] = linear_probe_accuracy(reference.features, reference.labels,
                                                    query.features, query.labels)
    if baselines:
        metrics.update(_embedding_metrics(query.flat_inputs, query.labels, reference.flat_inputs,
                                          reference.labels, suffix="_input"))
    return metrics, {"query": query, "reference": reference}


def probe_text(model, data, max_samples: int, device: str, baselines: bool = True) -> tuple[dict, dict]:
    """(metrics, embeddings) of a GPT: byte positions labelled by the next byte's character class."""
    sequences = max(1, math.ceil(max_samples / POSITIONS_PER_SEQUENCE))
    reference_set = data.train_dataset(min(sequences, data.info.train_units // data.info.units_per_sample))
    query = text_embeddings(model, data.val_dataset(), sequences, POSITIONS_PER_SEQUENCE, device=device, seed=0)
    reference = text_embeddings(model, reference_set, sequences, POSITIONS_PER_SEQUENCE, device=device, seed=1)
    q_labels, r_labels = query.next_classes, reference.next_classes
    metrics = _embedding_metrics(query.positions, q_labels, reference.positions, r_labels)
    metrics["probe_linear"] = linear_probe_accuracy(reference.positions, r_labels, query.positions, q_labels)
    if baselines:
        metrics.update(_embedding_metrics(query.flat_inputs, q_labels, reference.flat_inputs, r_labels,
                                          suffix="_input"))
        metrics["probe_linear_input"] = linear_probe_accuracy(reference.flat_inputs, r_labels,
                                                              query.flat_inputs, q_labels)
    return metrics, {"query": query, "reference": reference}


def probe_model(model, data, max_samples: int = DEFAULT_MAX_SAMPLES, device: str = "cpu",
                baselines: bool = True) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, embeddings) of any model on its data's probe set (images or text)."""
    probe = probe_text if data.info.kind == "text" else probe_images
    return probe(model, data, max_samples, device, baselines)


# ------------------------------------------------------------------------ pictures


def first_conv_weight(model) -> Optional[np.ndarray]:
    """[out, in, kh, kw] weights of the model's first 2-D convolution (None for a GPT)."""
    if hasattr(model, "first_conv"):
        return model.first_conv().weight.detach().cpu().numpy()
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return None if conv is None else conv.weight.detach().cpu().numpy()


def run_caption(record: dict[str, Any]) -> str:
    """"cnn w8 d3, N=12,345, D=40,000 samples": what a picture's title says about its run."""
    return (f"{record.get('family')} w{record.get('width')} d{record.get('depth')}, N={record.get('N', 0):,}, "
            f"D={record.get('D', 0):,} {record.get('unit', '')}").strip()


def image_pictures(model, embeddings: dict, out_dir: Path, caption: str) -> list[Path]:
    """Neighbour gallery, first-layer kernels and activation atlas of an image model."""
    from scaling.probes import pictures

    query, reference = embeddings["query"], embeddings["reference"]
    picks = gallery_queries(query.labels, GALLERY_QUERIES)
    by_embedding = nearest_neighbours(query.features[picks], reference.features, GALLERY_K)
    by_pixels = nearest_neighbours(query.flat_inputs[picks], reference.flat_inputs, GALLERY_K)
    paths = [pictures.neighbour_gallery(query.inputs[picks], query.labels[picks], reference.inputs,
                                        reference.labels, by_embedding, by_pixels,
                                        out_dir / "neighbours.png", caption)]
    weight = first_conv_weight(model)
    if weight is not None:
        paths.append(pictures.kernel_grids([("first layer", weight)], out_dir / "kernels.png", caption))
    paths.append(pictures.activation_atlas(query.features, query.inputs, query.labels,
                                           out_dir / "atlas.png", title=caption))
    return paths


def gallery_queries(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` queries: the first of each class in turn, then the next of each, ..."""
    rank = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))  # by rank within class, then by class
    return np.sort(order[:count]) if len(order) > count else order


def byte_counts(data, max_sequences: int = 2000) -> np.ndarray:
    """[256] how often each byte occurs in the first held-out sequences (which bytes the text uses)."""
    counts = np.zeros(256, dtype=np.int64)
    val = data.val_dataset()
    for index in range(min(max_sequences, len(val))):
        counts += np.bincount(val[index][0].numpy(), minlength=256)[:256]
    return counts


def token_table(model) -> np.ndarray:
    """[vocab, C] a GPT's token embedding weights."""
    return model.token_embedding.weight.detach().float().cpu().numpy()


def text_pictures(model, data, out_dir: Path, caption: str) -> list[Path]:
    """The 2-D map of a GPT's byte embedding table (bytes that the text uses)."""
    from scaling.probes import pictures

    return [pictures.byte_embedding_maps([(caption, token_table(model))], out_dir / "byte_embeddings.png",
                                         byte_counts=byte_counts(data))]


# ------------------------------------------------------------------------ one run


def probe_run(run_dir: Path | str, out_dir: Path | str | None = None, max_samples: int = DEFAULT_MAX_SAMPLES,
              untrained: bool = False, pictures: bool = True, write: bool = True,
              device: Optional[str] = None) -> dict[str, float]:
    """Probe a completed run: returns its metrics, merged into record.json's "metrics" (write).

    untrained: also measure the same config untrained (same seed, no checkpoint) and add its
    embedding metrics as probe_*_untrained. Pictures go to out_dir (default <run_dir>/probes/).
    """
    from scaling.store import RunFolder

    folder = RunFolder(run_dir)
    record = folder.read_record()
    if record.get("status") != "completed":
        raise ProbeError(f"{folder.path} is {record.get('status') or 'not a run'}, not completed; "
                         "probe it after it has trained (scaling sweep ... resumes it)")
    device = device or default_device()
    _, model, data = load_run(folder.path, device=device)
    metrics, embeddings = probe_model(model, data, max_samples, device)
    if untrained:
        _, fresh, _ = load_run(folder.path, untrained=True, device=device)
        fresh_metrics, _ = probe_model(fresh, data, max_samples, device, baselines=False)
        metrics.update({f"{name}_untrained": fresh_metrics[name] for name in EMBEDDING_METRICS})
    paths: list[Path] = []
    if pictures:
        out = Path(out_dir) if out_dir else folder.path / "probes"
        caption = run_caption(record)
        paths = (text_pictures(model, data, out, caption) if data.info.kind == "text"
                 else image_pictures(model, embeddings, out, caption))
    if write:  # one probe's numbers replace the last probe's (other metrics stay)
        probe = {"max_samples": max_samples, "pictures": [str(p) for p in paths]}
        folder.change(lambda record: {**record, "probe": probe, "metrics": {
            **{k: v for k, v in (record.get("metrics") or {}).items() if not k.startswith("probe_")}, **metrics}})
    return metrics


def probe_finished(run_dir: Path | str, max_samples: int = DEFAULT_MAX_SAMPLES) -> Optional[dict[str, float]]:
    """Probe a run that has just completed (trainer.probe=true), unless it was probed before.

    A probe that fails is reported on stderr and returns None: the training itself completed.
    """
    from scaling.store import RunFolder

    record = RunFolder(run_dir).read_record()
    if record.get("status") != "completed" or "probe_knn1" in (record.get("metrics") or {}):
        return None
    try:
        return probe_run(run_dir, max_samples=max_samples)
    except Exception as exc:  # the run stays completed; `scaling probe RUN_DIR` can retry
        print(f"probe failed for {run_dir}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


# ---------------------------------------------------------------------- a sweep


def probe_sweep(sweep_dir: Path | str, max_samples: int = DEFAULT_MAX_SAMPLES, untrained: bool = False,
                pictures: bool = True, device: Optional[str] = None) -> dict[str, dict[str, Any]]:
    """Probe every completed run under sweep_dir; {run_id: metrics, or {"error": text}}.

    One run that cannot be probed never stops the others. With pictures, also draws into
    <sweep_dir>/probes/ the first-layer kernels (CNNs) or byte-embedding maps (GPTs) of the
    ladder side by side, one panel per width, and the probe metrics against N.
    """
    from scaling.store import find_run_folders, folder_row

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.exists():
        raise FileNotFoundError(f"{sweep_dir} does not exist; give a sweep folder (runs/NAME) or a run folder")
    results: dict[str, dict[str, Any]] = {}
    for folder in find_run_folders(sweep_dir):
        row = folder_row(folder)
        if row["status"] == "damaged":  # named, skipped; the other runs go on
            print(f"skipped: {row['error']}", file=sys.stderr)
        if row["status"] != "completed":
            continue
        try:
            results[folder.path.name] = probe_run(folder.path, max_samples=max_samples, untrained=untrained,
                                                  pictures=pictures, device=device)
        except Exception as exc:  # recorded per run; the sweep goes on
            results[folder.path.name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"probe failed for {folder.path}: {exc}", file=sys.stderr)
    if pictures and any("error" not in m for m in results.values()):
        ladder_pictures(sweep_dir, sweep_dir / "probes")
    return results


def ladder_runs(sweep_dir: Path) -> list[tuple[dict[str, Any], Path]]:
    """(record, folder) of one completed run per width (the one with most compute), by width."""
    from scaling.store import find_run_folders, folder_row

    best: dict[Any, tuple[dict[str, Any], Path]] = {}
    for folder in find_run_folders(sweep_dir):
        record = folder_row(folder)
        if record.get("status") != "completed" or not folder.last_checkpoint.exists():
            continue
        key = record.get("width")
        if key not in best or (record.get("C") or 0) > (best[key][0].get("C") or 0):
            best[key] = (record, folder.path)
    return [best[key] for key in sorted(best, key=lambda w: (w is None, w or 0))]


def ladder_pictures(sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Kernels (or byte maps) of each width side by side, and the probe metrics against N."""
    from scaling.probes import pictures
    from scaling.store import load_runs

    kernels, tables, counts = [], [], None
    for record, path in ladder_runs(sweep_dir):
        _, model, data = load_run(path, device="cpu")
        caption = f"width {record.get('width')}\nN={record.get('N', 0):,}"
        weight = first_conv_weight(model)
        if weight is not None:
            kernels.append((caption, weight))
        elif hasattr(model, "token_embedding"):
            tables.append((caption.replace("\n", ", "), token_table(model)))
            counts = byte_counts(data) if counts is None else counts
    paths = []
    if kernels:
        paths.append(pictures.kernel_grids(kernels, out_dir / "kernels_by_width.png",
                                           f"first-layer kernels across the ladder: {sweep_dir.name}"))
    if tables:
        paths.append(pictures.byte_embedding_maps(tables, out_dir / "byte_embeddings_by_width.png",
                                                  f"byte embeddings across the ladder: {sweep_dir.name}",
                                                  byte_counts=counts))
    table = load_runs(sweep_dir)
    if "probe_knn1" in table and table["probe_knn1"].notna().sum() >= 1:
        paths.append(pictures.metrics_against_size(table[table["status"] == "completed"],
                                                   out_dir / "probe_metrics.png",
                                                   title=f"probes against N: {sweep_dir.name}"))
    return paths
