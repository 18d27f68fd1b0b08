"""Parameter and label checks of :class:`~galaxysim.ranking.SimilarityRanker`."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from .._validation import check_image_shape, check_labels, check_positive_int

__all__ = ["check_ranker_labels", "check_ranker_params", "fingerprint", "is_single_query"]

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
            f"neighbors_params must be a dict or None, got {type(ranker.neighbors_params).__name__}."
        )
    _check_search(ranker.search, ranker.neighbors_params or {})
    if ranker.density is False and ranker.method == "likelihood":
        raise ValueError("method='likelihood' needs a density; density=False turns it off.")
    if ranker.image_shape is not None:
        check_image_shape(ranker.image_shape)


def _check_search(search: Any, neighbors_params: dict) -> None:
    from .search import _BACKENDS

    if not isinstance(search, str) or search not in {"auto", *_BACKENDS}:
        raise ValueError(f"search must be 'auto' or one of {sorted(_BACKENDS)}, got {search!r}.")
    asked = neighbors_params.get("algorithm", search)
    if search != "auto" and asked != search:
        raise ValueError(
            f"search={search!r} and neighbors_params['algorithm']={asked!r} disagree; "
            "give the search backend once, as search."
        )

def check_ranker_labels(y: Any, n_samples: int, target_names: Sequence[str] | None) -> np.ndarray | None:
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
    >>> is_single_query(np.zeros((8, 8)), (8, 8, 1)), is_single_query(np.zeros((2, 8, 8, 1)), (8, 8, 1))
    (True, False)
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
