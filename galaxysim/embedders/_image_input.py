"""Input handling shared by the torch embedders: images, flattened images, generic features,
and collections on disk.

An embedder that mixes in :class:`ImageInputMixin` accepts images
``(n, H, W, C)`` (uint8, or float in [0, 1]), ``(n, H, W)``, flattened images
with its ``image_shape`` parameter, any other 2-D table ``(n, d)`` as
generic features (each sample a 1x1 image with ``d`` channels, scaled to
[0, 1] by the range seen in ``fit``), and an
:class:`~galaxysim.datasets.ImageCollection` (or the path of one), which is
streamed: :class:`CollectionBatches` hands its batches to DataLoader workers
and :func:`images_on_device` finishes them on the device. It runs its network
over any of them in batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import sparse
from sklearn.utils.validation import validate_data

from .._batches import StreamedBatches
from .._limits import check_allocation
from .._validation import check_image_shape, check_images, input_ndim, is_image_input
from ..datasets.image_collection import ImageCollection
from .augment import GalaxyAugmentation

__all__ = [
    "CollectionBatches",
    "ImageInputMixin",
    "TrainingInput",
    "as_nchw",
    "check_augmentation",
    "images_on_device",
    "scale_features",
    "take",
]

# Images per forward pass at inference: larger than a training batch because no
# activations are kept for a backward pass.
INFERENCE_BATCH = 256


class CollectionBatches(torch.utils.data.Dataset):
    """Rows of an :class:`ImageCollection` as whole batches, for the training loop's workers.

    ``batches[positions]`` is ``(images,)``, the images ``(n, H, W, C)`` of
    those rows as stored (uint8 from an HDF5 file or a uint8 zarr array,
    float32 otherwise; :func:`images_on_device` scales and lays them out on
    the device), or the error that reading them raised, returned so that the
    main process raises it as it is. ``shape`` is that of the network's
    input, ``(n, C, H, W)``, as for an in-memory tensor.
    """

    def __init__(self, collection: ImageCollection, rows: Any = None) -> None:
        self.collection = collection
        self.rows = np.arange(len(collection)) if rows is None else np.asarray(rows, np.int64)
        self.num_workers = collection.num_workers

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        height, width, channels = self.collection.image_shape
        return len(self.rows), channels, height, width

    def take(self, rows: Any) -> CollectionBatches:
        """The batches of ``rows`` (positions in this one)."""
        return CollectionBatches(self.collection, self.rows[np.asarray(rows, np.int64)])

    def __getitem__(self, positions: Any) -> tuple[torch.Tensor] | Exception:
        try:
            return (torch.from_numpy(self.collection.read(self.rows[positions], raw=True)),)
        except (OSError, ValueError) as exc:
            return exc.with_traceback(None)


def images_on_device(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
    """``(images,)`` as read ``(n, H, W, C)`` to the network's float ``(n, C, H, W)``.

    uint8 is scaled by 1/255 here, on the device, exactly as
    :func:`~galaxysim._validation.check_images` scales it on the host.
    """
    (images,) = batch
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    return (images.permute(0, 3, 1, 2),)


class TrainingInput(NamedTuple):
    """What ``fit`` trains on: the network's input and how it was given."""

    data: torch.Tensor | CollectionBatches
    input_format: str
    input_range: tuple[float, float]
    image_shape: tuple[int, ...]

    @property
    def streamed(self) -> bool:
        return isinstance(self.data, CollectionBatches)

    def loop_options(self) -> dict[str, Any]:
        """The training loop's arguments for reading this input."""
        if not self.streamed:
            return {}
        return {"prepare": images_on_device, "num_workers": self.data.num_workers}


def take(data: torch.Tensor | CollectionBatches, rows: Any) -> torch.Tensor | CollectionBatches:
    """The samples of ``rows``: indexed from a tensor, or a stream of those rows."""
    return data.take(rows) if isinstance(data, CollectionBatches) else data[rows]


