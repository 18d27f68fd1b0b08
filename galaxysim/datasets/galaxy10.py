"""Galaxy10 DECaLS: download the HDF5 file and load it in chunks.

Galaxy10 DECaLS (Leung & Bovy) holds 17,736 colour cutouts of 256x256 pixels
from the DESI Legacy Imaging Surveys, each labelled with one of ten
morphology classes from Galaxy Zoo votes. It ships as one 2.5 GB HDF5 file.
:func:`load_galaxy10_decals` reads only the requested classes, a block of
rows at a time, and crops each block before converting it to float, so the
memory it needs is close to the size of what it returns rather than the
size of the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from .._limits import check_allocation
from .._validation import PathLike, check_image_size
from ..images import preprocess_images
from ._download import (
    ChecksumMismatchError,
    check_sha256,
    check_url,
    download_file,
    file_sha256,
)
from ._galaxy10_file import META_KEYS, check_crop_fits, crop_window, open_galaxy10, read_dataset
from ._galaxy10_meta import (
    DESCR,
    GALAXY10_CLASSES,
    SEED_CLASSES,
    ClassSpec,
    check_classes,
    galaxy10_labels,
    relabel,
)
from ._home import get_data_home

__all__ = [
    "GALAXY10_CLASSES",
    "GALAXY10_FILENAME",
    "GALAXY10_SHA256",
    "GALAXY10_URL",
    "SEED_CLASSES",
    "fetch_galaxy10_decals",
    "load_galaxy10_decals",
]

GALAXY10_FILENAME = "Galaxy10_DECals.h5"
#: Zenodo record 10845026, the data set's official home.
GALAXY10_URL = "https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5"
GALAXY10_SHA256 = "19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571"

# Rows read from the HDF5 file at a time, each cut to the crop window as it is
# read: even uncropped, 256 uint8 cutouts of 256x256x3 are 50 MB, small beside
# the 482 MB that 9,796 images of 64 pixels take as float32.
_CHUNK_ROWS = 256
# Upper bound on one block when widening it to whole HDF5 chunks.
_MAX_BLOCK_BYTES = 256 * 2**20


def _file_labels(handle: h5py.File, path: Path) -> np.ndarray:
    """The ``ans`` of a file as int64 labels 0-9, with errors naming the file and rows."""
    ans = read_dataset(handle["ans"], (), path)
    where = f"{str(path)!r}: 'ans'"
    if ans.dtype.kind == "f" and np.isnan(ans).any():
        rows = np.flatnonzero(np.isnan(ans))
        raise ValueError(
            f"{where} holds NaN at {rows.size} row(s), first {rows[:5].tolist()}; every "
            "image needs a label 0-9."
        )
    return galaxy10_labels(ans, where)


def _check_galaxy10_file(path: Path) -> None:
    """Raise unless ``path`` is a readable Galaxy10 file with valid labels."""
    with open_galaxy10(path) as handle:
        _file_labels(handle, path)


def _download_galaxy10(
    path: Path,
    *,
    url: str,
    sha256: str | None,
    overwrite: bool,
    verbose: bool,
    timeout: float,
) -> Path:
    return download_file(
        url,
        path,
        sha256=sha256,
        overwrite=overwrite,
        check=_check_galaxy10_file,
        timeout=timeout,
        verbose=verbose,
    )


def fetch_galaxy10_decals(
    data_home: PathLike | None = None,
    *,
    url: str = GALAXY10_URL,
    sha256: str | None = GALAXY10_SHA256,
    force: bool = False,
    verbose: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``Galaxy10_DECals.h5`` (2.5 GB) into the data folder, once.

    The file is written to ``Galaxy10_DECals.h5.part`` first; an interrupted
    download resumes from the bytes already there on the next call (HTTP
    ``Range``). The SHA-256 is checked and the HDF5 keys are verified before
    the file gets its final name, so that name only ever holds a complete,
    verified file.

    Parameters
    ----------
    data_home : str or path-like, optional
        Folder to download into; see :func:`get_data_home` (default
        ``$GALAXYSIM_DATA`` or ``~/galaxysim_data``).
    url : str, default=GALAXY10_URL
        Where to download from (Zenodo record 10845026).
    sha256 : str or None, default=GALAXY10_SHA256
        Expected SHA-256 of the file. None skips the checksum (the HDF5 keys
        are still checked).
    force : bool, default=False
        Download again even if a file is present. The present file is
        replaced only once the new one is verified.
    verbose : bool, default=True
        Show progress bars for the download and checksum.
    timeout : float, default=60
        Seconds to wait for the server to connect or send data.

    Returns
    -------
    path : pathlib.Path
        Path of the verified ``Galaxy10_DECals.h5``.

    Raises
    ------
    ChecksumMismatchError
        A file already present, or the downloaded one, has the wrong
        SHA-256. A present file is left untouched; a downloaded one is
        deleted.
    IncompleteDownloadError
        The transfer broke off; call again to resume.
    DownloadError
        The server could not be reached or answered with an HTTP error.
    OSError, ValueError
        The file is not a valid Galaxy10 HDF5 file.

    Notes
    -----
    A file already present is verified by its full SHA-256 (a few seconds
    for 2.5 GB) and returned without any network access. A file that fails
    the check is never overwritten unless ``force=True``.

    Examples
    --------
    >>> from galaxysim.datasets.galaxy10 import fetch_galaxy10_decals
    >>> path = fetch_galaxy10_decals()  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'Galaxy10_DECals.h5'
    """
    url = check_url(url)
    sha256 = check_sha256(sha256)
    path = get_data_home(data_home) / GALAXY10_FILENAME
    if path.exists() and not force:
        if not path.is_file():
            raise IsADirectoryError(f"{str(path)!r} is a folder, expected the data file.")
        if sha256 is not None:
            got = file_sha256(path, verbose=verbose)
            if got != sha256:
                raise ChecksumMismatchError(
                    f"{str(path)!r} exists but its SHA-256 is {got}, expected "
                    f"{sha256}. It was left untouched: delete it, or "
                    "pass force=True to download a fresh copy that replaces it once "
                    "verified."
                )
        else:
            _check_galaxy10_file(path)
        return path
    return _download_galaxy10(
        path, url=url, sha256=sha256, overwrite=force, verbose=verbose, timeout=timeout
    )


