"""Opening, checking and reading a Galaxy10-layout HDF5 file, with errors naming the file.

Package-private: serves :mod:`~galaxysim.datasets.galaxy10` (loading Galaxy10
DECaLS whole) and :mod:`~galaxysim.datasets.chunks` (reading any collection in
that layout a chunk of rows at a time). A file from someone else is checked
here before any of its data is allocated or read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .._limits import check_regular_file
from .._validation import check_image_size
from ._hdf5_storage import check_stored

__all__ = [
    "META_KEYS",
    "REQUIRED_KEYS",
    "check_crop_fits",
    "crop_window",
    "open_galaxy10",
    "read_dataset",
]

REQUIRED_KEYS = ("images", "ans", "ra", "dec", "redshift", "pxscale")
META_KEYS = ("ra", "dec", "redshift", "pxscale")


@contextmanager
def open_galaxy10(path: Path) -> Iterator[h5py.File]:
    """Open a Galaxy10 HDF5 file and check its layout, with errors naming the file."""
    check_regular_file(path, "Galaxy10 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(
            f"Could not read {str(path)!r} as an HDF5 file ({exc}). It may be truncated, "
            "corrupt or of another format; delete it and call fetch_galaxy10_decals() "
            "for a fresh copy."
        ) from None
    with handle:
        try:
            check_layout(handle, path)
        except (OSError, KeyError, RuntimeError) as exc:
            # Damaged metadata surfaces from h5py as OSError, KeyError or RuntimeError.
            raise OSError(
                f"Could not read the layout of {str(path)!r} ({exc}); the file is probably "
                "truncated or corrupt. Delete it and call fetch_galaxy10_decals() for a "
                "fresh copy."
            ) from None
        yield handle


def check_layout(handle: h5py.File, path: Path) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in handle]
    if missing:
        raise ValueError(
            f"{str(path)!r} is not a Galaxy10 DECaLS file: it lacks the key(s) {missing}. "
            f"Keys found: {sorted(map(str, handle.keys()))}; expected {list(REQUIRED_KEYS)}."
        )
    for key in REQUIRED_KEYS:
        if not isinstance(handle[key], h5py.Dataset):
            raise ValueError(f"{str(path)!r}: {key!r} is an HDF5 group, expected a dataset.")
    images = handle["images"]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{str(path)!r}: 'images' has shape {images.shape}; expected "
            "(n, height, width, 3) RGB cutouts."
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{str(path)!r}: 'images' has dtype {images.dtype}; expected uint8.")
    n_images = images.shape[0]
    for key in ("ans", *META_KEYS):
        if handle[key].shape != (n_images,):
            raise ValueError(
                f"{str(path)!r}: {key!r} has shape {handle[key].shape}; expected "
                f"({n_images},), one value per image."
            )
    file_bytes = os.path.getsize(path)
    for key in REQUIRED_KEYS:
        check_stored(handle[key], path, file_bytes)


def read_dataset(dataset: h5py.Dataset, selection: object, path: Path) -> np.ndarray:
    """Read from a dataset, turning HDF5 read failures into an error naming the file."""
    try:
        return dataset[selection]
    except (OSError, RuntimeError) as exc:
        raise OSError(
            f"Could not read {dataset.name!r} from {str(path)!r} ({exc}); the file is "
            "probably truncated or corrupt. Delete it and call fetch_galaxy10_decals() "
            "for a fresh copy."
        ) from None


def check_crop_fits(crop: int | Sequence[int] | None, height: int, width: int, where: str) -> None:
    if crop is None:
        return
    crop_h, crop_w = check_image_size(crop, "crop")
    if crop_h > height or crop_w > width:
        raise ValueError(
            f"crop={crop!r} is larger than the images in {where}, which are "
            f"{height}x{width} pixels."
        )


def crop_window(crop: int | Sequence[int] | None, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the center crop, placed as :func:`center_crop` places it."""
    if crop is None:
        return slice(0, height), slice(0, width)
    crop_h, crop_w = check_image_size(crop, "crop")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return slice(top, top + crop_h), slice(left, left + crop_w)
