"""Input handling shared by the torch embedders: images, flattened images, generic features.

An embedder that mixes in :class:`ImageInputMixin` accepts images
``(n, H, W, C)`` (uint8, or float in [0, 1]), ``(n, H, W)``, flattened images
with its ``image_shape`` parameter, and any other 2-D table ``(n, d)`` as
generic features (each sample a 1x1 image with ``d`` channels, scaled to
[0, 1] by the range seen in ``fit``), and runs its network over them in
batches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from scipy import sparse
from sklearn.utils.validation import validate_data

from .._validation import check_image_shape, check_images, input_ndim, is_image_input
from .augment import GalaxyAugmentation

__all__ = ["ImageInputMixin", "as_nchw", "check_augmentation", "scale_features"]

# Images per forward pass at inference: larger than a training batch because no
# activations are kept for a backward pass.
INFERENCE_BATCH = 256


class ImageInputMixin:
    """Validation of an embedder's input in ``fit`` and after, and batched inference.

    The estimator needs an ``image_shape`` parameter; ``fit`` stores what
    :meth:`_fit_input` returns in ``input_format_``, ``input_range_`` and
    ``image_shape_``, and the network's device in ``device_``.
    """

    def _reject_sparse(self, X: Any) -> None:
        if sparse.issparse(X):
            raise TypeError(
                f"X is a sparse matrix; {type(self).__name__} needs dense images "
                "(n, H, W, C) or a dense 2-D array."
            )

    def _fit_input(self, X: Any) -> tuple[np.ndarray, str, tuple[float, float]]:
        """Validate training input: (images for the network, input format, input range)."""
        self._reject_sparse(X)
        image_shape = check_image_shape(self.image_shape) if self.image_shape is not None else None
        if not is_image_input(X, image_shape):
            # Sets n_features_in_ (and feature_names_in_) as every sklearn estimator does.
            table = validate_data(self, X, reset=True, dtype=[np.float64, np.float32])
            input_range = (float(table.min()), float(table.max()))
            return scale_features(table, input_range), "features", input_range
        flattened = input_ndim(X) == 2
        images = check_images(X, image_shape=image_shape if flattened else None)
        if image_shape is not None and images.shape[1:] != image_shape:
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} but image_shape={image_shape}."
            )
        return images, ("flattened" if flattened else "images"), (0.0, 1.0)

    def _input(self, X: Any) -> np.ndarray:
        """Validate input after fitting: images ``(n, H, W, C)`` for the network."""
        self._reject_sparse(X)
        if self.input_format_ == "features":
            table = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            return scale_features(table, self.input_range_)
        images = check_images(X, image_shape=self.image_shape_ if input_ndim(X) == 2 else None)
        if images.shape[1:] != tuple(self.image_shape_):
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} (height, width, channels), but "
                f"this {type(self).__name__} was fitted on images of shape "
                f"{tuple(self.image_shape_)}."
            )
        return images

    def _batched(
        self, fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """``fn`` over ``inputs`` in batches on ``device`` (default ``device_``), without
        gradients; the result on the CPU."""
        device = self.device_ if device is None else device
        outputs = []
        with torch.no_grad():
            for start in range(0, inputs.shape[0], INFERENCE_BATCH):
                batch = inputs[start : start + INFERENCE_BATCH].to(device)
                outputs.append(fn(batch).cpu())
        return torch.cat(outputs)


def check_augmentation(augmentation: Any, name: str = "augmentation") -> None:
    """Raise a TypeError naming ``name`` unless ``augmentation`` is a GalaxyAugmentation or None.

    Examples
    --------
    >>> check_augmentation(None)
    >>> check_augmentation("strong")
    Traceback (most recent call last):
    ...
    TypeError: augmentation must be a GalaxyAugmentation or None, got str.
    """
    if augmentation is not None and not isinstance(augmentation, GalaxyAugmentation):
        raise TypeError(
            f"{name} must be a GalaxyAugmentation or None, got {type(augmentation).__name__}."
        )


def scale_features(table: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """Map a (n, d) table to float32 1x1 images with d channels, ``input_range`` to [0, 1].

    Parameters
    ----------
    table : ndarray of shape (n, d)
        Generic features.
    input_range : tuple of float
        ``(low, high)``, mapped to 0 and 1.

    Returns
    -------
    images : ndarray of shape (n, 1, 1, d), dtype float32

    Examples
    --------
    >>> scale_features(np.array([[0.0, 2.0]]), (0.0, 2.0)).tolist()
    [[[[0.0, 1.0]]]]
    """
    low, high = input_range
    scaled = (table - low) / (high - low if high > low else 1.0)
    return scaled.astype(np.float32, copy=False)[:, np.newaxis, np.newaxis, :]


def as_nchw(images: np.ndarray) -> torch.Tensor:
    """View ``(n, H, W, C)`` images as an ``(n, C, H, W)`` tensor without copying.

    The result is channels-last in memory, which the CPU convolutions of
    PyTorch handle directly.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)

    Returns
    -------
    tensor : torch.Tensor of shape (n, C, H, W)

    Examples
    --------
    >>> tuple(as_nchw(np.zeros((2, 4, 5, 3), dtype=np.float32)).shape)
    (2, 3, 4, 5)
    """
    return torch.from_numpy(images).permute(0, 3, 1, 2)