def _as_collection(X: Any) -> ImageCollection | None:
    if isinstance(X, ImageCollection):
        return X
    if isinstance(X, (str, os.PathLike)):
        return ImageCollection(X)
    return None


class ImageInputMixin:
    """Validation of an embedder's input in ``fit`` and after, and batched inference.

    The estimator needs an ``image_shape`` parameter; ``fit`` stores what
    :meth:`_training_input` returns in ``input_format_``, ``input_range_`` and
    ``image_shape_``, and the network's device in ``device_``.
    """

    def _training_input(self, X: Any) -> TrainingInput:
        """Validate what ``fit`` got: a collection is streamed, anything else as ``_fit_input``."""
        self._reject_sparse(X)
        collection = _as_collection(X)
        if collection is None:
            images, input_format, input_range = self._fit_input(X)
            return TrainingInput(
                as_nchw(images),
                input_format,
                input_range,
                tuple(int(side) for side in images.shape[1:]),
            )
        if getattr(self, "image_shape", None) is not None:
            shape = check_image_shape(self.image_shape)
            if shape != collection.image_shape:
                raise ValueError(
                    f"X holds images of shape {collection.image_shape} but image_shape={shape}."
                )
        # A collection holds no column names; none of an earlier fit may linger.
        self.__dict__.pop("feature_names_in_", None)
        return TrainingInput(
            CollectionBatches(collection), "images", (0.0, 1.0), collection.image_shape
        )

    def _network_input(self, X: Any) -> torch.Tensor | CollectionBatches:
        """Validate input after fitting: the network's ``(n, C, H, W)``, or a stream of it."""
        collection = _as_collection(X) if not sparse.issparse(X) else None
        if collection is None:
            return as_nchw(self._input(X))
        self._check_collection(collection)
        return CollectionBatches(collection)

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

    def _check_collection(self, collection: ImageCollection) -> None:
        if self.input_format_ == "features":
            raise ValueError(
                f"This {type(self).__name__} was fitted on generic features "
                f"(n, {self.n_features_in_}); X is a collection of images."
            )
        if collection.image_shape != tuple(self.image_shape_):
            raise ValueError(
                f"X holds images of shape {collection.image_shape} (height, width, channels), "
                f"but this {type(self).__name__} was fitted on images of shape "
                f"{tuple(self.image_shape_)}; give the collection the crop= and image_size= "
                "of the training images."
            )

    def _input(self, X: Any) -> np.ndarray:
        """Validate input after fitting: images ``(n, H, W, C)`` for the network.

        A collection is read into memory whole (where it fits).
        """
        self._reject_sparse(X)
        collection = _as_collection(X)
        if collection is not None:
            self._check_collection(collection)
            check_allocation(
                len(collection) * 4 * int(np.prod(collection.image_shape)),
                f"{len(collection):,} images of {collection.image_shape} as float32",
                "Read fewer of them (ImageCollection.read) or smaller ones.",
            )
            return collection.read(np.arange(len(collection)))
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
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """``fn`` over ``inputs`` in batches on ``device`` (default ``device_``), without
        gradients; the result on the CPU. A stream is read by its workers."""
        device = self.device_ if device is None else device
        if isinstance(inputs, CollectionBatches):
            return _streamed(fn, inputs, device)
        outputs = []
        with torch.no_grad():
            for start in range(0, inputs.shape[0], INFERENCE_BATCH):
                batch = inputs[start : start + INFERENCE_BATCH].to(device)
                outputs.append(fn(batch).cpu())
        return torch.cat(outputs)


def _streamed(
    fn: Callable[[torch.Tensor], torch.Tensor], inputs: CollectionBatches, device: torch.device
) -> torch.Tensor:
    """:meth:`ImageInputMixin._batched` over a stream, in the same batches as from memory."""
    source = StreamedBatches(
        inputs, device, num_workers=inputs.num_workers, prepare=images_on_device
    )
    outputs = []
    try:
        with torch.no_grad():
            for (batch,) in source(None, INFERENCE_BATCH):
                outputs.append(fn(batch).cpu())
    finally:
        source.close()
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
