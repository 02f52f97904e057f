"""PNG pictures of what a model learned: neighbour galleries, first-layer kernels, activation
atlases, and the byte-embedding map of a GPT.

Every picture is a matplotlib `Figure` (no pyplot, no global state) saved at DPI with a fixed
size in inches, so its pixel size is known in advance (`pixel_size`): figsize * DPI.
Images are drawn from the normalised inputs the model saw; grey images as dark ink on white.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 100
CELL_INCH = 0.75  # one image of the neighbour gallery
GAP_INCH = 0.35  # between the gallery's blocks
LABEL_INCH = 0.3  # the query's label, left of it
HEADER_INCH = 0.7  # a title line, then the column headers
MATCH_COLOUR, MISS_COLOUR = "#1a9641", "#d7191c"
CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"]


def pixel_size(figsize: tuple[float, float]) -> tuple[int, int]:
    """(height, width) in pixels of a picture saved from a figure of `figsize` inches."""
    width, height = figsize
    return int(round(height * DPI)), int(round(width * DPI))


def _save(fig: Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def class_colour(label: int) -> str:
    """A colour per class (tab10, cycling)."""
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


# --------------------------------------------------------------------------- images


def display_images(inputs: np.ndarray) -> np.ndarray:
    """[n, C, H, W] normalised inputs -> [n, H, W, 3] RGB in [0, 1] for drawing.

    Grey images share one scale (dark ink on white); colour images are stretched one by one.
    """
    x = np.asarray(inputs, dtype=np.float32)
    if x.shape[1] == 1:
        low, high = np.percentile(x, 1), np.percentile(x, 99)
        ink = np.clip((x[:, 0] - low) / max(high - low, 1e-6), 0, 1)  # [n, H, W]
        return np.repeat((1.0 - ink)[..., None], 3, axis=-1)
    x = x[:, :3].transpose(0, 2, 3, 1)  # [n, H, W, 3]
    low = x.min(axis=(1, 2, 3), keepdims=True)
    high = x.max(axis=(1, 2, 3), keepdims=True)
    return (x - low) / np.maximum(high - low, 1e-6)


def _image_axis(ax, image: np.ndarray, border: Optional[str] = None, title: Optional[str] = None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_edgecolor(border)
            spine.set_linewidth(3)
    if title is not None:
        ax.set_title(title, fontsize=8, pad=2)


def gallery_figsize(n_queries: int, k: int) -> tuple[float, float]:
    """Inches (width, height) of a neighbour gallery with n_queries rows and k neighbours."""
    return (LABEL_INCH + 2 * GAP_INCH + (1 + 2 * k) * CELL_INCH, HEADER_INCH + n_queries * CELL_INCH)


def neighbour_gallery(query_inputs: np.ndarray, query_labels: np.ndarray, reference_inputs: np.ndarray,
                      reference_labels: np.ndarray, embedding_neighbours: np.ndarray,
                      pixel_neighbours: np.ndarray, path: Path | str, title: str = "") -> Path:
    """Each query (left) with its nearest training images in embedding space and in pixel space.

    A neighbour's frame is green when it shares the query's label, red when it does not.
    neighbours: [n_queries, k] indices into the reference set, nearest first.
    """
    n, k = embedding_neighbours.shape
    width, height = gallery_figsize(n, k)
    fig = Figure(figsize=(width, height), dpi=DPI)
    ratios = [CELL_INCH, GAP_INCH] + [CELL_INCH] * k + [GAP_INCH] + [CELL_INCH] * k
    grid = fig.add_gridspec(n, len(ratios), width_ratios=ratios, left=LABEL_INCH / width, right=1, bottom=0,
                            top=1 - HEADER_INCH / height, wspace=0.08, hspace=0.08)
    queries, references = display_images(query_inputs), display_images(reference_inputs)
    for row in range(n):
        label = int(query_labels[row])
        query_axis = fig.add_subplot(grid[row, 0])
        _image_axis(query_axis, queries[row], "black")
        query_axis.set_ylabel(str(label), rotation=0, fontsize=9, labelpad=8, va="center")
        for block, neighbours in ((2, embedding_neighbours), (3 + k, pixel_neighbours)):
            for col, index in enumerate(neighbours[row]):
                same = int(reference_labels[index]) == label
                _image_axis(fig.add_subplot(grid[row, block + col]), references[index],
                            MATCH_COLOUR if same else MISS_COLOUR)
    top = 1 - 0.7 * HEADER_INCH / height
    for text, left, cells in (("query", LABEL_INCH, 1),
                              ("embedding neighbours", LABEL_INCH + CELL_INCH + GAP_INCH, k),
                              ("pixel neighbours", LABEL_INCH + CELL_INCH + 2 * GAP_INCH + k * CELL_INCH, k)):
        fig.text((left + cells * CELL_INCH / 2) / width, top, text, ha="center", va="center", fontsize=9)
    fig.text(0.5, 1 - 0.22 * HEADER_INCH / height, f"{title}   (green: same label as the query, red: not)".strip(),
             ha="center", va="center", fontsize=8, color="#444444")
    return _save(fig, path)


# -------------------------------------------------------------------------- kernels


def kernel_mosaic(weight: np.ndarray, columns: Optional[int] = None, pad: int = 1) -> np.ndarray:
    """[out, in, kh, kw] conv weights -> one RGB image [rows*(kh+pad)+pad, cols*(kw+pad)+pad, 3].

    Three input channels are drawn as colour (0 is mid-grey); otherwise the channels' mean is
    drawn blue (negative) to red (positive). Each kernel is scaled by its own largest |weight|.
    """
    from matplotlib import colormaps

    w = np.asarray(weight, dtype=np.float32)
    out, _, kh, kw = w.shape
    scale = np.maximum(np.abs(w).reshape(out, -1).max(axis=1), 1e-12)[:, None, None, None]
    w = w / scale  # [-1, 1]
    if w.shape[1] == 3:
        tiles = (w.transpose(0, 2, 3, 1) + 1) / 2  # [out, kh, kw, 3]
    else:
        tiles = colormaps["RdBu_r"]((w.mean(axis=1) + 1) / 2)[..., :3]  # [out, kh, kw, 3]
    columns = columns or math.ceil(math.sqrt(out))
    rows = math.ceil(out / columns)
    mosaic = np.ones((rows * (kh + pad) + pad, columns * (kw + pad) + pad, 3), dtype=np.float32)
    for i in range(out):
        top, left = pad + (i // columns) * (kh + pad), pad + (i % columns) * (kw + pad)
        mosaic[top:top + kh, left:left + kw] = tiles[i]
    return mosaic


KERNEL_PANEL_INCH = (3.2, 3.6)  # one panel of the kernel grid (width, height)


def kernel_grid_figsize(panels: int) -> tuple[float, float]:
    """Inches (width, height) of a kernel picture with `panels` side-by-side grids."""
    return (KERNEL_PANEL_INCH[0] * panels, KERNEL_PANEL_INCH[1])


def kernel_grids(panels: Sequence[tuple[str, np.ndarray]], path: Path | str, title: str = "") -> Path:
    """First-layer kernels, one grid per (caption, weight [out, in, kh, kw]), side by side."""
    fig = Figure(figsize=kernel_grid_figsize(len(panels)), dpi=DPI)
    for index, (caption, weight) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        ax.imshow(kernel_mosaic(weight), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{caption}\n{weight.shape[0]} kernels {weight.shape[2]}x{weight.shape[3]}", fontsize=9)
        if weight.shape[1] != 3:
            ax.set_xlabel("blue: negative, red: positive weight", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.06, top=0.80, wspace=0.08)
    return _save(fig, path)


# --------------------------------------------------------------------------- atlas


def project_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """([n, 2] coordinates, method): UMAP when installed, else t-SNE, else PCA (few points)."""
    x = np.asarray(features, dtype=np.float32)
    x = x - x.mean(axis=0)
    try:
        import umap  # type: ignore

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x), "UMAP"
    except ImportError:
        pass
    if len(x) >= 50:
        from sklearn.manifold import TSNE

        tsne = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed)
        return tsne.fit_transform(x), "t-SNE"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x), "PCA"


def atlas_cells(coords: np.ndarray, grid: int) -> np.ndarray:
    """[n] cell index (row * grid + col, row 0 at the top) of each 2-D point on a grid x grid."""
    low, high = coords.min(axis=0), coords.max(axis=0)
    scaled = (coords - low) / np.maximum(high - low, 1e-12)  # [n, 2] in [0, 1]
    col = np.minimum((scaled[:, 0] * grid).astype(int), grid - 1)
    row = grid - 1 - np.minimum((scaled[:, 1] * grid).astype(int), grid - 1)
    return row * grid + col


ATLAS_FIGSIZE = (12.0, 6.4)


def activation_atlas(features: np.ndarray, inputs: np.ndarray, labels: np.ndarray, path: Path | str,
                     grid: int = 14, min_count: int = 1, title: str = "", seed: int = 0) -> Path:
    """The embedding space in 2-D: left the points by class, right a grid of cells, each drawn as
    the average input falling in it (with its most common label in the corner)."""
    coords, method = project_2d(features, seed)
    cells = atlas_cells(coords, grid)
    shown = display_images(inputs)  # [n, H, W, 3]
    height, width = shown.shape[1:3]
    pad = max(1, height // 8)
    mosaic = np.ones((grid * (height + pad) + pad, grid * (width + pad) + pad, 3), dtype=np.float32)
    fig = Figure(figsize=ATLAS_FIGSIZE, dpi=DPI)
    ax_points, ax_atlas = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for cell in np.unique(cells):
        members = cells == cell
        if members.sum() < min_count:
            continue
        row, col = divmod(int(cell), grid)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        mosaic[top:top + height, left:left + width] = shown[members].mean(axis=0)
        common = np.bincount(labels[members]).argmax()
        ax_atlas.text(left - 0.5, top - 0.5, str(common), fontsize=6, va="top", ha="left",
                      color=class_colour(common), fontweight="bold",
                      bbox={"facecolor": "white", "alpha": 0.75, "pad": 0.6, "linewidth": 0})
    ax_atlas.imshow(mosaic, interpolation="nearest")
    ax_atlas.set_title(f"average input per cell ({grid}x{grid})", fontsize=10)
    ax_points.scatter(coords[:, 0], coords[:, 1], s=6, c=[class_colour(v) for v in labels], alpha=0.8,
                      linewidths=0)
    for label in np.unique(labels)[:10]:
        centre = np.median(coords[labels == label], axis=0)
        ax_points.text(*centre, str(label), fontsize=12, fontweight="bold", color=class_colour(label),
                       ha="center", va="center", bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})
    ax_points.set_title(f"{len(coords)} held-out inputs, {method} of the embeddings", fontsize=10)
    for ax in (ax_points, ax_atlas):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.05)
    return _save(fig, path)


# ------------------------------------------------------------------ byte embeddings


def byte_label(value: int) -> str:
    """How a byte is written on the map: the character, or an escape for blanks."""
    return {9: "\\t", 10: "\\n", 13: "\\r", 32: "␣"}.get(value, chr(value))


MAP_BYTES = [9, 10, *range(32, 127)]  # printable ASCII, tab and newline
BYTE_MAP_INCH = 6.4


def byte_map_figsize(panels: int = 1) -> tuple[float, float]:
    """Inches (width, height) of a byte-embedding map with `panels` maps side by side."""
    return (BYTE_MAP_INCH * panels, BYTE_MAP_INCH + 0.4)


def _byte_map_axis(ax, table: np.ndarray, caption: str, shown: Sequence[int]) -> None:
    from sklearn.decomposition import PCA

    from scaling.probes.embeddings import CHAR_CLASSES, char_class_table

    shown = list(shown)
    vectors = np.asarray(table, dtype=np.float32)[shown]  # [n_bytes, C]
    coords = PCA(n_components=2, random_state=0).fit_transform(vectors - vectors.mean(axis=0))
    classes = char_class_table()[shown]
    ax.scatter(coords[:, 0], coords[:, 1], s=0)  # sets the limits; the characters are the marks
    for (x, y), value, cls in zip(coords, shown, classes):
        ax.text(x, y, byte_label(value), fontsize=9, ha="center", va="center", family="monospace",
                color=class_colour(cls), fontweight="bold")
    for cls, name in enumerate(CHAR_CLASSES[:5]):
        ax.text(0.01, 0.99 - 0.04 * cls, name, transform=ax.transAxes, fontsize=8, va="top",
                color=class_colour(cls))
    ax.margins(0.06)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=10)
    ax.set_xlabel(f"PCA of the embeddings of {len(shown)} printable bytes", fontsize=8)


def byte_embedding_maps(panels: Sequence[tuple[str, np.ndarray]], path: Path | str, title: str = "",
                        byte_counts: Optional[np.ndarray] = None) -> Path:
    """Each (caption, token embedding table [256, C]) as a 2-D PCA map of its printable bytes.

    byte_counts [256]: how often each byte occurs in the text; bytes that never occur (their
    embeddings never trained) are left out, as they would crowd one corner of the map.
    """
    shown = [b for b in MAP_BYTES if byte_counts is None or byte_counts[b] > 0]
    if len(shown) < 3:
        shown = MAP_BYTES
    fig = Figure(figsize=byte_map_figsize(len(panels)), dpi=DPI)
    for index, (caption, table) in enumerate(panels):
        _byte_map_axis(fig.add_subplot(1, len(panels), index + 1), table, caption, shown)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.05, top=0.9, wspace=0.05)
    return _save(fig, path)


# -------------------------------------------------------------------------- metrics


METRICS_FIGSIZE = (10.0, 4.2)


def metrics_against_size(table, path: Path | str, x: str = "N", title: str = "") -> Path:
    """The probe accuracies (left) and the class-distance ratio (right) of a sweep against `x`.

    Solid: trained; dashed: the same model untrained; dotted: the raw-input baseline.
    """
    fig = Figure(figsize=METRICS_FIGSIZE, dpi=DPI)
    panels = {"accuracy": ("probe_knn1", "probe_knn5", "probe_linear"), "within / between distance":
              ("probe_class_ratio",)}
    for index, (ylabel, names) in enumerate(panels.items()):
        ax = fig.add_subplot(1, 2, index + 1)
        for colour, name in zip(CLASS_COLOURS, names):
            for suffix, style in (("", "-o"), ("_untrained", "--x"), ("_input", ":")):
                column = name + suffix
                if column not in table or table[column].isna().all():
                    continue
                rows = table.dropna(subset=[column]).sort_values(x)
                ax.plot(rows[x], rows[column], style, color=colour, label=column, markersize=4)
        ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.25)
    return _save(fig, path)
