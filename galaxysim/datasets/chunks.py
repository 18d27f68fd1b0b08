"""Image collections read a chunk of rows at a time: Galaxy10 HDF5 files, folders, zarr arrays.

:func:`image_chunks` checks a collection once and describes it;
:meth:`ImageChunks.piece` cuts it into :class:`ChunkPiece` objects, small
picklable descriptions of a range of rows that read themselves
(:meth:`ChunkPiece.read`) wherever they are sent, so that a worker process
reads its own rows and never receives pixels through the network.
:meth:`ImageChunks.read_rows` reads any rows, in any order, as training
batches drawn at random need. Every read crops on the way in (only the crop
window leaves the file), so memory follows the chunk, never the collection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._validation import PathLike, check_image_size
from ..images import load_images, preprocess_images
from ..images.io import _list_folder
from .galaxy10 import _check_crop_fits, _crop_window, _open_galaxy10, _read

__all__ = ["ChunkPiece", "ImageChunks", "image_chunks"]

@dataclass(frozen=True)
class ChunkPiece:
    """Rows ``start:stop`` of a collection, read by :meth:`read` wherever the piece is.

    Attributes
    ----------
    kind : {"h5", "zarr", "folder"}
    location : str
        The HDF5 file, the zarr array or the folder.
    start, stop : int
        The rows, in the collection's order.
    crop, image_size : tuple of int or None
        Centre crop at native scale, then resize.
    paths : tuple of str
        For a folder: the files of these rows.
    """

    kind: str
    location: str
    start: int
    stop: int
    crop: tuple[int, int] | None
    image_size: tuple[int, int] | None
    paths: tuple[str, ...] = ()

    def read(self) -> np.ndarray:
        """The rows as float32 images ``(stop - start, h, w, 3)`` in [0, 1]."""
        if self.kind == "folder":
            return load_images(list(self.paths), self.image_size, crop=self.crop)[0]
        if self.kind == "h5":
            import h5py

            path = Path(self.location)
            with h5py.File(path, "r") as handle:
                dataset = handle["images"]
                window = _crop_window(self.crop, *dataset.shape[1:3])
                block = _read(dataset, (slice(self.start, self.stop), *window, slice(None)), path)
        else:
            import zarr

            array = zarr.open_array(self.location, mode="r")
            window = _crop_window(self.crop, *array.shape[1:3])
            block = array[self.start:self.stop, window[0], window[1], :]
        return preprocess_images(block, image_size=self.image_size, name=repr(self.location))


@dataclass(frozen=True)
class ImageChunks:
    """A checked collection: its kind, where it is, how many images, and how to read them."""

    kind: str
    location: str
    n_images: int
    crop: tuple[int, int] | None
    image_size: tuple[int, int] | None
    paths: tuple[str, ...] = ()

    def piece(self, start: int, stop: int) -> ChunkPiece:
        """The :class:`ChunkPiece` of rows ``start:stop`` (a folder's piece names only its files)."""
        if not 0 <= start < stop <= self.n_images:
            raise ValueError(f"rows {start}:{stop} are not inside 0:{self.n_images}.")
        paths = self.paths[start:stop] if self.kind == "folder" else ()
        return ChunkPiece(self.kind, self.location, start, stop, self.crop, self.image_size, paths)

    def pieces(self, chunk_size: int) -> list[ChunkPiece]:
        """Consecutive pieces of ``chunk_size`` rows (the last may be shorter)."""
        return [self.piece(start, min(start + chunk_size, self.n_images))
                for start in range(0, self.n_images, chunk_size)]

    def read_rows(self, rows: Sequence[int] | np.ndarray, *, raw: bool = False) -> np.ndarray:
        """The images of ``rows`` (any order, repeats allowed), cropped and resized.

        With ``raw=True`` an HDF5 file or a uint8 zarr array read without
        ``image_size`` gives its stored uint8 pixels, for the caller to
        scale by 1/255 (on a GPU, say); otherwise float32 in [0, 1].
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and not (0 <= rows.min() and rows.max() < self.n_images):
            raise ValueError(f"rows must lie in 0:{self.n_images}; got {rows.min()}:{rows.max()}.")
        if self.kind == "folder":
            return load_images([self.paths[row] for row in rows], self.image_size,
                               crop=self.crop)[0]
        wanted, where = np.unique(rows, return_inverse=True)
        block = _h5_rows(self, wanted) if self.kind == "h5" else _zarr_rows(self, wanted)
        block = block[where]
        if raw and block.dtype == np.uint8 and self.image_size is None:
            return block
        return preprocess_images(block, image_size=self.image_size, name=repr(self.location))


def _h5_rows(chunks: ImageChunks, rows: np.ndarray) -> np.ndarray:
    """Sorted distinct ``rows`` of an HDF5 file, cut to the crop window while read."""
    import h5py

    path = Path(chunks.location)
    with h5py.File(path, "r") as handle:
        dataset = handle["images"]
        window = _crop_window(chunks.crop, *dataset.shape[1:3])
        # One read per run of consecutive rows: h5py reads slices far faster than
        # lists of rows (by 2-30 times for 128 rows scattered over a file).
        runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if rows.size else []
        blocks = [_read(dataset, (slice(int(run[0]), int(run[-1]) + 1), *window, slice(None)),
                        path) for run in runs]
        height, width = (side.stop - side.start for side in window)
        empty = np.empty((0, height, width, dataset.shape[-1]), dtype=dataset.dtype)
    return np.concatenate(blocks) if blocks else empty


def _zarr_rows(chunks: ImageChunks, rows: np.ndarray) -> np.ndarray:
    """Sorted distinct ``rows`` of a zarr array, each zarr chunk decoded once."""
    import zarr

    array = zarr.open_array(chunks.location, mode="r")
    window = _crop_window(chunks.crop, *array.shape[1:3])
    return np.asarray(array.oindex[rows, window[0], window[1], :])


def _h5_chunks(path: Path, crop, image_size) -> ImageChunks:
    with _open_galaxy10(path) as handle:
        n_images, height, width = handle["images"].shape[:3]
    _check_crop_fits(crop, height, width, repr(str(path)))
    return ImageChunks("h5", str(path), int(n_images), crop, image_size)


def _zarr_chunks(path: Path, crop, image_size) -> ImageChunks:
    try:
        import zarr
    except ImportError:
        raise ImportError(
            f"Reading the zarr array {str(path)!r} needs zarr: pip install \"galaxysim[dask]\"."
        ) from None

    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not an array here"
        raise ValueError(
            f"{str(path)!r} is not a zarr array of images ({type(exc).__name__}: {exc})."
        ) from None
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(
            f"The zarr array {str(path)!r} has shape {array.shape}; expected images "
            "(n, height, width, 3) or (n, height, width, 1)."
        )
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise ValueError(
            f"The zarr array {str(path)!r} has dtype {array.dtype}; expected uint8 or "
            "float in [0, 1]."
        )
    _check_crop_fits(crop, *array.shape[1:3], repr(str(path)))
    return ImageChunks("zarr", str(path), int(array.shape[0]), crop, image_size)


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zarray"))


def image_chunks(
    source: PathLike,
    *,
    crop: int | Sequence[int] | None = None,
    image_size: int | Sequence[int] | None = None,
) -> ImageChunks:
    """Check a collection and describe it for reading in chunks.

    Parameters
    ----------
    source : str or path-like
        A Galaxy10-layout HDF5 file (``images`` of shape (n, H, W, 3) uint8
        and the Galaxy10 keys), a zarr array of images (n, H, W, C) (uint8,
        or float in [0, 1]), or a folder of image files (every image file in
        it, sorted by name).
    crop : int or (height, width), optional
        Centre crop at native scale, done while reading.
    image_size : int or (height, width), optional
        Resize after the crop.

    Returns
    -------
    chunks : ImageChunks

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    ValueError
        It is none of the three, or has the wrong layout, or ``crop`` is
        larger than its images.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, zarr
    >>> from galaxysim.datasets.chunks import image_chunks
    >>> path = os.path.join(tempfile.mkdtemp(), "images.zarr")
    >>> zarr.open_array(path, mode="w", shape=(5, 8, 8, 3), dtype="uint8")[:] = 255
    >>> chunks = image_chunks(path, crop=4)
    >>> chunks.n_images, [p.stop - p.start for p in chunks.pieces(2)]
    (5, [2, 2, 1])
    >>> chunks.piece(0, 2).read().shape
    (2, 4, 4, 3)
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path (str or os.PathLike), got {type(source).__name__}.")
    crop = check_image_size(crop, "crop") if crop is not None else None
    image_size = check_image_size(image_size, "image_size") if image_size is not None else None
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"source {str(path)!r} does not exist.")
    if _is_zarr(path):
        return _zarr_chunks(path, crop, image_size)
    if path.is_dir():
        paths = tuple(str(p) for p in _list_folder(path))
        return ImageChunks("folder", str(path), len(paths), crop, image_size, paths)
    return _h5_chunks(path, crop, image_size)
