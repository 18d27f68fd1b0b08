"""Query latency and recall of every NeighborSearch backend against 10^4-10^6 embeddings.

A ranker answers a query with a nearest-neighbour search over the stored
embeddings of its collection, always through
:class:`galaxysim.ranking.search.NeighborSearch`. For 10^4, 10^5 and 10^6
stored embeddings of 64 and 128 values this measures, for each backend
(``ALGORITHMS``: scikit-learn's exact search and, when faiss is installed,
``faiss-flat``, ``faiss-hnsw`` and ``faiss-ivf`` with their default
parameters):

- the build time of the index (faiss uses all cores for it);
- the latency of one query for its 10 nearest neighbours, one query at a
  time as ``rank`` asks, with one thread (``threadpool_limits`` and
  ``faiss.omp_set_num_threads(1)``): median (p50) and 99th percentile (p99)
  over ``--queries`` queries after a warm-up (at least 20 and at most ~10 s of
  queries for the slow exact search);
- recall@10: the share of the true 10 nearest neighbours (exact float32
  search) that the backend returns, averaged over the queries;
- the index memory (faiss's serialised index; the stored array for exact).

The embeddings are clustered like learned ones, not uniform noise: 100
clusters of Dirichlet-distributed sizes on a random 16-dimensional subspace,
plus 5 % noise in every dimension. Queries are drawn from the same
distribution and are not in the collection. It ends with what 10^8 galaxies
would need per backend, on paper.

Usage::

    python benchmarks/bench_search.py            # 10^4-10^6 x 64/128-d; ~15 minutes on 2 cores
    python benchmarks/bench_search.py --quick    # 10^4 x 64-d; seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import date

import numpy as np
from threadpoolctl import threadpool_limits

from galaxysim.ranking._faiss import faiss_available
from galaxysim.ranking.search import NeighborSearch

ALGORITHMS = ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf")
N_NEIGHBORS = 10
N_CLUSTERS = 100
INTRINSIC_DIM = 16
NOISE = 0.05
# The exact search is timed for at most this long (at least 20 queries).
SLOW_BUDGET_SECONDS = 10.0
GOAL_MS, GOAL_RECALL = 1.0, 0.97


def make_embeddings(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` clustered float32 embeddings of ``dim`` values (see the module docstring)."""
    basis = np.linalg.qr(rng.standard_normal((dim, INTRINSIC_DIM)))[0].T.astype(np.float32)
    centres = 2.0 * rng.standard_normal((N_CLUSTERS, INTRINSIC_DIM)).astype(np.float32)
    labels = rng.choice(N_CLUSTERS, size=n, p=rng.dirichlet(np.ones(N_CLUSTERS)))
    coords = centres[labels] + rng.standard_normal((n, INTRINSIC_DIM), dtype=np.float32)
    return coords @ basis + NOISE * rng.standard_normal((n, dim), dtype=np.float32)


