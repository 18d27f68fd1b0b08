"""Synthetic galaxy images in the style of Galaxy10 DECaLS cutouts.

:func:`make_galaxies` draws labelled images of the five spiral and edge-on
classes that the Milky Way challenge uses, so that every part of galaxysim
can be tried, tested and benchmarked without downloading the 2.5 GB Galaxy10
file. :func:`make_milky_way` draws a query image in the style of the
NASA/JPL-Caltech/R. Hurt (SSC/Caltech) artist's impression of the Milky Way
with the same drawing code.

Each image is a model of surface brightness in a frame whose half-width is 1.
The frame stands for the central 64 pixels of a 256-pixel Galaxy10 cutout,
so ``image_size`` changes the sampling, not the field of view. The model has

* a Sersic bulge (Sersic 1963; ``b_n`` from Ciotti & Bertin 1999),
* an exponential disk, seen at a moderate inclination for the spirals,
* a boxy bar and, on some barred galaxies, an inner ring,
* logarithmic spiral arms (tight or loose pitch angle), sprinkled with blue
  and pink star-forming knots,
* for edge-on galaxies a thin and a thick ``sech^2`` disk (van der Kruit &
  Searle 1981) with a yellow inner part, with or without a bulge, and on some
  a reddening dust lane just off the mid-plane.

Every galaxy gets a random size factor (all its lengths) and a radial
colour gradient (a redder centre), drawn alike for all classes. Small, faint
neighbour galaxies land anywhere on the canvas, some over the frame's edge.
The light is blurred by a point-spread function with a Gaussian core and a
wider wing (in Fourier space, on a padded canvas so that nothing wraps
around), foreground stars and sky noise (grey-grained: correlated between
neighbouring pixels and between channels, as in the survey's JPEG cutouts;
its level varies from image to image) are added, and the flux goes through
an asinh stretch (Lupton et al. 2004, as Legacy Surveys colour images do)
onto a sky level. Noise therefore shows on the sky and fades on bright parts.

Every galaxy's brightness is scaled so that the mean of its stretched light
equals a level drawn from one distribution for all classes: the classes
differ in shape and colour, not in how bright the image is on average.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from .._limits import check_allocation
from .._validation import check_fraction, check_positive_int
from ._galaxy_models import (
    REFERENCE_SIZE,
    Canvas,
    EdgeOnModel,
    SpiralModel,
    add_neighbours,
    jitter_color,
    render_edge_on,
    render_spiral,
)
from ._observing import Conditions, observe

__all__ = ["SYNTHETIC_CLASSES", "make_galaxies", "make_milky_way"]

#: Names of the classes :func:`make_galaxies` draws, in Galaxy10 order
#: (Galaxy10 labels 5 to 9); a label ``y`` means ``SYNTHETIC_CLASSES[y]``.
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)

_BARRED, _TIGHT, _LOOSE, _EDGE_ON, _EDGE_ON_BULGE = range(len(SYNTHETIC_CLASSES))
_SPIRALS = (_BARRED, _TIGHT, _LOOSE)

_MAX_ARMS = 4
# Canvas pixels drawn at once; about twenty float32 arrays of this many
# values are alive at a time, so a chunk needs well under 100 MB.
_CHUNK_PIXELS = 1 << 20
# Canvas-sized float32 arrays alive at once while a chunk is drawn and blurred
# (flux, its spectrum, the stretch's temporaries): a generous count.
_WORKING_COPIES = 8

# Relative RGB flux of the stellar populations.
_BULGE_RGB = np.array([1.0, 0.8, 0.58], dtype=np.float32)
_DISK_RGB = np.array([0.98, 0.88, 0.76], dtype=np.float32)
_ARM_RGB = np.array([0.82, 0.86, 1.0], dtype=np.float32)

# Drawn for every class alike: the mean stretched galaxy light, as a
# fraction of the range above the sky; a size factor that scales every
# length of a galaxy (log-normal, clipped); the strength of the radial
# colour gradient (_galaxy_models._redden_centre); each image's noise level
# over the ``noise`` argument (log-normal: survey depth varies).
_BRIGHTNESS_RANGE = (0.1, 0.46)
_SIZE_SPREAD, _SIZE_RANGE = 0.25, (0.6, 1.7)
_COLOR_GRADIENT_RANGE = (0.0, 0.12)
_NOISE_SPREAD = 0.2
_SKY_RANGE = (0.1, 0.16)
# PSF standard deviation in pixels at the reference sampling (DECaLS seeing
# of 1.2-1.5 arcsec at 0.262 arcsec per pixel, softened by the JPEG files),
# and the share of the light in its wider wing.
_PSF_SIGMA_PX = (1.5, 2.5)
_PSF_WING = 0.08
# Expected number of neighbour galaxies in a 64-pixel frame.
_NEIGHBOURS_PER_FRAME = 0.3
# Lengths that the size factor scales.
_SPIRAL_LENGTHS = (
    "bulge_radius",
    "disk_scale",
    "bar_length",
    "bar_width",
    "arm_start",
    "arm_width",
)
_EDGE_ON_LENGTHS = ("disk_scale", "bulge_radius")  # disk heights stay near the PSF

# Class-dependent parameter ranges, one (low, high) per spiral class in the
# order barred, tight, loose. Lengths are in frame units; *_flux are
# fractions of the galaxy's light.
_SPIRAL_RANGES = {
    "bulge_radius": ((0.05, 0.1), (0.05, 0.12), (0.03, 0.08)),
    "bulge_index": ((1.5, 3.5), (2.0, 4.0), (1.0, 2.5)),
    "bulge_flux": ((0.08, 0.2), (0.2, 0.4), (0.04, 0.15)),
    "arm_flux": ((0.1, 0.22), (0.1, 0.2), (0.2, 0.35)),
    "arm_width": ((0.08, 0.12), (0.05, 0.07), (0.08, 0.13)),
    "pitch_degrees": ((12.0, 24.0), (7.0, 12.0), (20.0, 32.0)),
    "knot_flux": ((0.01, 0.04), (0.005, 0.02), (0.03, 0.07)),
    "knot_density": ((0.06, 0.12), (0.04, 0.08), (0.1, 0.2)),
}


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _as_generator(random_state: Any) -> np.random.Generator:
    """Turn ``random_state`` into a Generator; ints, None and RandomState via sklearn."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    try:
        legacy = check_random_state(random_state)
    except ValueError:
        raise ValueError(
            "random_state must be None, an int in [0, 2**32 - 1], a numpy RandomState "
            f"or a numpy Generator, got {random_state!r}."
        ) from None
    return np.random.default_rng(legacy.randint(0, 2**31 - 1))


