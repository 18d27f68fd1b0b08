"""Whether an HDF5 dataset's values are really in its file.

An HDF5 header can declare any shape: what was never written reads back as
the fill value (zeros), and external or virtual datasets read other files.
A file from someone else is checked with :func:`check_stored` before its
data is allocated or read.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py

from .._limits import format_bytes

__all__ = ["check_stored"]


def check_stored(dataset: h5py.Dataset, path: Path, file_bytes: int) -> None:
    """Raise unless the file itself holds every value ``dataset`` declares.

    A header can declare any shape; what HDF5 never wrote reads back as the
    fill value (zeros), i.e. blank images. Contiguous data must lie inside
    the file; a chunked dataset must have every one of its chunks allocated
    (their number is exact, whatever the compression); data kept in other
    files (external or virtual datasets) is refused outright.

    Parameters
    ----------
    dataset : h5py.Dataset
        The dataset, in an open file.
    path : pathlib.Path
        The file, for messages.
    file_bytes : int
        Size of the file.

    Raises
    ------
    ValueError
        Naming the file and the dataset, what it declares and what is stored.

    Examples
    --------
    >>> import os, tempfile, h5py, numpy as np
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "forged.h5"
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("images", shape=(1000, 64, 64, 3), dtype="u1",
    ...                          chunks=(1, 64, 64, 3), compression="gzip")
    ...     f["images"][0] = 1
    >>> with h5py.File(path, "r") as f:
    ...     check_stored(f["images"], path, os.path.getsize(path))
    Traceback (most recent call last):
    ...
    ValueError: '...forged.h5': 'images' declares (1000, 64, 64, 3) values of uint8 (11.72 MiB), ...
    """
    where = f"{str(path)!r}: {dataset.name.lstrip('/')!r}"
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL or plist.get_external_count():
        raise ValueError(
            f"{where} reads its values from other files (an external or virtual "
            "dataset); a Galaxy10 file must hold its data itself."
        )
    if dataset.size == 0 or layout == h5py.h5d.COMPACT:
        return  # compact data lives in the object header, which has been read
    declared = (
        f"declares {dataset.shape} values of {dataset.dtype} ({format_bytes(dataset.nbytes)})"
    )
    if layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.id.get_offset()
        if offset is None or offset + dataset.nbytes > file_bytes:
            stored = 0 if offset is None else max(0, file_bytes - offset)
            raise ValueError(
                f"{where} {declared}, but the file holds only {format_bytes(stored)} of "
                "them: it is truncated or was never written. Delete it and call "
                "fetch_galaxy10_decals() for a fresh copy."
            )
        return
    n_chunks = math.prod(-(-n // c) for n, c in zip(dataset.shape, dataset.chunks))
    written = dataset.id.get_num_chunks()
    if written < n_chunks or dataset.id.get_storage_size() > file_bytes:
        raise ValueError(
            f"{where} {declared}, but only {written:,} of its {n_chunks:,} chunks are "
            "stored in the file; the others would read as blank zeros. The file is "
            "incomplete or forged: delete it and call fetch_galaxy10_decals() for a "
            "fresh copy."
        )
