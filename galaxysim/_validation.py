"""Input checks shared by every part of galaxysim.

Every public function and estimator that takes images goes through
:func:`check_images` (a batch) or :func:`check_image` (one image), so that a
bad array gets the same clear message wherever it enters: the argument's
name, what was expected and what came.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, Union

import numpy as np

__all__ = [
    "PathLike",
    "check_bool",
    "check_fraction",
    "check_image",
    "check_image_shape",
    "check_image_size",
    "check_images",
    "check_labels",
    "check_positive_float",
    "check_positive_int",
    "input_ndim",
    "is_fitted",
    "is_image_input",
]

#: A file system path as the user may give it.
PathLike = Union[str, "os.PathLike[str]"]


def _describe(array: np.ndarray) -> str:
    return f"an array of shape {array.shape} and dtype {array.dtype}"


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, or raise a TypeError naming ``name`` if it is not one."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_positive_float(
    value: Any, name: str, *, allow_zero: bool = False, allow_none: bool = False
) -> float | None:
    """Return ``value`` as a float, or raise if it is not a finite number > 0.

    ``allow_zero`` also accepts 0; ``allow_none`` passes None through.
    """
    if value is None and allow_none:
        return None
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a finite number {bound}, got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return value


def check_labels(
    y: Any, *, n_samples: int | None = None, n_classes: int | None = None, name: str = "y"
) -> np.ndarray:
    """Validate class labels: 1-D, not empty, no NaN, one per sample.

    Parameters
    ----------
    y : array-like of shape (n,)
        The labels.
    n_samples : int, optional
        Required number of labels (one per image).
    n_classes : int, optional
        When given, labels must be integers in ``[0, n_classes)`` and are
        returned as ``intp``.
    name : str, default="y"
        Name of the argument, used in error messages.

    Returns
    -------
    labels : ndarray of shape (n,)
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per item), got shape {labels.shape}.")
    if labels.size == 0:
        raise ValueError(f"{name} is empty; at least one label is needed.")
    if n_samples is not None and len(labels) != n_samples:
        raise ValueError(f"{name} has {len(labels)} labels but there are {n_samples} images.")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise ValueError(f"{name} contains NaN; every item needs a label.")
    if n_classes is None:
        return labels
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"{name} must hold labels in [0, {n_classes - 1}] (one per class), got values "
            f"from {labels.min()} to {labels.max()}."
        )
    return labels.astype(np.intp)


def is_image_input(X: Any, image_shape: Any = None) -> bool:
    """Whether ``X`` is read as images rather than as feature vectors.

    Images are 3-D ``(n, H, W)`` and 4-D ``(n, H, W, C)`` arrays, and 2-D
    arrays when ``image_shape`` says how to unflatten them. Everything else
    (2-D tables, sparse matrices, arrays of another rank) goes to
    scikit-learn's own validation as vectors, which reports bad shapes in the
    words its users know.
    """
    if hasattr(X, "tocsr"):  # a scipy sparse matrix
        return False
    ndim = input_ndim(X)
    return ndim in (3, 4) or (ndim == 2 and image_shape is not None) or ndim < 0


def is_fitted(estimator: Any) -> bool:
    """Whether scikit-learn's ``check_is_fitted`` accepts ``estimator`` (False for others)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):
        return False
    return True


def input_ndim(X: Any) -> int:
    """Number of dimensions of array-like ``X``; -1 when it is ragged."""
    ndim = getattr(X, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    try:
        return np.asarray(X).ndim
    except (TypeError, ValueError):  # ragged nesting; the image validator reports it
        return -1


def check_image_size(value: int | Sequence[int], name: str = "image_size") -> tuple[int, int]:
    """Return an image size ``value`` (an int or a pair) as ``(height, width)``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        side = check_positive_int(int(value), name)
        return side, side
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
    try:
        pair = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a (height, width) pair, got {value!r}."
        ) from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {value!r}.")
    return check_positive_int(pair[0], name), check_positive_int(pair[1], name)