def _check_classes(classes: Any) -> np.ndarray:
    """Return the sorted class indices that ``classes`` names (indices or names)."""
    if classes is None:
        return np.arange(len(SYNTHETIC_CLASSES))
    items = [classes] if isinstance(classes, (str, Integral)) else classes
    try:
        items = list(items)
    except TypeError:
        raise TypeError(
            "classes must be None or a sequence of class indices (0-4) or names from "
            f"SYNTHETIC_CLASSES, got {classes!r}."
        ) from None
    if not items:
        raise ValueError("classes is empty; give at least one class index or name.")
    lowered = [name.lower() for name in SYNTHETIC_CLASSES]
    indices = []
    for item in items:
        if isinstance(item, str):
            if item.lower() not in lowered:
                raise ValueError(
                    f"classes contains unknown class name {item!r}; valid names are "
                    f"{list(SYNTHETIC_CLASSES)}."
                )
            indices.append(lowered.index(item.lower()))
        elif isinstance(item, Integral) and not isinstance(item, bool):
            if not 0 <= int(item) < len(SYNTHETIC_CLASSES):
                raise ValueError(
                    f"classes contains index {item!r}; class indices run from 0 to "
                    f"{len(SYNTHETIC_CLASSES) - 1} ({list(SYNTHETIC_CLASSES)})."
                )
            indices.append(int(item))
        else:
            raise TypeError(
                "classes must hold class indices (int) or names (str), got "
                f"{item!r} of type {type(item).__name__}."
            )
    if len(set(indices)) != len(indices):
        raise ValueError(f"classes names a class more than once: {classes!r}.")
    return np.array(sorted(indices))


