"""How often a saved ranker warns: held-out built-in galaxies against the Milky Way drawings.

Loads a ranker saved by ``galaxysim demo`` (``model.safetensors``), ranks 400
built-in galaxies it has not seen (``make_galaxies(400, random_state=7)``),
the built-in drawing ``make_milky_way`` and, when ``../shared/data`` holds it,
the real illustration, and prints how often each signal of the warning fires.

Usage::

    galaxysim demo --out /tmp/demo --quiet
    python benchmarks/bench_query_warning.py /tmp/demo/model.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from galaxysim import SimilarityRanker, load_model
from galaxysim.datasets import load_milky_way, make_galaxies, make_milky_way

ILLUSTRATION = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "milky_way"
    / "milky_way_artist_impression_256.png"
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model.safetensors of a fitted ranker")
    parser.add_argument("--n-held-out", type=int, default=400)
    args = parser.parse_args(argv)
    ranker = load_model(args.model, expected=SimilarityRanker)
    side = ranker.image_shape_[0]
    held_out, _ = make_galaxies(args.n_held_out, image_size=side, random_state=7)
    signals = np.array(
        [
            (
                d.typicality,
                d.isolation,
                d.pixel_outlyingness,
                d.out_of_distribution,
            )
            for d in (ranker.diagnose(image) for image in held_out)
        ],
        dtype=float,
    )
    rates = {
        "typicality below 1": float(np.mean(signals[:, 0] < 1)),
        "isolation above 99": float(np.mean(signals[:, 1] > 99)),
        "pixel outlyingness above 99": float(np.mean(signals[:, 2] > 99)),
        "warning": float(np.mean(signals[:, 3])),
    }
    print(f"{args.n_held_out} held-out galaxies, share flagged:")
    for name, rate in rates.items():
        print(f"  {name}: {rate:.1%}")
    print(f"  median typicality {np.median(signals[:, 0]):.1f}")
    queries = {"make_milky_way": make_milky_way(side)}
    if ILLUSTRATION.is_file():
        queries["real illustration"] = load_milky_way(side, path=ILLUSTRATION)
    for name, query in queries.items():
        d = ranker.diagnose(query)
        print(
            f"{name}: typicality {d.typicality:.1f}, isolation {d.isolation:.1f}, "
            f"pixels {d.pixel_outlyingness:.1f}; warns: {d.out_of_distribution}"
        )
        rates[name] = d.out_of_distribution
    return rates


if __name__ == "__main__":
    main()
