"""Commands for collections too large to embed at every query: embed, index, rank --index.

``galaxysim embed`` writes the embedding of every galaxy of a collection into
a zarr array, in chunks, resumably, on this machine or on a Dask cluster;
``galaxysim index`` builds a search index over it (:class:`NeighborSearch`,
saved without pickles); ``galaxysim rank --index`` then answers a query by
embedding only the query and reading only its neighbours' images.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from .arguments import positive_int, resolve_n_neighbors

__all__ = ["add_embed_parser", "add_index_parser", "rank_with_index"]


@contextlib.contextmanager
def _dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """No client, a LocalCluster of ``--workers`` processes, or the ``--scheduler``'s client."""
    if args.scheduler is None and args.workers is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(
            '--workers and --scheduler need Dask: pip install "galaxysim[dask]".'
        ) from None
    if args.scheduler is not None:
        with Client(args.scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _run_embed(args: argparse.Namespace) -> int:
    from .._limits import check_regular_file
    from ..scale import embed_collection
    from .collections import check_source
    from .models import load_ranker
    from .output_folder import check_not_an_input

    check_source(args.data, "--data")
    check_regular_file(args.model, "--model")
    check_not_an_input(args.out, data=args.data, model=args.model)
    ranker = load_ranker(Path(args.model), trust_pickle=False)
    start = time.perf_counter()
    with _dask_client(args) as client:
        embeddings = embed_collection(
            args.data,
            ranker,
            args.out,
            chunk_size=args.chunk_size,
            client=client,
            crop=args.crop,
            image_size=args.image_size,
            verbose=not args.quiet,
        )
    print(
        f"galaxysim {__version__} embed: {embeddings.shape[0]:,} galaxies of {args.data} "
        f"embedded in {embeddings.shape[1]} dimensions into {args.out} in "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


def _read_embeddings(path: Path) -> np.ndarray:
    """The whole embedding store, checked: 2-D, fits in memory, every row written."""
    from .._limits import check_allocation
    from ..datasets.chunks import open_zarr_array

    array = open_zarr_array(path, what="--embeddings")
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise ValueError(
            f"--embeddings {str(path)!r} must hold (n, d) embeddings, got shape "
            f"{array.shape} of {array.dtype}."
        )
    check_allocation(
        8 * array.shape[0] * array.shape[1],
        f"--embeddings {str(path)!r}",
        "Index it on a larger machine.",
    )
    embeddings = np.asarray(array[:], dtype=np.float64)
    unwritten = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if unwritten.size:
        raise ValueError(
            f"--embeddings {str(path)!r} has {unwritten.size:,} rows never written (first: row "
            f"{unwritten[0]}); run the same galaxysim embed again to finish it."
        )
    return embeddings


def _run_index(args: argparse.Namespace) -> int:
    from ..ranking import NeighborSearch
    from .output_folder import check_not_an_input

    try:
        import zarr  # noqa: F401
    except ImportError:
        raise ImportError('--embeddings needs zarr: pip install "galaxysim[dask]".') from None
    path = Path(args.embeddings)
    if not path.is_dir():
        raise FileNotFoundError(f"--embeddings {str(path)!r} is not a zarr array folder.")
    check_not_an_input(args.out, embeddings=path)
    start = time.perf_counter()
    embeddings = _read_embeddings(path)
    search = NeighborSearch(algorithm=args.search).fit(embeddings)
    search.save(args.out, overwrite=args.force)
    print(
        f"galaxysim {__version__} index: {search.algorithm_} index of "
        f"{len(embeddings):,} embeddings "
        f"written to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


def add_embed_parser(sub: Any) -> None:
    """The ``galaxysim embed`` subcommand."""
    embed = sub.add_parser(
        "embed",
        help="embed every galaxy of a collection into a zarr array (chunked, resumable)",
        description="Embed a collection (Galaxy10 h5, zarr array of images, or folder) with the "
        "embedder of a saved model, chunk by chunk; a rerun resumes where the last one stopped.",
    )
    embed.add_argument("--data", required=True, help="Galaxy10 h5, zarr array of images, or folder")
    embed.add_argument("--model", required=True, help="a model.safetensors written by demo or rank")
    embed.add_argument(
        "--out", required=True, help="the zarr array to write (resumed if it exists)"
    )
    embed.add_argument(
        "--chunk-size",
        type=positive_int,
        default=1024,
        help="images per chunk (default: %(default)s)",
    )
    embed.add_argument(
        "--crop", type=positive_int, default=64, help="center crop (default: %(default)s)"
    )
    embed.add_argument(
        "--image-size", type=positive_int, default=None, help="resize after cropping"
    )
    cluster = embed.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="a local Dask cluster of this many processes",
    )
    cluster.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)"
    )
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(handler=_run_embed)