def _by_class(
    rng: np.random.Generator, labels: np.ndarray, ranges: Sequence[tuple[float, float]]
) -> np.ndarray:
    """One uniform draw per galaxy from the ``(low, high)`` range of its class."""
    bounds = np.asarray(ranges, dtype=np.float64)[labels]
    return rng.uniform(bounds[:, 0], bounds[:, 1])


def _sample_spirals(rng: np.random.Generator, labels: np.ndarray, pixel: float) -> SpiralModel:
    """Draw parameters for spirals of the given labels (0, 1 or 2)."""
    n = len(labels)
    draw = {name: _by_class(rng, labels, ranges) for name, ranges in _SPIRAL_RANGES.items()}
    barred = labels == _BARRED
    n_arms = np.where(
        labels == _TIGHT,
        rng.choice([2, 3, 4], size=n, p=[0.6, 0.25, 0.15]),
        np.where(labels == _LOOSE, rng.choice([2, 3], size=n, p=[0.75, 0.25]), 2),
    )
    amplitudes = rng.uniform(0.7, 1.0, (n, _MAX_ARMS))
    lags = rng.normal(0.0, 0.15, (n, _MAX_ARMS)) * (n_arms > 2)[:, np.newaxis]
    # Some barred spirals show two weaker arms halfway between the main two:
    # four arms, every other one faint.
    minor = barred & (rng.random(n) < 0.3)
    n_arms = np.where(minor, 4, n_arms)
    faint = rng.uniform(0.3, 0.55, (n, 2))
    amplitudes[:, 1::2] = np.where(minor[:, np.newaxis], faint, amplitudes[:, 1::2])

    bar_length = np.where(barred, rng.uniform(0.28, 0.48, n), 0.2)
    bar_angle = rng.uniform(0.0, np.pi, n)
    bar_flux = np.where(barred, rng.uniform(0.18, 0.3, n), 0.0)
    ring_flux = np.where(barred & (rng.random(n) < 0.35), rng.uniform(0.04, 0.1, n), 0.0)
    shares = draw["bulge_flux"] + bar_flux + ring_flux + draw["arm_flux"] + draw["knot_flux"]
    return SpiralModel(
        center_x=rng.uniform(-1.0, 1.0, n) * pixel,
        center_y=rng.uniform(-1.0, 1.0, n) * pixel,
        position_angle=rng.uniform(0.0, np.pi, n),
        axis_ratio=rng.uniform(0.42, 1.0, n),  # inclinations up to 65 degrees
        bulge_radius=draw["bulge_radius"],
        bulge_index=draw["bulge_index"],
        bulge_flux=draw["bulge_flux"],
        disk_scale=rng.uniform(0.32, 0.55, n),
        disk_flux=np.maximum(1.0 - shares, 0.1),
        bar_angle=bar_angle,
        bar_length=bar_length,
        bar_width=bar_length * rng.uniform(0.22, 0.35, n),
        bar_flux=bar_flux,
        ring_flux=ring_flux,
        pitch_angle=np.deg2rad(draw["pitch_degrees"]),
        chirality=rng.choice([-1.0, 1.0], size=n),
        # A bar's arms leave from its ends; other arms from the bulge's edge.
        arm_start=np.where(barred, bar_length, rng.uniform(0.12, 0.25, n)),
        arm_phase=np.where(barred, bar_angle, rng.uniform(0.0, 2.0 * np.pi, n)),
        n_arms=n_arms,
        arm_amplitudes=amplitudes,
        arm_lags=lags,
        arm_width=draw["arm_width"],
        arm_flux=draw["arm_flux"],
        knot_density=draw["knot_density"],
        knot_flux=draw["knot_flux"],
        bulge_rgb=jitter_color(rng, _BULGE_RGB, n, 0.06),
        disk_rgb=jitter_color(rng, _DISK_RGB, n, 0.06),
        arm_rgb=jitter_color(rng, _ARM_RGB, n, 0.08),
    )


