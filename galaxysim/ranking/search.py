"""Nearest-neighbour search over embeddings: :class:`NeighborSearch`, the search seam.

A ranker finds neighbours only through :class:`NeighborSearch`. The search
itself is done by a *backend*, chosen by name with ``algorithm``:

* ``"exact"``: scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`,
  which picks brute force or a tree itself; ``"brute"``, ``"kd_tree"`` and
  ``"ball_tree"`` force its choice (all exact, same results).
* ``"faiss-flat"``, ``"faiss-hnsw"``, ``"faiss-ivf"``: faiss indices
  (:mod:`~galaxysim.ranking._faiss`, the ``galaxysim[faiss]`` extra); flat is
  exact, HNSW and IVF are approximate and report their recall
  (:meth:`NeighborSearch.estimate_recall`).
* ``"auto"``: ``"exact"`` below :data:`AUTO_EXACT_BELOW` embeddings, for
  metrics other than euclidean, with backend parameters, or without faiss;
  ``"faiss-hnsw"`` otherwise.

A new backend is one class with ``fit``, ``kneighbors``,
``kneighbors_fitted`` and ``reconstruct`` (see :class:`_ExactBackend`) and one
entry in ``_BACKENDS``; everything above it (the merge over the symmetric
views of a query, leaving each galaxy out of its own list, argument checks)
is written once, here, for all backends.

:func:`closest_values` answers the same question for one number per item
(the log-likelihood closeness of ``method="likelihood"``) by a full stable
sort, which is exact including ties.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._deprecation import positional_deprecated
from .._validation import check_positive_int
from ._faiss import FAISS_BACKENDS, faiss_available
from ._recall import recall_at_k
from ._search_io import read_search, write_search

__all__ = [
    "AUTO_EXACT_BELOW",
    "BACKEND_PARAMETERS",
    "NeighborSearch",
    "check_n_neighbors",
    "choose_algorithm",
    "closest_values",
    "search_algorithms",
    "search_from_params",
]

#: ``algorithm="auto"`` searches exactly below this many embeddings.
AUTO_EXACT_BELOW = 100_000


class _ExactBackend:
    """Exact search with scikit-learn's NearestNeighbors.

    ``algorithm`` is NearestNeighbors' own (``"exact"`` meaning ``"auto"``);
    ``params`` go to it unchanged (``leaf_size``, ``n_jobs``, ...).
    """

    def __init__(self, algorithm: str, metric: str | Callable, **params: Any) -> None:
        from sklearn.neighbors import NearestNeighbors

        algorithm = "auto" if algorithm == "exact" else algorithm
        try:
            self.index = NearestNeighbors(algorithm=algorithm, metric=metric, **params)
        except TypeError as error:
            raise TypeError(
                f"NeighborSearch passes params to sklearn's NearestNeighbors, which rejects "
                f"them: {error}"
            ) from None

    def fit(self, embeddings: np.ndarray) -> _ExactBackend:
        self.embeddings = embeddings  # kept for save() and reconstruct()
        self.index.fit(embeddings)
        return self

    def reconstruct(self, start: int, stop: int) -> np.ndarray:
        """The fitted embeddings ``start .. stop - 1``."""
        return np.asarray(self.embeddings[start:stop])

    def kneighbors(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the ``n_neighbors`` nearest fitted points of each query."""
        return self.index.kneighbors(queries, n_neighbors=n_neighbors)

    def kneighbors_fitted(self, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """The same for every fitted point, each left out of its own list."""
        return self.index.kneighbors(n_neighbors=n_neighbors)


#: The backend parameters of :class:`NeighborSearch`, by the backends that take them.
BACKEND_PARAMETERS: dict[str, tuple[str, ...]] = {
    "exact, brute, kd_tree, ball_tree": ("leaf_size", "p", "metric_params", "n_jobs"),
    "faiss-hnsw": ("M", "ef_construction", "ef_search"),
    "faiss-ivf": ("nlist", "nprobe", "pq", "train_size", "random_state"),
}
_PARAMETER_NAMES = tuple(name for names in BACKEND_PARAMETERS.values() for name in names)

#: Search backends by the name ``NeighborSearch(algorithm=...)`` takes.
#: Each is called as ``backend(algorithm, metric, **params)``.
_BACKENDS: dict[str, type] = {
    **{name: _ExactBackend for name in ("exact", "brute", "kd_tree", "ball_tree")},
    **FAISS_BACKENDS,
}


def choose_algorithm(n_samples: int, metric: Any = "euclidean", params: dict | None = None) -> str:
    """The backend ``algorithm="auto"`` uses for a collection of ``n_samples``.

    ``"faiss-hnsw"`` from :data:`AUTO_EXACT_BELOW` embeddings on, when faiss
    is installed, the metric is euclidean and no backend parameters were
    given (those are for the exact backends); ``"exact"`` otherwise.

    Examples
    --------
    >>> choose_algorithm(2_000)
    'exact'
    """
    if n_samples < AUTO_EXACT_BELOW or metric != "euclidean" or params:
        return "exact"
    return "faiss-hnsw" if faiss_available() else "exact"


def check_n_neighbors(n_neighbors: Any, n_samples: int, *, exclude_self: bool = False) -> int:
    """Return ``n_neighbors`` as an int, or raise if a collection cannot supply that many.

    Parameters
    ----------
    n_neighbors : int
        Neighbours asked for.
    n_samples : int
        Size of the fitted collection.
    exclude_self : bool, default=False
        Whether each query is a member of the collection left out of its own
        list (one neighbour fewer is then available).

    Returns
    -------
    n_neighbors : int

    Examples
    --------
    >>> check_n_neighbors(3, 10)
    3
    >>> check_n_neighbors(10, 10, exclude_self=True)
    Traceback (most recent call last):
    ...
    ValueError: n_neighbors=10 exceeds the 9 galaxies available in the fitted collection.
    """
    k = check_positive_int(n_neighbors, "n_neighbors")
    limit = n_samples - (1 if exclude_self else 0)
    if k > limit:
        raise ValueError(
            f"n_neighbors={k} exceeds the {limit} galaxies available in the fitted collection."
        )
    return k


def _check_embeddings(X: Any, name: str, n_features: int | None = None) -> np.ndarray:
    array = np.asarray(X)
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D array (one row per item), got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers, got dtype {array.dtype} or NaN/inf.")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features per row, but NeighborSearch was fitted on "
            f"{n_features}."
        )
    return array


