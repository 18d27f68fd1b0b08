"""Retrieval and density metrics.

They answer the questions a user of a galaxy ranking asks: are the top
galaxies of the right class (:func:`precision_at_k`), does the embedding put
look-alikes together (:func:`same_class_rate`), where does each class land in
a ranking (:func:`class_rank_profile`), and how good is a density in the unit
image-model papers use (:func:`bits_per_dim`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ._validation import check_labels, check_positive_int

__all__ = [
    "bits_per_dim",
    "class_rank_profile",
    "percentile_rank",
    "precision_at_k",
    "same_class_rate",
    "summarize_ranking",
]


def precision_at_k(ranked_labels: Any, target_label: Any, k: int) -> float:
    """Share of the first ``k`` ranked items whose label is ``target_label``.

    Parameters
    ----------
    ranked_labels : array-like of shape (n,)
        Labels of the collection in ranked order (best first).
    target_label : label
        The label counted as relevant (for the Milky Way, Barred Spiral).
    k : int
        Cut-off; must not exceed ``n``.

    Returns
    -------
    precision : float
        In [0, 1].

    Examples
    --------
    >>> from galaxysim.metrics import precision_at_k
    >>> precision_at_k(["bar", "bar", "edge", "bar"], "bar", k=3)
    0.6666666666666666
    """
    labels = check_labels(ranked_labels, name="ranked_labels")
    k = check_positive_int(k, "k")
    if k > len(labels):
        raise ValueError(f"k={k} exceeds the {len(labels)} ranked items.")
    return float(np.mean(labels[:k] == target_label))


def same_class_rate(embedding: Any, labels: Any, n_neighbors: int = 10, *, metric: str = "euclidean") -> float:
    """Leave-one-out share of each item's nearest neighbours that share its label.

    For every item, its ``n_neighbors`` nearest other items in ``embedding``
    are found; the rate is the mean share of them with the item's label. It
    is the k-nearest-neighbour view of how well an embedding groups classes:
    chance level is the sum of squared class shares.

    Parameters
    ----------
    embedding : array-like of shape (n, d)
        One vector per item.
    labels : array-like of shape (n,)
        Class of each item.
    n_neighbors : int, default=10
        Neighbours per item (the item itself excluded); must be < n.
    metric : str, default="euclidean"
        Any metric :class:`sklearn.neighbors.NearestNeighbors` accepts.

    Returns
    -------
    rate : float
        In [0, 1]; higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.metrics import same_class_rate
    >>> Z = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> same_class_rate(Z, [0, 0, 1, 1], n_neighbors=1)
    1.0
    """
    Z = np.asarray(embedding, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"embedding must be 2-D (n, d), got shape {Z.shape}.")
    if not np.isfinite(Z).all():
        raise ValueError("embedding contains NaN or infinite values.")
    y = check_labels(labels, name="labels")
    if len(y) != len(Z):
        raise ValueError(f"labels has {len(y)} entries but embedding has {len(Z)} rows.")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
    if n_neighbors >= len(Z):
        raise ValueError(
            f"n_neighbors={n_neighbors} must be smaller than the number of items ({len(Z)})."
        )
    index = NearestNeighbors(n_neighbors=n_neighbors, metric=metric).fit(Z)
    # Asking the fitted index with no query excludes each point from its own list.
    neighbours = index.kneighbors(return_distance=False)
    return float(np.mean(y[neighbours] == y[:, None]))


def class_rank_profile(ranked_labels: Any, classes: Any = None) -> dict[Any, dict[str, float]]:
    """Mean and median rank (1 = best) of each class in a ranking.

    Parameters
    ----------
    ranked_labels : array-like of shape (n,)
        Labels of the collection in ranked order (best first).
    classes : array-like, optional
        Classes to report, in this order; default: the sorted unique labels.
        A class absent from the ranking gets NaN ranks and count 0.

    Returns
    -------
    profile : dict
        ``{class: {"mean_rank": float, "median_rank": float, "count": int}}``.

    Examples
    --------
    >>> from galaxysim.metrics import class_rank_profile
    >>> class_rank_profile(["bar", "edge", "bar", "edge"])["bar"]
    {'mean_rank': 2.0, 'median_rank': 2.0, 'count': 2}
    """
    labels = check_labels(ranked_labels, name="ranked_labels")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    ranks = np.arange(1, len(labels) + 1)
    profile: dict[Any, dict[str, float]] = {}
    for cls in classes:
        key = cls.item() if isinstance(cls, np.generic) else cls
        mine = ranks[labels == cls]
        profile[key] = {
            "mean_rank": float(mine.mean()) if mine.size else float("nan"),
            "median_rank": float(np.median(mine)) if mine.size else float("nan"),
            "count": int(mine.size),
        }
    return profile


def bits_per_dim(log_likelihood: Any, n_dims: int) -> np.ndarray | float:
    """Convert log-likelihoods in nats to bits per dimension.

    ``bits/dim = -log p(x) / (n_dims * ln 2)``: the average code length per
    pixel value, the unit image-density papers report (lower is better).

    Parameters
    ----------
    log_likelihood : float, array-like or torch.Tensor
        Log-likelihood(s) in nats of whole samples. A tensor (a training
        loss) is converted as it is: differentiable, and without the checks
        below, which would make a GPU wait.
    n_dims : int
        Dimensions per sample (``H * W * C`` for images).

    Returns
    -------
    bits : float, ndarray or torch.Tensor
        Same shape as ``log_likelihood``.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.metrics import bits_per_dim
    >>> round(bits_per_dim(-3072 * np.log(256), 3072), 6)
    8.0
    """
    n_dims = check_positive_int(n_dims, "n_dims")
    if hasattr(log_likelihood, "requires_grad"):
        return -log_likelihood / (n_dims * math.log(2.0))
    values = np.asarray(log_likelihood, dtype=np.float64)
    if values.size == 0:
        raise ValueError("log_likelihood is empty.")
    if np.isnan(values).any():
        raise ValueError("log_likelihood contains NaN.")
    bits = -values / (n_dims * np.log(2.0))
    return float(bits) if bits.ndim == 0 else bits


def summarize_ranking(
    ranked_labels: np.ndarray,
    target_names: Sequence[str],
    target_label: int | None,
    ks: Sequence[int] = (10, 50),
) -> dict[str, Any]:
    """Target-class precision at each k and the class rank profile of a full ranking.

    Parameters
    ----------
    ranked_labels : ndarray of shape (n,)
        Integer labels of the whole collection in ranked order.
    target_names : sequence of str
        Name of each integer label.
    target_label : int or None
        The class a good ranking puts first (Barred Spiral for the Milky
        Way); None skips the precision figures.
    ks : sequence of int, default=(10, 50)
        Cut-offs; those larger than the collection are skipped.

    Returns
    -------
    summary : dict
        ``precision_at_<k>`` entries, ``chance`` (the target class's share
        of the collection) and ``class_rank_profile`` keyed by class name.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.metrics import summarize_ranking
    >>> s = summarize_ranking(np.array([0, 0, 1, 0, 1]), ["bar", "edge"], 0, ks=(2,))
    >>> s["precision_at_2"], s["class_rank_profile"]["edge"]["mean_rank"]
    (1.0, 4.0)
    """
    labels = np.asarray(ranked_labels)
    summary: dict[str, Any] = {}
    if target_label is not None:
        for k in ks:
            if k <= len(labels):
                summary[f"precision_at_{k}"] = precision_at_k(labels, target_label, k)
        summary["chance"] = float(np.mean(labels == target_label))
    profile = class_rank_profile(labels, classes=np.arange(len(target_names)))
    summary["class_rank_profile"] = {target_names[k]: v for k, v in profile.items()}
    return summary


def percentile_rank(values: Any, reference: Any) -> np.ndarray:
    """Percentile of each value among reference values, ties counted half.

    The one definition behind every "how usual is this?" figure of
    galaxysim: the typicality of a query (its log-likelihood among those of
    held-out galaxies) and its isolation (its distance to the nearest galaxy
    among the galaxies' own nearest-neighbour distances). Counting ties half
    (the mid-rank) puts a value equal to every reference value at 50.

    Parameters
    ----------
    values : array-like of shape (n,)
        Values to place.
    reference : array-like of shape (m,)
        The reference sample; must not be empty.

    Returns
    -------
    percentile : ndarray of shape (n,), float64
        In [0, 100]: the share of reference values below each value (ties
        half), times 100.

    Examples
    --------
    >>> percentile_rank([-10.0, 0.5, 10.0], [0.0, 1.0])
    array([  0.,  50., 100.])
    """
    reference = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    if reference.size == 0:
        raise ValueError("reference is empty; at least one reference value is needed.")
    values = np.asarray(values, dtype=np.float64)
    below = np.searchsorted(reference, values, side="left")
    not_above = np.searchsorted(reference, values, side="right")
    return 100.0 * (below + not_above) / (2.0 * reference.size)
