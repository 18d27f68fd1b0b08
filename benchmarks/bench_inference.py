"""Inference speed: flow log-likelihoods per second, and the latency of one ranking query.

What is measured (what is not measured here: the autoencoder's ``transform``
throughput in images/s, which ``benchmarks/bench_autoencoder.py`` measures):

1. **Flow log-likelihood, vectors.** ``FlowDensityEstimator.score_samples``
   on 32-d vectors (the size of an autoencoder code) for each vector flow
   kind (affine coupling, spline coupling, autoregressive), 4 layers of
   (128, 128) hidden units, the estimator's defaults: samples per second.
2. **Flow log-likelihood, images.** ``score_samples`` of the multiscale image
   flow (3 levels, the estimator's defaults) on 32x32 and 64x64 RGB images:
   images per second.
3. **One ranking query, end to end.** ``SimilarityRanker.rank`` for one
   64x64 query against a collection (2,000 images; 100 with ``--quick``),
   with the default ``AutoencoderEmbedder`` architecture (a tiny one with
   ``--quick``) and an affine flow on its codes: median seconds per query for
   distance in the embedding and for likelihood closeness, each without and
   with dihedral invariance (8 views of the query embedded and searched).

Speed does not depend on how well a model is trained, so every model is
trained for one epoch on a few images only. Every timing is the best
(throughputs) or median (latencies) of ``--repeats`` runs after a warm-up,
with ``--threads`` threads (default 1: on a shared 2-core machine two
threads fight the other processes and make PyTorch's small convolutions
many times slower and erratic).

Usage::

    python benchmarks/bench_inference.py            # a few minutes on 2 shared cores
    python benchmarks/bench_inference.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import date

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator
from threadpoolctl import threadpool_limits

from galaxysim.datasets import make_galaxies, make_milky_way
from galaxysim.embedders import AutoencoderEmbedder
from galaxysim.flows import FlowDensityEstimator
from galaxysim.ranking import SimilarityRanker

VECTOR_FLOWS = ("affine", "spline", "autoregressive")
VECTOR_DIM = 32


def _best_rate(function, n_items: int, repeats: int) -> float:
    """Items per second of ``function()``, best of ``repeats`` after a warm-up."""
    function()
    best = min(_timed(function) for _ in range(repeats))
    return n_items / best


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def vector_flow_rows(n_vectors: int, repeats: int) -> list[dict]:
    """score_samples throughput of each vector flow kind on VECTOR_DIM-d vectors."""
    rng = np.random.default_rng(0)
    train = rng.standard_normal((min(n_vectors, 512), VECTOR_DIM))
    data = rng.standard_normal((n_vectors, VECTOR_DIM))
    rows = []
    for kind in VECTOR_FLOWS:
        flow = FlowDensityEstimator(flow=kind, max_epochs=1, device="cpu", random_state=0).fit(
            train
        )
        rate = _best_rate(lambda flow=flow: flow.score_samples(data), n_vectors, repeats)
        rows.append(
            {
                "part": "vector flow",
                "model": f"{kind}, 4 layers, d={VECTOR_DIM}",
                "n": n_vectors,
                "per_second": rate,
            }
        )
    return rows


def image_flow_rows(sizes: list[int], n_images: int, repeats: int) -> list[dict]:
    """score_samples throughput of the multiscale image flow at each image size."""
    rows = []
    for size in sizes:
        images, _ = make_galaxies(max(n_images, 16), image_size=size, random_state=0)
        flow = FlowDensityEstimator(max_epochs=1, batch_size=16, device="cpu", random_state=0).fit(
            images[:16]
        )
        batch = images[:n_images]
        rate = _best_rate(
            lambda flow=flow, batch=batch: flow.score_samples(batch), n_images, repeats
        )
        rows.append(
            {
                "part": "image flow",
                "model": f"multiscale, 3 levels, {size}x{size}x3",
                "n": n_images,
                "per_second": rate,
            }
        )
    return rows


def query_rows(
    n_collection: int, image_size: int, repeats: int, **autoencoder_params
) -> list[dict]:
    """Median seconds of SimilarityRanker.rank for one query, per method and invariance."""
    images, labels = make_galaxies(n_collection, image_size=image_size, random_state=0)
    query = make_milky_way(image_size)
    embedder = AutoencoderEmbedder(max_epochs=1, device="cpu", random_state=0, **autoencoder_params)
    embedder.fit(images[:64])
    density = FlowDensityEstimator(flow="affine", max_epochs=1, device="cpu", random_state=0)
    # method and invariance are read at query time, so one fit serves all four.
    ranker = SimilarityRanker(
        embedder=FrozenEstimator(embedder), density=density, n_neighbors=10
    ).fit(images, labels)
    rows = []
    for method in ("embedding", "likelihood"):
        for invariance in (None, "dihedral"):
            ranker.set_params(method=method, invariance=invariance)
            ranker.rank(query)  # warm-up
            seconds = statistics.median(_timed(lambda: ranker.rank(query)) for _ in range(repeats))
            rows.append(
                {
                    "part": "ranking query",
                    "model": f"method={method}, invariance={invariance}",
                    "n": n_collection,
                    "seconds": seconds,
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    """Throughput rows and latency rows as two Markdown tables."""
    lines = ["| part | model | items | per second |", "|---|---|---:|---:|"]
    for row in rows:
        if "per_second" in row:
            lines.append(
                f"| {row['part']} | {row['model']} | {row['n']:,} | {row['per_second']:,.0f} |"
            )
    lines += ["", "| query against | ranker | latency (ms) |", "|---:|---|---:|"]
    for row in rows:
        if "seconds" in row:
            lines.append(
                f"| {row['n']:,} galaxies | {row['model']} | {1000 * row['seconds']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and the command; return the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 5, 1 quick)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(limits=args.threads):
            if args.quick:
                rows = vector_flow_rows(256, repeats)
                rows += image_flow_rows([16], 8, repeats)
                rows += query_rows(64, 16, repeats, n_stages=2, n_blocks=1, base_channels=8)
            else:
                rows = vector_flow_rows(20_000, repeats)
                rows += image_flow_rows([32, 64], 256, repeats)
                rows += query_rows(2_000, 64, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    arguments = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_inference.py" + (
        " " + shlex.join(arguments) if arguments else ""
    )
    print("\n## Inference speed\n")
    print(markdown(rows))
    print(
        f"\nMachine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
        f"{args.threads} thread(s) used; torch {torch.__version__}; "
        f"date {date.today().isoformat()}."
    )
    print(f"Command: {command}")
    return {"rows": rows, "command": command}


if __name__ == "__main__":
    main()
