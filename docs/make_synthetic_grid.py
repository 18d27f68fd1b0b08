"""Draw synthetic galaxies next to real Galaxy10 DECaLS crops, class by class.

Writes ``docs/images/synthetic_vs_real.png``: for each of the five classes a
row of ``make_galaxies`` images beside real images of that class (the
central 64 pixels of the 256-pixel cutouts in ``../shared/data``), and a last
row with ``make_milky_way`` beside the NASA/JPL-Caltech/R. Hurt (SSC/Caltech)
illustration, framed like a Galaxy10 crop and whole.

With ``--stats`` it also prints a Markdown table of survey statistics
(:func:`survey_statistics`) of the real crops of classes 5-9 and of
``make_galaxies(500, image_size=64, random_state=0)``, as in
docs/datasets_synthetic.md; ``--stats-only`` skips the figure.

Run from the repository root::

    python docs/make_synthetic_grid.py --stats
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy import ndimage

from galaxysim.datasets import load_galaxy10_folder
from galaxysim.datasets.milky_way import MILKY_WAY_CREDIT, half_light_radius, load_milky_way
from galaxysim.datasets.synthetic import SYNTHETIC_CLASSES, make_galaxies, make_milky_way
from galaxysim.images import center_crop, load_image
from galaxysim.plotting import plot_image_grid

ROOT = Path(__file__).resolve().parents[1]
GALAXY10_FIRST_LABEL = 5  # SYNTHETIC_CLASSES[k] is Galaxy10 label 5 + k


def real_images(samples: Path, label: int, count: int) -> np.ndarray:
    """The first ``count`` sample cutouts of a Galaxy10 label, centre-cropped to 64."""
    with open(samples / "labels.csv", newline="") as handle:
        names = [row["filename"] for row in csv.DictReader(handle) if int(row["ans"]) == label]
    if len(names) < count:
        raise SystemExit(f"{samples} holds {len(names)} images of label {label}; {count} needed.")
    return np.stack([center_crop(load_image(samples / name), 64) for name in names[:count]])


def _corners(images: np.ndarray, width: int = 8) -> np.ndarray:
    """The four ``width``-pixel corners of each image, (n, 4, width, width, 3)."""
    ends = (slice(0, width), slice(-width, None))
    return np.stack([images[:, r, c] for r in ends for c in ends], axis=1)


def _detrend(corners: np.ndarray) -> np.ndarray:
    """Corner pixels minus a fitted plane per corner and channel (galaxy light gradients)."""
    n, k, w, _, c = corners.shape
    yy, xx = np.mgrid[:w, :w].astype(np.float64)
    design = np.stack([np.ones(w * w), yy.ravel(), xx.ravel()], axis=1)
    flat = corners.transpose(0, 1, 4, 2, 3).reshape(-1, w * w).T
    residual = flat - design @ np.linalg.lstsq(design, flat, rcond=None)[0]
    return residual.T.reshape(n, k, c, w, w)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean()))


def survey_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics (n,) that compare synthetic and real 64-pixel crops.

    Sky level and noise come from the 8-pixel corners (noise: robust spread
    after removing a plane, its neighbour and channel correlations from the
    two quietest corners); sizes from the half-light radius and the radius
    of the area 0.15 above the sky; colour from the red-to-blue ratio of the
    light above the sky within 3.5 pixels of the centre and 10-22 pixels
    out; second sources are local maxima of the light over a 9-pixel median,
    6 noise levels high, more than 8 pixels from the centre.
    """
    images = np.asarray(images, dtype=np.float64)
    n, size = len(images), images.shape[1]
    corners = _corners(images)
    sky = np.median(corners.reshape(n, -1, 3), axis=1)
    residual = _detrend(corners)
    spread = 1.4826 * np.median(np.abs(residual), axis=(3, 4))  # (n, 4, 3)
    quiet = np.take_along_axis(
        residual, np.argsort(spread.mean(axis=2), axis=1)[:, :2, None, None, None], 1
    )
    light = images - sky[:, None, None, :]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    radius = np.hypot(yy, xx)
    centre, outer = radius < 3.5, (radius > 10) & (radius < 22)
    mono = light.mean(axis=-1)
    noise = np.median(spread, axis=1).mean(axis=1)
    high = ndimage.uniform_filter(
        mono - ndimage.median_filter(mono, size=(1, 9, 9)), size=(1, 2, 2)
    )
    peaks = (high == ndimage.maximum_filter(high, size=(1, 5, 5))) & (
        high > 3 * noise[:, None, None]
    )
    peaks &= radius > 8
    peaks[:, :2] = peaks[:, -2:] = peaks[:, :, :2] = peaks[:, :, -2:] = False

    def red_over_blue(mask):
        return light[:, mask, 0].sum(axis=1) / np.maximum(light[:, mask, 2].sum(axis=1), 1e-9)

    return {
        "sky level": sky.mean(axis=1),
        "sky noise": noise,
        "noise correlation, next pixel": np.array(
            [_correlation(q[..., 1:], q[..., :-1]) for q in quiet]
        ),
        "noise correlation, between channels": np.array(
            [
                np.corrcoef(q.transpose(1, 0, 2, 3).reshape(3, -1))[np.triu_indices(3, 1)].mean()
                for q in quiet
            ]
        ),
        "mean pixel value": images.mean(axis=(1, 2, 3)),
        "half-light radius (px)": np.array([half_light_radius(image) for image in images]),
        "radius of the area 0.15 above sky (px)": np.sqrt((mono > 0.15).sum(axis=(1, 2)) / np.pi),
        "R/B, centre": red_over_blue(centre),
        "R/B, 10-22 px": red_over_blue(outer),
        "centre redder than 10-22 px": red_over_blue(centre) > red_over_blue(outer),
        "second source off centre": peaks.any(axis=(1, 2)),
    }