def true_neighbors(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 of each query (faiss's flat index when installed, else scikit-learn)."""
    algorithm = "faiss-flat" if faiss_available() else "exact"
    return NeighborSearch(algorithm=algorithm).fit(stored).kneighbors(queries, N_NEIGHBORS)[1]


def index_bytes(search: NeighborSearch) -> int:
    backend = search.backend_
    if hasattr(backend, "to_bytes"):
        return len(backend.to_bytes())
    return int(np.asarray(backend.embeddings).nbytes)


def _set_faiss_threads(n: int | None) -> None:
    if faiss_available():
        import faiss

        faiss.omp_set_num_threads(n or os.cpu_count() or 1)


def measure(stored: np.ndarray, queries: np.ndarray, truth: np.ndarray, algorithm: str) -> dict:
    """Build time, p50/p99 latency of single queries, recall@10 and index memory."""
    _set_faiss_threads(None)
    start = time.perf_counter()
    search = NeighborSearch(algorithm=algorithm).fit(stored)
    build = time.perf_counter() - start
    _set_faiss_threads(1)
    with threadpool_limits(limits=1):
        search.kneighbors(queries[:1], N_NEIGHBORS)  # warm-up
        times, found, began = [], [], time.perf_counter()
        for query in queries[1:]:
            start = time.perf_counter()
            found.append(search.kneighbors(query[np.newaxis], N_NEIGHBORS)[1][0])
            times.append(time.perf_counter() - start)
            if len(times) >= 20 and time.perf_counter() - began > SLOW_BUDGET_SECONDS:
                break
    recall = np.mean([len(set(f) & set(t)) / N_NEIGHBORS for f, t in zip(found, truth[1:])])
    ms = 1000 * np.asarray(times)
    return {
        "build_seconds": build,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "recall": float(recall),
        "index_mb": index_bytes(search) / 1e6,
        "n_timed": len(times),
    }


def run(sizes: list[int], dims: list[int], n_queries: int, seed: int = 0) -> list[dict]:
    """Measure every (dim, size, backend); return one dict per measurement."""
    algorithms = [a for a in ALGORITHMS if a == "exact" or faiss_available()]
    rows = []
    for dim in dims:
        everything = make_embeddings(max(sizes) + n_queries + 1, dim, np.random.default_rng(seed))
        queries, pool = everything[: n_queries + 1], everything[n_queries + 1 :]
        for n in sizes:
            truth = true_neighbors(pool[:n], queries)
            for algorithm in algorithms:
                result = measure(pool[:n], queries, truth, algorithm)
                rows.append({"dim": dim, "n_stored": n, "algorithm": algorithm, **result})
                print(
                    f"  d={dim:<4d} n={n:>9,d} {algorithm:10s} "
                    f"build {result['build_seconds']:7.2f} s  "
                    f"p50 {result['p50_ms']:8.3f} ms  p99 {result['p99_ms']:8.3f} ms  "
                    f"recall {result['recall']:.3f}  {result['index_mb']:8.1f} MB",
                    file=sys.stderr,
                )
    return rows


def markdown(rows: list[dict]) -> str:
    """The measurements as a Markdown table."""
    lines = [
        "| stored | d | backend | build (s) | p50 (ms) | p99 (ms) | recall@10 | index (MB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_stored']:,} | {row['dim']} | {row['algorithm']} | "
            f"{row['build_seconds']:.3g} | {row['p50_ms']:.3g} | {row['p99_ms']:.3g} | "
            f"{row['recall']:.3f} | {row['index_mb']:.4g} |"
        )
    return "\n".join(lines)


def paper_estimate(
    n: int = 10**8, dim: int = 64, M: int = 32, nlist: int = 65_536, m: int = 16
) -> list[dict]:
    """Index memory for ``n`` embeddings per backend, from the index layouts (bytes)."""
    ids = 8 * n  # IVF lists store a 64-bit id per vector
    return [
        {
            "backend": "exact / faiss-flat",
            "bytes": 4 * dim * n,
            "formula": (
                "4 d n (float32; the exact backend keeps float64: "
                f"8 d n = {8 * dim * n / 1e9:.0f} GB)"
            ),
        },
        {
            "backend": f"faiss-hnsw (M={M})",
            "bytes": (4 * dim + 2 * M * 4 + M * 4 // 2) * n,
            "formula": "(4 d + 2 M x 4 + ~M/2 x 4) n: vector, level-0 links, upper levels",
        },
        {
            "backend": f"faiss-ivf (nlist={nlist:,})",
            "bytes": 4 * dim * n + ids + 4 * dim * nlist,
            "formula": "(4 d + 8) n + 4 d nlist: vectors, ids, centroids",
        },
        {
            "backend": f"faiss-ivf pq={m}",
            "bytes": m * n + ids + 4 * dim * nlist + 256 * 4 * dim,
            "formula": "(m + 8) n + 4 d nlist + 256 x 4 d: codes, ids, centroids, codebooks",
        },
    ]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and the command; return the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^4 stored 64-d embeddings only")
    parser.add_argument(
        "--queries",
        type=int,
        default=None,
        help="queries timed per index (default 500, 50 with --quick)",
    )
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]
    dims = [64] if args.quick else [64, 128]
    rows = run(sizes, dims, args.queries or (50 if args.quick else 500))
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_search.py" + (" " + shlex.join(given) if given else "")
    print(f"\n## Nearest-neighbour search: one query, {N_NEIGHBORS} neighbours\n")
    print(markdown(rows))
    fast = [r for r in rows if r["p50_ms"] < GOAL_MS and r["recall"] >= GOAL_RECALL]
    print(
        f"\nUnder {GOAL_MS} ms (p50) at recall@10 >= {GOAL_RECALL}: "
        + (", ".join(f"{r['algorithm']} ({r['n_stored']:,} x {r['dim']})" for r in fast) or "none")
    )
    print("\nOn paper, 10^8 embeddings of 64 values:\n")
    print("| backend | index memory | formula |\n|---|---:|---|")
    for row in paper_estimate():
        print(f"| {row['backend']} | {row['bytes'] / 1e9:.1f} GB | {row['formula']} |")
    print(
        f"\nMachine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores; queries "
        f"with 1 thread; date {date.today().isoformat()}; Python {platform.python_version()}."
    )
    print(f"Command: {command}")
    return {"rows": rows, "paper": paper_estimate(), "command": command}


if __name__ == "__main__":
    main()
