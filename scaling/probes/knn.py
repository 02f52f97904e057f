"""k-nearest-neighbour retrieval in an embedding (or raw input) space, by cosine distance.

Vectors are centred on the reference set's mean, then compared by cosine similarity: ReLU
features all live in one orthant, and without centring their common direction dominates every
cosine. The accuracy at k is the share of a query's k nearest reference points that carry the
query's label (precision at k), averaged over queries; k=1 is ordinary 1-NN accuracy.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

CHUNK = 1024  # queries compared at a time (a [CHUNK, n_reference] similarity block)


def _unit_rows(x: np.ndarray, mean: np.ndarray) -> torch.Tensor:
    """Rows of x minus `mean`, scaled to unit length (zero rows stay zero)."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) - torch.as_tensor(mean)
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest_neighbours(query: np.ndarray, reference: Optional[np.ndarray] = None, k: int = 5,
                       center: bool = True) -> np.ndarray:
    """[n_query, k] indices into `reference` of each query's k nearest points (nearest first).

    With no reference, the queries are their own reference and a point is never its own
    neighbour (leave-one-out).
    """
    leave_one_out = reference is None
    reference = query if leave_one_out else reference
    if len(reference) - leave_one_out < k:
        raise ValueError(f"need more than {k} reference points for k={k}, have {len(reference)}")
    mean = reference.mean(axis=0).astype(np.float32) if center else np.zeros(reference.shape[1], np.float32)
    ref = _unit_rows(reference, mean)  # [n_ref, d]
    found = []
    for start in range(0, len(query), CHUNK):
        sims = _unit_rows(query[start:start + CHUNK], mean) @ ref.T  # [chunk, n_ref]
        if leave_one_out:
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = -float("inf")
        found.append(sims.topk(k, dim=1).indices.numpy())
    return np.concatenate(found)


def knn_accuracy(query: np.ndarray, query_labels: np.ndarray, reference: Optional[np.ndarray] = None,
                 reference_labels: Optional[np.ndarray] = None, ks: Sequence[int] = (1, 5),
                 center: bool = True) -> dict[int, float]:
    """{k: share of each query's k nearest reference points with the query's label} (mean).

    With no reference, leave-one-out on the query set.
    """
    reference_labels = query_labels if reference is None else reference_labels
    if reference is not None and reference_labels is None:
        raise ValueError("reference_labels are needed with a reference set")
    neighbours = nearest_neighbours(query, reference, max(ks), center)  # [n, k_max]
    hits = np.asarray(reference_labels)[neighbours] == np.asarray(query_labels)[:, None]
    return {k: float(hits[:, :k].mean()) for k in ks}