def statistics_table(real: np.ndarray, synthetic: np.ndarray) -> str:
    """A Markdown table of :func:`survey_statistics`: median [10th-90th percentile] or share."""
    lines = ["| statistic | Galaxy10 crops | make_galaxies |", "|---|---|---|"]
    columns = [survey_statistics(real), survey_statistics(synthetic)]
    for name in columns[0]:
        cells = []
        for column in columns:
            values = column[name]
            if values.dtype == bool:
                cells.append(f"{values.mean():.2f}")
            else:
                low, mid, high = np.percentile(values, [10, 50, 90])
                cells.append(f"{mid:.3g} [{low:.3g}-{high:.3g}]")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder with galaxy10_decals_samples/ and milky_way/",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "images" / "synthetic_vs_real.png"
    )
    parser.add_argument("--per-row", type=int, default=6, help="images of each kind per row")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--stats", action="store_true", help="print the survey statistics table")
    parser.add_argument("--stats-only", action="store_true", help="print the table, draw no figure")
    args = parser.parse_args()
    if args.stats or args.stats_only:
        real = load_galaxy10_folder(args.data / "galaxy10_decals_samples").images
        print(statistics_table(real, make_galaxies(500, image_size=64, random_state=0)[0]))
        if args.stats_only:
            return

    count = args.per_row
    X, y = make_galaxies(50 * count, random_state=args.random_state)
    samples = args.data / "galaxy10_decals_samples"
    rows, titles = [], []
    for k in range(len(SYNTHETIC_CLASSES)):
        rows += [X[y == k][:count], real_images(samples, GALAXY10_FIRST_LABEL + k, count)]
        titles += ["synthetic" if k == 0 else ""] * count + ["Galaxy10" if k == 0 else ""] * count

    illustration = args.data / "milky_way" / "milky_way_artist_impression_256.png"
    milky_way = [
        make_milky_way(64),
        load_milky_way(64, path=illustration, framing="galaxy10"),
        load_milky_way(64, path=illustration, framing="full"),
    ]
    rows.append(np.stack(milky_way))
    titles += ["make_milky_way", 'framing="galaxy10"', 'framing="full"']

    fig = plot_image_grid(
        np.concatenate(rows),
        titles,
        n_cols=2 * count,
        row_labels=[*SYNTHETIC_CLASSES, "Milky Way"],
        image_size=1.0,
        suptitle=(
            "make_galaxies (left) and Galaxy10 DECaLS (right); "
            f"Milky Way illustration: {MILKY_WAY_CREDIT}"
        ),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
