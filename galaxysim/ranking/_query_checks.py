"""How unusual a query is for the collection: the numbers behind a Ranking's warning.

Two kinds of check, measured in ``docs/ranking.md`` ("When the query is
unlike the collection"):

* on the embedding: typicality (the query's log-density among the
  collection's) and isolation (its nearest-galaxy distance among the
  galaxies' own nearest-neighbour distances);
* on the pixels, whatever the embedder: the query's
  :func:`~galaxysim.images.image_statistics` against the collection's. The
  statistics are standardised robustly (median and MAD of the collection)
  and the query's Mahalanobis distance under a Ledoit-Wolf covariance is
  placed among the galaxies' own distances; near 100 means its pixels are
  unlike those of every galaxy, as for a drawing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf

from ..images import IMAGE_STATISTICS, image_statistics
from ..metrics import percentile_rank

__all__ = ["MIN_COLLECTION", "collection_statistics", "fit_pixel_reference", "query_statistics"]

#: Smallest collection on which the pixel check is made: with n galaxies a
#: usual query is above all of them with probability 1 / (n + 1).
MIN_COLLECTION = 20


def collection_statistics(data: np.ndarray) -> np.ndarray | None:
    """The fitted collection's pixel statistics, or None where there are none to take.

    None for feature vectors (2-D input) and for images under 8 pixels a side.

    Examples
    --------
    >>> collection_statistics(np.zeros((3, 5))) is None
    True
    >>> collection_statistics(np.zeros((3, 8, 8, 3))).shape
    (3, 8)
    """
    if data.ndim != 4 or min(data.shape[1:3]) < 8:
        return None
    return image_statistics(data)


def fit_pixel_reference(statistics: np.ndarray | None) -> dict[str, np.ndarray] | None:
    """Centre, scale, precision and the galaxies' own distances, from the collection's statistics.

    Parameters
    ----------
    statistics : ndarray of shape (n, k) or None
        :func:`~galaxysim.images.image_statistics` of the collection.

    Returns
    -------
    reference : dict of ndarray, or None
        None without statistics or for fewer than :data:`MIN_COLLECTION`
        galaxies.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = fit_pixel_reference(rng.normal(size=(50, 3)))
    >>> sorted(reference), reference["distances"].shape
    (['center', 'distances', 'precision', 'scale'], (50,))
    >>> fit_pixel_reference(rng.normal(size=(5, 3))) is None
    True
    """
    if statistics is None or len(statistics) < MIN_COLLECTION:
        return None
    center = np.median(statistics, axis=0)
    mad = 1.4826 * np.median(np.abs(statistics - center), axis=0)
    # A statistic that never varies (the colour columns of grey images) keeps a tiny scale:
    # the query is then unusual on it only if it differs.
    scale = np.where(mad > 0, mad, 1e-6)
    Z = (statistics - center) / scale
    covariance = LedoitWolf().fit(Z)
    reference = {"center": center, "scale": scale, "precision": covariance.precision_}
    reference["distances"] = _distances(Z, reference)
    return reference


def _distances(Z: np.ndarray, reference: dict[str, np.ndarray]) -> np.ndarray:
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", Z, reference["precision"], Z), 0.0))


def _pixel_checks(
    data: np.ndarray, reference: dict[str, np.ndarray] | None, statistics: Any
) -> list:
    """Per query: (outlyingness percentile, {statistic: percentile}, most unusual statistics)."""
    if reference is None or data.ndim != 4 or min(data.shape[1:3]) < 8:
        return [(None, None, ())] * len(data)
    names = list(IMAGE_STATISTICS)
    query = image_statistics(data)
    Z = (query - reference["center"]) / reference["scale"]
    outlyingness = percentile_rank(_distances(Z, reference), reference["distances"])
    rows = []
    for q, z, p in zip(query, Z, outlyingness):
        each = {
            name: float(percentile_rank([q[j]], statistics[:, j])[0])
            for j, name in enumerate(names)
        }
        unusual = tuple(names[j] for j in np.argsort(-np.abs(z))[:2])
        rows.append((float(p), each, unusual))
    return rows


def query_statistics(ranker: Any, Z: np.ndarray, data: np.ndarray) -> dict[str, list]:
    """Per query: log-density, typicality, isolation and the pixel checks.

    Parameters
    ----------
    ranker : SimilarityRanker
        Fitted.
    Z : ndarray of shape (n_queries, n_components)
        The queries' embeddings (as given, not rotated).
    data : ndarray
        The validated queries.

    Returns
    -------
    statistics : dict of lists
        ``log_density``, ``typicality`` (None without a density),
        ``isolation``, ``pixel_outlyingness``, ``pixel_percentiles`` and
        ``unusual`` (None and () without the pixel check), one entry per query.
    """
    # Isolation: how far the query is from its nearest galaxy, as a
    # percentile of the collection's own nearest-neighbour distances.
    nn_dist = ranker.search_.kneighbors(Z, 1)[0][:, 0]
    out: dict[str, list] = {
        "isolation": [float(p) for p in percentile_rank(nn_dist, ranker.nn_distance_)],
        "log_density": [None] * len(Z),
        "typicality": [None] * len(Z),
    }
    if ranker.density_ is not None:
        query_ll = ranker._log_density(Z)
        out["log_density"] = [float(v) for v in query_ll]
        out["typicality"] = [float(p) for p in percentile_rank(query_ll, ranker.log_density_)]
    checks = _pixel_checks(
        data, getattr(ranker, "pixel_reference_", None), getattr(ranker, "image_statistics_", None)
    )
    out["pixel_outlyingness"] = [row[0] for row in checks]
    out["pixel_percentiles"] = [row[1] for row in checks]
    out["unusual"] = [row[2] for row in checks]
    return out
