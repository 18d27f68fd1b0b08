"""Built-in galaxies against real ones, class by class: light profile, colour, size, sky and noise.

For each of the five classes that ``make_galaxies`` draws, the same statistics
are measured on built-in galaxies and on real Galaxy10 DECaLS images of that
class (the central 64 pixels, as galaxysim frames them):

* the radial light profile (azimuthal mean of the light above the sky about
  the image centre, over its value in the central two pixels),
* colour: g-r-like and r-z-like indices of the galaxy light (Legacy Surveys
  colour images put z, r, g in red, green, blue, so ``-2.5 log10(B / G)``
  and ``-2.5 log10(G / R)`` of the light above the sky), by radius and in a
  centre (r < 4 px) and an outer (10-22 px) annulus, and of the sky,
* size in the frame: half-light radius, the share of the frame more than
  0.1 above the sky, and the axis ratio of that area (second moments of the
  light in the part that holds the centre),
* the sky: its level and noise (robust spread after removing a plane, in
  the two darker of the four 16-pixel corners), and the noise's azimuthally
  averaged 2-D power spectrum there, with the share of its power above 0.3
  cycles per pixel.

Writes a figure (one panel per statistic, real solid and built-in dashed,
one colour per class) and prints a Markdown table of medians, "real /
built-in", per class. Full run (the figure and table in
docs/datasets_synthetic.md)::

    python benchmarks/calibrate_synthetic.py

``--data`` takes any folder of labelled cutouts (``labels.csv``) or a
``Galaxy10_DECals.h5`` file, so more real images can be compared;
``--quick`` (seconds) measures 100 built-in galaxies and writes the figure
to a temporary folder unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from galaxysim.datasets import load_galaxy10_decals, load_galaxy10_folder, make_galaxies
from galaxysim.datasets.milky_way import half_light_radius
from galaxysim.datasets.synthetic import SYNTHETIC_CLASSES
from galaxysim.images import radial_power_spectrum, radial_profile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "galaxy10_decals_samples"
CROP = 64
CORNER = 16
# Light more than this above the sky counts as the galaxy's area.
AREA_THRESHOLD = 0.1
# Annuli (pixels) of the colour-by-radius panels.
COLOUR_EDGES = (0, 3, 6, 10, 14, 18, 23, 28, 32)
HIGH_FREQUENCY = 0.3  # cycles per pixel

# name -> (what the table calls it, format)
SCALARS = {
    "half_light_radius": ("half-light radius (px)", "{:.1f}"),
    "area": ("share of the frame 0.1 above sky", "{:.2f}"),
    "axis_ratio": ("axis ratio of that area", "{:.2f}"),
    "profile_8": ("profile at 8 px (of centre)", "{:.2f}"),
    "profile_16": ("profile at 16 px", "{:.2f}"),
    "profile_24": ("profile at 24 px", "{:.2f}"),
    "gr_centre": ("g-r-like, centre (mag)", "{:.2f}"),
    "gr_outer": ("g-r-like, 10-22 px", "{:.2f}"),
    "rz_centre": ("r-z-like, centre", "{:.2f}"),
    "rz_outer": ("r-z-like, 10-22 px", "{:.2f}"),
    "mean": ("mean pixel value", "{:.3f}"),
    "sky": ("sky level", "{:.3f}"),
    "sky_gr": ("sky g-r-like", "{:.2f}"),
    "sky_rz": ("sky r-z-like", "{:.2f}"),
    "noise": ("sky noise (per channel)", "{:.4f}"),
    "noise_high": (f"noise power above {HIGH_FREQUENCY} cycles/px", "{:.2f}"),
}


def _colour_index(blue: np.ndarray, red: np.ndarray) -> np.ndarray:
    """``-2.5 log10(blue / red)`` where both are positive, NaN elsewhere."""
    ok = (blue > 1e-4) & (red > 1e-4)
    out = np.full(np.shape(blue), np.nan)
    out[ok] = -2.5 * np.log10(blue[ok] / red[ok])
    return out


def _sky_corners(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two darker 16-pixel corners of each image, raw and with a plane removed per channel."""
    n = len(images)
    ends = (slice(0, CORNER), slice(-CORNER, None))
    corners = np.stack([images[:, r, c] for r in ends for c in ends], axis=1)  # (n, 4, w, w, 3)
    darker = np.argsort(np.median(corners.mean(axis=-1).reshape(n, 4, -1), axis=2), axis=1)[:, :2]
    sky = np.take_along_axis(corners, darker[:, :, None, None, None], axis=1)
    yy, xx = np.mgrid[:CORNER, :CORNER].astype(np.float64)
    design = np.stack([np.ones(CORNER**2), yy.ravel(), xx.ravel()], axis=1)
    flat = sky.transpose(0, 1, 4, 2, 3).reshape(-1, CORNER**2).T
    residual = flat - design @ np.linalg.lstsq(design, flat, rcond=None)[0]
    residual = residual.T.reshape(n, 2, 3, CORNER, CORNER).transpose(0, 1, 3, 4, 2)
    return sky, residual


