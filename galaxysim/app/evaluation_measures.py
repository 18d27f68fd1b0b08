"""The figures of one ranking method on a labelled collection, with their 95 % intervals.

:func:`measure_ranker` measures a fitted
:class:`~galaxysim.ranking.SimilarityRanker`: how well it groups the classes
(the leave-one-out same-class rate, overall and per class), where it puts
each class for the query (the target class's share of the top ``k``, each
class's mean rank), and how unlike the collection the query is. Each figure
comes with a 95 % interval: a percentile bootstrap over the galaxies
(:func:`~galaxysim.metrics.bootstrap_interval`) or, for a share of the top
``k``, a Wilson interval (:func:`~galaxysim.metrics.wilson_interval`).
:func:`add_differences` adds each method's paired difference to a reference
method (PCA) and :func:`chance_figures` what a random ranking scores.
:func:`~galaxysim.app.evaluation.evaluate_methods` builds the rankers
(:mod:`galaxysim.app.evaluation_methods`) and puts the rows in an
:class:`~galaxysim.app.evaluation_table.EvaluationTable`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import bootstrap_interval, neighbor_label_shares, summarize_ranking, wilson_interval
from ..ranking import Ranking, SimilarityRanker
from .evaluation_table import BOOTSTRAP_RESAMPLES, INTERVAL_CONFIDENCE, EvaluationTable

__all__ = ["EvaluationInputs", "add_differences", "chance_figures", "measure_ranker"]

_NO_INTERVAL = (float("nan"), float("nan"))


@dataclass
class EvaluationInputs:
    """The checked arguments of :func:`~galaxysim.app.evaluation.evaluate_methods`.

    Attributes
    ----------
    methods : list of str
        The methods to evaluate, in table order.
    images : ndarray of shape (n, H, W, C)
        The collection.
    labels : ndarray of int of shape (n,)
        Class label of each image.
    query : ndarray of shape (H, W, C)
        The query image.
    target_names : list of str
        Name of each class label.
    target : int
        Label of the class a good ranking of the query puts first.
    n_components, n_neighbors : int
        Embedding size of PCA and the autoencoders; neighbours of the
        same-class rate.
    ks : tuple of int
        Cut-offs of the target share.
    train_images : ndarray or None
        Images to train the embedders on instead of ``images``.
    random_state : int or None
        Seeds the models and the bootstrap.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.app.evaluation_measures import EvaluationInputs
    >>> X = np.zeros((4, 2, 2, 3), dtype=np.float32)
    >>> inputs = EvaluationInputs(["pixels"], X, np.array([0, 0, 1, 1]), X[0], ["a", "b"],
    ...                           target=0, n_components=2, n_neighbors=1, ks=(2,))
    >>> inputs.random_state
    0
    """

    methods: list[str]
    images: np.ndarray
    labels: np.ndarray
    query: np.ndarray
    target_names: list[str]
    target: int
    n_components: int
    n_neighbors: int
    ks: tuple[int, ...]
    train_images: np.ndarray | None = None
    random_state: int | None = 0

    @property
    def same_class_key(self) -> str:
        """Column of the same-class rate, ``same_class_at_<n_neighbors>``."""
        return f"same_class_at_{self.n_neighbors}"


def _bootstrap(values: np.ndarray, random_state: int | None) -> tuple[float, float]:
    """The evaluation's interval of a mean over galaxies; NaN for no galaxies."""
    if len(values) == 0:
        return _NO_INTERVAL
    return bootstrap_interval(
        values,
        confidence=INTERVAL_CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        random_state=random_state,
    )


def _with_interval(
    row: dict[str, Any], column: str, value: float, interval: tuple[float, float]
) -> None:
    """Put ``value`` in ``column`` and its interval in the two columns after it."""
    row[column] = float(value)
    low, high = EvaluationTable.interval_columns(column)
    row[low], row[high] = float(interval[0]), float(interval[1])