def _resolve_path(
    path: PathLike | None, data_home: PathLike | None, download: bool, verbose: bool
) -> Path:
    if path is None:
        folder = get_data_home(data_home, create=download)
        target = folder / GALAXY10_FILENAME
        if target.is_file():
            return target
        if download:
            return fetch_galaxy10_decals(folder, verbose=verbose)
        raise FileNotFoundError(
            f"{str(target)!r} does not exist. Call fetch_galaxy10_decals() to download "
            "Galaxy10 DECaLS (2.5 GB), pass download=True, or give path= to a copy you "
            "already have."
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike) or None, got {type(path).__name__}."
        )
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(
            f"path {str(target)!r} is a folder; give the {GALAXY10_FILENAME} file itself, "
            "or use load_galaxy10_folder() for a folder of image files."
        )
    if not target.exists():
        if download:
            return _download_galaxy10(
                target,
                url=GALAXY10_URL,
                sha256=GALAXY10_SHA256,
                overwrite=False,
                verbose=verbose,
                timeout=60.0,
            )
        raise FileNotFoundError(
            f"path {str(target)!r} does not exist. Pass download=True to download "
            "Galaxy10 DECaLS there, or call fetch_galaxy10_decals()."
        )
    return target


def _rows_per_block(dataset: h5py.Dataset, window: tuple[slice, slice]) -> int:
    """Rows to read at a time: ``_CHUNK_ROWS``, widened to whole HDF5 chunks if cheap."""
    rows = _CHUNK_ROWS
    if dataset.chunks is not None:
        # A compressed chunk is decoded whole for every read that touches it, so
        # blocks that cover whole chunks decode each chunk once.
        chunk_rows = dataset.chunks[0]
        aligned = -(-rows // chunk_rows) * chunk_rows
        row_bytes = (window[0].stop - window[0].start) * (window[1].stop - window[1].start) * 3
        if aligned * row_bytes <= _MAX_BLOCK_BYTES:
            rows = aligned
    return rows


def _read_images(
    dataset: h5py.Dataset,
    rows: np.ndarray,
    crop: int | Sequence[int] | None,
    image_size: int | Sequence[int] | None,
    source: Path,
    verbose: bool,
) -> np.ndarray:
    """Read, crop and resize the images of ``rows``, one aligned block at a time."""
    height, width = dataset.shape[1:3]
    window = crop_window(crop, height, width)
    out_height, out_width = (
        check_image_size(image_size, "image_size")
        if image_size is not None
        else (window[0].stop - window[0].start, window[1].stop - window[1].start)
    )
    check_allocation(
        rows.size * out_height * out_width * 3 * 4,
        f"{rows.size:,} images of {out_height}x{out_width}x3 float32 from {str(source)!r}",
        "Choose fewer classes, or a smaller crop or image_size.",
    )
    images = np.empty((rows.size, out_height, out_width, 3), dtype=np.float32)
    block_rows = _rows_per_block(dataset, window)
    # h5py reads slices fast but lists of rows slowly, so each read is the span
    # of wanted rows inside one aligned block, cut to the crop window on disk;
    # the wanted rows are then picked in memory.
    groups = np.split(rows, np.flatnonzero(np.diff(rows // block_rows)) + 1)
    filled = 0
    with tqdm(total=rows.size, unit="img", desc="Loading Galaxy10", disable=not verbose) as bar:
        for group in groups:
            start, stop = int(group[0]), int(group[-1]) + 1
            block = read_dataset(dataset, (slice(start, stop), *window, slice(None)), source)
            if group.size != stop - start:
                block = block[group - start]
            images[filled : filled + group.size] = preprocess_images(
                block, image_size=image_size, name="images"
            )
            filled += group.size
            bar.update(group.size)
    return images


def load_galaxy10_decals(
    path: PathLike | None = None,
    *,
    classes: ClassSpec = SEED_CLASSES,
    crop: int | Sequence[int] | None = 64,
    image_size: int | Sequence[int] | None = None,
    data_home: PathLike | None = None,
    download: bool = False,
    return_X_y: bool = False,
    verbose: bool = False,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load Galaxy10 DECaLS images of the chosen classes, cropped, as float32.

    Rows of the requested classes are read in blocks of a few hundred,
    cropped and converted block by block into a preallocated result, so the
    peak memory stays near the size of the result (482 MB for the default
    9,796 images at 64 pixels) instead of the 3.5 GB the whole file holds.

    Parameters
    ----------
    path : str or path-like, optional
        The ``Galaxy10_DECals.h5`` file. When None it is looked for in
        ``data_home``.
    classes : sequence of int or str, default=SEED_CLASSES
        Galaxy10 labels (0-9) and/or class names (see ``GALAXY10_CLASSES``,
        case-insensitive) to keep. ``target`` numbers them 0..k-1 in this
        order. The default keeps the five spiral and edge-on classes.
    crop : int or (height, width) or None, default=64
        Center crop at the native pixel scale (``pxscale``). None keeps the
        full cutout.
    image_size : int or (height, width) or None, default=None
        Resize after cropping, with an anti-aliasing filter (``crop=128,
        image_size=64`` keeps the arms of large galaxies at 64 pixels).
    data_home : str or path-like, optional
        Data folder used when ``path`` is None; see :func:`get_data_home`.
    download : bool, default=False
        Download the file (see :func:`fetch_galaxy10_decals`) when it is
        missing, to ``path`` or into ``data_home``.
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.
    verbose : bool, default=False
        Show progress bars while reading, and while downloading when
        ``download`` fetches the file (2.5 GB: worth turning on).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (n, h, w, 3) float32 in [0, 1]; ``target`` (n,) int64
        labels 0..k-1 in the order of ``classes``; ``target_names``;
        ``ans`` the original Galaxy10 labels; ``ra``, ``dec``, ``redshift``,
        ``pxscale``; ``indices`` the row of each image in the file (rows
        keep the file's order); ``DESCR`` with the citation.
    (images, target) : tuple
        When ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        The file is missing and ``download`` is False.
    OSError
        The file is not a readable HDF5 file (truncated or corrupt).
    ValueError
        The file is not a regular file, lacks a Galaxy10 key, has the wrong
        layout, declares more data than it stores (see
        :func:`~galaxysim.datasets._hdf5_storage.check_stored`) or NaN labels;
        ``classes``, ``crop`` or ``image_size`` is invalid; or no image has the
        requested classes.
    InsufficientMemoryError
        (a MemoryError and a ValueError) The result would not fit in the
        memory available; checked before it is allocated.

    See Also
    --------
    fetch_galaxy10_decals : Download the file.
    load_galaxy10_folder : Load a folder of labelled image files instead.

    Examples
    --------
    A tiny file with Galaxy10's layout, one image per class:

    >>> import os, tempfile
    >>> import h5py, numpy as np
    >>> from galaxysim.datasets.galaxy10 import load_galaxy10_decals
    >>> path = os.path.join(tempfile.mkdtemp(), "Galaxy10_DECals.h5")
    >>> with h5py.File(path, "w") as f:
    ...     f["images"] = np.zeros((10, 80, 80, 3), dtype=np.uint8)
    ...     f["ans"] = np.arange(10)
    ...     for key in ("ra", "dec", "redshift", "pxscale"):
    ...         f[key] = np.zeros(10)
    >>> data = load_galaxy10_decals(path)
    >>> data.images.shape, data.target.tolist(), data.ans.tolist()
    ((5, 64, 64, 3), [0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    >>> X, y = load_galaxy10_decals(path, classes=["Edge-on with Bulge", 0],
    ...                             crop=None, image_size=32, return_X_y=True)
    >>> X.shape, y.tolist()
    ((2, 32, 32, 3), [1, 0])

    The real file, from the data folder (downloaded on first use):

    >>> data = load_galaxy10_decals(download=True, verbose=True)  # doctest: +SKIP
    >>> data.images.shape  # doctest: +SKIP
    (9796, 64, 64, 3)
    """
    labels_wanted = check_classes(classes)
    if image_size is not None:
        check_image_size(image_size, "image_size")
    if crop is not None:
        check_image_size(crop, "crop")
    source = _resolve_path(path, data_home, download, verbose)

    with open_galaxy10(source) as handle:
        dataset = handle["images"]
        height, width = dataset.shape[1:3]
        check_crop_fits(crop, height, width, repr(str(source)))
        ans = _file_labels(handle, source)
        rows = np.flatnonzero(np.isin(ans, labels_wanted))
        if rows.size == 0:
            found = np.unique(ans).tolist()
            raise ValueError(
                f"{str(source)!r} holds no images of classes {list(labels_wanted)}; the "
                f"labels in the file are {found}."
            )
        metadata = {key: read_dataset(handle[key], (), source)[rows] for key in META_KEYS}

        images = _read_images(dataset, rows, crop, image_size, source, verbose)

    target = relabel(ans[rows], labels_wanted)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=np.array([GALAXY10_CLASSES[label] for label in labels_wanted]),
        ans=ans[rows],
        indices=rows,
        DESCR=DESCR,
        **metadata,
    )
