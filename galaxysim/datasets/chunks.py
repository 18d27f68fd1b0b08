"""Image collections read a chunk of rows at a time: Galaxy10 HDF5 files, folders, zarr arrays.

:func:`image_chunks` checks a collection once and describes it;
:meth:`ImageChunks.piece` cuts it into :class:`ChunkPiece` objects, small
picklable descriptions of a range of rows that read themselves
(:meth:`ChunkPiece.read`) wherever they are sent, so that a worker process
reads its own rows and never receives pixels through the network.
:meth:`ImageChunks.read_rows` reads any rows, in any order, as training
batches drawn at random need. Every read crops on the way in (only the crop
window leaves the file), so memory follows the chunk, never the collection.

:meth:`ChunkPiece.digest` fingerprints what a piece reads (the bytes of its
files, or its block of the HDF5 or zarr array), so that a store of
embeddings can tell when its source has changed. :func:`open_zarr_array`
opens a zarr array made by someone else, its metadata checked first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._json_input import read_json
from .._limits import check_allocation, check_regular_file
from .._validation import PathLike, check_image_size
from ..images import list_image_files, load_images, preprocess_images
from ._galaxy10_file import check_crop_fits, crop_window, open_galaxy10, read_dataset

__all__ = ["ChunkPiece", "ImageChunks", "image_chunks", "open_zarr_array"]

# Memory of one ChunkPiece in the list of a collection's pieces, generously.
_PIECE_BYTES = 1024
# zarr metadata files: JSON that zarr parses without a depth limit.
_ZARR_METADATA = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


def open_zarr_array(path: PathLike, mode: str = "r", what: str = "zarr array") -> Any:
    """Open a zarr array whose metadata may come from anyone.

    Its metadata files are read first as JSON of at most 16 MiB nested at
    most 64 levels deep (zarr's own parser would end in a RecursionError),
    and any failure of zarr to open it becomes one ValueError.

    Parameters
    ----------
    path : str or path-like
        The array's folder.
    mode : {"r", "r+"}, default="r"
    what : str, default="zarr array"
        How the array is called in errors (e.g. ``"--embeddings"``).

    Returns
    -------
    array : zarr.Array

    Raises
    ------
    ValueError
        The metadata is refused, or zarr cannot open an array there.

    Examples
    --------
    >>> import os, tempfile
    >>> import zarr
    >>> from galaxysim.datasets.chunks import open_zarr_array
    >>> path = os.path.join(tempfile.mkdtemp(), "a.zarr")
    >>> _ = zarr.open_array(path, mode="w", shape=(2, 3), dtype="f8")
    >>> open_zarr_array(path).shape
    (2, 3)
    """
    try:
        import zarr
    except ImportError:
        raise ImportError(
            f'Reading the zarr array {str(path)!r} needs zarr: pip install "galaxysim[dask]".'
        ) from None

    folder = Path(path)
    for name in _ZARR_METADATA:
        if (folder / name).exists():
            read_json(folder / name, f"the zarr metadata of {what}", max_bytes=16 * 2**20)
    try:
        return zarr.open_array(str(folder), mode=mode)
    except Exception as exc:  # zarr raises several types for "not an array here"
        raise ValueError(
            f"{what} {str(folder)!r} is not a readable zarr array ({type(exc).__name__}: {exc})."
        ) from None


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
        return self.read_with_digest()[0]

    def read_with_digest(self) -> tuple[np.ndarray, str]:
        """The rows as :meth:`read` gives them, and the :meth:`digest` of what was read."""
        if self.kind == "folder":
            digest = self.digest()
            return load_images(list(self.paths), self.image_size, crop=self.crop)[0], digest
        block = self._block()
        images = preprocess_images(block, image_size=self.image_size, name=repr(self.location))
        return images, _block_digest(block)

    def digest(self) -> str:
        """SHA-256 of what the piece reads: its files (names and bytes), or its raw array block.

        Two sources give the same digest exactly when the piece would read
        the same bytes from them (the crop window only, for arrays).
        """
        if self.kind != "folder":
            return _block_digest(self._block())
        hasher = hashlib.sha256()
        for name in self.paths:
            path = check_regular_file(name, "Image file")
            hasher.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as stream:
                for part in iter(lambda: stream.read(1 << 20), b""):
                    hasher.update(part)
        return hasher.hexdigest()

    def _block(self) -> np.ndarray:
        """The raw rows of an HDF5 or zarr array, cropped while read."""
        if self.kind == "h5":
            import h5py

            path = Path(self.location)
            with h5py.File(path, "r") as handle:
                dataset = handle["images"]
                window = crop_window(self.crop, *dataset.shape[1:3])
                return read_dataset(
                    dataset, (slice(self.start, self.stop), *window, slice(None)), path
                )
        array = open_zarr_array(self.location)
        window = crop_window(self.crop, *array.shape[1:3])
        return np.asarray(array[self.start : self.stop, window[0], window[1], :])


def _block_digest(block: np.ndarray) -> str:
    hasher = hashlib.sha256(f"{block.dtype.str}{block.shape}".encode())
    hasher.update(np.ascontiguousarray(block).data)
    return hasher.hexdigest()


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
        """The :class:`ChunkPiece` of rows ``start:stop`` (a folder's names only its files)."""
        if not 0 <= start < stop <= self.n_images:
            raise ValueError(f"rows {start}:{stop} are not inside 0:{self.n_images}.")
        paths = self.paths[start:stop] if self.kind == "folder" else ()
        return ChunkPiece(self.kind, self.location, start, stop, self.crop, self.image_size, paths)

    def pieces(self, chunk_size: int) -> list[ChunkPiece]:
        """Consecutive pieces of ``chunk_size`` rows (the last may be shorter).

        The number of images comes from the collection's own metadata (a
        zarr array declares its shape): the list is checked against the
        memory available before it is made.
        """
        n_pieces = -(-self.n_images // chunk_size)
        check_allocation(
            _PIECE_BYTES * n_pieces,
            f"the {n_pieces:,} chunks of {self.location!r}",
            "Pass a larger chunk_size, or check the collection's declared size.",
        )
        return [
            self.piece(start, min(start + chunk_size, self.n_images))
            for start in range(0, self.n_images, chunk_size)
        ]

    def read_rows(self, rows: Sequence[int] | np.ndarray, *, raw: bool = False) -> np.ndarray:
        """The images of ``rows`` (any order, repeats allowed), cropped and resized.

        With ``raw=True`` an HDF5 file or a uint8 zarr array read without
        ``image_size`` gives its stored uint8 pixels, for the caller to
        scale by 1/255 (on a GPU, say); otherwise float32 in [0, 1].
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and not (rows.min() >= 0 and rows.max() < self.n_images):
            raise ValueError(f"rows must lie in 0:{self.n_images}; got {rows.min()}:{rows.max()}.")
        if self.kind == "folder":
            return load_images([self.paths[row] for row in rows], self.image_size, crop=self.crop)[
                0
            ]
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
        window = crop_window(chunks.crop, *dataset.shape[1:3])
        # One read per run of consecutive rows: h5py reads slices far faster than
        # lists of rows (by 2-30 times for 128 rows scattered over a file).
        runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if rows.size else []
        blocks = [
            read_dataset(
                dataset, (slice(int(run[0]), int(run[-1]) + 1), *window, slice(None)), path
            )
            for run in runs
        ]
        height, width = (side.stop - side.start for side in window)
        empty = np.empty((0, height, width, dataset.shape[-1]), dtype=dataset.dtype)
    return np.concatenate(blocks) if blocks else empty


def _zarr_rows(chunks: ImageChunks, rows: np.ndarray) -> np.ndarray:
    """Sorted distinct ``rows`` of a zarr array, each zarr chunk decoded once."""
    import zarr

    array = zarr.open_array(chunks.location, mode="r")
    window = crop_window(chunks.crop, *array.shape[1:3])
    return np.asarray(array.oindex[rows, window[0], window[1], :])


def _h5_chunks(path: Path, crop, image_size) -> ImageChunks:
    with open_galaxy10(path) as handle:
        n_images, height, width = handle["images"].shape[:3]
    check_crop_fits(crop, height, width, repr(str(path)))
    return ImageChunks("h5", str(path), int(n_images), crop, image_size)


def _zarr_chunks(path: Path, crop, image_size) -> ImageChunks:
    array = open_zarr_array(path, what="the image array")
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
    check_crop_fits(crop, array.shape[1], array.shape[2], repr(str(path)))
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
        paths = tuple(str(p) for p in list_image_files(path))
        return ImageChunks("folder", str(path), len(paths), crop, image_size, paths)
    return _h5_chunks(path, crop, image_size)
