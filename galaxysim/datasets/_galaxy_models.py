"""Drawing galaxy light: the surface-brightness models of the built-in galaxies.

Package-private: serves :mod:`~galaxysim.datasets.synthetic` and
:mod:`~galaxysim.datasets._observing`.

Per-galaxy parameters are arrays of shape (n,), reshaped to (n, 1, 1) to
broadcast against coordinate grids of shape (1, H, W) or (n, H, W); every
primitive draws a whole batch at once. :mod:`~galaxysim.datasets.synthetic`
samples the parameters and :mod:`~galaxysim.datasets._observing` turns the
light into survey-like images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

# The frame (half-width 1) is a 64-pixel crop at the reference sampling.
REFERENCE_SIZE = 64
_KNOT_BLUE_RGB = np.array([0.55, 0.72, 1.0], dtype=np.float32)
_KNOT_PINK_RGB = np.array([1.0, 0.55, 0.78], dtype=np.float32)
# Dust dims blue light more than red: optical depth per channel over green's.
_DUST_REDDENING = np.array([0.75, 1.0, 1.3], dtype=np.float32).reshape(1, 3, 1, 1)

# --------------------------------------------------------------------------
# Canvas and drawing primitives. Per-galaxy parameters are arrays of shape
# (n,), reshaped to (n, 1, 1) to broadcast against coordinate grids of shape
# (1, H, W) or (n, H, W); every primitive draws a whole batch at once.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Canvas:
    """An ``image_size`` frame inside a larger canvas that leaves room for the PSF.

    The canvas side is a fast FFT length, so blurring is cheap and the light
    a blur spreads beyond the frame does not wrap back into it.
    """

    image_size: int
    side: int
    offset: int

    @classmethod
    def around(cls, image_size: int, max_sigma_px: float) -> Canvas:
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


def column(values: Any) -> np.ndarray:
    """Reshape per-galaxy values (n,) to (n, 1, 1)."""
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)


def _disk_plane(x, y, center_x, center_y, position_angle, axis_ratio):
    """Coordinates ``(u, v)`` in the plane of a tilted, rotated disk.

    ``u`` runs along the major axis; ``v`` is stretched by ``1 / axis_ratio``
    so that circles in the disk are circles in ``(u, v)``.
    """
    dx, dy = x - column(center_x), y - column(center_y)
    cos, sin = np.cos(column(position_angle)), np.sin(column(position_angle))
    return cos * dx + sin * dy, (cos * dy - sin * dx) / column(axis_ratio)


def _sersic(radius: np.ndarray, effective_radius, index) -> np.ndarray:
    """Sersic profile, 1 at the centre, half the light inside ``effective_radius``."""
    n = column(index)
    b = 2.0 * n - 1.0 / 3.0 + 0.009876 / n  # Ciotti & Bertin (1999), good for n > 0.36
    return np.exp(-b * (radius / column(effective_radius)) ** (1.0 / n))


def _exponential(radius: np.ndarray, scale_length) -> np.ndarray:
    return np.exp(-radius / column(scale_length))


def _sech2(z: np.ndarray, scale_height) -> np.ndarray:
    """Vertical ``sech^2(z / h)`` profile, written so that it cannot overflow."""
    e = np.exp(-2.0 * np.abs(z) / column(scale_height))
    return 4.0 * e / (1.0 + e) ** 2


def _boxy_bar(u: np.ndarray, v: np.ndarray, angle, length, width) -> np.ndarray:
    """A bar along ``angle``: a Gaussian in a boxy (exponent 3) elliptical radius."""
    cos, sin = np.cos(column(angle)), np.sin(column(angle))
    along = np.abs(cos * u + sin * v) / column(length)
    across = np.abs(cos * v - sin * u) / column(width)
    return np.exp(-((along**3 + across**3) ** (2.0 / 3.0)))


def _ring(radius: np.ndarray, ring_radius, width) -> np.ndarray:
    return np.exp(-0.5 * ((radius - column(ring_radius)) / column(width)) ** 2)


def _spiral_arms(radius: np.ndarray, azimuth: np.ndarray, model: SpiralModel) -> np.ndarray:
    """Logarithmic spiral arms, as a brightness map (n, H, W).

    Arm ``k`` runs along ``phi = arm_phase + 2 pi k / n_arms + lag_k +
    chirality * ln(r / r0) / tan(pitch_angle)`` (the fields of ``model``).
    Each arm is a Gaussian ridge whose width is in frame units (so it widens
    in angle toward the centre) and grows a little outward. Arms fade in
    around ``arm_start`` (the bar ends, or the edge of the bulge);
    ``chirality`` (+1 or -1) sets the winding sense. ``arm_amplitudes`` and
    ``arm_lags`` (small angular shifts) have shape (n, max_arms).

    Only the nearest arm is evaluated at each pixel: one pass over the image
    whatever the number of arms (neighbouring ridges overlap only inside
    ``start_radius``, where the arms are faded out).
    """
    n_arms, arm_amplitudes, arm_lags = model.n_arms, model.arm_amplitudes, model.arm_lags
    r0 = column(model.arm_start)
    safe_radius = np.maximum(radius, np.float32(1e-3))
    winding = column(model.chirality) * np.log(safe_radius / r0) / np.tan(column(model.pitch_angle))
    spacing = np.float32(2.0 * np.pi) / column(n_arms)
    offset = azimuth - winding - column(model.arm_phase)
    nearest = np.round(offset / spacing)
    arm = nearest.astype(np.int64) % np.asarray(n_arms, dtype=np.int64).reshape(-1, 1, 1)
    arm += (np.arange(len(arm)) * arm_amplitudes.shape[1]).reshape(-1, 1, 1)
    amplitude = np.asarray(arm_amplitudes, dtype=np.float32).ravel()[arm]
    offset -= nearest * spacing + np.asarray(arm_lags, dtype=np.float32).ravel()[arm]
    width = column(model.arm_width) * (0.6 + 0.8 * np.minimum(safe_radius, 1.0))
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


def jitter_color(rng: np.random.Generator, base: np.ndarray, n: int, scale: float) -> np.ndarray:
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
    chance = column(density) * arms / np.where(peak > 0, peak, np.float32(1.0))
    knots = np.where(
        rng.random(arms.shape, dtype=np.float32) < chance,
        rng.standard_exponential(arms.shape, dtype=np.float32),
        np.float32(0.0),
    )
    pink = rng.random(arms.shape, dtype=np.float32) < pink_fraction
    return np.where(pink, np.float32(0.0), knots), np.where(pink, knots, np.float32(0.0))


def _redden_centre(flux: np.ndarray, radius: np.ndarray, scale, strength) -> np.ndarray:
    """Give flux (n, 3, H, W) a radial colour gradient: a redder centre, bluer outskirts.

    Old, metal-rich stars crowd galaxy centres and young ones the outer disk,
    so real galaxies redden inward beyond what their components' colours
    give. Red is multiplied and blue divided by ``exp(strength * (0.5 - x))``
    where ``x`` is the radius in units of ``scale`` (capped at 2.5): colours
    are unchanged half a scale length out. ``strength`` is per galaxy (n,).
    """
    tilt = np.exp(column(strength) * (np.float32(0.5) - np.minimum(radius / column(scale), 2.5)))
    flux[:, 0] *= tilt
    flux[:, 2] /= tilt
    return flux


# --------------------------------------------------------------------------
# Galaxy models
# --------------------------------------------------------------------------


@dataclass
class SpiralModel:
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
    color_gradient: np.ndarray | None = None  # see _redden_centre


@dataclass
class EdgeOnModel:
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
    color_gradient: np.ndarray | None = None  # see _redden_centre


def render_spiral(canvas: Canvas, model: SpiralModel, rng: np.random.Generator) -> np.ndarray:
    """Unblurred flux (n, 3, side, side) of spiral galaxies."""
    x, y = canvas.grid()
    center = (model.center_x, model.center_y, model.position_angle)
    u, v = _disk_plane(x, y, *center, model.axis_ratio)
    radius = np.sqrt(u**2 + v**2)
    # A bulge is a spheroid, so it looks rounder than the tilted disk.
    bulge_u, bulge_v = _disk_plane(x, y, *center, 1.0 - 0.35 * (1.0 - model.axis_ratio))
    bulge = _sersic(np.sqrt(bulge_u**2 + bulge_v**2), model.bulge_radius, model.bulge_index)
    bar = _boxy_bar(u, v, model.bar_angle, model.bar_length, model.bar_width)
    arms = _spiral_arms(radius, np.arctan2(v, u), model) * _exponential(
        radius, 1.3 * model.disk_scale
    )
    knots_blue, knots_pink = _star_forming_knots(
        rng, arms, model.knot_density, model.knot_pink_fraction
    )
    knot_total = (knots_blue + knots_pink).sum(axis=(1, 2), keepdims=True)
    knot_scale = column(model.knot_flux) / np.where(knot_total > 0, knot_total, np.float32(1.0))
    n = len(model.center_x)
    components = [
        (bulge, model.bulge_flux, model.bulge_rgb),
        (_exponential(radius, model.disk_scale), model.disk_flux, model.disk_rgb),
        (bar, model.bar_flux, model.bulge_rgb),
        (_ring(radius, model.arm_start, 0.25 * model.arm_start), model.ring_flux, model.arm_rgb),
        (arms, model.arm_flux, model.arm_rgb),
    ]
    maps = [_unit_flux(image) * column(flux) for image, flux, _ in components]
    colors = [color for _, _, color in components]
    maps += [knots_blue * knot_scale, knots_pink * knot_scale]
    colors += [np.broadcast_to(_KNOT_BLUE_RGB, (n, 3)), np.broadcast_to(_KNOT_PINK_RGB, (n, 3))]
    flux = _colorize(maps, colors)
    if model.color_gradient is None:
        return flux
    return _redden_centre(flux, radius, model.disk_scale, model.color_gradient)


def render_edge_on(canvas: Canvas, model: EdgeOnModel) -> np.ndarray:
    """Unblurred flux (n, 3, side, side) of edge-on disk galaxies."""
    x, y = canvas.grid()
    edge_on = np.ones_like(model.center_x)  # no foreshortening across the disk
    u, z = _disk_plane(x, y, model.center_x, model.center_y, model.position_angle, edge_on)
    # Seen edge-on, an exponential disk's light is flat-topped at the centre;
    # a softened radius reproduces that.
    scale = column(model.disk_scale)
    along = np.exp(-np.sqrt(u**2 + (0.5 * scale) ** 2) / scale)
    inner = np.exp(-np.sqrt(u**2 + (0.25 * scale) ** 2) / (0.5 * scale))
    bulge_radius = np.sqrt(u**2 + (z / column(model.bulge_axis_ratio)) ** 2)
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
        [_unit_flux(image) * column(share) for image, share, _ in components],
        [color for _, _, color in components],
    )
    # A dust lane just off the mid-plane (the disk is not exactly edge-on),
    # deepest where the disk is densest.
    lane = np.exp(-0.5 * ((z - column(model.dust_offset)) / column(0.6 * model.thin_height)) ** 2)
    depth = column(model.dust_depth) * lane * _exponential(np.abs(u), 2.0 * model.disk_scale)
    flux *= np.exp(-depth[:, np.newaxis] * _DUST_REDDENING)
    if model.color_gradient is None:
        return flux
    radius = np.sqrt(u**2 + z**2)
    # The bright inner disk is short next to the scale length along the disk.
    return _redden_centre(flux, radius, 0.3 * model.disk_scale, model.color_gradient)


# --------------------------------------------------------------------------
# Neighbours: small, faint galaxies elsewhere in the frame
# --------------------------------------------------------------------------

# Colours of neighbour galaxies: distant early types (red, orange), nearer
# disks (whitish, blue).
_NEIGHBOUR_RGB = np.array(
    [[1.0, 0.6, 0.4], [1.0, 0.78, 0.58], [0.95, 0.9, 0.85], [0.7, 0.8, 1.0]], dtype=np.float32
)
# Half-light radii (frame units) and fluxes (shares of the main galaxy's
# light) of neighbours; radii below _SMALL_NEIGHBOUR get a smaller stamp.
_NEIGHBOUR_RADIUS = (0.015, 0.2)
_SMALL_NEIGHBOUR = 0.05
_NEIGHBOUR_FLUX = (0.003, 0.08)


def add_neighbours(
    rng: np.random.Generator, flux: np.ndarray, canvas: Canvas, per_frame: float
) -> None:
    """Add small, faint neighbour galaxies to unblurred canvas flux (n, 3, side, side) in place.

    A Poisson number per image (``per_frame`` on average in the frame)
    lands anywhere on the canvas, so some hang over the frame's edges or
    overlap the main galaxy. Each is an elliptical Sersic profile (index
    0.8-3) of log-uniform half-light radius; its flux, a share of the main
    galaxy's (about 1), grows with its radius. The PSF blur comes later.
    """
    n, _, side, _ = flux.shape
    counts = rng.poisson(per_frame * (side / canvas.image_size) ** 2, size=n)
    owner = np.repeat(np.arange(n), counts)
    m = owner.size
    half = canvas.image_size / 2.0  # pixels per frame unit
    log_radius, log_flux = np.log(_NEIGHBOUR_RADIUS), np.log(_NEIGHBOUR_FLUX)
    radius = np.exp(rng.uniform(log_radius[0], log_radius[1], size=m))
    share = np.exp(rng.uniform(log_flux[0], log_flux[1], size=m))
    share *= np.sqrt(radius / _NEIGHBOUR_RADIUS[1])
    rgb = jitter_color(rng, _NEIGHBOUR_RGB[rng.integers(0, len(_NEIGHBOUR_RGB), size=m)], m, 0.08)
    shape = (
        rng.uniform(0.0, side, size=(2, m)),  # centre row, column (canvas pixels)
        radius * half,
        rng.uniform(0.8, 3.0, size=m),  # Sersic index
        rng.uniform(0.3, 1.0, size=m),  # axis ratio
        rng.uniform(0.0, np.pi, size=m),  # position angle
    )
    small = radius < _SMALL_NEIGHBOUR
    for group in (small, ~small):
        if group.any():
            reach = int(np.ceil(4.0 * (radius[group].max() * half))) + 1
            chosen = [part[..., group] for part in shape]
            _stamp(flux, owner[group], share[group, None] * rgb[group], reach, chosen)


def _stamp(flux, owner, rgb_flux, reach, shape) -> None:
    """Add Sersic stamps of total RGB flux ``rgb_flux`` (m, 3) to ``flux`` of their ``owner``.

    ``shape`` is ``(centre, radius_px, index, axis_ratio, angle)``: the stamps'
    centres (2, m) in canvas pixels, then their Sersic radii, indices, axis
    ratios and position angles (m,).
    """
    centre, radius_px, index, axis_ratio, angle = shape
    side = flux.shape[-1]
    steps = np.arange(-reach, reach + 1)
    rows = np.floor(centre[0]).astype(np.int64)[:, None] + steps  # (m, S)
    cols = np.floor(centre[1]).astype(np.int64)[:, None] + steps
    dy = (rows + 0.5 - centre[0][:, None])[:, :, None]
    dx = (cols + 0.5 - centre[1][:, None])[:, None, :]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, (cos * dy - sin * dx) / axis_ratio[:, None, None]
    profile = _sersic(np.sqrt(u**2 + v**2).astype(np.float32), radius_px, index)
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
    pixel = (rows * side)[:, :, None] + cols[:, None, :]
    for channel in range(3):
        target = (owner * 3 + channel) * side * side
        index_flat = (target[:, None, None] + pixel)[inside]
        values = (profile * rgb_flux[:, channel, None, None])[inside]
        np.add.at(flux.reshape(-1), index_flat, values.astype(np.float32))
