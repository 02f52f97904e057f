"""How organised an embedding space is: within-class over between-class cosine distance.

The mean cosine distance between two points of the same class, divided by the mean between
two points of different classes, over all pairs (computed exactly from per-class sums, O(n d)).
Vectors are centred first (as in knn.py). 1 means labels are invisible in the geometry; the
lower, the tighter the classes sit compared with how far apart they are.
"""

from __future__ import annotations

import numpy as np


def class_distance_ratio(features: np.ndarray, labels: np.ndarray, center: bool = True) -> float:
    """Mean within-class / mean between-class cosine distance (NaN with fewer than 2 classes)."""
    x = np.asarray(features, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # [n, d] unit rows
    classes, labels = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return float("nan")
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, labels, x)  # [K, d]
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float64)  # [K]
    norms = (x ** 2).sum(axis=1)  # [n] 1 (0 for a zero row)
    self_sims = np.bincount(labels, weights=norms, minlength=len(classes))  # [K]
    gram = sums @ sums.T  # [K, K] summed similarities between classes
    within_pairs = counts * (counts - 1)
    within_sim = (np.trace(gram) - self_sims.sum()) / max(within_pairs.sum(), 1.0)
    between_pairs = counts.sum() ** 2 - (counts ** 2).sum()
    between_sim = (gram.sum() - np.trace(gram)) / between_pairs
    return float((1.0 - within_sim) / max(1.0 - between_sim, 1e-12))
