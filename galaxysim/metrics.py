"""Retrieval and density metrics.

They answer the questions a user of a galaxy ranking asks: are the top
galaxies of the right class (:func:`precision_at_k`), does the embedding put
look-alikes together (:func:`same_class_rate`; item by item
:func:`same_class_shares`, :func:`neighbor_label_shares`), where does each
class land in a ranking (:func:`class_rank_profile`), and how good is a
density in the unit image-model papers use (:func:`bits_per_dim`); and how far
to trust a figure of a few galaxies (:func:`bootstrap_interval`, :func:`wilson_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ._validation import check_labels, check_positive_int

if TYPE_CHECKING:
    import torch

__all__ = [
    "bits_per_dim",
    "bootstrap_interval",
    "class_rank_profile",
    "neighbor_label_shares",
    "percentile_rank",
    "precision_at_k",
    "same_class_rate",
    "same_class_shares",
    "summarize_ranking",
    "wilson_interval",
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


def same_class_rate(
    embedding: Any, labels: Any, n_neighbors: int = 10, *, metric: str = "euclidean"
) -> float:
    """Leave-one-out share of each item's nearest neighbours that share its label.

    For every item, its ``n_neighbors`` nearest other items in ``embedding``
    are found; the rate is the mean share of them with the item's label (the
    mean of :func:`same_class_shares`). It is the k-nearest-neighbour view of
    how well an embedding groups classes: chance level is the sum of squared
    class shares.

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

    See Also
    --------
    same_class_shares : The share of each item, whose mean this is.
    bootstrap_interval : How far the rate of a small collection can be trusted.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.metrics import same_class_rate
    >>> Z = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> same_class_rate(Z, [0, 0, 1, 1], n_neighbors=1)
    1.0
    """
    return float(np.mean(same_class_shares(embedding, labels, n_neighbors, metric=metric)))


def same_class_shares(
    embedding: Any, labels: Any, n_neighbors: int = 10, *, metric: str = "euclidean"
) -> np.ndarray:
    """Leave-one-out share of each item's nearest neighbours that share its label, item by item.

    The per-item figures behind :func:`same_class_rate`: their mean is the
    rate, their mean over the items of one class is that class's rate, and
    resampling them (:func:`bootstrap_interval`) says how much the rate
    depends on which items happen to be in the collection.

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
    shares : ndarray of shape (n,), float64
        In [0, 1], multiples of ``1 / n_neighbors``.

    See Also
    --------
    neighbor_label_shares : The same from neighbour lists found by any search.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.metrics import same_class_shares
    >>> Z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [3.0]])
    >>> same_class_shares(Z, ["a", "a", "a", "b", "b", "b"], n_neighbors=2)
    array([1. , 1. , 0.5, 1. , 1. , 0. ])
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
    return neighbor_label_shares(index.kneighbors(return_distance=False), y)


def neighbor_label_shares(neighbors: Any, labels: Any) -> np.ndarray:
    """Share of each item's listed neighbours whose label is the item's own.

    Per-item same-class shares from neighbour lists of any search, such as the
    leave-one-out lists of ``SimilarityRanker.kneighbors(X, exclude_self=True)``
    on the fitted collection, whose mean is ``SimilarityRanker.score(X, y)``.

    Parameters
    ----------
    neighbors : array-like of int of shape (n, k)
        Row ``i``: indices into ``labels`` of item ``i``'s neighbours. For a
        leave-one-out figure, item ``i`` is not in its own row.
    labels : array-like of shape (n,)
        Class of each item.

    Returns
    -------
    shares : ndarray of shape (n,), float64
        In [0, 1], multiples of ``1 / k``.

    Examples
    --------
    >>> from galaxysim.metrics import neighbor_label_shares
    >>> neighbor_label_shares([[1, 2], [0, 2], [1, 0]], ["bar", "bar", "edge"])
    array([0.5, 0.5, 0. ])
    """
    y = check_labels(labels, name="labels")
    idx = np.asarray(neighbors)
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"neighbors must be 2-D (n, k) with k >= 1, got shape {idx.shape}.")
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"neighbors must hold integer indices, got dtype {idx.dtype}.")
    if len(idx) != len(y):
        raise ValueError(f"neighbors has {len(idx)} rows but labels has {len(y)} entries.")
    if idx.min() < 0 or idx.max() >= len(y):
        raise ValueError(
            f"neighbors must hold indices in [0, {len(y) - 1}], got values in "
            f"[{idx.min()}, {idx.max()}]."
        )
    return np.count_nonzero(y[idx] == y[:, None], axis=1) / idx.shape[1]


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, Real):
        raise TypeError(f"confidence must be a number in (0, 1), got {confidence!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (0.95 for 95 %), got {confidence!r}.")
    return float(confidence)