def _target_share_interval(hits: int, k: int, n: int) -> tuple[float, float]:
    """Wilson interval of ``hits`` of the target class among the query's top ``k``.

    When the top ``k`` is the whole collection the share is the class's share
    of the collection whatever the ranking, so it is exact.
    """
    if k == n:
        return hits / k, hits / k
    return wilson_interval(hits, k, confidence=INTERVAL_CONFIDENCE)


def measure_ranker(
    ranker: SimilarityRanker, inputs: EvaluationInputs, *, fit_seconds: float
) -> tuple[dict[str, Any], np.ndarray]:
    """Measure a ranker fitted on ``inputs.images``: its table row, intervals included.

    Parameters
    ----------
    ranker : SimilarityRanker
        Fitted on ``inputs.images`` and ``inputs.labels``.
    inputs : EvaluationInputs
        The collection, the query and the settings.
    fit_seconds : float
        Seconds it took to build and fit the ranker, put in the row's
        ``fit_seconds``.

    Returns
    -------
    row : dict
        The columns of an :class:`~galaxysim.app.evaluation_table.EvaluationTable`
        row from ``embedding_dim`` on, in table order (``same_class_vs_pca``
        is NaN until :func:`add_differences`).
    shares : ndarray of shape (n,)
        Each galaxy's leave-one-out same-class share (the lists of
        :meth:`SimilarityRanker.kneighbors` with ``exclude_self=True``); their
        mean is the same-class rate, ``ranker.score(images, labels)``.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import ImagePreprocessor
    >>> from galaxysim.ranking import SimilarityRanker
    >>> from galaxysim.app.evaluation_measures import EvaluationInputs, measure_ranker
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.uniform(0, 0.2, (6, 4, 4, 3)), rng.uniform(0.8, 1, (6, 4, 4, 3))])
    >>> y = np.repeat([0, 1], 6)
    >>> inputs = EvaluationInputs(["pixels"], X, y, X[0], ["dark", "bright"], target=0,
    ...                           n_components=2, n_neighbors=3, ks=(6,))
    >>> pixels = ImagePreprocessor(crop=None, flatten=True)
    >>> ranker = SimilarityRanker(embedder=pixels, density="drop", invariance=None, n_neighbors=3)
    >>> ranker = ranker.fit(X, y)
    >>> row, shares = measure_ranker(ranker, inputs, fit_seconds=0.0)
    >>> row["same_class_at_3"], row["same_class_at_3_ci_low"], row["target_share_at_6"]
    (1.0, 1.0, 1.0)
    """
    neighbours = ranker.kneighbors(inputs.images, return_distance=False, exclude_self=True)
    shares = neighbor_label_shares(neighbours, inputs.labels)
    start = time.perf_counter()
    ranking = ranker.rank(inputs.query, n_neighbors=len(inputs.images))
    query_seconds = time.perf_counter() - start
    if not isinstance(ranking, Ranking):  # a batch of queries gives a list
        raise ValueError(
            f"inputs.query must be one image (H, W, C), got shape {np.shape(inputs.query)}."
        )
    ranked_labels = inputs.labels[ranking.indices]
    summary = summarize_ranking(ranked_labels, inputs.target_names, inputs.target, ks=inputs.ks)
    seed, key, n = inputs.random_state, inputs.same_class_key, len(inputs.images)
    row: dict[str, Any] = {"embedding_dim": int(ranker.embedding_.shape[1])}
    _with_interval(row, key, np.mean(shares), _bootstrap(shares, seed))
    _with_interval(row, "same_class_vs_pca", float("nan"), _NO_INTERVAL)
    for k in inputs.ks:
        hits = int(np.count_nonzero(ranked_labels[:k] == inputs.target))
        _with_interval(
            row,
            f"target_share_at_{k}",
            summary[f"precision_at_{k}"],
            _target_share_interval(hits, k, n),
        )
    # Position (1 = most similar) of every galaxy in the query's full ranking.
    positions = np.empty(n)
    positions[ranking.indices] = np.arange(1, n + 1)
    for label, class_name in enumerate(inputs.target_names):
        _with_interval(
            row,
            f"mean_rank:{class_name}",
            summary["class_rank_profile"][class_name]["mean_rank"],
            _bootstrap(positions[inputs.labels == label], seed),
        )
    row["query_isolation"] = float(ranking.diagnostics.isolation)
    row["fit_seconds"] = float(fit_seconds)
    row["query_seconds"] = float(query_seconds)
    for label, class_name in enumerate(inputs.target_names):
        mine = shares[inputs.labels == label]
        _with_interval(
            row,
            f"{key}:{class_name}",
            np.mean(mine) if len(mine) else float("nan"),
            _bootstrap(mine, seed),
        )
    return row, shares