def _merge_candidates(
    distances: np.ndarray, indices: np.ndarray, n_neighbors: int, exclude_self: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n_neighbors`` distinct indices per row, each at its smallest distance.

    Rows are ordered by (distance, index); with ``exclude_self`` row ``i``
    drops index ``i``.
    """
    rows = np.arange(len(indices))[:, None]
    # Group each row's candidates by index, smallest distance first: the first
    # of each group is that index's distance, the rest are dropped.
    by_index = np.lexsort((distances, indices), axis=1)
    indices = np.take_along_axis(indices, by_index, axis=1)
    distances = np.take_along_axis(distances, by_index, axis=1).astype(np.float64)
    drop = np.zeros(indices.shape, dtype=bool)
    drop[:, 1:] = indices[:, 1:] == indices[:, :-1]
    if exclude_self:
        drop |= indices == rows
    distances[drop] = np.inf
    best = np.lexsort((indices, distances), axis=1)[:, :n_neighbors]
    return (
        np.take_along_axis(distances, best, axis=1),
        np.take_along_axis(indices, best, axis=1).astype(np.intp),
    )


class NeighborSearch(BaseEstimator):
    """Nearest neighbours of queries in a fitted set of embeddings.

    The one place galaxysim searches embeddings: a small scikit-learn-style
    object over a pluggable backend. Results are ordered by distance, ties by
    index, whatever the backend.

    Parameters
    ----------
    algorithm : str, default="exact"
        The search backend. ``"exact"``: scikit-learn's
        :class:`~sklearn.neighbors.NearestNeighbors`, which chooses its own
        method; ``"brute"``, ``"kd_tree"``, ``"ball_tree"`` force
        NearestNeighbors' method of that name. ``"faiss-flat"`` (exact, in
        float32), ``"faiss-hnsw"`` and ``"faiss-ivf"`` (approximate) need
        faiss (``pip install "galaxysim[faiss]"``) and the euclidean metric.
        ``"auto"``: see :func:`choose_algorithm`.
    metric : str or callable, default="euclidean"
        Distance between embeddings, as the backend understands it (any
        metric of NearestNeighbors for the exact backends, ``"euclidean"``
        for faiss).
    leaf_size, p, metric_params, n_jobs : optional
        NearestNeighbors' parameters of these names, for the exact backends.
    M, ef_construction, ef_search : int, optional
        Links per vector, candidates kept while building and candidates kept
        per query, for ``"faiss-hnsw"`` (defaults 32, 80, 64).
    nlist, nprobe, pq, train_size : int, optional
        Number of inverted lists, lists searched per query (default 32),
        bytes per vector of product quantisation and k-means training sample,
        for ``"faiss-ivf"`` (see :class:`~galaxysim.ranking._faiss.IVFBackend`).
    random_state : int, optional
        Seeds the k-means sample of ``"faiss-ivf"`` (default 0).

    Every backend parameter defaults to None, the backend's own default; one
    that is set must be one the chosen backend takes (else ``fit`` raises a
    TypeError). All parameters are keyword arguments (positional ones are
    deprecated since version 0.3). :attr:`backend_params` holds those set.

    Attributes
    ----------
    backend_ : object
        The fitted backend.
    algorithm_ : str
        The backend used (what ``"auto"`` chose).
    recall_ : float
        Set by :meth:`estimate_recall`.
    n_samples_fit_ : int
        Number of fitted embeddings.
    n_features_in_ : int
        Values per embedding.

    See Also
    --------
    sklearn.neighbors.NearestNeighbors : The exact backend.
    closest_values : The same search for one value per item, exact with ties.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.ranking.search import NeighborSearch
    >>> Z = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    >>> search = NeighborSearch().fit(Z)
    >>> distances, indices = search.kneighbors(np.array([[0.9, 0.0]]), 2)
    >>> indices.tolist(), np.round(distances, 2).tolist()
    ([[1, 0]], [[0.1, 0.9]])
    >>> search.kneighbors(None, 1)[1].ravel().tolist()  # the fitted set, self excluded
    [1, 0, 1]
    """

    @positional_deprecated
    def __init__(
        self,
        *,
        algorithm: str = "exact",
        metric: str | Callable = "euclidean",
        leaf_size: int | None = None,
        p: float | None = None,
        metric_params: dict | None = None,
        n_jobs: int | None = None,
        M: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq: int | None = None,
        train_size: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.metric = metric
        self.leaf_size = leaf_size
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        self.pq = pq
        self.train_size = train_size
        self.random_state = random_state

    @property
    def backend_params(self) -> dict[str, Any]:
        """The backend parameters that are set (not None), as the backend receives them.

        Examples
        --------
        >>> NeighborSearch(algorithm="ball_tree", leaf_size=10).backend_params
        {'leaf_size': 10}
        """
        return {
            name: getattr(self, name)
            for name in _PARAMETER_NAMES
            if getattr(self, name) is not None
        }

    def fit(self, embeddings: Any) -> NeighborSearch:
        """Index the embeddings.

        Parameters
        ----------
        embeddings : array-like of shape (n_samples, n_features)

        Returns
        -------
        self : NeighborSearch

        Examples
        --------
        >>> NeighborSearch().fit(np.zeros((4, 2))).n_samples_fit_
        4
        """
        if not isinstance(self.algorithm, str) or self.algorithm not in {*_BACKENDS, "auto"}:
            raise ValueError(
                f"algorithm must be 'auto' or one of {sorted(_BACKENDS)}, got {self.algorithm!r}."
            )
        array = _check_embeddings(embeddings, "embeddings")
        algorithm = self.algorithm
        if algorithm == "auto":
            algorithm = choose_algorithm(len(array), self.metric, self.backend_params)
        backend = _BACKENDS[algorithm](algorithm, self.metric, **self.backend_params)
        self.backend_ = backend.fit(array)
        self.algorithm_ = algorithm
        self.n_samples_fit_, self.n_features_in_ = array.shape
        return self

    def save(self, path: Any, *, overwrite: bool = False) -> Any:
        """Write the fitted search into the folder ``path`` (created if needed).

        The folder holds ``search.json`` and either faiss's own index file or
        the embeddings as ``.npy``; nothing in it is a pickle. Returns the
        folder as a :class:`~pathlib.Path`.

        Examples
        --------
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = NeighborSearch().fit(np.eye(3)).save(folder, overwrite=True)
        >>> NeighborSearch.load(folder).kneighbors(None, 1)[1].ravel().tolist()
        [1, 0, 0]
        """
        check_is_fitted(self, "backend_")
        return write_search(self, path, overwrite)

    @classmethod
    def load(cls, path: Any) -> NeighborSearch:
        """Read a search written by :meth:`save` (an exact one is indexed again).

        Parameters
        ----------
        path : str or path-like
            The folder :meth:`save` wrote.

        Returns
        -------
        search : NeighborSearch
            Fitted, with the saved algorithm and parameters. Missing, corrupt
            or inconsistent files raise FileNotFoundError or ValueError.

        Examples
        --------
        >>> import tempfile
        >>> folder = NeighborSearch().fit(np.eye(3)).save(tempfile.mkdtemp(), overwrite=True)
        >>> NeighborSearch.load(folder).n_samples_fit_
        3
        """
        return read_search(cls, path, _BACKENDS)

    def estimate_recall(
        self,
        embeddings: Any = None,
        *,
        n_queries: int = 100,
        n_neighbors: int = 10,
        random_state: Any = 0,
    ) -> float:
        """Share of the true ``n_neighbors`` nearest that the backend finds (recall@k).

        ``n_queries`` fitted points, drawn with ``random_state``, are searched
        (each left out of its own list) and compared with an exact search.
        The truth is computed from ``embeddings`` (the fitted array) when
        given, else from the vectors the index stores (for ``pq``, these are
        already compressed, so the loss of compression is not counted).
        1.0 for the exact backends. Sets ``recall_``.

        Examples
        --------
        >>> NeighborSearch().fit(np.eye(4)).estimate_recall(n_neighbors=2)
        1.0
        """
        check_is_fitted(self, "backend_")
        if embeddings is not None:
            embeddings = _check_embeddings(embeddings, "embeddings", self.n_features_in_)
        self.recall_ = recall_at_k(self, embeddings, n_queries, n_neighbors, random_state)
        return self.recall_

    def kneighbors(
        self, queries: Any = None, n_neighbors: int = 1, *, exclude_self: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n_neighbors`` nearest fitted embeddings of each query.

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_features), optional
            None queries the fitted embeddings themselves, each left out of
            its own list, as scikit-learn's ``kneighbors()`` does.
        n_neighbors : int, default=1
        exclude_self : bool, default=False
            The queries are the fitted embeddings in fitted order (row ``i``
            is item ``i``) and each is left out of its own list.

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors), float64
        indices : ndarray of shape (n_queries, n_neighbors)
            Nearest first, ties by index.

        Examples
        --------
        >>> Z = np.array([[0.0], [1.0], [3.0]])
        >>> search = NeighborSearch().fit(Z)
        >>> search.kneighbors(Z, 1, exclude_self=True)[1].ravel().tolist()
        [1, 0, 1]
        """
        check_is_fitted(self, "backend_")
        if queries is None:
            k = check_n_neighbors(n_neighbors, self.n_samples_fit_, exclude_self=True)
            return self.backend_.kneighbors_fitted(k)
        queries = _check_embeddings(queries, "queries", self.n_features_in_)
        return self.kneighbors_views([queries], n_neighbors, exclude_self=exclude_self)

    def kneighbors_views(
        self, view_embeddings: Sequence[Any], n_neighbors: int, *, exclude_self: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest neighbours of queries seen in several views, each at its closest view.

        The distance of a fitted item to a query is the smallest over the
        query's views (for example the embeddings of its rotations and
        flips), so a rotated galaxy matches the unrotated one.

        Parameters
        ----------
        view_embeddings : sequence of array-like of shape (n_queries, n_features)
            The queries' embeddings in each view, all in the same query order.
        n_neighbors : int
        exclude_self : bool, default=False
            The queries are the fitted items in fitted order; each is left
            out of its own list.

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors), float64
        indices : ndarray of shape (n_queries, n_neighbors)
            Nearest first, ties by index.

        Examples
        --------
        >>> search = NeighborSearch().fit(np.array([[0.0, 1.0], [4.0, 4.0]]))
        >>> views = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]  # a query and its mirror
        >>> search.kneighbors_views(views, 1)
        (array([[0.]]), array([[0]]))
        """
        check_is_fitted(self, "backend_")
        if len(view_embeddings) == 0:
            raise ValueError("view_embeddings is empty; at least one view is needed.")
        views = [
            _check_embeddings(Z, f"view_embeddings[{i}]", self.n_features_in_)
            for i, Z in enumerate(view_embeddings)
        ]
        n_queries = len(views[0])
        if any(len(Z) != n_queries for Z in views):
            raise ValueError(
                "view_embeddings must all have the same number of rows, got "
                f"{[len(Z) for Z in views]}."
            )
        if exclude_self and n_queries != self.n_samples_fit_:
            raise ValueError(
                f"exclude_self=True needs the fitted embeddings as queries ({self.n_samples_fit_} "
                f"rows), got {n_queries} rows."
            )
        k = check_n_neighbors(n_neighbors, self.n_samples_fit_, exclude_self=exclude_self)
        # The true top k under the minimum over views lies in the union of each
        # view's own top k (one more when a query may find itself).
        k_view = min(k + (1 if exclude_self else 0), self.n_samples_fit_)
        candidates = [self.backend_.kneighbors(Z, k_view) for Z in views]
        distances = np.concatenate([d for d, _ in candidates], axis=1)
        indices = np.concatenate([i for _, i in candidates], axis=1)
        return _merge_candidates(distances, indices, k, exclude_self)


def search_algorithms() -> tuple[str, ...]:
    """The names ``NeighborSearch(algorithm=...)`` takes besides ``"auto"``.

    Examples
    --------
    >>> search_algorithms()[:2]
    ('exact', 'brute')
    """
    return tuple(_BACKENDS)


def search_from_params(algorithm: Any, metric: Any, params: dict[str, Any]) -> NeighborSearch:
    """An unfitted :class:`NeighborSearch` from a dict of backend parameters.

    Parameters
    ----------
    algorithm, metric
        As :class:`NeighborSearch` takes them.
    params : dict
        Backend parameters by name (a ranker's ``neighbors_params``).

    Raises
    ------
    TypeError
        A name that is not a backend parameter of NeighborSearch.

    Examples
    --------
    >>> search_from_params("ball_tree", "euclidean", {"leaf_size": 5}).leaf_size
    5
    >>> search_from_params("exact", "euclidean", {"radius": 1.0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: neighbors_params holds 'radius', which is not a parameter of NeighborSearch; ...
    """
    unknown = [name for name in params if name not in _PARAMETER_NAMES]
    if unknown:
        raise TypeError(
            f"neighbors_params holds {unknown[0]!r}, which is not a parameter of NeighborSearch; "
            f"its backend parameters are {', '.join(_PARAMETER_NAMES)}."
        )
    return NeighborSearch(algorithm=algorithm, metric=metric, **params)


def closest_values(
    reference: Any, query_values: Any, n_neighbors: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Items whose value is closest to each query's, over the query's views.

    The 1-D search behind ``method="likelihood"``: the distance of item
    ``j`` to query ``i`` is ``min_v |reference[j] - query_values[i, v]|``.
    A full stable sort makes it exact including ties (the lowest index wins),
    which a tree search does not promise when many items share a value; one
    number per item keeps the full sort cheap.

    Parameters
    ----------
    reference : array-like of shape (n_samples,)
        One value per item (its log-likelihood).
    query_values : array-like of shape (n_queries, n_views)
        Each query's value in each of its views.
    n_neighbors : int
    exclude_self : bool, default=False
        The queries are the items in order; each is left out of its own list.

    Returns
    -------
    distances : ndarray of shape (n_queries, n_neighbors), float64
    indices : ndarray of shape (n_queries, n_neighbors)

    Examples
    --------
    >>> d, i = closest_values([0.0, 2.0, 5.0], [[1.8, 4.0]], 2)
    >>> i.tolist(), np.round(d, 2).tolist()
    ([[1, 2]], [[0.2, 1.0]])
    """
    reference = np.asarray(reference, dtype=np.float64)
    query_values = np.asarray(query_values, dtype=np.float64)
    if query_values.ndim != 2:
        raise ValueError(
            f"query_values must be 2-D (n_queries, n_views), got shape {query_values.shape}."
        )
    k = check_n_neighbors(n_neighbors, len(reference), exclude_self=exclude_self)
    n_queries = len(query_values)
    if exclude_self and n_queries != len(reference):
        raise ValueError(
            f"exclude_self=True needs one query per item ({len(reference)}), got {n_queries}."
        )
    distances = np.empty((n_queries, k))
    indices = np.empty((n_queries, k), dtype=np.intp)
    # Chunks keep the (queries x collection) gap matrix small.
    for start in range(0, n_queries, 64):
        rows = np.arange(start, min(start + 64, n_queries))
        gaps = np.abs(reference[None, None, :] - query_values[rows, :, None]).min(axis=1)
        if exclude_self:
            gaps[np.arange(len(rows)), rows] = np.inf
        order = np.argsort(gaps, axis=1, kind="stable")[:, :k]
        indices[rows] = order
        distances[rows] = np.take_along_axis(gaps, order, axis=1)
    return distances, indices
