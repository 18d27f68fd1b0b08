"""Preparing image batches: centre crop, anti-aliased resize, and ImagePreprocessor.

Batches are centre-cropped (the original Milky Way study cropped 256 -> 64
pixels at native scale) and optionally resized with an anti-aliasing filter
(cropping 128 pixels and resizing to 64 keeps the spiral arms of large
galaxies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._deprecation import positional_deprecated
from .._limits import check_allocation
from .._validation import check_image_shape, check_image_size, check_images
from ._lanczos import lanczos_resize

__all__ = ["ImagePreprocessor", "center_crop", "preprocess_images", "resize"]


def _as_batch(images: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(images)
    if array.ndim == 3:
        return array[np.newaxis], True
    if array.ndim == 4:
        return array, False
    raise ValueError(
        f"{name} must be one image (H, W, C) or a batch (n, H, W, C); got shape {array.shape}."
    )


def center_crop(images: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """Cut the central ``image_size`` pixels out of one image or a batch.

    Parameters
    ----------
    images : ndarray of shape (H, W, C) or (n, H, W, C)
        Any dtype; it is kept.
    image_size : int or (height, width)
        Size of the crop; must not exceed the image.

    Returns
    -------
    cropped : ndarray of shape (image_size, image_size, C) or (n, image_size, image_size, C)
        A copy; ``images`` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import center_crop
    >>> image = np.arange(16).reshape(4, 4, 1)
    >>> center_crop(image, 2)[..., 0]
    array([[ 5,  6],
           [ 9, 10]])
    """
    batch, single = _as_batch(images, "images")
    height, width = check_image_size(image_size)
    H, W = batch.shape[1:3]
    if height > H or width > W:
        raise ValueError(
            f"image_size={(height, width)} is larger than the images, which are {H}x{W} pixels."
        )
    top, left = (H - height) // 2, (W - width) // 2
    cropped = batch[:, top : top + height, left : left + width].copy()
    return cropped[0] if single else cropped


def resize(images: np.ndarray, image_size: int | Sequence[int]) -> np.ndarray:
    """Resize one image or a batch with an anti-aliasing (Lanczos) filter.

    Parameters
    ----------
    images : ndarray of shape (H, W, C) or (n, H, W, C)
        uint8, or float in [0, 1].
    image_size : int or (height, width)
        Output size.

    Returns
    -------
    resized : ndarray of shape (..., height, width, C), dtype float32
        Values in [0, 1] (Lanczos overshoot is clipped).

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import resize
    >>> resize(np.ones((8, 8, 3), dtype=np.float32), 4).shape
    (4, 4, 3)
    """
    batch, single = _as_batch(images, "images")
    height, width = check_image_size(image_size)
    batch = check_images(batch, name="images")
    n, H, W, C = batch.shape
    if (height, width) == (H, W):
        out = batch
    else:
        check_allocation(
            4 * n * height * width * C,
            f"{n} image(s) resized to {height}x{width}",
            "Pass a smaller image_size.",
        )
        out = np.empty((n, height, width, C), dtype=np.float32)
        for i in range(n):
            out[i] = lanczos_resize(batch[i], (height, width))
    return out[0] if single else out


def preprocess_images(
    images: np.ndarray,
    *,
    crop: int | Sequence[int] | None = None,
    image_size: int | Sequence[int] | None = None,
    name: str = "images",
) -> np.ndarray:
    """Validate, center-crop and resize a batch into float32 in [0, 1].

    Parameters
    ----------
    images : array-like of shape (n, H, W, C)
        uint8 or float in [0, 1].
    crop : int or (height, width), optional
        Center crop applied first (at native scale).
    image_size : int or (height, width), optional
        Resize applied after the crop.
    name : str, default="images"
        Argument name used in error messages.

    Returns
    -------
    processed : ndarray of shape (n, h, w, C), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import preprocess_images
    >>> batch = np.zeros((2, 256, 256, 3), dtype=np.uint8)
    >>> preprocess_images(batch, crop=128, image_size=64).shape
    (2, 64, 64, 3)
    """
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"{name} must be a batch of images (n, H, W, C); got shape {array.shape}.")
    if crop is not None:
        # Cropping before the float conversion keeps the work (and memory)
        # proportional to the output when the input is large uint8.
        array = center_crop(array, crop)
    processed = check_images(array, name=name)
    if image_size is not None:
        processed = resize(processed, image_size)
    return processed


_OUTPUT_CONTAINERS = ("default", "pandas", "polars")


# Output is wrapped by this class itself (not by scikit-learn's automatic wrapping),
# as images (n, h, w, C) fit in no table.
class ImagePreprocessor(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Center-crop and resize images to float32 in [0, 1], as a transformer.

    The first step of a galaxysim pipeline: it turns Galaxy10-style uint8
    cutouts (or float images in [0, 1]) into the fixed-size float images the
    estimators train on.

    Parameters
    ----------
    crop : int or (height, width) or None, default=64
        Center crop at native scale (Galaxy10's 256-pixel cutouts -> 64, as in
        the original study). None keeps the whole image.
    image_size : int or (height, width) or None, default=None
        Resize after cropping, with an anti-aliasing filter. ``crop=128,
        image_size=64`` keeps the arms of large galaxies in a 64-pixel image.
    image_shape : tuple (H, W, C), optional
        Shape of one input image, for flattened ``(n, H*W*C)`` input.
    flatten : bool, default=False
        Return ``(n, h*w*C)`` instead of ``(n, h, w, C)`` (for 2-D sklearn
        tools such as PCA).

    All parameters are keyword arguments (positional ones are deprecated
    since version 0.3 and raise a TypeError from 0.4).

    Attributes
    ----------
    image_shape_in_ : tuple of int
        ``(H, W, C)`` of the images seen in ``fit``.
    image_shape_out_ : tuple of int
        ``(h, w, C)`` of the images ``transform`` returns.
    n_features_in_ : int
        Number of values per input image.

    See Also
    --------
    preprocess_images : The function this transformer applies.

    Notes
    -----
    :meth:`get_feature_names_out` names the values of one output image in
    the order of its flattened layout (``pixel0``, ``pixel1``, ...: row by
    row, the channels of each pixel together), whether or not ``flatten``
    is set. With ``set_output(transform="pandas")`` (or ``"polars"``),
    flattened output is returned as a DataFrame with those column names;
    images ``(n, h, w, C)`` fit in no table and are returned as an array
    (so that a whole pipeline of galaxysim estimators can be set to pandas
    output, and its embedders get the images they need).

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.images import ImagePreprocessor
    >>> X = np.zeros((3, 256, 256, 3), dtype=np.uint8)
    >>> ImagePreprocessor(crop=128, image_size=64).fit_transform(X).shape
    (3, 64, 64, 3)
    """

    @positional_deprecated
    def __init__(
        self,
        *,
        crop: int | Sequence[int] | None = 64,
        image_size: int | Sequence[int] | None = None,
        image_shape: Sequence[int] | None = None,
        flatten: bool = False,
    ) -> None:
        self.crop = crop
        self.image_size = image_size
        self.image_shape = image_shape
        self.flatten = flatten

    def _as_images(self, X: np.ndarray) -> np.ndarray:
        """Reshape flattened input to (n, H, W, C) without converting values."""
        array = np.asarray(X)
        if array.ndim == 2:
            if self.image_shape is None:
                raise ValueError(
                    f"X is 2-D with shape {array.shape}; ImagePreprocessor needs images "
                    "(n, H, W, C), or flattened images together with image_shape=(H, W, C)."
                )
            shape = check_image_shape(self.image_shape)
            if array.shape[1] != int(np.prod(shape)):
                raise ValueError(
                    f"X has {array.shape[1]} features per sample but image_shape={shape} "
                    f"needs {int(np.prod(shape))}."
                )
            return array.reshape((len(array), *shape))
        if array.ndim == 3:
            return array[..., np.newaxis]
        return array

    def fit(self, X: np.ndarray, y: object = None) -> ImagePreprocessor:
        """Check the parameters and the images, and record their shapes.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C) or (n, H*W*C)
            Training images.
        y : ignored

        Returns
        -------
        self : ImagePreprocessor
        """
        if self.crop is not None:
            check_image_size(self.crop, "crop")
        if self.image_size is not None:
            check_image_size(self.image_size, "image_size")
        images = check_images(self._as_images(X), name="X")
        sample = preprocess_images(images[:1], crop=self.crop, image_size=self.image_size, name="X")
        self.image_shape_in_ = tuple(int(s) for s in images.shape[1:])
        self.image_shape_out_ = tuple(int(s) for s in sample.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_in_))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Crop and resize ``X``.

        Parameters
        ----------
        X : array-like of shape (n, H, W, C) or (n, H*W*C)
            Images of the shape seen in ``fit``.

        Returns
        -------
        images : ndarray of shape (n, h, w, C), or (n, h*w*C) when flatten
        """
        check_is_fitted(self)
        array = self._as_images(X)
        if array.shape[1:] != self.image_shape_in_:
            raise ValueError(
                f"X holds images of shape {array.shape[1:]}, but the preprocessor was "
                f"fitted on {self.image_shape_in_}."
            )
        out = preprocess_images(array, crop=self.crop, image_size=self.image_size, name="X")
        if not self.flatten:
            return out
        return self._as_container(out.reshape(len(out), -1), X)

    def _as_container(self, table: np.ndarray, X: Any) -> Any:
        """Flattened output in the container chosen by :meth:`set_output`."""
        container = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        if container == "pandas":
            import pandas as pd

            return pd.DataFrame(
                table, columns=self.get_feature_names_out(), index=getattr(X, "index", None)
            )
        if container == "polars":
            import polars as pl

            return pl.DataFrame(table, schema=list(self.get_feature_names_out()), orient="row")
        return table

    def set_output(self, *, transform: str | None = None) -> ImagePreprocessor:
        """Choose the container of flattened output, as scikit-learn's transformers do.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            ``"pandas"`` or ``"polars"`` return flattened output as a
            DataFrame whose columns are :meth:`get_feature_names_out`;
            ``"default"`` as an array; None changes nothing. Images (without
            ``flatten``) are arrays whatever the choice.

        Returns
        -------
        self : ImagePreprocessor

        Examples
        --------
        >>> import numpy as np
        >>> images = np.zeros((2, 2, 2, 1))
        >>> ImagePreprocessor(crop=None).set_output(transform="pandas").fit_transform(images).shape
        (2, 2, 2, 1)
        >>> pre = ImagePreprocessor(crop=None, flatten=True).set_output(transform="default")
        >>> pre.fit_transform(images).shape
        (2, 4)
        """
        if transform is None:
            return self
        if transform not in _OUTPUT_CONTAINERS:
            raise ValueError(
                f"transform must be one of {_OUTPUT_CONTAINERS} or None, got {transform!r}."
            )
        self._sklearn_output_config = {"transform": transform}
        return self

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names ``pixel0 ... pixelN`` of the values of one output image, flattened.

        Parameters
        ----------
        input_features : None
            Ignored; the input values are pixels, not named features.

        Returns
        -------
        names : ndarray of str
            One name per value of an output image in its flattened
            (row-major, channels last) order, with or without ``flatten``.

        Examples
        --------
        >>> import numpy as np
        >>> pre = ImagePreprocessor(crop=None).fit(np.zeros((1, 2, 1, 3)))
        >>> pre.get_feature_names_out().tolist()
        ['pixel0', 'pixel1', 'pixel2', 'pixel3', 'pixel4', 'pixel5']
        """
        check_is_fitted(self)
        n_out = int(np.prod(self.image_shape_out_))
        return np.asarray([f"pixel{i}" for i in range(n_out)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags
