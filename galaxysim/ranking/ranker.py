"""Rank a collection of galaxies by similarity to a query galaxy.

:class:`SimilarityRanker` composes an embedder (by default the
:class:`~galaxysim.embedders.ContrastiveEmbedder`), a density on the
embedding (by default the :class:`~galaxysim.flows.FlowDensityEstimator`) and
a :class:`~galaxysim.ranking.search.NeighborSearch` over the embeddings. It
holds no model or search code of its own. Its answer, a
:class:`~galaxysim.ranking.Ranking`, is the object people read, plot and save.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from .._deprecation import positional_deprecated, warn_deprecated
from .._validation import check_bool, check_labels, is_fitted
from ..symmetry import dihedral_views
from ._checks import (
    check_ranker_input,
    check_ranker_labels,
    check_ranker_params,
    fingerprint,
    is_fitted_collection,
    is_single_query,
)
from .diagnostics import QueryDiagnosis, QueryDiagnostics, collection_statistics
from .result import Ranking, make_ranking
from .search import check_n_neighbors, closest_values, search_from_params

__all__ = ["SimilarityRanker"]

# Fitted attributes that moved into ``diagnostics_`` in 0.3: old name -> new name there.
_MOVED_TO_DIAGNOSTICS = {
    "nn_distance_": "isolation_reference_",
    "image_statistics_": "pixel_statistics_",
}


class SimilarityRanker(TransformerMixin, BaseEstimator):
    """Rank galaxies by how much they look like a query galaxy.

    ``fit`` embeds a collection of images with ``embedder``, fits ``density``
    on the embeddings and indexes them for nearest-neighbour search. ``rank``
    then answers "which galaxies look most like this one?" for a query image,
    with readable scores and a warning when the query is unlike the whole
    collection.

    All parameters are keyword arguments (positional ones are deprecated
    since version 0.3 and raise a TypeError from 0.4).

    Parameters
    ----------
    embedder : estimator with ``fit`` and ``transform``, default=None
        Maps images to vectors. None means ``ContrastiveEmbedder()``, which
        groups galaxies best (see the evaluation in the documentation). As in
        scikit-learn, the embedder is cloned and fitted on ``X``; to reuse a
        trained model on a new collection, wrap it in
        :class:`sklearn.frozen.FrozenEstimator`: it is then used as it is,
        never refitted, and :func:`~sklearn.base.clone` and
        :class:`~sklearn.model_selection.GridSearchCV` keep it. A fitted
        embedder that is not wrapped is still used as it is, with a
        FutureWarning (deprecated in 0.3; from 0.4 it will be cloned and
        refitted like an unfitted one). It receives images of shape
        ``(n, H, W, C)`` in [0, 1] (use a pipeline with
        ``ImagePreprocessor(flatten=True)`` in front of vector models such as
        PCA).
    density : estimator with ``fit`` and ``score_samples``, None or "drop", default=None
        A density on the embedding (log-likelihoods, typicality, and
        ``method="likelihood"``), cloned and fitted on the embeddings, or used
        as it is inside a FrozenEstimator. None means
        ``FlowDensityEstimator()`` (as ``embedder=None`` means the default
        embedder); ``"drop"`` turns the density off, as scikit-learn's
        ``"drop"`` turns off a step of a VotingClassifier or a
        ColumnTransformer. ``False``, the spelling of version 0.2, is
        deprecated (it warns and means ``"drop"``).
    n_neighbors : int, default=10
        Galaxies returned per query unless ``rank`` / ``kneighbors`` ask for
        another number.
    metric : str, default="euclidean"
        Distance in the embedding, any metric of
        :class:`~sklearn.neighbors.NearestNeighbors` for the exact search
        (``"euclidean"`` only for the faiss backends).
    method : {"embedding", "likelihood"}, default="embedding"
        ``"embedding"``: distance between embeddings. ``"likelihood"``:
        closeness of each galaxy's log-likelihood to the query's, the original
        study's flow approach (one number per galaxy, so it ranks by how
        typical a galaxy is rather than by what it looks like; kept to
        compare).
    invariance : {"dihedral", None}, default="dihedral"
        ``"dihedral"``: the query is embedded in its 8 rotations and flips
        and each galaxy's distance is the smallest over them. None compares
        the query as given.
    neighbors_params : dict, optional
        Parameters of the backend of the
        :class:`~galaxysim.ranking.search.NeighborSearch`, by the names its
        constructor takes (for example ``{"leaf_size": 10}`` for
        :class:`~sklearn.neighbors.NearestNeighbors`, or ``{"ef_search":
        128}`` for ``"faiss-hnsw"``). The backend itself is chosen by
        ``search`` only: ``neighbors_params["algorithm"]``, its other name
        in version 0.2, is deprecated (it warns and is used as ``search``).
    search : str, default="auto"
        The search backend: any ``algorithm`` of
        :class:`~galaxysim.ranking.search.NeighborSearch` (``"exact"``,
        ``"brute"``, ``"kd_tree"``, ``"ball_tree"``, ``"faiss-flat"``,
        ``"faiss-hnsw"``, ``"faiss-ivf"``). ``"auto"``: exact below 100,000
        galaxies or without faiss, else ``"faiss-hnsw"``
        (:func:`~galaxysim.ranking.search.choose_algorithm`).
    image_shape : tuple (H, W, C), optional
        Shape of one image, for flattened ``(n, H*W*C)`` input. Without it
        2-D input is passed to the embedder as plain feature vectors (then
        ``invariance`` must be None).
    target_names : sequence of str, optional
        Class names for integer labels ``0 .. len(target_names) - 1`` given as
        ``y``; rankings then show names.

    Attributes
    ----------
    embedder_ : estimator
        The fitted embedder (for a FrozenEstimator, the estimator inside it).
    density_ : estimator or None
        The fitted density (for a FrozenEstimator, the estimator inside it),
        None when ``density="drop"``.
    embedding_ : ndarray of shape (n_samples, n_components)
        Embedding of the fitted collection.
    log_density_ : ndarray of shape (n_samples,) or None
        Log-density of each fitted embedding under ``density_``.
    labels_ : ndarray of shape (n_samples,) or None
        The ``y`` given to ``fit``.
    classes_ : ndarray or None
        Sorted unique labels.
    search_ : NeighborSearch
        The nearest-neighbour search over ``embedding_``.
    diagnostics_ : QueryDiagnostics
        What the collection looks like, to tell when a query is unlike it:
        each galaxy's distance to its nearest other galaxy
        (``isolation_reference_``), its log-density
        (``typicality_reference_``) and its pixel statistics
        (``pixel_statistics_``). Saved with the model; :meth:`rank` and
        :meth:`diagnose` use it. ``nn_distance_`` and ``image_statistics_``,
        its first two names, still read (with a FutureWarning) until 0.4.
    n_samples_fit_ : int
        Number of galaxies in the collection.
    n_features_in_ : int
        Values per input sample.
    image_shape_ : tuple or None
        ``(H, W, C)`` of the fitted images (None for vector input).

    See Also
    --------
    Ranking : The result of :meth:`rank`.
    galaxysim.ranking.search.NeighborSearch : The search behind :meth:`kneighbors`.
    galaxysim.metrics.same_class_rate : The leave-one-out version of :meth:`score`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.neighbors import KernelDensity
    >>> from sklearn.pipeline import make_pipeline
    >>> from galaxysim.images import ImagePreprocessor
    >>> from galaxysim.ranking import SimilarityRanker
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 8, 8, 3)).astype(np.float32)
    >>> embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(4))
    >>> ranker = SimilarityRanker(embedder=embedder, density=KernelDensity(), n_neighbors=5).fit(X)
    >>> ranking = ranker.rank(X[3])
    >>> int(ranking.indices[0]), float(ranking.similarity[0])
    (3, 100.0)
    """

    @positional_deprecated
    def __init__(
        self,
        *,
        embedder: Any = None,
        density: Any = None,
        n_neighbors: int = 10,
        metric: str = "euclidean",
        method: str = "embedding",
        invariance: str | None = "dihedral",
        neighbors_params: dict | None = None,
        search: str = "auto",
        image_shape: Sequence[int] | None = None,
        target_names: Sequence[str] | None = None,
    ) -> None:
        self.embedder = embedder
        self.density = density
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.method = method
        self.invariance = invariance
        self.neighbors_params = neighbors_params
        self.search = search
        self.image_shape = image_shape
        self.target_names = target_names

    # ------------------------------------------------------------------ input
    def _validate_input(self, X: Any, name: str = "X", *, fitting: bool = False) -> np.ndarray:
        return check_ranker_input(self, X, name, fitting=fitting)

    def _check_params(self) -> None:
        check_ranker_params(self)

    def _check_y(self, y: Any, n_samples: int) -> np.ndarray | None:
        return check_ranker_labels(y, n_samples, self.target_names)

    # -------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> SimilarityRanker:
        """Embed the collection, fit the density and index the embeddings.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C), or (n, H*W*C) with image_shape
            The collection of galaxy images (uint8, or float in [0, 1]).
        y : array-like of shape (n,), optional
            Class labels; stored to label rankings and for :meth:`score`.

        Returns
        -------
        self : SimilarityRanker

        Examples
        --------
        >>> import numpy as np
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((20, 4, 4, 3))
        >>> pixels = ImagePreprocessor(crop=None, flatten=True)
        >>> SimilarityRanker(embedder=pixels, density="drop", invariance=None).fit(X).n_samples_fit_
        20
        """
        self._check_params()
        data = self._validate_input(X, fitting=True)
        if len(data) < 2:
            raise ValueError(f"X has {len(data)} sample(s); a collection needs at least 2.")
        is_images = data.ndim == 4
        if self.invariance is not None and not is_images:
            raise ValueError(
                "invariance='dihedral' needs images (n, H, W, C) or image_shape; got 2-D "
                "input without image_shape. Pass invariance=None for feature vectors."
            )
        labels = self._check_y(y, len(data))
        self.embedder_ = self._fit_embedder(data)
        self.embedding_ = self._embed(data)
        statistics = collection_statistics(data)
        self._fit_density()
        self._rebuild_after_loading()
        self.diagnostics_ = QueryDiagnostics().fit(
            self.search_.kneighbors(None, 1)[0][:, 0], self.log_density_, statistics
        )
        self.labels_ = labels
        self.classes_ = None if labels is None else np.unique(labels)
        self.n_samples_fit_ = len(data)
        self.n_features_in_ = int(np.prod(data.shape[1:]))
        self.image_shape_ = tuple(int(s) for s in data.shape[1:]) if is_images else None
        self._fit_fingerprint = fingerprint(data)
        return self

    # The index is rebuilt from ``embedding_`` rather than stored in model files.
    _rebuilt_after_loading = ("search_",)

    def _rebuild_after_loading(self) -> None:
        """Index ``embedding_`` for neighbour search (after fitting, or loading a model file)."""
        if not hasattr(self, "search"):  # a model file from before ``search``: exact
            self.search = "exact"
        params = dict(self.neighbors_params or {})
        algorithm = params.pop("algorithm", self.search)
        self.search_ = search_from_params(algorithm, self.metric, params)
        self.search_.fit(self.embedding_)
        self._diagnostics_from_0_2()

    def _diagnostics_from_0_2(self) -> None:
        """``diagnostics_`` from the references a ranker saved by 0.2 holds as its own attributes.

        Such a model file (or pickle) has ``nn_distance_``, ``log_density_`` and, unless it
        predates the pixel check, ``image_statistics_``: the same diagnostics, from them.
        """
        state = vars(self)
        if "diagnostics_" not in state and "nn_distance_" in state:
            self.diagnostics_ = QueryDiagnostics().fit(
                state.pop("nn_distance_"),
                state.get("log_density_"),
                state.pop("image_statistics_", None),
            )
            state.pop("pixel_reference_", None)  # a 0.2 pickle's, now inside diagnostics_

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._diagnostics_from_0_2()  # a pickle written by 0.2

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found as usual: the names ``diagnostics_`` took over.
        diagnostics = self.__dict__.get("diagnostics_")
        if name in _MOVED_TO_DIAGNOSTICS and diagnostics is not None:
            new = _MOVED_TO_DIAGNOSTICS[name]
            warnings.warn(
                f"SimilarityRanker.{name} was deprecated in 0.3 and will be removed in 0.4; "
                f"use SimilarityRanker.diagnostics_.{new}.",
                FutureWarning,
                stacklevel=2,
            )
            return getattr(diagnostics, new)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _fit_embedder(self, data: np.ndarray) -> Any:
        """The fitted embedder: a clone fitted on ``data``, or a frozen (or fitted) one as is."""
        embedder = self.embedder
        if embedder is None:
            from ..embedders import ContrastiveEmbedder

            embedder = ContrastiveEmbedder()
        if not (hasattr(embedder, "fit") and hasattr(embedder, "transform")):
            raise TypeError(f"embedder must have fit and transform, got {type(embedder).__name__}.")
        return _fitted_copy(embedder, data, "embedder")

    def _fit_density(self) -> None:
        density = self.density
        if density is False:
            warn_deprecated(
                'SimilarityRanker(density=False) is deprecated: pass density="drop" to turn '
                "the density off."
            )
            density = "drop"
        if isinstance(density, str) and density == "drop":
            self.density_ = None
            self.log_density_ = None
            return
        if density is None:
            from ..flows import FlowDensityEstimator

            density = FlowDensityEstimator()
        if not (hasattr(density, "fit") and hasattr(density, "score_samples")):
            raise TypeError(
                'density must be None, "drop" or an estimator with fit and score_samples, '
                f"got {type(density).__name__}."
            )
        self.density_ = _fitted_copy(density, self.embedding_, "density")
        self.log_density_ = self._log_density(self.embedding_)

    # ------------------------------------------------------------ feature names
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns of :meth:`transform`: the embedder's own, when it names them.

        Parameters
        ----------
        input_features : None
            Ignored; the ranker's input is images, whose values have no names.

        Returns
        -------
        names : ndarray of str
            ``embedder_.get_feature_names_out()`` when the embedder has it
            (``contrastiveembedder0``, ... for the default), else
            ``similarityranker0``, ``similarityranker1``, ...

        Examples
        --------
        >>> from sklearn.decomposition import PCA
        >>> Z = np.random.default_rng(0).normal(size=(20, 5))
        >>> ranker = SimilarityRanker(embedder=PCA(3), density="drop", invariance=None).fit(Z)
        >>> ranker.get_feature_names_out().tolist()
        ['pca0', 'pca1', 'pca2']
        """
        check_is_fitted(self)
        names = getattr(self.embedder_, "get_feature_names_out", None)
        if names is not None:
            try:
                found = np.asarray(names(), dtype=object)
            except (TypeError, ValueError, AttributeError):
                found = None
            if found is not None and found.shape == (self.embedding_.shape[1],):
                return found
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.embedding_.shape[1])], dtype=object)

    # -------------------------------------------------------------- internals
    def _embed(self, data: np.ndarray) -> np.ndarray:
        Z = np.asarray(self.embedder_.transform(data), dtype=np.float64)
        if Z.ndim != 2 or len(Z) != len(data):
            raise ValueError(
                f"embedder.transform must return a 2-D array with one row per sample; "
                f"got shape {Z.shape} for {len(data)} samples."
            )
        if not np.isfinite(Z).all():
            raise ValueError("embedder.transform returned NaN or infinite values.")
        return Z

    def _embed_views(self, data: np.ndarray) -> list[np.ndarray]:
        """Embeddings of ``data`` under each symmetry of ``invariance`` (identity first)."""
        if not (self.invariance == "dihedral" and data.ndim == 4):
            return [self._embed(data)]
        views = dihedral_views(data)
        if len(data) * len(views) <= 256:
            # One call for all views of a few queries: far less per-call overhead
            # than one call per view, at a bounded memory cost.
            return np.split(self._embed(np.concatenate(views)), len(views))
        return [self._embed(v) for v in views]

    def _check_k(self, n_neighbors: int | None, exclude_self: bool = False) -> int:
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        return check_n_neighbors(k, self.n_samples_fit_, exclude_self=exclude_self)

    def _search(
        self, view_embeddings: list[np.ndarray], k: int, exclude_self: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (distances, indices) of each query, given its embedding in each view."""
        if self.method == "likelihood":
            query_ll = np.stack([self._log_density(Z) for Z in view_embeddings], axis=1)
            return closest_values(self.log_density_, query_ll, k, exclude_self=exclude_self)
        return self.search_.kneighbors_views(view_embeddings, k, exclude_self=exclude_self)

    def _log_density(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(self.density_.score_samples(Z), dtype=np.float64)

    # ------------------------------------------------------------ public API
    def transform(self, X: Any) -> np.ndarray:
        """Embed images with the fitted embedder.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C)

        Returns
        -------
        embedding : ndarray of shape (n, n_components), float64

        Examples
        --------
        >>> import numpy as np
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((20, 4, 4, 3))
        >>> pixels = ImagePreprocessor(crop=None, flatten=True)
        >>> ranker = SimilarityRanker(embedder=pixels, density="drop", invariance=None).fit(X)
        >>> ranker.transform(X[:2]).shape
        (2, 48)
        """
        check_is_fitted(self)
        return self._embed(self._validate_input(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density of the embeddings of ``X`` under the fitted density.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C)

        Returns
        -------
        log_density : ndarray of shape (n,), float64

        Examples
        --------
        >>> import numpy as np
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((20, 4, 4, 3))
        >>> pixels = ImagePreprocessor(crop=None, flatten=True)
        >>> from sklearn.neighbors import KernelDensity
        >>> ranker = SimilarityRanker(embedder=pixels, density=KernelDensity(), invariance=None)
        >>> ranker.fit(X).score_samples(X[:2]).shape
        (2,)
        """
        check_is_fitted(self)
        if self.density_ is None:
            raise ValueError('This ranker was fitted with density="drop"; it has no log-density.')
        return self._log_density(self.transform(X))

    def kneighbors(
        self,
        X: Any = None,
        n_neighbors: int | None = None,
        return_distance: bool = True,
        *,
        exclude_self: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Find the most similar galaxies of the collection, as sklearn does.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C), optional
            Query images. None queries the fitted collection itself, each
            galaxy excluded from its own list (only for ``method="embedding"``
            without ``invariance``, as the fitted images are not kept).
        n_neighbors : int, optional
            Defaults to the ``n_neighbors`` given at construction.
        return_distance : bool, default=True
            Also return the distances (for ``method="likelihood"``: the
            absolute log-likelihood differences).
        exclude_self : bool, default=False
            ``X`` is the fitted collection, in fitted order: each galaxy is
            left out of its own list, for any ``method`` and ``invariance``
            (the lists behind :meth:`score` on the fitted collection).

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors)
            Only when ``return_distance``.
        indices : ndarray of shape (n_queries, n_neighbors)
            Indices into the fitted collection, most similar first.

        Examples
        --------
        >>> from sklearn.decomposition import PCA
        >>> Z = np.random.default_rng(0).normal(size=(20, 5))
        >>> ranker = SimilarityRanker(embedder=PCA(3), density="drop", invariance=None,
        ...                           n_neighbors=2).fit(Z)
        >>> ranker.kneighbors(Z[:3], return_distance=False)[:, 0].tolist()
        [0, 1, 2]
        >>> own = ranker.kneighbors(Z, return_distance=False, exclude_self=True)
        >>> bool((own == np.arange(20)[:, None]).any())  # no galaxy in its own list
        False
        """
        check_is_fitted(self)
        exclude_self = check_bool(exclude_self, "exclude_self")
        if X is None:
            if self.method == "likelihood" or self.invariance is not None:
                raise ValueError(
                    "kneighbors() without X needs the fitted images, which the ranker does not "
                    "keep; pass them as X with exclude_self=True to leave each out of its own "
                    "list, or use method='embedding' with invariance=None."
                )
            dist, idx = self.search_.kneighbors(None, self._check_k(n_neighbors, exclude_self=True))
        else:
            data = self._validate_input(X)
            if exclude_self and not is_fitted_collection(self, data):
                raise ValueError(
                    "exclude_self=True needs X to be the fitted collection (the "
                    f"same {self.n_samples_fit_} images in the same order)."
                )
            k = self._check_k(n_neighbors, exclude_self=exclude_self)
            dist, idx = self._search(self._embed_views(data), k, exclude_self=exclude_self)
        return (dist, idx) if return_distance else idx

    def rank(
        self,
        query: Any,
        n_neighbors: int | None = None,
        *,
        images: np.ndarray | None = None,
        names: Sequence[str] | None = None,
    ) -> Ranking | list[Ranking]:
        """Rank the collection by similarity to ``query``.

        Parameters
        ----------
        query : array-like of shape (H, W, C) or (n, H, W, C)
            One query image, or a batch of them.
        n_neighbors : int, optional
            How many galaxies to return; defaults to ``self.n_neighbors``. Use
            ``n_samples_fit_`` to rank the whole collection.
        images : ndarray of shape (``n_samples_fit_``, H, W, C), optional
            The fitted collection's images; when given, the ranking keeps
            thumbnails of the query and its neighbours for ``plot`` and
            notebooks.
        names : sequence of str of length ``n_samples_fit_``, optional
            An identifier per galaxy of the collection (such as its file
            name), carried into the ranking's table.

        Returns
        -------
        ranking : Ranking, or list of Ranking for a batch of queries

        Examples
        --------
        >>> from sklearn.decomposition import PCA
        >>> Z = np.random.default_rng(0).normal(size=(20, 5))
        >>> ranker = SimilarityRanker(embedder=PCA(3), density="drop", invariance=None).fit(Z)
        >>> ranking = ranker.rank(Z[4], n_neighbors=3)
        >>> int(ranking.indices[0]), ranking.similarity.tolist()[0]
        (4, 100.0)
        """
        check_is_fitted(self)
        single = is_single_query(query, self.image_shape_)
        batch = np.asarray(query)[np.newaxis] if single else query
        data = self._validate_input(batch, name="query")
        k = self._check_k(n_neighbors)
        for name, values in (("images", images), ("names", names)):
            if values is not None and len(values) != self.n_samples_fit_:
                raise ValueError(
                    f"{name} has {len(values)} entries but the ranker was fitted on "
                    f"{self.n_samples_fit_} galaxies."
                )
        view_embeddings = self._embed_views(data)
        dist, idx = self._search(view_embeddings, k)
        diagnoses = self._diagnose(data, view_embeddings[0])
        collection = {
            "log_density": self.log_density_,
            "labels": self.labels_,
            "target_names": self.target_names,
            "names": names,
            "images": images,
        }
        rankings = [
            make_ranking(
                idx[row],
                dist[row],
                n_collection=self.n_samples_fit_,
                method=self.method,
                diagnostics=diagnoses[row],
                collection=collection,
                query_image=data[row] if data.ndim == 4 else None,
            )
            for row in range(len(data))
        ]
        return rankings[0] if single else rankings

    def embed_views(self, X: Any) -> list[np.ndarray]:
        """Embed images in each view the ranker compares, as :meth:`rank` does.

        With ``invariance="dihedral"`` an image is embedded in its 8 rotations
        and flips (4 for rectangular images), the image as given first;
        without invariance there is one view. A search over these views
        (:meth:`~galaxysim.ranking.search.NeighborSearch.kneighbors_views`,
        of this ranker's ``search_`` or of an index built from the same
        embedder) gives the neighbours :meth:`rank` gives.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C)
            Images (or vectors, for a ranker fitted on vectors).

        Returns
        -------
        views : list of ndarray of shape (n, n_components)
            One embedding of ``X`` per view, the identity first.

        Examples
        --------
        >>> from sklearn.decomposition import PCA
        >>> from sklearn.pipeline import make_pipeline
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((20, 8, 8, 3))
        >>> embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
        >>> views = SimilarityRanker(embedder, False).fit(X).embed_views(X[:2])
        >>> len(views), views[0].shape
        (8, (2, 3))
        """
        check_is_fitted(self)
        return self._embed_views(self._validate_input(X))

    def diagnose(
        self,
        X: Any,
        *,
        embedding: Any = None,
        nn_distance: Any = None,
    ) -> QueryDiagnosis | list[QueryDiagnosis]:
        """How unusual each query is for the collection: the diagnosis behind a ranking's warning.

        The query's isolation (its distance to its nearest galaxy among the
        galaxies' own), typicality (its log-density among theirs) and pixel
        outlyingness, against the references in ``diagnostics_``; the
        ``diagnostics`` of :meth:`rank`'s answer.

        Parameters
        ----------
        X : array-like of shape (H, W, C) or (n, H, W, C)
            One query image, or a batch of them.
        embedding : array-like of shape (n, n_components), optional
            The queries' embedding (``embed_views(X)[0]``), when already
            made; otherwise ``X`` is embedded as :meth:`embed_views` does.
        nn_distance : array-like of shape (n,), optional
            Each query's distance to its nearest galaxy of the fitted
            collection, when a search has already found it (such as a
            prebuilt index over the same collection); otherwise this
            ranker's ``search_`` finds it.

        Returns
        -------
        diagnosis : QueryDiagnosis, or list of QueryDiagnosis for a batch

        Examples
        --------
        >>> from sklearn.decomposition import PCA
        >>> from sklearn.pipeline import make_pipeline
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((40, 8, 8, 3))
        >>> embedder = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(3))
        >>> ranker = SimilarityRanker(embedder, False).fit(X)
        >>> ranker.diagnose(X[0]).out_of_distribution
        False
        >>> ranker.diagnose(np.zeros((8, 8, 3))).reasons
        ('pixels',)
        """
        check_is_fitted(self)
        single = is_single_query(X, self.image_shape_)
        data = self._validate_input(np.asarray(X)[np.newaxis] if single else X, name="X")
        Z = None
        if embedding is not None:
            Z = np.asarray(embedding, dtype=np.float64)
            if Z.shape != (len(data), self.embedding_.shape[1]):
                raise ValueError(
                    f"embedding must have shape {(len(data), self.embedding_.shape[1])} (one "
                    f"row per query of X, as embed_views(X)[0]), got {Z.shape}."
                )
        if nn_distance is not None:
            nn_distance = np.asarray(nn_distance, dtype=np.float64)
            if nn_distance.shape != (len(data),):
                raise ValueError(
                    f"nn_distance must have shape ({len(data)},) (one distance per query of "
                    f"X), got {nn_distance.shape}."
                )
        diagnoses = self._diagnose(data, Z, nn_distance)
        return diagnoses[0] if single else diagnoses

    def _diagnose(
        self, data: np.ndarray, Z: np.ndarray | None, nn_distance: Any = None
    ) -> list[QueryDiagnosis]:
        if Z is None:
            # The identity view as rank embeds it (with the other views, in one call when
            # few), so that the numbers are rank's to the last bit.
            Z = self._embed_views(data)[0]
        if nn_distance is None:
            nn_distance = self.search_.kneighbors(Z, 1)[0][:, 0]
        return self.diagnostics_.diagnose(
            nn_distance,
            log_density=None if self.density_ is None else self._log_density(Z),
            images=data if data.ndim == 4 else None,
        )

    def score(self, X: Any, y: Any) -> float:
        """Mean share of each query's neighbours that share its label.

        For every image of ``X``, its ``n_neighbors`` most similar galaxies
        of the fitted collection are found; the score is the mean share of
        them whose fitted label equals the image's label in ``y`` (higher is
        better, 1 is perfect). When ``X`` is the fitted collection itself
        each galaxy is left out of its own list, so the score is not inflated
        by self-matches. This lets GridSearchCV tune the whole ranker (for
        example ``embedder__n_components``) when labels exist.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C)
        y : array-like of shape (n,)

        Returns
        -------
        score : float

        Examples
        --------
        >>> import numpy as np
        >>> from galaxysim.images import ImagePreprocessor
        >>> X = np.random.default_rng(0).random((20, 4, 4, 3))
        >>> pixels = ImagePreprocessor(crop=None, flatten=True)
        >>> y = np.arange(20) % 2
        >>> ranker = SimilarityRanker(embedder=pixels, density="drop", invariance=None).fit(X, y)
        >>> 0 <= ranker.score(X, y) <= 1
        True
        """
        check_is_fitted(self)
        if self.labels_ is None:
            raise ValueError("score needs the collection's labels: fit the ranker with y.")
        data = self._validate_input(X)
        y = check_labels(y, n_samples=len(data))
        exclude_self = is_fitted_collection(self, data)
        k = self._check_k(None, exclude_self=exclude_self)
        _, idx = self._search(self._embed_views(data), k, exclude_self=exclude_self)
        return float(np.mean(self.labels_[idx] == y[:, None]))


def _fitted_copy(estimator: Any, data: np.ndarray, name: str) -> Any:
    """What a ranker fits for parameter ``name``: scikit-learn's contract, one version late.

    A FrozenEstimator gives the fitted estimator inside it, as it is. Any
    other estimator is cloned and fitted on ``data``, except a fitted one,
    which (as in version 0.2) is used as it is, with a FutureWarning; a
    stateless one (that needs no fit) is cloned and fitted like any other.
    """
    if isinstance(estimator, FrozenEstimator):
        if not is_fitted(estimator.estimator):
            inner = type(estimator.estimator).__name__
            raise ValueError(
                f"{name} is a FrozenEstimator around an unfitted {inner}; freeze a fitted "
                "estimator, or pass the estimator itself to have it fitted."
            )
        return estimator.estimator
    if name == "embedder" and _needs_fit(estimator) and is_fitted(estimator):
        warn_deprecated(
            "The embedder given to SimilarityRanker is fitted and is used as it is; from "
            "version 0.4 it will be cloned and refitted, as scikit-learn does. Wrap it in "
            "sklearn.frozen.FrozenEstimator to keep using it as it is (then clone and "
            "GridSearchCV keep it too)."
        )
        return estimator
    return clone(estimator).fit(data)


def _needs_fit(estimator: Any) -> bool:
    """Whether ``estimator`` learns anything in ``fit`` (scikit-learn's ``requires_fit`` tag)."""
    try:
        return bool(get_tags(estimator).requires_fit)
    except AttributeError:  # not a scikit-learn estimator: assume it does
        return True