def _main_area(light: np.ndarray) -> np.ndarray:
    """Pixels over AREA_THRESHOLD above the sky (3x3-smoothed), in the part holding the centre."""
    smooth = ndimage.uniform_filter(light, size=(1, 3, 3))
    above = smooth > AREA_THRESHOLD
    size = light.shape[1]
    centre = slice(size // 2 - 3, size // 2 + 3)
    main = np.zeros_like(above)
    for i, mask in enumerate(above):
        labels, _ = ndimage.label(mask)
        inner = np.unique(labels[centre, centre])
        main[i] = np.isin(labels, inner[inner > 0])
    return main


def _axis_ratio(light: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Minor over major axis of the second moments of the light inside ``area``."""
    weight = np.where(area, np.clip(light, 0.0, None), 0.0)
    yy, xx = np.indices(light.shape[1:]).astype(np.float64)
    total = np.maximum(weight.sum(axis=(1, 2)), 1e-12)
    cy, cx = (weight * yy).sum(axis=(1, 2)) / total, (weight * xx).sum(axis=(1, 2)) / total
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
    syy = (weight * dy**2).sum(axis=(1, 2)) / total
    sxx = (weight * dx**2).sum(axis=(1, 2)) / total
    sxy = (weight * dx * dy).sum(axis=(1, 2)) / total
    spread = np.sqrt(((syy - sxx) / 2) ** 2 + sxy**2)
    major, minor = (syy + sxx) / 2 + spread, np.maximum((syy + sxx) / 2 - spread, 0.0)
    return np.where(major > 0, np.sqrt(minor / np.maximum(major, 1e-12)), np.nan)


def calibration_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of 64-pixel crops: scalars (n,) and curves (n, k)."""
    images = np.asarray(images, dtype=np.float64)
    if images.shape[1:] != (CROP, CROP, 3):
        raise ValueError(f"images must be (n, {CROP}, {CROP}, 3), got shape {images.shape}.")
    sky_pixels, residual = _sky_corners(images)
    sky_rgb = np.median(sky_pixels.reshape(len(images), -1, 3), axis=1)  # (n, 3)
    light_rgb = images - sky_rgb[:, None, None, :]
    light = light_rgb.mean(axis=-1)

    profile = radial_profile(light_rgb)  # (n, 32, 3)
    grey = profile.mean(axis=-1)
    centre = grey[:, :2].mean(axis=1)
    normalised = grey / np.where(centre > 1e-3, centre, np.nan)[:, None]
    # Colour by radius: light summed over annuli, then the index.
    ring_area = np.pi * (2 * np.arange(profile.shape[1]) + 1)
    annuli = np.stack(
        [
            (profile[:, lo:hi] * ring_area[None, lo:hi, None]).sum(axis=1)
            for lo, hi in itertools.pairwise(COLOUR_EDGES)
        ],
        axis=1,
    )  # (n, k, 3)
    in_centre = (profile[:, :4] * ring_area[None, :4, None]).sum(axis=1)
    in_outer = (profile[:, 10:22] * ring_area[None, 10:22, None]).sum(axis=1)

    area = _main_area(light)
    frequency, power = radial_power_spectrum(residual.reshape(-1, CORNER, CORNER, 3))
    power = power.reshape(len(images), 2, -1, 3).mean(axis=(1, 3))
    noise = (
        1.4826
        * np.median(np.abs(residual - np.median(residual, axis=(2, 3), keepdims=True)), axis=(2, 3))
    ).mean(axis=(1, 2))
    return {
        "half_light_radius": np.array([half_light_radius(image) for image in images]),
        "area": (ndimage.uniform_filter(light, size=(1, 3, 3)) > AREA_THRESHOLD).mean(axis=(1, 2)),
        "axis_ratio": _axis_ratio(light, area),
        "profile_8": normalised[:, 8],
        "profile_16": normalised[:, 16],
        "profile_24": normalised[:, 24],
        "gr_centre": _colour_index(in_centre[:, 2], in_centre[:, 1]),
        "gr_outer": _colour_index(in_outer[:, 2], in_outer[:, 1]),
        "rz_centre": _colour_index(in_centre[:, 1], in_centre[:, 0]),
        "rz_outer": _colour_index(in_outer[:, 1], in_outer[:, 0]),
        "mean": images.mean(axis=(1, 2, 3)),
        "sky": sky_rgb.mean(axis=1),
        "sky_gr": _colour_index(sky_rgb[:, 2], sky_rgb[:, 1]),
        "sky_rz": _colour_index(sky_rgb[:, 1], sky_rgb[:, 0]),
        "noise": noise,
        "noise_high": (power[:, frequency > HIGH_FREQUENCY].sum(axis=1) / power.sum(axis=1)),
        # Curves
        "profile": normalised,
        "gr_by_radius": _colour_index(annuli[..., 2], annuli[..., 1]),
        "rz_by_radius": _colour_index(annuli[..., 1], annuli[..., 0]),
        "power": power / power.mean(axis=1, keepdims=True),
        "frequency": np.broadcast_to(frequency, power.shape),
    }


def load_real(data: Path, per_class: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real crops of the five classes (labels 0-4 as SYNTHETIC_CLASSES) from a folder or h5 file."""
    if data.suffix in (".h5", ".hdf5"):
        bunch = load_galaxy10_decals(data, crop=CROP)
    else:
        bunch = load_galaxy10_folder(data, crop=CROP)
    images, labels = bunch.images, bunch.target
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.concatenate(
            [
                rng.permutation(np.flatnonzero(labels == k))[:per_class]
                for k in range(len(SYNTHETIC_CLASSES))
            ]
        )
        images, labels = images[np.sort(keep)], labels[np.sort(keep)]
    return images, labels


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def summary(real: dict, real_y: np.ndarray, builtin: dict, builtin_y: np.ndarray) -> dict:
    """Medians ``{statistic: {class name or 'all': (real, built-in)}}``."""
    out = {}
    for name in SCALARS:
        row = {}
        for k, cls in enumerate(SYNTHETIC_CLASSES):
            row[cls] = (_median(real[name][real_y == k]), _median(builtin[name][builtin_y == k]))
        row["all"] = (_median(real[name]), _median(builtin[name]))
        out[name] = row
    return out


def table(medians: dict) -> str:
    """Markdown table of :func:`summary`: one row per statistic, "real / built-in" per class."""
    short = ["barred", "tight", "loose", "edge-on", "edge-on + bulge", "all"]
    lines = ["| statistic | " + " | ".join(short) + " |", "|---|" + "---|" * len(short)]
    for name, row in medians.items():
        label, fmt = SCALARS[name]
        cells = [f"{fmt.format(a)} / {fmt.format(b)}" for a, b in row.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(
    real: dict, real_y: np.ndarray, builtin: dict, builtin_y: np.ndarray, output: Path
) -> None:
    """One panel per statistic; per class real solid, built-in dashed (curves) or open (points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    radius = np.arange(real["profile"].shape[1])
    annulus = 0.5 * (np.array(COLOUR_EDGES[:-1]) + np.array(COLOUR_EDGES[1:]))
    curves = [
        ("profile", radius, "radial light profile (of centre)", "radius (px)", "log"),
        ("gr_by_radius", annulus, "g-r-like colour by radius (mag)", "radius (px)", "linear"),
        ("rz_by_radius", annulus, "r-z-like colour by radius (mag)", "radius (px)", "linear"),
        (
            "power",
            real["frequency"][0],
            "sky noise power spectrum (of its mean)",
            "frequency (cycles/px)",
            "log",
        ),
    ]
    points = [
        "half_light_radius",
        "area",
        "axis_ratio",
        "mean",
        "sky",
        "sky_gr",
        "noise",
        "noise_high",
    ]
    fig, axes = plt.subplots(3, 4, figsize=(17, 11.5))
    axes = axes.ravel()
    for ax, (name, x, title, xlabel, scale) in zip(axes, curves):
        for k, cls in enumerate(SYNTHETIC_CLASSES):
            for stats, labels, style in ((real, real_y, "-"), (builtin, builtin_y, "--")):
                values = stats[name][labels == k]
                ok = np.isfinite(values).sum(axis=0) > 0
                if not ok.any():
                    continue
                median = np.full(values.shape[1], np.nan)
                median[ok] = np.nanmedian(values[:, ok], axis=0)
                ax.plot(
                    x,
                    median,
                    style,
                    color=colours[k],
                    label=f"{cls} ({'real' if style == '-' else 'built-in'})",
                )
        ax.set(title=title, xlabel=xlabel, yscale=scale)
    axes[0].set_ylim(0.01, 1.5)
    for ax, name in zip(axes[len(curves) :], points):
        for k in range(len(SYNTHETIC_CLASSES)):
            for offset, stats, labels, face in (
                (-0.15, real, real_y, colours[k]),
                (0.15, builtin, builtin_y, "white"),
            ):
                values = stats[name][labels == k]
                values = values[np.isfinite(values)]
                if not len(values):
                    continue
                low, mid, high = np.percentile(values, [25, 50, 75])
                ax.errorbar(
                    k + offset,
                    mid,
                    yerr=[[mid - low], [high - mid]],
                    fmt="o",
                    color=colours[k],
                    mfc=face,
                    capsize=3,
                )
        ax.set_xticks(range(len(SYNTHETIC_CLASSES)))
        ax.set_xticklabels(["barred", "tight", "loose", "edge-on", "edge-on\n+ bulge"])
        ax.set_title(
            SCALARS[name][0] + "\n(filled: real, open: built-in; median, quartiles)", fontsize=9
        )
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(
        "Built-in galaxies (make_galaxies, dashed / open) against real Galaxy10 DECaLS "
        "crops (solid / filled), per class"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder of labelled cutouts (labels.csv) or Galaxy10_DECals.h5",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="at most this many real images per class (random; default all)",
    )
    parser.add_argument("--n-builtin", type=int, default=1000, help="built-in galaxies to draw")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="figure path (default docs/images/calibration.png; --quick: a temporary folder)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="100 built-in galaxies, for a smoke test"
    )
    args = parser.parse_args(argv)
    n_builtin = 100 if args.quick else args.n_builtin
    output = args.output
    if output is None:
        output = (
            Path(tempfile.mkdtemp()) if args.quick else ROOT / "docs" / "images"
        ) / "calibration.png"

    real_images, real_y = load_real(args.data, args.per_class)
    builtin_images, builtin_y = make_galaxies(
        n_builtin, image_size=CROP, random_state=args.random_state
    )
    real = calibration_statistics(real_images)
    builtin = calibration_statistics(builtin_images)
    medians = summary(real, real_y, builtin, builtin_y)
    figure(real, real_y, builtin, builtin_y, output)
    print(
        f"Medians, real / built-in: {len(real_y)} real crops from {args.data.name}, "
        f"make_galaxies({n_builtin}, image_size={CROP}, random_state={args.random_state})\n"
    )
    print(table(medians))
    print(f"\nwrote {output}")
    return {"medians": medians, "output": output, "n_real": len(real_y), "n_builtin": n_builtin}


if __name__ == "__main__":
    main()
