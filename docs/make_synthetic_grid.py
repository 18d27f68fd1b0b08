"""Draw synthetic galaxies next to real Galaxy10 DECaLS crops, class by class.

Writes ``docs/images/synthetic_vs_real.png``: for each of the five classes a
row of ``make_galaxies`` images beside real images of that class (the
central 64 pixels of the 256-pixel cutouts in ``../shared/data``), and a last
row with ``make_milky_way`` beside the NASA/JPL-Caltech/R. Hurt (SSC/Caltech)
illustration, framed like a Galaxy10 crop and whole.

Run from the repository root::

    python docs/make_synthetic_grid.py
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from galaxysim.datasets.milky_way import MILKY_WAY_CREDIT, load_milky_way
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder with galaxy10_decals_samples/ and milky_way/")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "synthetic_vs_real.png")
    parser.add_argument("--per-row", type=int, default=6, help="images of each kind per row")
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args()

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
        suptitle=f"make_galaxies (left) and Galaxy10 DECaLS (right); Milky Way illustration: {MILKY_WAY_CREDIT}",
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
