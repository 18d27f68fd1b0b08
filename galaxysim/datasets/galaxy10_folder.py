"""Folders of labelled galaxy cutouts, such as Galaxy10 images saved as files.

A folder holds image files and a ``labels.csv`` whose columns ``filename``
and ``ans`` give each file's Galaxy10 label; :func:`load_galaxy10_folder`
reads it into the same :class:`~sklearn.utils.Bunch` as
:func:`~galaxysim.datasets.load_galaxy10_decals`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._limits import check_regular_file
from .._validation import PathLike, check_image_size
from ..images import load_images
from ._galaxy10_meta import (
    DESCR,
    GALAXY10_CLASSES,
    SEED_CLASSES,
    ClassSpec,
    check_classes,
    relabel,
)

__all__ = ["load_galaxy10_folder"]


def _check_inside(filename: str, labels: Path, line: int) -> None:
    """Raise unless ``filename`` names a file inside the folder of ``labels``.

    labels.csv comes with the folder, maybe from someone else: an absolute
    name, a ``..`` or a symlink that leads out of the folder would read files
    the folder does not hold, so the resolved path must stay inside it.
    """
    where = f"{str(labels)!r}, line {line}"
    if not filename:
        raise ValueError(f"{where}: the filename is empty.")
    name = Path(filename)
    if name.is_absolute() or name.drive or name.root:
        raise ValueError(
            f"{where}: the filename {filename!r} is an absolute path; expected a path "
            "relative to the folder."
        )
    folder = labels.parent.resolve()
    target = (folder / name).resolve()
    if target != folder and folder not in target.parents:
        raise ValueError(
            f"{where}: the filename {filename!r} leads outside the folder {str(folder)!r} "
            f"(to {str(target)!r}); labels.csv may only list files inside its folder."
        )


def _check_once(filename: str, labels: Path, line: int, seen: dict[str, int]) -> None:
    """Raise when ``filename`` names an image listed before (``seen``: name to line)."""
    key = os.path.normpath(filename)
    if key in seen:
        raise ValueError(
            f"{str(labels)!r}, line {line}: {filename!r} is listed again (first on line "
            f"{seen[key]}); each image may have one label."
        )
    seen[key] = line


def _read_labels_csv(labels: Path) -> list[tuple[str, int]]:
    """Read ``(filename, ans)`` pairs from a labels.csv, with errors naming the line."""
    try:
        stream = open(labels, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise OSError(f"Could not open {str(labels)!r}: {exc}") from None
    entries: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    with stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{str(labels)!r} is empty; expected a header 'filename,ans'.")
        columns = [name.strip() for name in header]
        missing = [name for name in ("filename", "ans") if name not in columns]
        if missing:
            raise ValueError(
                f"{str(labels)!r} lacks the column(s) {missing}; found columns {columns}, "
                "expected at least 'filename' and 'ans'."
            )
        name_at, ans_at = columns.index("filename"), columns.index("ans")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(name_at, ans_at):
                raise ValueError(
                    f"{str(labels)!r}, line {line}: has {len(row)} field(s), expected "
                    f"{len(columns)}."
                )
            filename, raw = row[name_at].strip(), row[ans_at].strip()
            _check_inside(filename, labels, line)
            _check_once(filename, labels, line, seen)
            if raw.lower() in ("nan", "-nan", "+nan", ""):
                raise ValueError(
                    f"{str(labels)!r}, line {line}: ans is {raw or 'empty'!r}, a missing "
                    "label; every image needs an integer label 0-9."
                )
            try:
                label = int(raw)
            except ValueError:
                raise ValueError(
                    f"{str(labels)!r}, line {line}: ans must be an integer label 0-9, got {raw!r}."
                ) from None
            if not 0 <= label < len(GALAXY10_CLASSES):
                raise ValueError(
                    f"{str(labels)!r}, line {line}: ans is {label}; Galaxy10 labels are 0 to 9."
                )
            entries.append((filename, label))
    if not entries:
        raise ValueError(f"{str(labels)!r} lists no images.")
    return entries


def load_galaxy10_folder(
    folder: PathLike,
    *,
    classes: ClassSpec = SEED_CLASSES,
    crop: int | Sequence[int] | None = 64,
    image_size: int | Sequence[int] | None = None,
) -> Bunch:
    """Load a folder of labelled galaxy images, such as Galaxy10 cutouts saved as files.

    The folder holds image files (PNG, JPEG, TIFF; FITS with astropy) and a
    ``labels.csv`` with at least the columns ``filename`` (relative to the
    folder) and ``ans`` (the Galaxy10 label 0-9); other columns are ignored.

    Parameters
    ----------
    folder : str or path-like
        The folder.
    classes : sequence of int or str, default=SEED_CLASSES
        Galaxy10 labels and/or class names to keep; ``target`` numbers them
        0..k-1 in this order.
    crop : int or (height, width) or None, default=64
        Center crop at native scale. None keeps the full image (all images
        must then share one size, unless ``image_size`` is given).
    image_size : int or (height, width) or None, default=None
        Resize after cropping, with an anti-aliasing filter.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``images`` (n, h, w, 3) float32 in [0, 1]; ``target`` (n,) int64;
        ``target_names``; ``ans``; ``filenames`` (full paths, in the order of
        labels.csv); ``DESCR``.

    Raises
    ------
    FileNotFoundError
        The folder, its labels.csv, or an image it lists is missing.
    ValueError
        labels.csv lacks a column or holds a bad label, no image has the
        requested classes, an image is smaller than ``crop``, or the images
        end up with different sizes.

    See Also
    --------
    load_galaxy10_decals : Load the HDF5 file of the full data set.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from galaxysim.datasets import load_galaxy10_folder
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(os.path.join(folder, "a.png"))
    >>> with open(os.path.join(folder, "labels.csv"), "w") as f:
    ...     _ = f.write("filename,ans\\na.png,5\\n")
    >>> data = load_galaxy10_folder(folder)
    >>> data.images.shape, str(data.target_names[data.target[0]])
    ((1, 64, 64, 3), 'Barred Spiral')
    """
    labels_wanted = check_classes(classes)
    if crop is not None:
        check_image_size(crop, "crop")
    if image_size is not None:
        check_image_size(image_size, "image_size")
    folder, labels = _labels_file(folder)
    entries = [(name, label) for name, label in _read_labels_csv(labels) if label in labels_wanted]
    if not entries:
        raise ValueError(f"{str(labels)!r} lists no images of classes {list(labels_wanted)}.")
    paths = [folder / name for name, _ in entries]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {str(labels)!r} are missing: {shown}{more}."
        )
    ans = np.array([label for _, label in entries], dtype=np.int64)
    return Bunch(
        images=load_images(paths, image_size, crop=crop)[0],
        target=relabel(ans, labels_wanted),
        target_names=np.array([GALAXY10_CLASSES[label] for label in labels_wanted]),
        ans=ans,
        filenames=np.array([str(p) for p in paths]),
        DESCR=(
            f"Labelled galaxy images from {str(folder)!r} (labels.csv), classes "
            f"{[GALAXY10_CLASSES[label] for label in labels_wanted]}.\n\n{DESCR}"
        ),
    )


def _labels_file(folder: PathLike) -> tuple[Path, Path]:
    """The folder and its labels.csv, with errors naming what is missing."""
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(
            f"folder must be a folder path (str or os.PathLike), got {type(folder).__name__}."
        )
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist or is not a folder.")
    labels = folder / "labels.csv"
    if not os.path.lexists(labels):
        raise FileNotFoundError(
            f"folder {str(folder)!r} has no labels.csv; expected a CSV with the columns "
            "'filename' and 'ans'."
        )
    check_regular_file(labels, "labels file")
    return folder, labels
