"""Recall@k of a fitted :class:`~galaxysim.ranking.search.NeighborSearch` against exact search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_positive_int

__all__ = ["recall_at_k"]


def _exact_neighbors(
    queries: np.ndarray, reference: Callable, n: int, rows: np.ndarray, k: int
) -> list[list[int]]:
    """Exact top ``k`` of each query among ``reference(0, n)`` read in chunks, own row left out."""
    queries = queries.astype(np.float64)
    best_d = np.empty((len(queries), 0))
    best_i = np.empty((len(queries), 0), dtype=np.intp)
    for start in range(0, n, 65_536):
        block = np.asarray(reference(start, min(start + 65_536, n)), dtype=np.float64)
        squared = (queries**2).sum(1)[:, None] - 2 * queries @ block.T + (block**2).sum(1)[None]
        squared[rows[:, None] == np.arange(start, start + len(block))[None]] = np.inf
        best_d = np.concatenate([best_d, squared], axis=1)
        ids = np.broadcast_to(np.arange(start, start + len(block)), squared.shape)
        best_i = np.concatenate([best_i, ids], axis=1)
        if best_d.shape[1] > k:
            keep = np.argpartition(best_d, k - 1, axis=1)[:, :k]
            best_d = np.take_along_axis(best_d, keep, axis=1)
            best_i = np.take_along_axis(best_i, keep, axis=1)
    return best_i.tolist()


def recall_at_k(
    search: Any, embeddings: np.ndarray | None, n_queries: int, n_neighbors: int, random_state: Any
) -> float:
    """Mean share of each sampled fitted point's true neighbours that ``search`` finds."""
    from .search import check_n_neighbors

    n = search.n_samples_fit_
    k = check_n_neighbors(n_neighbors, n, exclude_self=True)
    n_queries = min(check_positive_int(n_queries, "n_queries"), n)
    rows = np.sort(np.random.default_rng(random_state).choice(n, n_queries, replace=False))
    if embeddings is None:
        reference: Callable = search.backend_.reconstruct
    else:
        if len(embeddings) != n:
            raise ValueError(
                f"embeddings has {len(embeddings)} rows; the search was fitted on {n}."
            )
        reference = lambda start, stop: embeddings[start:stop]  # noqa: E731
    queries = np.concatenate([reference(r, r + 1) for r in rows])
    true = _exact_neighbors(queries, reference, n, rows, k)
    _, found = search.kneighbors_views([queries], k + 1)
    found = [[j for j in row if j != r][:k] for row, r in zip(found, rows)]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, true)]))
