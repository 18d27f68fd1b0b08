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

The light is blurred by a Gaussian point-spread function (in Fourier space,
on a padded canvas so that nothing wraps around the edges), foreground stars
and sky noise (Gaussian, correlated between neighbouring pixels as in the
survey's resampled JPEG cutouts) are added, and the flux goes through an
asinh stretch (Lupton et al. 2004, as Legacy Surveys colour images do) onto
a sky level. Noise therefore shows on the sky and fades on bright parts.

Every galaxy's brightness is scaled so that the mean of its stretched light
equals a level drawn from one distribution for all classes: the classes
differ in shape and colour, not in how bright the image is on average.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.fft
from sklearn.utils import check_random_state

from .._validation import check_fraction, check_positive_int

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

# The frame (half-width 1) is a 64-pixel crop at the reference sampling.
_REFERENCE_SIZE = 64
_MAX_ARMS = 4
# Canvas pixels drawn at once; about twenty float32 arrays of this many
# values are alive at a time, so a chunk needs well under 100 MB.
_CHUNK_PIXELS = 1 << 20

# Relative RGB flux of the stellar populations.
_BULGE_RGB = np.array([1.0, 0.78, 0.52], dtype=np.float32)
_DISK_RGB = np.array([0.92, 0.88, 0.84], dtype=np.float32)
_ARM_RGB = np.array([0.62, 0.74, 1.0], dtype=np.float32)
_KNOT_BLUE_RGB = np.array([0.55, 0.72, 1.0], dtype=np.float32)
_KNOT_PINK_RGB = np.array([1.0, 0.55, 0.78], dtype=np.float32)
_STAR_RGB = np.array(
    [[1.0, 0.62, 0.42], [1.0, 0.9, 0.72], [0.95, 0.95, 1.0], [0.62, 0.76, 1.0]],
    dtype=np.float32,
)
# Dust dims blue light more than red: optical depth per channel over green's.
_DUST_REDDENING = np.array([0.75, 1.0, 1.3], dtype=np.float32).reshape(1, 3, 1, 1)

# Softening of the asinh stretch, in units of the flux that saturates.
_STRETCH_SOFTENING = 0.03
_ASINH_NORM = float(np.arcsinh(1.0 / _STRETCH_SOFTENING))
_STRETCH_SLOPE = 1.0 / (_STRETCH_SOFTENING * _ASINH_NORM)  # d stretch / d flux at 0
# Mean stretched galaxy light, as a fraction of the range above the sky;
# drawn from this interval for every class alike.
_BRIGHTNESS_RANGE = (0.12, 0.42)
_SKY_RANGE = (0.09, 0.15)
# PSF standard deviation in pixels at the reference sampling (DECaLS seeing
# of 1.2-1.5 arcsec at 0.262 arcsec per pixel, softened by the JPEG files).
_PSF_SIGMA_PX = (1.5, 2.5)
# Expected number of foreground stars in a 64-pixel frame.
_STARS_PER_FRAME = 0.6

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
            if not 0 <= item < len(SYNTHETIC_CLASSES):
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


# --------------------------------------------------------------------------
# Canvas and drawing primitives. Per-galaxy parameters are arrays of shape
# (n,), reshaped to (n, 1, 1) to broadcast against coordinate grids of shape
# (1, H, W) or (n, H, W); every primitive draws a whole batch at once.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Canvas:
    """An ``image_size`` frame inside a larger canvas that leaves room for the PSF.

    The canvas side is a fast FFT length, so blurring is cheap and the light
    a blur spreads beyond the frame does not wrap back into it.
    """

    image_size: int
    side: int
    offset: int

    @classmethod
    def around(cls, image_size: int, max_sigma_px: float) -> "_Canvas":
        margin = int(np.ceil(3.0 * max_sigma_px))
        side = scipy.fft.next_fast_len(image_size + 2 * margin, real=True)
        return cls(image_size, side, (side - image_size) // 2)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates ``x`` (1, 1, W) and ``y`` (1, H, 1) in frame units."""
        half = self.image_size / 2.0
        axis = ((np.arange(self.side) + 0.5 - self.offset - half) / half).astype(np.float32)
        return axis[np.newaxis, np.newaxis, :], axis[np.newaxis, :, np.newaxis]

    def crop(self, images: np.ndarray) -> np.ndarray:
        """The frame's pixels out of canvas-sized images (..., side, side)."""
        window = slice(self.offset, self.offset + self.image_size)
        return images[..., window, window]


def _col(values: Any) -> np.ndarray:
    """Reshape per-galaxy values (n,) to (n, 1, 1)."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _disk_plane(x, y, center_x, center_y, position_angle, axis_ratio):
    """Coordinates ``(u, v)`` in the plane of a tilted, rotated disk.

    ``u`` runs along the major axis; ``v`` is stretched by ``1 / axis_ratio``
    so that circles in the disk are circles in ``(u, v)``.
    """
    dx, dy = x - _col(center_x), y - _col(center_y)
    cos, sin = np.cos(_col(position_angle)), np.sin(_col(position_angle))
    return cos * dx + sin * dy, (cos * dy - sin * dx) / _col(axis_ratio)


def _sersic(radius: np.ndarray, effective_radius, index) -> np.ndarray:
    """Sersic profile, 1 at the centre, half the light inside ``effective_radius``."""
    n = _col(index)
    b = 2.0 * n - 1.0 / 3.0 + 0.009876 / n  # Ciotti & Bertin (1999), good for n > 0.36
    return np.exp(-b * (radius / _col(effective_radius)) ** (1.0 / n))


def _exponential(radius: np.ndarray, scale_length) -> np.ndarray:
    return np.exp(-radius / _col(scale_length))


def _sech2(z: np.ndarray, scale_height) -> np.ndarray:
    """Vertical ``sech^2(z / h)`` profile, written so that it cannot overflow."""
    e = np.exp(-2.0 * np.abs(z) / _col(scale_height))
    return 4.0 * e / (1.0 + e) ** 2


def _boxy_bar(u: np.ndarray, v: np.ndarray, angle, length, width) -> np.ndarray:
    """A bar along ``angle``: a Gaussian in a boxy (exponent 3) elliptical radius."""
    cos, sin = np.cos(_col(angle)), np.sin(_col(angle))
    along = np.abs(cos * u + sin * v) / _col(length)
    across = np.abs(cos * v - sin * u) / _col(width)
    return np.exp(-((along**3 + across**3) ** (2.0 / 3.0)))


def _ring(radius: np.ndarray, ring_radius, width) -> np.ndarray:
    return np.exp(-0.5 * ((radius - _col(ring_radius)) / _col(width)) ** 2)


def _spiral_arms(
    radius: np.ndarray,
    azimuth: np.ndarray,
    *,
    pitch_angle,
    start_radius,
    chirality,
    phase,
    n_arms,
    arm_amplitudes: np.ndarray,
    arm_lags: np.ndarray,
    arm_width,
) -> np.ndarray:
    """Logarithmic spiral arms, as a brightness map (n, H, W).

    Arm ``k`` runs along ``phi = phase + 2 pi k / n_arms + lag_k +
    chirality * ln(r / r0) / tan(pitch)``. Each arm is a Gaussian ridge
    whose width is in frame units (so it widens in angle toward the centre)
    and grows a little outward. Arms fade in
    around ``start_radius`` (the bar ends, or the edge of the bulge);
    ``chirality`` (+1 or -1) sets the winding sense. ``arm_amplitudes`` and
    ``arm_lags`` (small angular shifts) have shape (n, max_arms).

    Only the nearest arm is evaluated at each pixel: one pass over the image
    whatever the number of arms (neighbouring ridges overlap only inside
    ``start_radius``, where the arms are faded out).
    """
    r0 = _col(start_radius)
    safe_radius = np.maximum(radius, np.float32(1e-3))
    winding = _col(chirality) * np.log(safe_radius / r0) / np.tan(_col(pitch_angle))
    spacing = np.float32(2.0 * np.pi) / _col(n_arms)
    offset = azimuth - winding - _col(phase)
    nearest = np.round(offset / spacing)
    arm = (nearest.astype(np.int64) % np.asarray(n_arms, dtype=np.int64).reshape(-1, 1, 1))
    arm += (np.arange(len(arm)) * arm_amplitudes.shape[1]).reshape(-1, 1, 1)
    amplitude = np.asarray(arm_amplitudes, dtype=np.float32).ravel()[arm]
    offset -= nearest * spacing + np.asarray(arm_lags, dtype=np.float32).ravel()[arm]
    width = _col(arm_width) * (0.6 + 0.8 * np.minimum(safe_radius, 1.0))
    ridge = amplitude * np.exp(-0.5 * (offset * safe_radius / width) ** 2)
    return ridge * (1.0 - np.exp(-((safe_radius / r0) ** 4)))


def _unit_flux(component: np.ndarray) -> np.ndarray:
    """Scale each image of a component to a total of 1 (an empty one stays 0)."""
    total = component.sum(axis=(1, 2), keepdims=True)
    return component / np.where(total > 0, total, np.float32(1.0))


def _colorize(components: Sequence[np.ndarray], colors: Sequence[np.ndarray]) -> np.ndarray:
    """Sum (n, H, W) components times their (n, 3) colours into (n, 3, H, W) flux."""
    n, height, width = components[0].shape
    stacked = np.stack(components, axis=1).reshape(n, len(components), height * width)
    palette = np.stack(colors, axis=2).astype(np.float32)  # (n, 3, n_components)
    return np.matmul(palette, stacked).reshape(n, 3, height, width)


def _jitter_color(
    rng: np.random.Generator, base: np.ndarray, n: int, scale: float
) -> np.ndarray:
    """``n`` RGB colours from ``base`` ((3,) or (n, 3)), each channel times a log-normal factor."""
    factors = np.exp(rng.normal(0.0, scale, (n, 3)))
    return (np.broadcast_to(base, (n, 3)) * factors).astype(np.float32)


def _star_forming_knots(
    rng: np.random.Generator, arms: np.ndarray, density, pink_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Point-like knots on the arms: maps (blue, pink), each (n, H, W).

    A pixel holds a knot with probability ``density * arms / max(arms)``,
    with an exponentially distributed flux; the PSF later makes it a blob.
    """
    peak = arms.max(axis=(1, 2), keepdims=True)
    chance = _col(density) * arms / np.where(peak > 0, peak, np.float32(1.0))
    knots = np.where(
        rng.random(arms.shape, dtype=np.float32) < chance,
        rng.standard_exponential(arms.shape, dtype=np.float32),
        np.float32(0.0),
    )
    pink = rng.random(arms.shape, dtype=np.float32) < pink_fraction
    return np.where(pink, np.float32(0.0), knots), np.where(pink, knots, np.float32(0.0))


# --------------------------------------------------------------------------
# Galaxy models
# --------------------------------------------------------------------------


@dataclass
class _SpiralModel:
    """Parameters of n spiral galaxies (barred when ``bar_flux > 0``).

    Arrays of shape (n,) unless noted; lengths in frame units, angles in
    radians, ``*_flux`` the share of the galaxy's light in a component.
    """

    center_x: np.ndarray
    center_y: np.ndarray
    position_angle: np.ndarray
    axis_ratio: np.ndarray  # cos(inclination)
    bulge_radius: np.ndarray
    bulge_index: np.ndarray
    bulge_flux: np.ndarray
    disk_scale: np.ndarray
    disk_flux: np.ndarray
    bar_angle: np.ndarray  # in the disk plane
    bar_length: np.ndarray
    bar_width: np.ndarray
    bar_flux: np.ndarray
    ring_flux: np.ndarray
    pitch_angle: np.ndarray
    chirality: np.ndarray
    arm_start: np.ndarray
    arm_phase: np.ndarray
    n_arms: np.ndarray
    arm_amplitudes: np.ndarray  # (n, _MAX_ARMS)
    arm_lags: np.ndarray  # (n, _MAX_ARMS)
    arm_width: np.ndarray
    arm_flux: np.ndarray
    knot_density: np.ndarray
    knot_flux: np.ndarray
    bulge_rgb: np.ndarray  # (n, 3)
    disk_rgb: np.ndarray  # (n, 3)
    arm_rgb: np.ndarray  # (n, 3)
    knot_pink_fraction: float = 0.25


@dataclass
class _EdgeOnModel:
    """Parameters of n edge-on disk galaxies (with a bulge when ``bulge_flux > 0``)."""

    center_x: np.ndarray
    center_y: np.ndarray
    position_angle: np.ndarray
    disk_scale: np.ndarray
    thin_height: np.ndarray
    thick_height: np.ndarray
    thick_fraction: np.ndarray
    inner_fraction: np.ndarray
    bulge_radius: np.ndarray
    bulge_index: np.ndarray
    bulge_axis_ratio: np.ndarray
    bulge_flux: np.ndarray
    dust_depth: np.ndarray
    dust_offset: np.ndarray
    bulge_rgb: np.ndarray  # (n, 3)
    disk_rgb: np.ndarray  # (n, 3)


def _render_spiral(
    canvas: _Canvas, model: _SpiralModel, rng: np.random.Generator
) -> np.ndarray:
    """Unblurred flux (n, 3, side, side) of spiral galaxies."""
    x, y = canvas.grid()
    center = (model.center_x, model.center_y, model.position_angle)
    u, v = _disk_plane(x, y, *center, model.axis_ratio)
    radius = np.sqrt(u**2 + v**2)
    # A bulge is a spheroid, so it looks rounder than the tilted disk.
    bulge_u, bulge_v = _disk_plane(x, y, *center, 1.0 - 0.35 * (1.0 - model.axis_ratio))
    bulge = _sersic(np.sqrt(bulge_u**2 + bulge_v**2), model.bulge_radius, model.bulge_index)
    bar = _boxy_bar(u, v, model.bar_angle, model.bar_length, model.bar_width)
    arms = _spiral_arms(
        radius,
        np.arctan2(v, u),
        pitch_angle=model.pitch_angle,
        start_radius=model.arm_start,
        chirality=model.chirality,
        phase=model.arm_phase,
        n_arms=model.n_arms,
        arm_amplitudes=model.arm_amplitudes,
        arm_lags=model.arm_lags,
        arm_width=model.arm_width,
    ) * _exponential(radius, 1.3 * model.disk_scale)
    knots_blue, knots_pink = _star_forming_knots(
        rng, arms, model.knot_density, model.knot_pink_fraction
    )
    knot_total = (knots_blue + knots_pink).sum(axis=(1, 2), keepdims=True)
    knot_scale = _col(model.knot_flux) / np.where(knot_total > 0, knot_total, np.float32(1.0))
    n = len(model.center_x)
    components = [
        (bulge, model.bulge_flux, model.bulge_rgb),
        (_exponential(radius, model.disk_scale), model.disk_flux, model.disk_rgb),
        (bar, model.bar_flux, model.bulge_rgb),
        (_ring(radius, model.arm_start, 0.25 * model.arm_start), model.ring_flux, model.arm_rgb),
        (arms, model.arm_flux, model.arm_rgb),
    ]
    maps = [_unit_flux(image) * _col(flux) for image, flux, _ in components]
    colors = [color for _, _, color in components]
    maps += [knots_blue * knot_scale, knots_pink * knot_scale]
    colors += [np.broadcast_to(_KNOT_BLUE_RGB, (n, 3)), np.broadcast_to(_KNOT_PINK_RGB, (n, 3))]
    return _colorize(maps, colors)


def _render_edge_on(canvas: _Canvas, model: _EdgeOnModel) -> np.ndarray:
    """Unblurred flux (n, 3, side, side) of edge-on disk galaxies."""
    x, y = canvas.grid()
    edge_on = np.ones_like(model.center_x)  # no foreshortening across the disk
    u, z = _disk_plane(x, y, model.center_x, model.center_y, model.position_angle, edge_on)
    # Seen edge-on, an exponential disk's light is flat-topped at the centre;
    # a softened radius reproduces that.
    scale = _col(model.disk_scale)
    along = np.exp(-np.sqrt(u**2 + (0.5 * scale) ** 2) / scale)
    inner = np.exp(-np.sqrt(u**2 + (0.25 * scale) ** 2) / (0.5 * scale))
    bulge_radius = np.sqrt(u**2 + (z / _col(model.bulge_axis_ratio)) ** 2)
    bulge = _sersic(bulge_radius, model.bulge_radius, model.bulge_index)
    disk_flux = 1.0 - model.bulge_flux
    # Old stars make the inner disk and the thick disk redder than the thin disk.
    old_rgb = 0.5 * (model.disk_rgb + model.bulge_rgb)
    thin_flux = disk_flux * (1.0 - model.thick_fraction - model.inner_fraction)
    components = [
        (along * _sech2(z, model.thin_height), thin_flux, model.disk_rgb),
        (along * _sech2(z, model.thick_height), disk_flux * model.thick_fraction, old_rgb),
        (
            inner * _sech2(z, 1.5 * model.thin_height),
            disk_flux * model.inner_fraction,
            model.bulge_rgb,
        ),
        (bulge, model.bulge_flux, model.bulge_rgb),
    ]
    flux = _colorize(
        [_unit_flux(image) * _col(share) for image, share, _ in components],
        [color for _, _, color in components],
    )
    # A dust lane just off the mid-plane (the disk is not exactly edge-on),
    # deepest where the disk is densest.
    lane = np.exp(-0.5 * ((z - _col(model.dust_offset)) / _col(0.6 * model.thin_height)) ** 2)
    depth = _col(model.dust_depth) * lane * _exponential(np.abs(u), 2.0 * model.disk_scale)
    return flux * np.exp(-depth[:, np.newaxis] * _DUST_REDDENING)


def _by_class(
    rng: np.random.Generator, labels: np.ndarray, ranges: Sequence[tuple[float, float]]
) -> np.ndarray:
    """One uniform draw per galaxy from the ``(low, high)`` range of its class."""
    bounds = np.asarray(ranges, dtype=np.float64)[labels]
    return rng.uniform(bounds[:, 0], bounds[:, 1])


def _sample_spirals(
    rng: np.random.Generator, labels: np.ndarray, pixel: float
) -> _SpiralModel:
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
    return _SpiralModel(
        center_x=rng.uniform(-1.0, 1.0, n) * pixel,
        center_y=rng.uniform(-1.0, 1.0, n) * pixel,
        position_angle=rng.uniform(0.0, np.pi, n),
        axis_ratio=rng.uniform(0.5, 1.0, n),  # inclinations up to 60 degrees
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
        bulge_rgb=_jitter_color(rng, _BULGE_RGB, n, 0.06),
        disk_rgb=_jitter_color(rng, _DISK_RGB, n, 0.06),
        arm_rgb=_jitter_color(rng, _ARM_RGB, n, 0.08),
    )


def _sample_edge_ons(
    rng: np.random.Generator, labels: np.ndarray, pixel: float
) -> _EdgeOnModel:
    """Draw parameters for edge-on galaxies of the given labels (3 or 4)."""
    n = len(labels)
    with_bulge = labels == _EDGE_ON_BULGE
    thin = rng.uniform(0.03, 0.06, n)
    dusty = rng.random(n) < np.where(with_bulge, 0.5, 0.25)
    # Seen through the whole disk, old stars and dust make an edge-on disk
    # look warmer than a face-on one; bulgeless disks hold younger stars.
    disk_base = np.where(with_bulge[:, np.newaxis], 0.5 * (_DISK_RGB + _BULGE_RGB), _DISK_RGB)
    return _EdgeOnModel(
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
        bulge_rgb=_jitter_color(rng, _BULGE_RGB, n, 0.06),
        disk_rgb=_jitter_color(rng, disk_base, n, 0.05),
    )


# --------------------------------------------------------------------------
# Observation: PSF, stars, stretch, sky and noise
# --------------------------------------------------------------------------


def _gaussian_blur(images: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Blur each image of a batch (n, C, H, W) by its own Gaussian PSF (sigma in pixels)."""
    height, width = images.shape[-2:]
    fy = np.fft.fftfreq(height).astype(np.float32)[:, np.newaxis]
    fx = np.fft.rfftfreq(width).astype(np.float32)[np.newaxis, :]
    transfer = np.exp(-2.0 * np.pi**2 * _col(sigma_px) ** 2 * (fy**2 + fx**2))
    spectrum = scipy.fft.rfft2(images) * transfer[:, np.newaxis]
    return scipy.fft.irfft2(spectrum, s=(height, width)).astype(np.float32, copy=False)


def _stretch(flux: np.ndarray) -> np.ndarray:
    """asinh stretch of RGB flux (n, 3, H, W) into [-1, 1], as survey colour images use.

    The stretch acts on the mean of the three channels and scales them alike
    (Lupton et al. 2004), so faint light keeps its colour; flux 1 saturates.
    A saturated pixel is the average of clipping each channel (which bleaches
    a bright core white) and dividing by its largest channel (which keeps its
    hue), so bright cores come out pale yellow, as in Legacy Surveys images.
    The stretch is odd, so noise around zero flux stays symmetric.
    """
    magnitude = np.maximum(np.abs(flux.mean(axis=1, keepdims=True)), np.float32(1e-6))
    softening = np.float32(_STRETCH_SOFTENING)
    stretched = flux * (np.arcsinh(magnitude / softening) / (np.float32(_ASINH_NORM) * magnitude))
    peak = np.maximum(stretched.max(axis=1, keepdims=True), np.float32(1.0))
    return np.float32(0.5) * (np.minimum(stretched, np.float32(1.0)) + stretched / peak)


def _brightness_gain(flux: np.ndarray, target: np.ndarray, n_steps: int = 12) -> np.ndarray:
    """Per-image gain ``g`` with ``mean(stretch(g * flux)) == target``.

    The mean grows with ``g``, so bisection on ``log g`` (all images at once)
    finds it; 12 halvings of the bracket pin ``g`` to 0.3 %. ``flux`` may be
    a subsample: the mean of a blurred image hardly changes.
    """
    peak = flux.reshape(len(flux), -1).max(axis=1)
    scale = 1.0 / np.where(peak > 0, peak, 1.0)
    # Gains that bring a galaxy's brightest pixel to 0.05 ... 20000 times
    # saturation span every galaxy the samplers draw.
    low = np.full(len(flux), np.log(0.05))
    high = np.full(len(flux), np.log(2e4))
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        mean = _stretch(flux * _col(scale * np.exp(middle))[:, np.newaxis]).mean(axis=(1, 2, 3))
        too_bright = mean > target
        high = np.where(too_bright, middle, high)
        low = np.where(too_bright, low, middle)
    return scale * np.exp(0.5 * (low + high))


def _add_stars(rng: np.random.Generator, light: np.ndarray, sigma_px: np.ndarray) -> None:
    """Add a Poisson number of foreground stars to ``light`` (n, 3, H, W) in place.

    Stars are few, so each is drawn directly as a Gaussian stamp of its
    image's PSF instead of going through the FFT blur; a stamp may hang over
    the edge of the frame.
    """
    n, _, height, width = light.shape
    reach = int(np.ceil(3.0 * sigma_px.max()))
    counts = rng.poisson(_STARS_PER_FRAME * height * width / _REFERENCE_SIZE**2, size=n)
    owner = np.repeat(np.arange(n), counts)
    rows = rng.uniform(-reach, height + reach, size=owner.size)
    cols = rng.uniform(-reach, width + reach, size=owner.size)
    # Peak brightness from just above the noise to saturated (1 saturates),
    # the same at every sampling.
    peak = np.exp(rng.uniform(np.log(0.02), np.log(2.5), size=owner.size))
    colors = _STAR_RGB[rng.integers(0, len(_STAR_RGB), size=owner.size)]
    steps = np.arange(-reach, reach + 1)
    top, left = np.floor(rows).astype(int), np.floor(cols).astype(int)
    sigma = sigma_px[owner][:, np.newaxis]
    profile_y = np.exp(-0.5 * ((top[:, None] + steps + 0.5 - rows[:, None]) / sigma) ** 2)
    profile_x = np.exp(-0.5 * ((left[:, None] + steps + 0.5 - cols[:, None]) / sigma) ** 2)
    stamps = peak[:, None, None] * profile_y[:, :, None] * profile_x[:, None, :]
    # Stamp into a frame with a margin wide enough for every stamp, then crop.
    margin = 2 * reach
    canvas = np.zeros((n, 3, height + 2 * margin, width + 2 * margin), dtype=np.float32)
    index = (
        owner[:, None, None],
        (top[:, None] + steps + margin)[:, :, None],
        (left[:, None] + steps + margin)[:, None, :],
    )
    for channel in range(3):
        light_of_channel = (stamps * colors[:, channel, None, None]).astype(np.float32)
        np.add.at(canvas[:, channel], index, light_of_channel)
    light += canvas[:, :, margin:margin + height, margin:margin + width]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Gaussian noise (..., H, W), correlated between neighbouring pixels.

    Survey cutouts are resampled and JPEG-compressed, so their noise is
    blotchy: in Galaxy10 crops neighbouring sky pixels correlate by about
    0.55 and pixels two apart by under 0.1. A separable [a, 1, a] filter
    with a = 0.35 gives 0.56 and 0.10.
    """
    a = np.float32(0.35)
    white = rng.standard_normal((*shape[:-2], shape[-2] + 2, shape[-1] + 2), dtype=np.float32)
    rows = a * white[..., :-2, :] + white[..., 1:-1, :] + a * white[..., 2:, :]
    smooth = a * rows[..., :-2] + rows[..., 1:-1] + a * rows[..., 2:]
    return smooth / (1 + 2 * a**2)  # each pass scales the std by sqrt(1 + 2 a^2)


def _observe(
    rng: np.random.Generator,
    flux: np.ndarray,
    canvas: _Canvas,
    *,
    sigma_px: np.ndarray,
    brightness: np.ndarray,
    sky: np.ndarray,
    noise: float,
    stars: bool,
) -> np.ndarray:
    """Turn canvas flux (n, 3, side, side) into finished images (n, H, W, 3) in [0, 1].

    ``brightness`` (n,) is the mean stretched galaxy light and ``sky``
    (n, 3) the sky level; ``stars`` adds foreground stars.
    """
    galaxy = canvas.crop(_gaussian_blur(flux, sigma_px))
    # A 16 x 16 subsample sets the gain to within 0.1 % of the full image's.
    step = max(1, canvas.image_size // 16)
    gain = _brightness_gain(galaxy[:, :, ::step, ::step], brightness)
    light = galaxy * _col(gain)[:, np.newaxis]
    if stars:
        _add_stars(rng, light, sigma_px)
    sky_level = sky.astype(np.float32)[:, :, np.newaxis, np.newaxis]
    if noise > 0:
        # Noise enters with the light, before the stretch, so it is as strong
        # as asked on the sky and compressed on bright parts, as in survey
        # images. Near zero the stretch multiplies by _STRETCH_SLOPE.
        flux_noise = np.float32(noise) / (np.float32(_STRETCH_SLOPE) * (1.0 - sky_level))
        light += flux_noise * _smooth_noise(rng, light.shape)
    images = sky_level + (1.0 - sky_level) * _stretch(light)
    np.clip(images, 0.0, 1.0, out=images)
    return images.transpose(0, 2, 3, 1)


def _draw_galaxies(
    rng: np.random.Generator, labels: np.ndarray, canvas: _Canvas, noise: float
) -> np.ndarray:
    """Finished images (n, image_size, image_size, 3) of galaxies with the given labels."""
    n = len(labels)
    pixel = 2.0 / canvas.image_size
    flux = np.empty((n, 3, canvas.side, canvas.side), dtype=np.float32)
    spiral = np.isin(labels, _SPIRALS)
    if spiral.any():
        flux[spiral] = _render_spiral(canvas, _sample_spirals(rng, labels[spiral], pixel), rng)
    if not spiral.all():
        flux[~spiral] = _render_edge_on(canvas, _sample_edge_ons(rng, labels[~spiral], pixel))
    scale = canvas.image_size / _REFERENCE_SIZE
    return _observe(
        rng,
        flux,
        canvas,
        sigma_px=rng.uniform(*_PSF_SIGMA_PX, size=n) * scale,
        brightness=rng.uniform(*_BRIGHTNESS_RANGE, size=n),
        sky=rng.uniform(*_SKY_RANGE, size=(n, 1)) + rng.normal(0.0, 0.004, size=(n, 3)),
        noise=noise,
        stars=True,
    )


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
    structure, colour, blur, sky level and foreground stars vary at random.
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
        Standard deviation of the sky noise per pixel and channel, in
        [0, 1); the noise is Gaussian and, as in survey cutouts, correlated
        between neighbouring pixels. Galaxy10 crops have about 0.04; 0 gives
        clean images.
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

    canvas = _Canvas.around(image_size, _PSF_SIGMA_PX[1] * image_size / _REFERENCE_SIZE)
    chunk = max(1, _CHUNK_PIXELS // canvas.side**2)
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
    model = _SpiralModel(
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
    sigma_px = one(0.8 * image_size / _REFERENCE_SIZE)
    canvas = _Canvas.around(image_size, float(sigma_px[0]))
    image = _observe(
        rng,
        _render_spiral(canvas, model, rng),
        canvas,
        sigma_px=sigma_px,
        brightness=one(0.4),
        sky=np.zeros((1, 3)),
        noise=0.0,
        stars=False,
    )
    return np.ascontiguousarray(image[0])