def _sample_edge_ons(rng: np.random.Generator, labels: np.ndarray, pixel: float) -> EdgeOnModel:
    """Draw parameters for edge-on galaxies of the given labels (3 or 4)."""
    n = len(labels)
    with_bulge = labels == _EDGE_ON_BULGE
    thin = rng.uniform(0.03, 0.06, n)
    dusty = rng.random(n) < np.where(with_bulge, 0.5, 0.25)
    # Seen through the whole disk, old stars and dust make an edge-on disk
    # look warmer than a face-on one; bulgeless disks hold younger stars.
    disk_base = np.where(with_bulge[:, np.newaxis], 0.5 * (_DISK_RGB + _BULGE_RGB), _DISK_RGB)
    return EdgeOnModel(
        center_x=rng.uniform(-1.0, 1.0, n) * pixel,
        center_y=rng.uniform(-1.0, 1.0, n) * pixel,
        position_angle=rng.uniform(0.0, np.pi, n),
        # Bulgeless edge-ons are the larger, thicker-glowing disks in Galaxy10.
        disk_scale=np.where(with_bulge, rng.uniform(0.3, 0.6, n), rng.uniform(0.45, 0.8, n)),
        thin_height=thin,
        thick_height=thin * np.where(with_bulge, rng.uniform(3, 5, n), rng.uniform(5, 9, n)),
        thick_fraction=rng.uniform(0.35, 0.5, n),
        inner_fraction=rng.uniform(0.1, 0.25, n),
        bulge_radius=rng.uniform(0.05, 0.1, n),
        bulge_index=rng.uniform(2.0, 4.0, n),
        bulge_axis_ratio=rng.uniform(0.7, 0.95, n),
        bulge_flux=np.where(with_bulge, rng.uniform(0.3, 0.5, n), 0.0),
        dust_depth=np.where(dusty, rng.uniform(0.6, 2.0, n), 0.0),
        dust_offset=thin * rng.uniform(-0.6, 0.6, n),
        bulge_rgb=jitter_color(rng, _BULGE_RGB, n, 0.06),
        disk_rgb=jitter_color(rng, disk_base, n, 0.05),
    )


def _vary_galaxies(
    model: Any, lengths: Sequence[str], size: np.ndarray, gradient: np.ndarray
) -> Any:
    """Scale a model's ``lengths`` by the size factors and set its colour gradients."""
    for name in lengths:
        setattr(model, name, getattr(model, name) * size)
    model.color_gradient = gradient
    return model


def _draw_galaxies(
    rng: np.random.Generator, labels: np.ndarray, canvas: Canvas, noise: float
) -> np.ndarray:
    """Finished images (n, image_size, image_size, 3) of galaxies with the given labels."""
    n = len(labels)
    pixel = 2.0 / canvas.image_size
    flux = np.empty((n, 3, canvas.side, canvas.side), dtype=np.float32)
    size = np.clip(np.exp(rng.normal(0.0, _SIZE_SPREAD, n)), *_SIZE_RANGE)
    gradient = rng.uniform(*_COLOR_GRADIENT_RANGE, size=n)
    spiral = np.isin(labels, _SPIRALS)
    if spiral.any():
        model = _sample_spirals(rng, labels[spiral], pixel)
        model = _vary_galaxies(model, _SPIRAL_LENGTHS, size[spiral], gradient[spiral])
        flux[spiral] = render_spiral(canvas, model, rng)
    if not spiral.all():
        edge_on = _sample_edge_ons(rng, labels[~spiral], pixel)
        edge_on = _vary_galaxies(edge_on, _EDGE_ON_LENGTHS, size[~spiral], gradient[~spiral])
        flux[~spiral] = render_edge_on(canvas, edge_on)
    add_neighbours(rng, flux, canvas, _NEIGHBOURS_PER_FRAME)
    scale = canvas.image_size / REFERENCE_SIZE
    conditions = Conditions(  # the draws in this order: the images depend on it
        sigma_px=rng.uniform(*_PSF_SIGMA_PX, size=n) * scale,
        brightness=rng.uniform(*_BRIGHTNESS_RANGE, size=n),
        sky=rng.uniform(*_SKY_RANGE, size=(n, 1)) + rng.normal(0.0, 0.004, size=(n, 3)),
        noise=noise * np.exp(rng.normal(0.0, _NOISE_SPREAD, size=n)),
        stars=True,
        psf_wing=_PSF_WING,
    )
    return observe(rng, flux, canvas, conditions)


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------