def add_differences(
    rows: Sequence[dict[str, Any]],
    shares: Sequence[np.ndarray],
    reference: int,
    inputs: EvaluationInputs,
) -> None:
    """Set each row's ``same_class_vs_pca``: its same-class rate minus the reference row's.

    The interval is a paired bootstrap: the per-galaxy differences of the two
    methods' shares are resampled, so the galaxies both methods find hard do
    not widen it. An interval that holds 0 says the method is not shown to
    differ from the reference.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`measure_ranker`, changed in place.
    shares : sequence of ndarray
        The per-galaxy shares of :func:`measure_ranker`, one array per row.
    reference : int
        Index of the reference row (PCA's).
    inputs : EvaluationInputs
        For the column name and the seed.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.app.evaluation_measures import EvaluationInputs, add_differences
    >>> inputs = EvaluationInputs(["pixels", "pca"], None, None, None, ["a"], target=0,
    ...                           n_components=2, n_neighbors=1, ks=())
    >>> rows = [{"same_class_at_1": 0.5}, {"same_class_at_1": 0.25}]
    >>> add_differences(rows, [np.array([1.0, 0.0]), np.array([0.5, 0.0])], 1, inputs)
    >>> rows[0]["same_class_vs_pca"], rows[1]["same_class_vs_pca_ci_high"]
    (0.25, 0.0)
    """
    key = inputs.same_class_key
    rate = rows[reference][key]
    for row, method_shares in zip(rows, shares):
        _with_interval(
            row,
            "same_class_vs_pca",
            row[key] - rate,
            _bootstrap(method_shares - shares[reference], inputs.random_state),
        )


def chance_figures(inputs: EvaluationInputs) -> dict[str, float]:
    """What a random ranking of the collection scores in every column.

    Parameters
    ----------
    inputs : EvaluationInputs

    Returns
    -------
    chance : dict
        ``same_class_at_<n>`` (the probability that a random other galaxy
        shares a galaxy's class), ``target_share_at_<k>`` (the target class's
        share), ``mean_rank:<class>`` (``(n + 1) / 2``) and
        ``same_class_at_<n>:<class>`` (``(n_class - 1) / (n - 1)``).

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.app.evaluation_measures import EvaluationInputs, chance_figures
    >>> inputs = EvaluationInputs(["pca"], np.zeros((4, 2, 2, 3)), np.array([0, 0, 0, 1]), None,
    ...                           ["a", "b"], target=1, n_components=2, n_neighbors=1, ks=(2,))
    >>> chance = chance_figures(inputs)
    >>> chance["same_class_at_1"], chance["target_share_at_2"], chance["same_class_at_1:b"]
    (0.5, 0.25, 0.0)
    """
    n = len(inputs.images)
    class_counts = np.bincount(inputs.labels, minlength=len(inputs.target_names))
    shares = class_counts / n
    key = inputs.same_class_key
    return {
        # A random other galaxy shares a galaxy's class with this probability.
        key: float(np.sum(shares * (class_counts - 1) / (n - 1))),
        **{f"target_share_at_{k}": float(shares[inputs.target]) for k in inputs.ks},
        **{f"mean_rank:{class_name}": (n + 1) / 2 for class_name in inputs.target_names},
        # Within one class: a random other galaxy is of that class with this probability.
        **{
            f"{key}:{class_name}": float((count - 1) / (n - 1)) if count else float("nan")
            for class_name, count in zip(inputs.target_names, class_counts)
        },
    }
