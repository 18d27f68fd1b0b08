"""Parameter and label checks of :class:`~galaxysim.ranking.SimilarityRanker`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import validate_data

from .._deprecation import warn_deprecated
from .._validation import (
    check_image_shape,
    check_images,
    check_labels,
    check_positive_int,
    is_image_input,
)

__all__ = [
    "check_ranker_input",
    "check_ranker_labels",
    "check_ranker_params",
    "fingerprint",
    "is_fitted_collection",
    "is_single_query",
]

_METHODS = ("embedding", "likelihood")
_INVARIANCES = (None, "dihedral")


def check_ranker_params(ranker: Any) -> None:
    """Raise ValueError or TypeError for a ranker parameter that cannot work."""
    if ranker.method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {ranker.method!r}.")
    if ranker.invariance not in _INVARIANCES:
        raise ValueError(f"invariance must be 'dihedral' or None, got {ranker.invariance!r}.")
    check_positive_int(ranker.n_neighbors, "n_neighbors")
    if ranker.neighbors_params is not None and not isinstance(ranker.neighbors_params, dict):
        raise TypeError(
            "neighbors_params must be a dict or None, got "
            f"{type(ranker.neighbors_params).__name__}."
        )
    _check_search(ranker.search, ranker.neighbors_params or {})
    density = ranker.density
    if isinstance(density, str) and density != "drop":
        raise ValueError(
            f'density must be None, "drop" or an estimator with fit and score_samples, '
            f"got {density!r}."
        )
    if (density is False or isinstance(density, str)) and ranker.method == "likelihood":
        raise ValueError(f"method='likelihood' needs a density; density={density!r} turns it off.")
    if ranker.image_shape is not None:
        check_image_shape(ranker.image_shape)


def _check_search(search: Any, neighbors_params: dict) -> None:
    from .search import search_algorithms, search_from_params

    known = search_algorithms()
    if not isinstance(search, str) or search not in {"auto", *known}:
        raise ValueError(f"search must be 'auto' or one of {sorted(known)}, got {search!r}.")
    params = dict(neighbors_params)
    if "algorithm" in params:
        asked = params.pop("algorithm")
        if search != "auto" and asked != search:
            raise ValueError(
                f"search={search!r} and neighbors_params['algorithm']={asked!r} disagree; "
                "give the search backend once, as search."
            )
        warn_deprecated(
            f"SimilarityRanker(neighbors_params={{'algorithm': {asked!r}}}) is deprecated: "
            f"pass search={asked!r} (the one name of the search backend)."
        )
    # An unknown name fails here, before the embedder is trained.
    search_from_params("exact", "euclidean", params)


def check_ranker_input(
    ranker: Any, X: Any, name: str = "X", *, fitting: bool = False
) -> np.ndarray:
    """A ranker's input as images, float32 (n, H, W, C), or as vectors, float (n, d)."""
    if fitting:
        treat_as_vectors = not is_image_input(X, ranker.image_shape)
    else:
        treat_as_vectors = ranker.image_shape_ is None
    if treat_as_vectors:
        # sklearn's own validation gives vector input the messages and the
        # n_features_in_ bookkeeping its users know.
        return validate_data(ranker, X, reset=fitting, dtype=[np.float64, np.float32])
    array = X if isinstance(X, np.ndarray) else np.asarray(X)
    shape = ranker.image_shape if fitting else ranker.image_shape_
    images = check_images(array, image_shape=shape, name=name)
    if not fitting and images.shape[1:] != ranker.image_shape_:
        raise ValueError(
            f"{name} holds images of shape {images.shape[1:]}, but the ranker was fitted "
            f"on images of shape {ranker.image_shape_}."
        )
    return images


def check_ranker_labels(
    y: Any, n_samples: int, target_names: Sequence[str] | None
) -> np.ndarray | None:
    """``y`` as checked labels (within ``target_names`` when given), or None."""
    if y is None:
        return None
    if target_names is None:
        return check_labels(y, n_samples=n_samples)
    n_names = len(target_names)
    try:
        return check_labels(y, n_samples=n_samples, n_classes=n_names)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{error} There are {n_names} target_names.") from None


def is_single_query(query: Any, image_shape: tuple[int, ...] | None) -> bool:
    """One query rather than a batch: (H, W, C), or (H, W) for one-channel images.

    Examples
    --------
    >>> is_single_query(np.zeros((8, 8)), (8, 8, 1))
    True
    >>> is_single_query(np.zeros((2, 8, 8, 1)), (8, 8, 1))
    False
    """
    shape = np.shape(query)
    if image_shape is None:
        return len(shape) == 1
    one_channel = image_shape[-1] == 1 and shape == tuple(image_shape[:2])
    return len(shape) == 3 or one_channel


def fingerprint(data: np.ndarray) -> str:
    """A hash of an array's bytes: tells the fitted collection apart from other input.

    Examples
    --------
    >>> fingerprint(np.zeros(3)) == fingerprint(np.zeros(3))
    True
    """
    return hashlib.sha1(np.ascontiguousarray(data).view(np.uint8)).hexdigest()


def is_fitted_collection(ranker: Any, data: np.ndarray) -> bool:
    """Whether validated ``data`` is the collection ``ranker`` was fitted on, in fitted order.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> X = np.zeros((3, 2))
    >>> ranker = SimpleNamespace(n_samples_fit_=3, _fit_fingerprint=fingerprint(X))
    >>> is_fitted_collection(ranker, X), is_fitted_collection(ranker, X[:2])
    (True, False)
    """
    fitted = getattr(ranker, "_fit_fingerprint", None)
    return len(data) == ranker.n_samples_fit_ and fingerprint(data) == fitted
