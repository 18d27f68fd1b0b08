"""ImageCollection: images on disk, framed once, read a batch at a time.

A Galaxy10-layout HDF5 file, a zarr array of images or a folder of image
files becomes one object that says how its images are framed (centre crop,
resize) and how many processes read it. It is a map-style
:class:`torch.utils.data.Dataset` of float32 images, and what the torch
embedders' ``fit`` and ``transform`` take to train and embed without holding
the collection in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

from .._batches import default_num_workers
from .._validation import PathLike, check_positive_int
from ..images import IMAGE_EXTENSIONS
from .chunks import ImageChunks, image_chunks

__all__ = ["ImageCollection"]


class ImageCollection(torch.utils.data.Dataset):
    """A collection of galaxy images on disk, read a batch at a time.

    Pass one to ``fit`` or ``transform`` of
    :class:`~galaxysim.ContrastiveEmbedder` or
    :class:`~galaxysim.AutoencoderEmbedder` to train on, or embed, a
    collection larger than memory: worker processes read and decode the next
    batches while the network trains on the current one. A path given to
    those methods is read as ``ImageCollection(path)``. It is also a
    :class:`torch.utils.data.Dataset` of float32 images ``(H, W, C)`` in
    [0, 1], for a DataLoader of your own.

    The collection is checked when it is made (its layout, the crop against
    the image size, the first image); an image file that cannot be read is
    reported, by name, when it is first read.

    Parameters
    ----------
    source : str or path-like
        A Galaxy10-layout HDF5 file (``images`` of shape (n, H, W, 3)
        uint8 and the keys ``ans``, ``ra``, ``dec``, ``redshift``,
        ``pxscale``), a zarr array of images (n, H, W, C) (uint8, or float
        in [0, 1]; needs zarr, from the ``dask`` extra), or a folder of
        image files (every image file in it, sorted by name).
    crop : int or (height, width), optional
        Centre crop at native scale, cut while reading (only the crop leaves
        the file).
    image_size : int or (height, width), optional
        Resize after the crop (Lanczos, as :func:`~galaxysim.images.load_images`).
    num_workers : int, optional
        Processes that read and decode batches during ``fit`` and
        ``transform``; 0 reads in the calling process. None: one per CPU
        core beyond the first, at most 4.

    Attributes
    ----------
    source : str
        The file, array or folder.
    kind : {"h5", "zarr", "folder"}
        What it is.
    image_shape : tuple of int
        ``(height, width, channels)`` of the images as read.
    num_workers : int
        The reading processes (None resolved).

    See Also
    --------
    galaxysim.scale.embed_collection : embed a collection into zarr, resumably, on a cluster.
    galaxysim.datasets.load_galaxy10_decals : the Galaxy10 classes into memory.

    Notes
    -----
    Training batches are drawn at random from the whole collection, one
    image at a time: store an HDF5 file uncompressed or with one image per
    chunk, and a zarr array with few images per chunk, or each batch decodes
    far more than it uses.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, zarr
    >>> from galaxysim.datasets import ImageCollection
    >>> path = os.path.join(tempfile.mkdtemp(), "images.zarr")
    >>> zarr.open_array(path, mode="w", shape=(6, 8, 8, 3), dtype="uint8")[:] = 255
    >>> collection = ImageCollection(path, crop=4, num_workers=0)
    >>> len(collection), collection.image_shape
    (6, (4, 4, 3))
    >>> collection[0].shape, collection[[0, 5]].shape
    ((4, 4, 3), (2, 4, 4, 3))
    """

    def __init__(
        self,
        source: PathLike,
        *,
        crop: int | Sequence[int] | None = None,
        image_size: int | Sequence[int] | None = None,
        num_workers: int | None = None,
    ) -> None:
        _refuse_one_image(source)
        self._chunks: ImageChunks = image_chunks(source, crop=crop, image_size=image_size)
        self.num_workers = (
            default_num_workers()
            if num_workers is None
            else check_positive_int(num_workers, "num_workers", minimum=0)
        )
        if self._chunks.n_images == 0:
            raise ValueError(f"source {self.source!r} holds no images.")
        self.image_shape = tuple(int(side) for side in self.read([0]).shape[1:])

    @property
    def source(self) -> str:
        """The file, array or folder the images are read from."""
        return self._chunks.location

    @property
    def kind(self) -> str:
        """``"h5"``, ``"zarr"`` or ``"folder"``."""
        return self._chunks.kind

    def __len__(self) -> int:
        return self._chunks.n_images

    def __repr__(self) -> str:
        framing = "".join(
            f", {name}={value}"
            for name, value in (
                ("crop", self._chunks.crop),
                ("image_size", self._chunks.image_size),
            )
            if value is not None
        )
        return (
            f"ImageCollection({self.source!r}{framing}, num_workers={self.num_workers}) "
            f"# {len(self)} images of {self.image_shape}"
        )

    def __getitem__(self, index: Any) -> np.ndarray:
        """One image ``(H, W, C)`` for an int; ``(n, H, W, C)`` for a slice or a list of ints."""
        if isinstance(index, Integral):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"index {index} is out of range for {n} images.")
            return self.read([int(index) % n])[0]
        if isinstance(index, slice):
            return self.read(np.arange(len(self))[index])
        return self.read(index)

    def read(self, rows: Sequence[int] | np.ndarray, *, raw: bool = False) -> np.ndarray:
        """The images of ``rows``, in that order, as one array.

        Parameters
        ----------
        rows : sequence of int
            Row numbers (positions in the collection; a folder's files are
            in name order), in any order, repeats allowed.
        raw : bool, default=False
            Return the stored uint8 pixels where the collection holds uint8
            and no ``image_size`` is asked for (the caller scales them by
            1/255, on a GPU say); float32 otherwise.

        Returns
        -------
        images : ndarray of shape (len(rows), H, W, C)
            float32 in [0, 1] (or uint8 with ``raw``).

        Raises
        ------
        ValueError
            A row outside the collection, or an image that cannot be read or
            has another size than the first (the message names the file).

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, zarr
        >>> path = os.path.join(tempfile.mkdtemp(), "images.zarr")
        >>> zarr.open_array(path, mode="w", shape=(3, 4, 4, 3), dtype="uint8")[:] = 51
        >>> collection = ImageCollection(path, num_workers=0)
        >>> round(float(collection.read([2, 0]).max()), 3), collection.read([1], raw=True).dtype
        (0.2, dtype('uint8'))
        """
        images = self._chunks.read_rows(rows, raw=raw)
        shape = getattr(self, "image_shape", None)
        if shape is not None and images.shape[1:] != shape:
            first = int(np.asarray(rows).reshape(-1)[0])
            where = (
                repr(self._chunks.paths[first])
                if self.kind == "folder"
                else f"row {first} of {self.source!r}"
            )
            raise ValueError(
                f"Image {where} reads as {images.shape[1:]}, but the collection's first image "
                f"as {shape}; pass crop= or image_size= so that all images end up the same size."
            )
        return images


def _refuse_one_image(source: Any) -> None:
    """A clear error for the path of one image file, which is not a collection."""
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        name = os.fspath(source).lower()
        if name.endswith((*IMAGE_EXTENSIONS, ".gz")):
            raise ValueError(
                f"source {os.fspath(source)!r} is one image file; a collection is an HDF5 "
                "file, a zarr array or a folder of images. Read one image with "
                "galaxysim.images.load_image(path)[None]."
            )
