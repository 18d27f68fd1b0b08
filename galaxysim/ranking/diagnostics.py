"""How unusual a query is for the collection: :class:`QueryDiagnostics` and its answer.

:class:`QueryDiagnostics` learns, from a fitted collection, the references
that say whether a query is the kind of galaxy the collection holds, and
diagnoses queries against them; each answer is a :class:`QueryDiagnosis`.
:class:`~galaxysim.ranking.SimilarityRanker` fits one in ``fit``
(``diagnostics_``), saves it with the model, and every ranking it makes holds
the diagnosis of its query (``Ranking.diagnostics``), as do ``galaxysim
rank``, ``galaxysim rank --index`` and the report.

Three references, measured in ``docs/ranking.md`` ("When the query is
unlike the collection"):

* **isolation**: the collection's own nearest-neighbour distances in the
  embedding; a query's distance to its nearest galaxy is placed among them;
* **typicality**: the collection's log-densities under the ranker's
  density; a query's log-density is placed among them;
* **pixels**, whatever the embedder: the collection's
  :func:`~galaxysim.images.image_statistics`, standardised robustly (median
  and MAD), with a Ledoit-Wolf covariance; a query's Mahalanobis distance is
  placed among the galaxies' own (near 100: pixels unlike every galaxy's, as
  a drawing's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import LedoitWolf
from sklearn.utils.validation import check_is_fitted

from .._validation import check_positive_int
from ..images import IMAGE_STATISTICS, image_statistics
from ..metrics import percentile_rank

__all__ = [
    "MIN_COLLECTION",
    "OUT_OF_DISTRIBUTION_PERCENTILE",
    "QueryDiagnosis",
    "QueryDiagnostics",
    "collection_statistics",
    "out_of_distribution_warning",
]

#: Above 100 minus this isolation or pixel-outlyingness percentile, a query is unlike the
#: collection.
OUT_OF_DISTRIBUTION_PERCENTILE = 1.0

#: Smallest collection on which the pixel check is made: with n galaxies a
#: usual query is above all of them with probability 1 / (n + 1).
MIN_COLLECTION = 20


def collection_statistics(images: np.ndarray) -> np.ndarray | None:
    """Pixel statistics of images, or None where the pixel check does not apply.

    None for feature vectors (2-D input) and for images under 8 pixels a side.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C), or (n, d) for feature vectors
        uint8, or float in [0, 1].

    Returns
    -------
    statistics : ndarray of shape (n, len(IMAGE_STATISTICS)) or None
        :func:`~galaxysim.images.image_statistics` of each image.

    Examples
    --------
    >>> collection_statistics(np.zeros((3, 5))) is None
    True
    >>> collection_statistics(np.zeros((3, 8, 8, 3))).shape
    (3, 8)
    """
    if images.ndim != 4 or min(images.shape[1:3]) < 8:
        return None
    return image_statistics(images)


def out_of_distribution_warning(
    typicality: float | None,
    isolation: float,
    percentile: float = OUT_OF_DISTRIBUTION_PERCENTILE,
    *,
    pixel_outlyingness: float | None = None,
    unusual: Sequence[str] = (),
) -> str | None:
    """The warning for a query unlike the collection, saying why, or None for a usual one.

    Parameters
    ----------
    typicality : float or None
        Percentile of the query's log-density among the collection's (None
        without a density).
    isolation : float
        Percentile of the query's nearest-galaxy distance among the
        collection's own nearest-neighbour distances.
    percentile : float, default=OUT_OF_DISTRIBUTION_PERCENTILE
        An isolation or pixel outlyingness above ``100 - percentile`` flags
        the query; a typicality below ``percentile`` is then named too, but
        does not flag a query alone (held-out survey galaxies fall there
        about 5 % of the time, as the density has seen the collection).
    pixel_outlyingness : float, optional
        Percentile of the query's pixel statistics' distance from the
        collection's among the galaxies' own (None: not measured).
    unusual : sequence of str, default=()
        Names from :data:`~galaxysim.images.IMAGE_STATISTICS` on which the
        query is most unusual, named in the warning.

    Returns
    -------
    warning : str or None

    Examples
    --------
    >>> out_of_distribution_warning(40.0, 50.0) is None
    True
    >>> out_of_distribution_warning(0.0, 50.0) is None  # a low typicality alone
    True
    >>> out_of_distribution_warning(0.0, 100.0).startswith("The query is unlike the collection")
    True
    >>> print(out_of_distribution_warning(40.0, 50.0, pixel_outlyingness=100.0,
    ...                                   unusual=["log_noise"]))  # doctest: +NORMALIZE_WHITESPACE
    The query's pixels are unlike those of every galaxy in the collection (most of all in
    the level of the pixel noise): it may be a drawing or a processed image, and the
    similarities may be meaningless.
    """
    pixels_unusual = pixel_outlyingness is not None and pixel_outlyingness > 100.0 - percentile
    if not (pixels_unusual or isolation > 100.0 - percentile):
        # A low typicality alone does not warn: the density was fitted on the collection,
        # so 5 % of held-out survey galaxies fall below 1 % of it (docs/ranking.md).
        return None
    reasons = []
    if typicality is not None and typicality < percentile:
        reasons.append(
            f"its log-density is lower than that of {100 - typicality:.1f}% of the collection"
        )
    if isolation > 100.0 - percentile:
        reasons.append(
            f"it is farther from its nearest galaxy than {isolation:.1f}% of the collection "
            "are from theirs"
        )
    sentences = []
    if reasons:
        sentences.append("The query is unlike the collection: " + "; ".join(reasons) + ".")
    if pixels_unusual:
        which = " and ".join(IMAGE_STATISTICS.get(name, name) for name in unusual)
        sentences.append(
            "The query's pixels are unlike those of every galaxy in the collection"
            + (f" (most of all in {which})" if which else "")
            + ": it may be a drawing or a processed image, and the similarities may be meaningless."
        )
    return " ".join(sentences) or None


@dataclass(frozen=True)
class QueryDiagnosis:
    """How unusual one query is for the collection, and the warning that follows.

    Made by :meth:`QueryDiagnostics.diagnose` (and so by
    :meth:`~galaxysim.ranking.SimilarityRanker.rank` and
    :meth:`~galaxysim.ranking.SimilarityRanker.diagnose`); a
    :class:`~galaxysim.ranking.Ranking` holds one as ``diagnostics``.

    Attributes
    ----------
    isolation : float
        Percentile of the query's distance to its nearest galaxy among the
        collection's own nearest-neighbour distances: near 100 means the
        query is farther from everything than any galaxy is from its closest
        neighbour.
    typicality : float or None
        Percentile of the query's log-density among the collection's: about
        50 for a typical galaxy, near 0 for one less likely than all of them
        (None without a density).
    log_density : float or None
        Log-density of the query's embedding.
    pixel_outlyingness : float or None
        Percentile of how unusual the query's pixel statistics are among the
        galaxies' own: near 100 for pixels unlike every galaxy's, as a
        drawing's. None for feature vectors, images under 8 pixels and
        collections under :data:`MIN_COLLECTION` galaxies.
    pixel_percentiles : dict or None
        The query's percentile among the collection on each pixel statistic
        (keys: :data:`~galaxysim.images.IMAGE_STATISTICS`).
    unusual_statistics : tuple of str
        The two pixel statistics on which the query is furthest out (empty
        without the pixel check).
    percentile : float, default=OUT_OF_DISTRIBUTION_PERCENTILE
        The flag threshold the diagnosis was made with (see
        :func:`out_of_distribution_warning`).

    Examples
    --------
    >>> odd = QueryDiagnosis(isolation=99.5, typicality=0.5)
    >>> odd.out_of_distribution, odd.reasons
    (True, ('isolation',))
    >>> print(odd.warning)  # doctest: +NORMALIZE_WHITESPACE
    The query is unlike the collection: its log-density is lower than that of 99.5% of the
    collection; it is farther from its nearest galaxy than 99.5% of the collection are from
    theirs.
    >>> QueryDiagnosis(isolation=40.0, typicality=0.5).warning is None
    True
    """

    isolation: float
    typicality: float | None = None
    log_density: float | None = None
    pixel_outlyingness: float | None = None
    pixel_percentiles: Mapping[str, float] | None = field(default=None, repr=False)
    unusual_statistics: tuple[str, ...] = ()
    percentile: float = OUT_OF_DISTRIBUTION_PERCENTILE

    @property
    def reasons(self) -> tuple[str, ...]:
        """The signals that flag the query: ``"isolation"``, ``"pixels"``, or none."""
        limit = 100.0 - self.percentile
        reasons = ("isolation",) if self.isolation > limit else ()
        if self.pixel_outlyingness is not None and self.pixel_outlyingness > limit:
            reasons += ("pixels",)
        return reasons

    @property
    def out_of_distribution(self) -> bool:
        """Whether the query is unlike the collection (isolation or pixels flag it)."""
        return bool(self.reasons)

    @property
    def warning(self) -> str | None:
        """The warning, saying why, for a query unlike the collection; None otherwise."""
        return out_of_distribution_warning(
            self.typicality,
            self.isolation,
            self.percentile,
            pixel_outlyingness=self.pixel_outlyingness,
            unusual=self.unusual_statistics,
        )


def _reference_values(values: Any, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as a 1-D float64 array without NaN (of length ``n`` when given)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0 or (n is not None and len(array) != n):
        expected = "a non-empty 1-D array" if n is None else f"a 1-D array of {n} values"
        raise ValueError(f"{name} must be {expected}, got shape {array.shape}.")
    if np.isnan(array).any():
        raise ValueError(f"{name} holds NaN values.")
    return array


def _pixel_distances(Z: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", Z, precision, Z), 0.0))


class QueryDiagnostics(BaseEstimator):
    """Learn what a collection's galaxies look like, and diagnose queries against it.

    ``fit`` keeps three references of the collection (its nearest-neighbour
    distances, its log-densities and its pixel statistics); ``diagnose``
    places each query among them and returns one :class:`QueryDiagnosis` per
    query, whose ``warning`` says when and why the query is unlike the
    collection. :class:`~galaxysim.ranking.SimilarityRanker` fits one in
    ``fit`` (its ``diagnostics_``); fit one by hand to diagnose queries
    against embeddings and densities of your own.

    Parameters
    ----------
    percentile : float, default=OUT_OF_DISTRIBUTION_PERCENTILE
        A query whose isolation or pixel outlyingness is above ``100 -
        percentile`` is out of distribution; a typicality below
        ``percentile`` is named in the warning then. Read at ``diagnose``
        time, so ``set_params`` changes it on a fitted instance.
    min_collection : int, default=MIN_COLLECTION
        Smallest collection on which the pixel check is made.

    Attributes
    ----------
    isolation_reference_ : ndarray of shape (n_samples,)
        Distance from each galaxy of the collection to its nearest other
        galaxy.
    typicality_reference_ : ndarray of shape (n_samples,) or None
        Log-density of each galaxy (None without a density).
    pixel_statistics_ : ndarray of shape (n_samples, len(IMAGE_STATISTICS)) or None
        :func:`~galaxysim.images.image_statistics` of each galaxy (None for
        feature vectors and small images).
    pixel_reference_ : dict of ndarray or None
        ``center`` and ``scale`` (median and MAD of the statistics),
        ``precision`` (Ledoit-Wolf) and ``distances`` (each galaxy's own);
        None without statistics or for collections under
        ``min_collection``. Derived from ``pixel_statistics_``, so model
        files do not store it.
    n_samples_fit_ : int
        Galaxies in the collection.

    See Also
    --------
    QueryDiagnosis : The diagnosis of one query.
    galaxysim.ranking.SimilarityRanker.diagnose : The ranker's way to diagnose images.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> diagnostics = QueryDiagnostics().fit(rng.uniform(1, 2, 50), rng.normal(size=50))
    >>> usual, odd = diagnostics.diagnose([1.5, 9.0], log_density=[0.0, -5.0])
    >>> usual.out_of_distribution, odd.out_of_distribution, odd.isolation
    (False, True, 100.0)
    """

    # Derived from the stored references: rebuilt when a model file is read.
    _rebuilt_after_loading = ("pixel_reference_",)

    def __init__(
        self,
        percentile: float = OUT_OF_DISTRIBUTION_PERCENTILE,
        min_collection: int = MIN_COLLECTION,
    ) -> None:
        self.percentile = percentile
        self.min_collection = min_collection

    def _check_params(self) -> None:
        percentile = self.percentile
        if (
            isinstance(percentile, bool)
            or not isinstance(percentile, (int, float, np.integer, np.floating))
            or not 0 < percentile < 50
        ):
            raise ValueError(f"percentile must be a number in (0, 50), got {percentile!r}.")
        check_positive_int(self.min_collection, "min_collection")

    def fit(
        self,
        nn_distance: Any,
        log_density: Any = None,
        image_statistics: Any = None,
    ) -> QueryDiagnostics:
        """Keep the collection's references.

        Parameters
        ----------
        nn_distance : array-like of shape (n_samples,)
            Distance from each galaxy to its nearest other galaxy in the
            embedding (``search.kneighbors(None, 1)`` of a
            :class:`~galaxysim.ranking.NeighborSearch`).
        log_density : array-like of shape (n_samples,), optional
            Log-density of each galaxy's embedding; without it there is no
            typicality.
        image_statistics : array-like of shape (n_samples, len(IMAGE_STATISTICS)), optional
            :func:`~galaxysim.images.image_statistics` of each galaxy (see
            :func:`collection_statistics`); without it there is no pixel
            check.

        Returns
        -------
        self : QueryDiagnostics

        Examples
        --------
        >>> QueryDiagnostics().fit([0.5, 1.0, 2.0]).n_samples_fit_
        3
        """
        self._check_params()
        self.isolation_reference_ = _reference_values(nn_distance, "nn_distance")
        n = len(self.isolation_reference_)
        self.typicality_reference_ = (
            None if log_density is None else _reference_values(log_density, "log_density", n)
        )
        self.pixel_statistics_ = None
        if image_statistics is not None:
            statistics = np.asarray(image_statistics, dtype=np.float64)
            self.pixel_statistics_ = statistics
        self._rebuild_after_loading()
        return self

    def _rebuild_after_loading(self) -> None:
        """Check the references (fitted, or read from a model file); derive the pixel reference."""
        self.isolation_reference_ = _reference_values(
            self.isolation_reference_, "isolation_reference_"
        )
        n = len(self.isolation_reference_)
        self.n_samples_fit_ = n
        if self.typicality_reference_ is not None:
            self.typicality_reference_ = _reference_values(
                self.typicality_reference_, "typicality_reference_", n
            )
        statistics = self.pixel_statistics_
        if statistics is not None:
            expected = (n, len(IMAGE_STATISTICS))
            if statistics.shape != expected or not np.isfinite(statistics).all():
                raise ValueError(
                    f"image_statistics must be finite, of shape {expected} (one row of "
                    f"IMAGE_STATISTICS per galaxy), got shape {statistics.shape}."
                )
        self.pixel_reference_ = self._pixel_reference(statistics)

    def _pixel_reference(self, statistics: np.ndarray | None) -> dict[str, np.ndarray] | None:
        if statistics is None or len(statistics) < self.min_collection:
            return None
        center = np.median(statistics, axis=0)
        mad = 1.4826 * np.median(np.abs(statistics - center), axis=0)
        # A statistic that never varies (the colour columns of grey images) keeps a tiny scale:
        # the query is then unusual on it only if it differs.
        scale = np.where(mad > 0, mad, 1e-6)
        Z = (statistics - center) / scale
        precision = LedoitWolf().fit(Z).precision_
        return {
            "center": center,
            "scale": scale,
            "precision": precision,
            "distances": _pixel_distances(Z, precision),
        }

    def _pixel_checks(self, images: np.ndarray | None, n: int) -> list[tuple]:
        """Per query: (outlyingness percentile, {statistic: percentile}, most unusual ones)."""
        reference = self.pixel_reference_
        if reference is None or images is None or min(images.shape[1:3]) < 8:
            return [(None, None, ())] * n
        names = list(IMAGE_STATISTICS)
        query = image_statistics(images)
        Z = (query - reference["center"]) / reference["scale"]
        distances = _pixel_distances(Z, reference["precision"])
        outlyingness = percentile_rank(distances, reference["distances"])
        rows = []
        for q, z, p in zip(query, Z, outlyingness):
            each = {
                name: float(percentile_rank([q[j]], self.pixel_statistics_[:, j])[0])
                for j, name in enumerate(names)
            }
            unusual = tuple(names[j] for j in np.argsort(-np.abs(z))[:2])
            rows.append((float(p), each, unusual))
        return rows

    def diagnose(
        self,
        nn_distance: Any,
        *,
        log_density: Any = None,
        images: Any = None,
    ) -> list[QueryDiagnosis]:
        """Diagnose queries: how isolated, how typical, how unusual their pixels are.

        Parameters
        ----------
        nn_distance : array-like of shape (n_queries,)
            Each query's distance to its nearest galaxy of the collection, in
            the embedding the references were measured in (the query as
            given, not rotated).
        log_density : array-like of shape (n_queries,), optional
            Each query's log-density; needs a fit with ``log_density``.
        images : array-like of shape (n_queries, H, W, C), optional
            The query images (uint8, or float in [0, 1]), for the pixel
            check; without them, or without ``pixel_statistics_``, there is
            none.

        Returns
        -------
        diagnoses : list of QueryDiagnosis
            One per query, in order.

        Examples
        --------
        >>> diagnostics = QueryDiagnostics().fit(np.linspace(1, 2, 30))
        >>> [d.isolation for d in diagnostics.diagnose([0.5, 3.0])]
        [0.0, 100.0]
        """
        check_is_fitted(self, "isolation_reference_")
        self._check_params()
        nn = _reference_values(nn_distance, "nn_distance")
        n = len(nn)
        if log_density is not None and self.typicality_reference_ is None:
            raise ValueError(
                "log_density was given, but these diagnostics were fitted without the "
                "collection's log-densities (fit's log_density was None)."
            )
        ll = None if log_density is None else _reference_values(log_density, "log_density", n)
        if images is not None:
            images = np.asarray(images)
            if images.ndim != 4 or len(images) != n:
                raise ValueError(
                    f"images must be an array of shape ({n}, H, W, C), one image per "
                    f"nn_distance, got shape {images.shape}."
                )
        isolation = percentile_rank(nn, self.isolation_reference_)
        typicality = None if ll is None else percentile_rank(ll, self.typicality_reference_)
        return [
            QueryDiagnosis(
                isolation=float(isolation[row]),
                typicality=None if typicality is None else float(typicality[row]),
                log_density=None if ll is None else float(ll[row]),
                pixel_outlyingness=pixels[0],
                pixel_percentiles=pixels[1],
                unusual_statistics=pixels[2],
                percentile=float(self.percentile),
            )
            for row, pixels in enumerate(self._pixel_checks(images, n))
        ]