def make_galaxies(
    n_samples: int = 1000,
    *,
    classes: Iterable[int | str] | None = None,
    image_size: int = 64,
    noise: float = 0.04,
    random_state: int | np.random.RandomState | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw labelled synthetic galaxy images that look like Galaxy10 DECaLS crops.

    Each image shows one galaxy of one of the five classes in
    :data:`SYNTHETIC_CLASSES` (Galaxy10's spiral and edge-on classes, labels
    5 to 9 there) on a noisy sky, framed like the central 64 pixels of a
    256-pixel Galaxy10 cutout. Orientation, inclination (spirals), size,
    structure, colour and its gradient, blur, sky level, noise level,
    foreground stars and neighbour galaxies vary at random.
    The mean brightness is drawn from one distribution for every class, so
    the class cannot be told from the total light. The module docstring
    describes the light model.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images. The chosen classes get equal shares; when they do
        not divide ``n_samples``, the lowest class indices get one more.
    classes : sequence of int or str, optional
        The classes to draw, as indices into :data:`SYNTHETIC_CLASSES` or
        their names (case-insensitive). Labels are always indices into
        :data:`SYNTHETIC_CLASSES`. Default: all five.
    image_size : int, default=64
        Side of the square images in pixels, at least 8. The field of view
        is fixed: a larger size samples the same galaxy more finely.
    noise : float, default=0.04
        Typical standard deviation of the sky noise per pixel and channel,
        in [0, 1); each image's level is this times a log-normal factor
        (median 1, spread 20 %), as survey depth varies. The noise is
        Gaussian and, as in survey cutouts, correlated between neighbouring
        pixels and between channels. Galaxy10 crops have about 0.04; 0
        gives clean images (stars and neighbour galaxies remain).
    random_state : int, RandomState, Generator or None, default=None
        Seed or random number generator. An int gives the same images on
        every call.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size, 3), dtype float32
        RGB images with values in [0, 1].
    y : ndarray of shape (n_samples,), dtype int64
        Class index of each image; the classes are shuffled.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value.
    galaxysim._limits.InsufficientMemoryError
        Before drawing, if the images would not fit in the memory available
        (a MemoryError and a ValueError).

    See Also
    --------
    make_milky_way : A Milky Way query image drawn with the same model.

    Examples
    --------
    >>> from galaxysim.datasets.synthetic import make_galaxies, SYNTHETIC_CLASSES
    >>> X, y = make_galaxies(10, image_size=32, random_state=0)
    >>> X.shape, X.dtype, sorted(y.tolist())
    ((10, 32, 32, 3), dtype('float32'), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    >>> X, y = make_galaxies(4, classes=["Barred Spiral", 4], image_size=16, random_state=0)
    >>> sorted(SYNTHETIC_CLASSES[label] for label in y)
    ['Barred Spiral', 'Barred Spiral', 'Edge-on with Bulge', 'Edge-on with Bulge']
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    image_size = check_positive_int(image_size, "image_size", minimum=8)
    noise = check_fraction(noise, "noise", inclusive=True)
    class_ids = _check_classes(classes)
    rng = _as_generator(random_state)

    share, extra = divmod(n_samples, len(class_ids))
    counts = share + (np.arange(len(class_ids)) < extra)
    y = rng.permutation(np.repeat(class_ids, counts)).astype(np.int64)

    canvas = Canvas.around(image_size, _PSF_SIGMA_PX[1] * image_size / REFERENCE_SIZE)
    chunk = max(1, _CHUNK_PIXELS // canvas.side**2)
    check_allocation(
        4.0
        * 3
        * (n_samples * image_size**2 + _WORKING_COPIES * min(chunk, n_samples) * canvas.side**2),
        f"{n_samples} galaxies of {image_size}x{image_size} pixels",
        "Ask for fewer or smaller images (n_samples, image_size).",
    )
    X = np.empty((n_samples, image_size, image_size, 3), dtype=np.float32)
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        X[start:stop] = _draw_galaxies(rng, y[start:stop], canvas, noise)
    return X, y


def make_milky_way(
    image_size: int = 64,
    *,
    random_state: int | np.random.RandomState | np.random.Generator | None = 0,
) -> np.ndarray:
    """Draw a face-on Milky Way in the style of the NASA/JPL-Caltech artist's impression.

    A barred spiral seen from above on a black background, after the
    illustration by NASA/JPL-Caltech/R. Hurt (SSC/Caltech): a yellowish bar
    and bulge, two major arms (Scutum-Centaurus and Perseus) leaving the bar
    ends, two weaker minor arms between them, a bluish disk and blue and pink
    star-forming knots along the arms. It is drawn with the light model of
    :func:`make_galaxies` (without sky, noise or stars) and framed like its
    spirals and like ``load_milky_way(framing="galaxy10")``: the disk fills
    the frame, as a Galaxy10 spiral fills its 64-pixel centre crop.

    Parameters
    ----------
    image_size : int, default=64
        Side of the square image in pixels, at least 8.
    random_state : int, RandomState, Generator or None, default=0
        Places the star-forming knots; the layout of the galaxy is fixed.

    Returns
    -------
    image : ndarray of shape (image_size, image_size, 3), dtype float32
        RGB image with values in [0, 1].

    See Also
    --------
    make_galaxies : Labelled synthetic galaxies of five classes.
    galaxysim.datasets.milky_way.load_milky_way : The illustration itself.

    Examples
    --------
    >>> from galaxysim.datasets.synthetic import make_milky_way
    >>> image = make_milky_way(32)
    >>> image.shape, image.dtype
    ((32, 32, 3), dtype('float32'))
    """
    image_size = check_positive_int(image_size, "image_size", minimum=8)
    rng = _as_generator(random_state)

    def one(value: float) -> np.ndarray:
        return np.array([value])

    bar_angle = np.deg2rad(40.0)
    model = SpiralModel(
        center_x=one(0.0),
        center_y=one(0.0),
        position_angle=one(0.0),
        axis_ratio=one(1.0),
        bulge_radius=one(0.06),
        bulge_index=one(1.5),
        bulge_flux=one(0.07),
        disk_scale=one(0.45),
        disk_flux=one(0.4),
        bar_angle=one(bar_angle),
        bar_length=one(0.42),
        bar_width=one(0.11),
        bar_flux=one(0.13),
        ring_flux=one(0.0),
        pitch_angle=one(np.deg2rad(13.0)),
        chirality=one(1.0),
        arm_start=one(0.42),
        # Major arms at the bar ends; the minor arms between them trail a
        # little behind the halfway point, as in the illustration.
        arm_phase=one(bar_angle),
        n_arms=np.array([4]),
        arm_amplitudes=np.array([[1.0, 0.4, 1.0, 0.4]]),
        arm_lags=np.array([[0.0, 0.3, 0.0, 0.3]]),
        arm_width=one(0.13),
        arm_flux=one(0.3),
        knot_density=one(0.25),
        knot_flux=one(0.05),
        bulge_rgb=np.array([[1.0, 0.86, 0.55]], dtype=np.float32),
        disk_rgb=np.array([[0.72, 0.8, 1.0]], dtype=np.float32),
        arm_rgb=np.array([[0.78, 0.86, 1.0]], dtype=np.float32),
        knot_pink_fraction=0.45,
    )
    sigma_px = one(0.8 * image_size / REFERENCE_SIZE)
    canvas = Canvas.around(image_size, float(sigma_px[0]))
    flux = render_spiral(canvas, model, rng)
    conditions = Conditions(
        sigma_px=sigma_px, brightness=one(0.4), sky=np.zeros((1, 3)), noise=0.0, stars=False
    )
    image = observe(rng, flux, canvas, conditions)
    return np.ascontiguousarray(image[0])