def add_index_parser(sub: Any) -> None:
    """The ``galaxysim index`` subcommand."""
    index = sub.add_parser(
        "index",
        help="build a search index over precomputed embeddings",
        description="Build a nearest-neighbour index over the embeddings written by "
        "'galaxysim embed', for 'galaxysim rank --index'.",
    )
    index.add_argument(
        "--embeddings", required=True, help="the zarr array written by galaxysim embed"
    )
    index.add_argument("--out", required=True, help="the index to write")
    index.add_argument(
        "--search",
        default="auto",
        help="auto, exact, faiss-flat, faiss-hnsw or faiss-ivf (default: %(default)s)",
    )
    index.add_argument("--force", action="store_true", help="replace an existing index")
    index.set_defaults(handler=_run_index)


def _neighbour_images(
    data: str | None, indices: np.ndarray, crop: int | None, image_size: int | None
) -> np.ndarray | None:
    """The images of the neighbours only, read one row at a time from ``data``."""
    if data is None:
        return None
    from ..datasets.chunks import image_chunks

    chunks = image_chunks(data, crop=crop, image_size=image_size)
    if int(indices.max()) >= chunks.n_images:
        raise ValueError(
            f"--data {data!r} has {chunks.n_images:,} images, fewer than the index; "
            "give the collection the embeddings were made from."
        )
    return np.concatenate([chunks.piece(int(i), int(i) + 1).read() for i in indices])


def _diagnose_query(ranker: Any, search: Any, query: np.ndarray, views: list[np.ndarray]) -> Any:
    """The query's diagnosis against the references saved in the model.

    When the index holds the model's collection (as many galaxies), the index
    finds the query's nearest galaxy; otherwise the references describe the
    model's own collection, and so does the nearest galaxy: the model's.
    """
    nearest = None
    if search.n_samples_fit_ == ranker.n_samples_fit_:
        nearest = search.kneighbors(views[0], 1)[0][:, 0]
    return ranker.diagnose(query, embedding=views[0], nn_distance=nearest)


def rank_with_index(args: argparse.Namespace) -> int:
    """``galaxysim rank --index``: rank a prebuilt index for a query, reading only the neighbours.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rank`` arguments (``--index``, ``--model``, ``--query``,
        ``--out``, optional ``--data`` for the neighbours' pictures).

    Returns
    -------
    status : int
        0 on success.
    """
    from .._limits import check_regular_file
    from ..ranking import NeighborSearch
    from ..ranking.result import make_ranking
    from .collections import load_query
    from .models import load_ranker
    from .output_folder import check_not_an_input, check_out_folder, staged_output

    if args.model is None:
        raise ValueError("rank --index needs --model: the model whose embedder made the index.")
    check_regular_file(args.query, "--query")
    check_regular_file(args.model, "--model")
    check_not_an_input(
        args.out, data=args.data, query=args.query, model=args.model, index=args.index
    )
    check_out_folder(args.out, force=args.force)
    start = time.perf_counter()
    ranker = load_ranker(Path(args.model), trust_pickle=args.trust_pickle)
    search = NeighborSearch.load(args.index)
    resolve_n_neighbors(args, search.n_samples_fit_, f"--index {args.index!r}")
    query, query_name = load_query(
        args.query, ranker.image_shape_, crop=args.query_crop, framing=args.query_framing_value
    )
    # The ranker's own views and diagnosis, as rank has them; the index answers the search.
    ranker.set_params(invariance=None if args.no_invariance else "dihedral")
    views = ranker.embed_views(query[np.newaxis])
    distances, indices = search.kneighbors_views(views, args.n_neighbors)
    ranking = make_ranking(
        indices[0],
        distances[0],
        n_collection=search.n_samples_fit_,
        method="embedding",
        diagnostics=_diagnose_query(ranker, search, query, views),
    )
    images = _neighbour_images(args.data, indices[0], args.crop, args.image_size)
    if images is not None:
        ranking = replace(ranking, neighbor_images=images, query_image=query)
    seconds = time.perf_counter() - start
    with staged_output(args.out, force=args.force) as staging:
        _write_index_outputs(Path(staging), ranking, args, seconds)
    print(
        f"galaxysim {__version__} rank: {args.n_neighbors} nearest of {search.n_samples_fit_:,} "
        f"galaxies in the index {args.index} for {query_name}, in {seconds:.2f} s"
    )
    if ranking.warning:
        print(f"  warning: {ranking.warning}")
    return 0


def _write_index_outputs(out: Path, ranking: Any, args: argparse.Namespace, seconds: float) -> None:
    from .provenance import run_provenance
    from .report import diagnosis_record

    ranking.to_csv(out / "ranking.csv")
    if ranking.neighbor_images is not None:
        ranking.plot(n_neighbors=len(ranking)).savefig(out / "neighbours.png", dpi=110)
    summary = {
        "query": str(args.query),
        "index": str(args.index),
        "n_neighbors": len(ranking),
        **diagnosis_record(ranking.diagnostics),
        "seconds (model loading, query, search, neighbours' images)": round(seconds, 3),
        "provenance": run_provenance(
            args.argv, random_state=None, data=args.data, query=args.query, model=args.model
        ),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