def check_fraction(value: Any, name: str, *, inclusive: bool = False) -> float:
    """Return ``value`` as a float in (0, 1) (or [0, 1) when ``inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}.")
    value = float(value)
    low_ok = value >= 0 if inclusive else value > 0
    if not (low_ok and value < 1):
        interval = "[0, 1)" if inclusive else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    return value


def check_image_shape(image_shape: Any, name: str = "image_shape") -> tuple[int, int, int]:
    """Validate an ``(H, W, C)`` image shape and return it as a tuple of ints.

    A two-element ``(H, W)`` shape means one channel.
    """
    try:
        shape = tuple(image_shape)
    except TypeError:
        raise TypeError(
            f"{name} must be a tuple (height, width, channels), got {image_shape!r}."
        ) from None
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise ValueError(f"{name} must be a tuple (height, width, channels), got {image_shape!r}.")
    for side in shape:
        if isinstance(side, bool) or not isinstance(side, Integral) or side < 1:
            raise ValueError(
                f"{name} must hold positive integers (height, width, channels), "
                f"got {image_shape!r}."
            )
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    """Convert uint8 to float32 in [0, 1]; check float input is finite and in range."""
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must hold numbers (uint8 in [0, 255] or float in [0, 1]), "
            f"got dtype {array.dtype}."
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(array.dtype, np.integer):
        # Other integer types are only unambiguous when they hold 8-bit values.
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"{name} has integer dtype {array.dtype} with values in [{low}, {high}]; "
                "expected uint8-range values in [0, 255] or floats in [0, 1]."
            )
        return array.astype(np.float32) / np.float32(255.0)
    result = array.astype(np.float32, copy=True)
    finite = np.isfinite(result)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); images must be finite."
        )
    low, high = float(result.min()), float(result.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} must hold floats in [0, 1] (or uint8 in [0, 255]); "
            f"got values in [{low:.4g}, {high:.4g}]."
        )
    return result


def check_images(
    X: Any,
    *,
    image_shape: Sequence[int] | None = None,
    n_channels: int | None = None,
    min_samples: int = 1,
    name: str = "X",
) -> np.ndarray:
    """Validate a batch of images and return it as float32 ``(n, H, W, C)`` in [0, 1].

    Parameters
    ----------
    X : array-like
        Images of shape ``(n, H, W, C)``, ``(n, H, W)`` (one channel), or
        flattened ``(n, H*W*C)`` together with ``image_shape``. uint8 values
        are scaled by 1/255; floats must be finite and in [0, 1].
    image_shape : tuple of int, optional
        ``(H, W, C)`` of one image. Required for flattened input; when given
        with 4-D input the shapes must agree.
    n_channels : int, optional
        Required number of channels.
    min_samples : int, default=1
        Smallest acceptable number of images.
    name : str, default="X"
        Name of the argument, used in error messages.

    Returns
    -------
    images : ndarray of shape (n, H, W, C), dtype float32
        A new array; ``X`` itself is never modified.
    """
    if X is None:
        raise ValueError(f"{name} must be an array of images, got None.")
    if isinstance(X, np.ndarray):
        array = X
    else:
        try:
            array = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if array.dtype == object:
        raise TypeError(
            f"{name} must be a numeric array of images, got an array of Python objects "
            "(ragged nesting or mixed types?)."
        )
    shape = check_image_shape(image_shape) if image_shape is not None else None

    if array.ndim == 2:
        if shape is None:
            raise ValueError(
                f"{name} is 2-D {_describe(array)}; flattened images need "
                "image_shape=(height, width, channels). Pass images as (n, H, W, C) "
                "or give image_shape."
            )
        if array.shape[1] != int(np.prod(shape)):
            raise ValueError(
                f"{name} has {array.shape[1]} features per sample but image_shape={shape} "
                f"needs {int(np.prod(shape))}."
            )
        array = array.reshape((array.shape[0], *shape))
    elif array.ndim == 3:
        array = array[..., np.newaxis]
    elif array.ndim != 4:
        raise ValueError(
            f"{name} must be images of shape (n, H, W, C), (n, H, W) or flattened "
            f"(n, H*W*C) with image_shape; got {_describe(array)}."
        )

    if array.shape[0] < min_samples:
        what = "is empty" if array.shape[0] == 0 else f"has {array.shape[0]} image(s)"
        raise ValueError(f"{name} {what}; at least {min_samples} image(s) are needed.")
    if 0 in array.shape[1:]:
        raise ValueError(f"{name} has an empty image dimension: shape {array.shape}.")
    if shape is not None and array.shape[1:] != shape:
        raise ValueError(f"{name} holds images of shape {array.shape[1:]} but image_shape={shape}.")
    if n_channels is not None and array.shape[-1] != n_channels:
        raise ValueError(
            f"{name} must have {n_channels} channel(s) (channels last, (n, H, W, C)); "
            f"got {array.shape[-1]} in an array of shape {array.shape}."
        )
    return _to_unit_float(array, name)


def check_image(image: Any, *, n_channels: int | None = None, name: str = "image") -> np.ndarray:
    """Validate one image and return it as float32 ``(H, W, C)`` in [0, 1].

    Accepts ``(H, W, C)`` or ``(H, W)`` (one channel); see :func:`check_images`.
    """
    array = np.asarray(image) if not isinstance(image, np.ndarray) else image
    if array.ndim == 2:
        array = array[..., np.newaxis]
    if array.ndim != 3:
        raise ValueError(
            f"{name} must be one image of shape (H, W, C) or (H, W); got "
            f"{_describe(np.asarray(array))}."
        )
    return check_images(array[np.newaxis], n_channels=n_channels, name=name)[0]
