"""Query latency of one embedding against many stored ones, through NeighborSearch.

A ranker answers a query with a nearest-neighbour search over the stored
embeddings of its collection, always through
:class:`galaxysim.ranking.search.NeighborSearch`. This measures, for 10^4,
10^5 and 10^6 stored 64-d embeddings, how long
``NeighborSearch(algorithm=...)`` takes to build its index and to answer one
query (the 10 nearest neighbours of a single 64-d vector, the shape of one
``rank`` call), for the exact backends ``brute``, ``kd_tree`` and
``ball_tree`` (scikit-learn's NearestNeighbors methods), and says where a
query stops being interactive (over 100 ms). A new backend (faiss) joins the
table by adding its name to ``ALGORITHMS``.

Two kinds of stored embeddings, because trees depend on the data's shape:

- ``gaussian``: i.i.d. standard normal in all 64 dimensions, the hardest
  case for trees (every direction matters);
- ``low-dim``: points on a random 8-dimensional subspace plus 1 % noise, the
  kind of structure a learned embedding usually has (trees prune well).

Queries are drawn from the same distribution as the stored points. The
latency is the median over ``--queries`` single-vector queries after one
warm-up query; each measurement runs with one thread (``--threads``), so
that it does not depend on what else shares the machine's cores.

Usage::

    python benchmarks/bench_search.py            # 10^4, 10^5, 10^6; ~7 minutes (tree builds)
    python benchmarks/bench_search.py --quick    # 10^3, 10^4; seconds
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
from threadpoolctl import threadpool_limits

from galaxysim.ranking.search import NeighborSearch

ALGORITHMS = ("brute", "kd_tree", "ball_tree")
DATA_KINDS = ("gaussian", "low-dim")
INTERACTIVE_SECONDS = 0.100
N_NEIGHBORS = 10
DIM = 64
INTRINSIC_DIM = 8
NOISE = 0.01
# A query slower than this is timed fewer times (at least 3), to keep the run short.
SLOW_QUERY_SECONDS = 2.0


def make_embeddings(kind: str, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` stored embeddings of one kind (see the module docstring)."""
    if kind == "gaussian":
        return rng.standard_normal((n, dim), dtype=np.float32)
    if kind == "low-dim":
        basis = np.linalg.qr(rng.standard_normal((dim, INTRINSIC_DIM)))[0].T.astype(np.float32)
        coords = rng.standard_normal((n, INTRINSIC_DIM), dtype=np.float32)
        return coords @ basis + NOISE * rng.standard_normal((n, dim), dtype=np.float32)
    raise ValueError(f"kind must be one of {DATA_KINDS}, got {kind!r}.")


def measure(stored: np.ndarray, queries: np.ndarray, algorithm: str) -> dict[str, float]:
    """Build time and median single-query latency of one index."""
    start = time.perf_counter()
    index = NeighborSearch(algorithm).fit(stored)
    build = time.perf_counter() - start
    index.kneighbors(queries[:1], N_NEIGHBORS)  # warm-up: first-call overheads are not search cost
    times = []
    for query in queries[1:]:
        start = time.perf_counter()
        index.kneighbors(query[np.newaxis], N_NEIGHBORS)
        times.append(time.perf_counter() - start)
        if len(times) >= 3 and statistics.median(times) > SLOW_QUERY_SECONDS:
            break
    return {"build_seconds": build, "query_seconds": statistics.median(times), "n_timed": len(times)}


def run(sizes: list[int], kinds: list[str], n_queries: int, seed: int = 0) -> list[dict]:
    """Measure every (kind, size, algorithm); return one dict per measurement."""
    rows = []
    for kind in kinds:
        rng = np.random.default_rng(seed)
        largest = make_embeddings(kind, max(sizes) + n_queries + 1, DIM, rng)
        queries, pool = largest[: n_queries + 1], largest[n_queries + 1:]
        for n in sizes:
            for algorithm in ALGORITHMS:
                result = measure(pool[:n], queries, algorithm)
                rows.append({"data": kind, "n_stored": n, "algorithm": algorithm, **result})
                print(
                    f"  {kind:8s} n={n:>9,d} {algorithm:9s} build {result['build_seconds']:7.3f} s  "
                    f"query {1000 * result['query_seconds']:9.2f} ms",
                    file=sys.stderr,
                )
    return rows


def interactive_limits(rows: list[dict]) -> dict[tuple[str, str], int | None]:
    """Largest measured collection each (data, algorithm) answers within 100 ms."""
    limits: dict[tuple[str, str], int | None] = {}
    for row in rows:
        key = (row["data"], row["algorithm"])
        limits.setdefault(key, None)
        if row["query_seconds"] <= INTERACTIVE_SECONDS:
            current = limits[key]
            limits[key] = row["n_stored"] if current is None else max(current, row["n_stored"])
    return limits


def markdown(rows: list[dict]) -> str:
    """The measurements as a Markdown table, with an interactive verdict per row."""
    lines = [
        "| stored embeddings | data | algorithm | build (s) | query (ms) | interactive (< 100 ms) |",
        "|---:|---|---|---:|---:|---|",
    ]
    for row in rows:
        verdict = "yes" if row["query_seconds"] <= INTERACTIVE_SECONDS else "**no**"
        lines.append(
            f"| {row['n_stored']:,} | {row['data']} | {row['algorithm']} | "
            f"{row['build_seconds']:.3g} | {1000 * row['query_seconds']:.3g} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the table and the command; return the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 stored embeddings")
    parser.add_argument("--queries", type=int, default=None,
                        help="queries timed per index (default 20, 5 with --quick)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads (default 1: steady numbers on a shared machine)")
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    n_queries = args.queries or (5 if args.quick else 20)
    with threadpool_limits(limits=args.threads):
        rows = run(sizes, list(DATA_KINDS), n_queries)
    limits = interactive_limits(rows)
    command = "python benchmarks/bench_search.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:]) else ""
    )
    print(f"\n## Nearest-neighbour search: one {DIM}-d query, {N_NEIGHBORS} neighbours\n")
    print(markdown(rows))
    print("\nLargest measured collection answered within 100 ms:\n")
    for (kind, algorithm), limit in limits.items():
        text = f"{limit:,}" if limit is not None else f"none (not even {min(sizes):,})"
        print(f"- {kind}, {algorithm}: {text}")
    print(
        f"\nMachine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
        f"{args.threads} thread(s) used; "
        f"date {date.today().isoformat()}; Python {platform.python_version()}."
    )
    print(f"Command: {command}")
    return {"rows": rows, "interactive_limits": limits, "command": command}


if __name__ == "__main__":
    main()