# Resampled indices drawn at a time (8 bytes each): bounds a large collection's memory.
_MAX_DRAWS = 4_000_000


def bootstrap_interval(
    values: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``.

    ``values`` is resampled with replacement ``n_resamples`` times, each
    resample as long as ``values``; the interval is the central ``confidence``
    share of the resampled means (the percentile bootstrap, Efron & Tibshirani,
    *An Introduction to the Bootstrap*, 1993, ch. 13): how much the mean depends
    on which items happen to be in the sample.

    Parameters
    ----------
    values : array-like of shape (n,)
        One finite number per item (for example :func:`same_class_shares`,
        or the ranks of one class's galaxies in a ranking).
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).
    n_resamples : int, default=2000
        Bootstrap resamples.
    random_state : int, numpy.random.Generator or None, default=0
        Seeds the resampling: the same seed gives the same interval. None
        draws fresh entropy.

    Returns
    -------
    low, high : float
        The interval's bounds; ``low <= high``. Constant ``values`` give
        ``(value, value)``.

    Raises
    ------
    ValueError
        ``values`` is empty, not 1-D or not finite; ``confidence`` is not in
        (0, 1); ``n_resamples`` is below 1.
    TypeError
        ``values`` is not numeric, or an argument is of the wrong type.

    See Also
    --------
    wilson_interval : The interval of a share of a few trials.

    Examples
    --------
    >>> from galaxysim.metrics import bootstrap_interval
    >>> low, high = bootstrap_interval([0.2, 0.4, 0.3, 0.5, 0.1, 0.3], random_state=0)
    >>> bool(low < 0.3 < high), bool(0.1 <= low and high <= 0.5)
    (True, True)
    >>> bootstrap_interval([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("values must be numbers (a 1-D array-like of floats).") from None
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}.")
    if x.size == 0:
        raise ValueError("values is empty; a bootstrap interval needs at least one value.")
    if not np.isfinite(x).all():
        raise ValueError("values contains NaN or infinite values.")
    confidence = _check_confidence(confidence)
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    rng = _check_random_state(random_state)
    n = x.size
    means = np.empty(n_resamples)
    step = max(1, _MAX_DRAWS // n)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        means[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def _check_random_state(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, Integral):
        raise TypeError(
            f"random_state must be an int, a numpy.random.Generator or None, got {random_state!r}."
        )
    if random_state < 0:
        raise ValueError(f"random_state must be >= 0, got {random_state!r}.")
    return np.random.default_rng(int(random_state))


def wilson_interval(
    successes: int, n_trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval of a share: ``successes`` out of ``n_trials``.

    The interval of a binomial proportion that keeps close to its nominal
    coverage for a few trials and for shares near 0 or 1 (Wilson, *J. Am.
    Stat. Assoc.* 22, 209, 1927; Brown, Cai & DasGupta, *Stat. Sci.* 16, 101,
    2001), where resampling the trials would give ``[0, 0]`` for 0 of 10,
    as if a share measured on ten galaxies were certain.

    Parameters
    ----------
    successes : int
        Trials that succeeded (for example, galaxies of the target class
        among a query's top ``k``), in ``[0, n_trials]``.
    n_trials : int
        Trials, at least 1 (``k``).
    confidence : float, default=0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    low, high : float
        Bounds in [0, 1]; ``low`` is 0 when ``successes`` is 0, ``high`` is 1
        when it is ``n_trials``.

    See Also
    --------
    bootstrap_interval : The interval of a mean over items.

    Examples
    --------
    >>> from galaxysim.metrics import wilson_interval
    >>> [round(bound, 3) for bound in wilson_interval(2, 10)]
    [0.057, 0.51]
    >>> wilson_interval(0, 10)[0], wilson_interval(10, 10)[1]
    (0.0, 1.0)
    """
    n_trials = check_positive_int(n_trials, "n_trials")
    if isinstance(successes, (bool, np.bool_)) or not isinstance(successes, Integral):
        raise TypeError(f"successes must be an integer in [0, n_trials], got {successes!r}.")
    if not 0 <= successes <= n_trials:
        raise ValueError(f"successes must be in [0, n_trials={n_trials}], got {successes!r}.")
    confidence = _check_confidence(confidence)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    share = successes / n_trials
    spread = z * z / n_trials
    centre = (share + spread / 2.0) / (1.0 + spread)
    spread_of_share = share * (1.0 - share) / n_trials + spread / (4.0 * n_trials)
    half = z * math.sqrt(spread_of_share) / (1.0 + spread)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n_trials else min(1.0, centre + half)
    return float(low), float(high)


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


def bits_per_dim(log_likelihood: Any, n_dims: int) -> np.ndarray | float | torch.Tensor:
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
