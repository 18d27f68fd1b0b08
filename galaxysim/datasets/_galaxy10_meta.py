"""What the Galaxy10 DECaLS labels mean: the classes, their description, label checks.

Package-private: shared by the HDF5 loader (:mod:`~galaxysim.datasets.galaxy10`) and the
folder loader (:mod:`~galaxysim.datasets.galaxy10_folder`).
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral

import numpy as np

from .._validation import check_labels

__all__ = ["DESCR", "GALAXY10_CLASSES", "SEED_CLASSES", "ClassSpec"]

ClassSpec = int | str | Iterable[int | str]

#: The ten Galaxy10 DECaLS classes; the position of a name is its label ``ans``.
GALAXY10_CLASSES: tuple[str, ...] = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

#: The spiral and edge-on classes (9,796 images) the Milky Way challenge ranks.
SEED_CLASSES: tuple[int, ...] = (5, 6, 7, 8, 9)

_CITATION = """\
Please acknowledge when using this data:

- Galaxy10 DECaLS, by H. W. Leung and J. Bovy, released with astroNN
  (Leung & Bovy 2019, MNRAS 483, 3255); file: Zenodo record 10845026,
  https://doi.org/10.5281/zenodo.10845026
- Images: the DESI Legacy Imaging Surveys (Dey et al. 2019, AJ 157, 168).
- Labels: Galaxy Zoo volunteers (Lintott et al. 2008, MNRAS 389, 1179;
  Galaxy Zoo DECaLS: Walmsley et al. 2022, MNRAS 509, 3966).
"""

_CLASS_TABLE = "\n".join(f"  {label}  {name}" for label, name in enumerate(GALAXY10_CLASSES))

DESCR = f"""\
Galaxy10 DECaLS
---------------

17,736 colour (g, r, z) cutouts of 256x256 pixels (pixel scale in pxscale)
from the DESI Legacy Imaging Surveys, each in one of ten morphology classes
chosen from Galaxy Zoo DECaLS volunteer votes:

{_CLASS_TABLE}

Class sizes: 1081, 1853, 2645, 2027, 334, 2043, 1829, 2628, 1423, 1873.
The spiral and edge-on classes 5-9 (9,796 images) are galaxysim's default.

Fields: images (float32 in [0, 1], channels last, center-cropped/resized as
asked), target (labels 0..k-1 in the order of the requested classes),
target_names, ans (original Galaxy10 label), ra, dec (degrees), redshift,
pxscale (arcsec per pixel), indices (row of each image in the HDF5 file).

{_CITATION}"""


def check_classes(classes: ClassSpec) -> tuple[int, ...]:
    """Turn labels and/or class names into a tuple of distinct labels 0-9."""
    if isinstance(classes, (str, Integral)):
        classes = (classes,)
    try:
        items = list(classes)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"classes must be Galaxy10 labels (ints 0-9) or class names, got {classes!r}."
        ) from None
    if not items:
        raise ValueError("classes is empty; give at least one Galaxy10 label (0-9) or name.")
    by_name = {name.lower(): label for label, name in enumerate(GALAXY10_CLASSES)}
    labels = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"classes must hold ints 0-9 or class names, got {item!r}.")
        if isinstance(item, Integral):
            if not 0 <= int(item) < len(GALAXY10_CLASSES):
                raise ValueError(f"classes holds {item!r}; Galaxy10 labels are 0 to 9.")
            labels.append(int(item))
        elif isinstance(item, str):
            label = by_name.get(item.strip().lower())
            if label is None:
                raise ValueError(
                    f"classes holds {item!r}, which is not a Galaxy10 class; the names "
                    f"are {', '.join(repr(n) for n in GALAXY10_CLASSES)}."
                )
            labels.append(label)
        else:
            raise TypeError(
                f"classes must hold ints 0-9 or class names, got {item!r} ({type(item).__name__})."
            )
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"classes names the label(s) {duplicates} more than once.")
    return tuple(labels)


def relabel(ans: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Map each original label to its position in ``classes``."""
    lookup = np.full(len(GALAXY10_CLASSES), -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    return lookup[ans]


def galaxy10_labels(ans: np.ndarray, where: str) -> np.ndarray:
    """Return the ``ans`` of a file as int64, or raise if they are not integers in 0-9.

    The file may store them as whole-valued floats; beyond that they get the
    checks of every other set of labels.
    """
    if not (np.issubdtype(ans.dtype, np.integer) or np.issubdtype(ans.dtype, np.floating)):
        raise ValueError(f"{where} holds labels of dtype {ans.dtype}; expected integers 0-9.")
    if np.issubdtype(ans.dtype, np.floating):
        if not np.all(np.mod(ans, 1) == 0):
            raise ValueError(f"{where} holds non-integer labels; expected integers 0-9.")
        ans = ans.astype(np.int64)
    return check_labels(ans, n_classes=len(GALAXY10_CLASSES), name=where).astype(np.int64)
