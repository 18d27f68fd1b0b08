"""Embedding and querying at survey scale: Dask against one process, inference, rank --index.

Four parts, each runnable alone (``--parts``), on generated data: Galaxy10-layout
HDF5 files of random uint8 cutouts cropped to 64 pixels while read, and models
at their default size trained for one epoch (the weights do not change the speed).
Every figure that is compared is measured interleaved (A B A B ...) in one run,
with the load average beside it, because the machine may be shared.

- **dask**: images/s of :func:`galaxysim.scale.embed_collection` (default
  ``AutoencoderEmbedder``) in this process and on ``LocalCluster`` s of 1 and
  2 worker processes of one thread, repeated in turn; the ratios 1 worker /
  this process and 2 workers / 1 worker (medians over the repeats). Starting the
  clusters and the workers' imports are not timed. Then a per-task profile: CPU
  seconds per 1,000 images of each step of a task (reading and cropping,
  hashing included; the forward pass; writing the zarr chunk), in this process,
  in a worker as the Dask nanny starts it, and in a worker after galaxysim's
  first task there; the rest of the wall time of a Dask run is scheduling.
- **inference**: images/s per core of ``transform`` of the default
  ``ContrastiveEmbedder`` (dihedral encoder) and ``AutoencoderEmbedder`` on
  64x64 images against a bare ``torch.no_grad()`` forward pass of the same
  network over the same tensors, and the bare pass under ``inference_mode``,
  in NCHW instead of channels_last and with bfloat16 autocast, each with the
  recall@10 of its embeddings against float32's.
- **rank**: ``galaxysim rank --index`` on an index of 10^6 embeddings, each step
  timed on its own (imports in a fresh process, model load, index load, query
  embedding in 8 views, search, neighbour images, writing the outputs) and the
  whole command after imports.
- **memory**: peak memory of embedding files of two sizes, each in a fresh
  process, above what the imports hold (Linux ``VmHWM``).

Usage::

    python benchmarks/bench_scale.py                     # all parts (about 25 min on 2 cores)
    python benchmarks/bench_scale.py --parts dask        # the Dask part alone (about 8 min)
    python benchmarks/bench_scale.py --quick             # seconds: small files and models
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_report, reset_peak, status_bytes

CROP, CHUNK = 64, 256
FULL = {
    "timed": 2048,
    "side": 256,
    "repeats": 3,
    "profile": 512,
    "image": 64,
    "infer": 512,
    "infer_repeats": 3,
    "index": 1_000_000,
    "sizes": (4096, 17736),
}
QUICK = {
    "timed": 256,
    "side": 128,
    "repeats": 1,
    "profile": 64,
    "image": 32,
    "infer": 32,
    "infer_repeats": 1,
    "index": 5_000,
    "sizes": (256, 1024),
}
PARTS = ("dask", "inference", "rank", "memory")


def load() -> float:
    """The 1-minute load average (how busy the machine was)."""
    return os.getloadavg()[0]


def write_h5(path: Path, n: int, side: int, block: int = 1024) -> Path:
    """A Galaxy10-layout file of ``n`` random ``side``-pixel cutouts, written a block at a time."""
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        images = handle.create_dataset(
            "images", (n, side, side, 3), dtype=np.uint8, chunks=(16, side, side, 3)
        )
        for start in range(0, n, block):
            stop = min(start + block, n)
            images[start:stop] = rng.integers(0, 256, (stop - start, side, side, 3), dtype=np.uint8)
        handle["ans"] = rng.integers(0, 10, n)
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(n)
    return path


def make_embedder(kind: str, side: int = CROP):
    """A default-size embedder for ``side``-pixel images, trained for one epoch."""
    from galaxysim import AutoencoderEmbedder, ContrastiveEmbedder

    images = np.random.default_rng(1).random((64, side, side, 3), dtype=np.float32)
    if kind == "autoencoder":
        return AutoencoderEmbedder(max_epochs=1, device="cpu", random_state=0).fit(images)
    return ContrastiveEmbedder(max_epochs=1, device="cpu", random_state=0).fit(images)


def make_model(path: Path) -> Path:
    """A default-size autoencoder for 64-pixel images, trained for one epoch, saved to ``path``."""
    from galaxysim import save_model

    return save_model(make_embedder("autoencoder"), path)


# ----------------------------------------------------------------------------- dask


def _timed(source: Path, model: Path, out: Path, client=None) -> float:
    from galaxysim.scale import embed_collection

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    embed_collection(source, model, out, chunk_size=CHUNK // 4, client=client, crop=CROP)
    return time.perf_counter() - start


def task_steps(source: str, model: str, out: str, n: int) -> dict:
    """CPU seconds per 1,000 images of each step of an embedding task, in the calling process.

    The steps of ``embed_collection``'s task, one chunk of 64 images at a time:
    reading (crop and SHA-256 included), the forward pass with one thread, and
    writing the embeddings into a zarr chunk.
    """
    import time

    import numpy as np
    import torch

    from galaxysim import load_model
    from galaxysim.datasets.chunks import image_chunks, open_zarr_array

    torch.set_num_threads(1)
    embedder = load_model(model)
    pieces = image_chunks(source, crop=CROP).pieces(CHUNK // 4)[: max(n // (CHUNK // 4), 1)]
    cpu = {"read": 0.0, "forward": 0.0, "write": 0.0}
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for piece in pieces:
        clock = time.thread_time()
        images, _ = piece.read_with_digest()
        cpu["read"] += time.thread_time() - clock
        clock = time.thread_time()
        embedding = np.asarray(embedder.transform(images))
        cpu["forward"] += time.thread_time() - clock
        clock = time.thread_time()
        open_zarr_array(out, mode="r+", what="out")[piece.start : piece.stop] = embedding
        cpu["write"] += time.thread_time() - clock
    images = sum(piece.stop - piece.start for piece in pieces)
    result = {step: 1000 * seconds / images for step, seconds in cpu.items()}
    result["page_faults_per_image"] = (
        resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults
    ) / images
    return result


def _cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    )


def _profile(source: Path, model: Path, folder: Path, n: int, client=None) -> dict:
    import zarr

    out = folder / "profile.zarr"
    zarr.open_array(str(out), mode="w", shape=(n, 32), chunks=(CHUNK // 4, 32), dtype="float64")
    if client is None:
        return task_steps(str(source), str(model), str(out), n)
    return client.submit(task_steps, str(source), str(model), str(out), n, pure=False).result()


def dask_part(config: dict, folder: Path) -> dict:
    """Images/s here and on 1 and 2 workers, interleaved; the per-task profile."""
    from distributed import Client

    n = config["timed"]
    model = make_model(folder / "model.safetensors")
    source = write_h5(folder / "timed.h5", n, config["side"])
    runs: dict[str, list[float]] = {"here": [], "dask_1": [], "dask_2": []}
    loads: list[float] = []
    with _cluster(1) as one, Client(one) as client_1, _cluster(2) as two, Client(two) as client_2:
        clients = {"dask_1": client_1, "dask_2": client_2}
        for client, workers in ((client_1, 1), (client_2, 2)):
            client.wait_for_workers(workers)
            client.run(importlib.import_module, "galaxysim.scale")  # imports are not timed
        # A worker as the nanny starts it: before any galaxysim task ran there.
        profile = {
            "worker, as started": _profile(source, model, folder, config["profile"], client_1)
        }
        for _ in range(config["repeats"]):
            for where in runs:
                loads.append(load())
                out = folder / f"{where}.zarr"
                runs[where].append(n / _timed(source, model, out, clients.get(where)))
        profile["worker, after a task"] = _profile(
            source, model, folder, config["profile"], client_1
        )
        profile["this process"] = _profile(source, model, folder, config["profile"])
    here = _open(folder / "here.zarr")
    ratios_1 = [d / h for d, h in zip(runs["dask_1"], runs["here"])]
    ratios_2 = [d2 / d1 for d2, d1 in zip(runs["dask_2"], runs["dask_1"])]
    return {
        "images_per_s": {where: statistics.median(v) for where, v in runs.items()},
        "runs": runs,
        "worker_over_here": statistics.median(ratios_1),
        "two_over_one": statistics.median(ratios_2),
        "bit_identical": all(
            np.array_equal(here, _open(folder / f"{w}.zarr")) for w in ("dask_1", "dask_2")
        ),
        "profile": profile,
        "load": (min(loads), max(loads)),
    }


def dask_report(r: dict, config: dict) -> list[str]:
    speed = r["images_per_s"]
    lines = [
        f"Dask: {config['timed']:,} cutouts of {config['side']}x{config['side']}, crop {CROP}, "
        f"chunks of {CHUNK // 4}, default AutoencoderEmbedder, one thread per process; "
        f"{os.cpu_count()} CPU cores; here, 1 worker, 2 workers in turn, {config['repeats']} "
        f"time(s), medians; load average {r['load'][0]:.1f}-{r['load'][1]:.1f}.",
        "",
        "| where | images/s | ratio |",
        "|---|---:|---:|",
        f"| this process | {speed['here']:,.0f} | 1.00 |",
        f"| LocalCluster, 1 worker | {speed['dask_1']:,.0f} | {r['worker_over_here']:.2f} |",
        f"| LocalCluster, 2 workers | {speed['dask_2']:,.0f} | "
        f"{r['two_over_one']:.2f} x 1 worker |",
        "",
        f"Dask results equal this process's bit for bit: {r['bit_identical']}.",
        "",
        f"Per task step, CPU seconds per 1,000 images ({config['profile']} images, chunks of "
        f"{CHUNK // 4}):",
        "",
        "| where | read + crop + hash | forward pass | write zarr chunk | page faults / image |",
        "|---|---:|---:|---:|---:|",
    ]
    for where, steps in r["profile"].items():
        lines.append(
            f"| {where} | {steps['read']:.2f} | {steps['forward']:.2f} | {steps['write']:.2f} | "
            f"{steps['page_faults_per_image']:,.0f} |"
        )
    return lines


# ----------------------------------------------------------------------------- inference


def _bare_passes(embedder, kind: str):
    """The bare forward pass of the fitted network: a callable on an (n, C, H, W) batch."""
    import torch

    network = embedder.network_
    if kind == "autoencoder":
        return lambda batch: torch.sigmoid(network.encode_logits(batch).double())
    return network


def _recall(reference: np.ndarray, other: np.ndarray, k: int = 10) -> float:
    """Mean overlap of the k nearest neighbours (self excluded) of every row in the two."""
    from sklearn.neighbors import NearestNeighbors

    def neighbours(table: np.ndarray) -> np.ndarray:
        return NearestNeighbors(n_neighbors=k + 1).fit(table).kneighbors(table)[1][:, 1:]

    a, b = neighbours(reference), neighbours(other)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def inference_part(config: dict) -> dict:
    """transform against the bare forward pass and its variants, interleaved, one thread."""
    import torch

    torch.set_num_threads(1)
    side, n = config["image"], config["infer"]
    images = np.random.default_rng(2).random((n, side, side, 3), dtype=np.float32)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    channels_last = tensor.contiguous(memory_format=torch.channels_last)
    nchw = tensor.contiguous()
    results = {}
    for kind in ("contrastive", "autoencoder"):
        embedder = make_embedder(kind, side)
        forward = _bare_passes(embedder, kind)

        def bare(batches, context, convert=None, forward=forward):
            with context():
                out = [forward(b if convert is None else convert(b)) for b in batches.split(256)]
            return torch.cat(out).float().numpy()

        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)

        cases = {
            "transform": lambda embedder=embedder: embedder.transform(images),
            "bare no_grad": lambda: bare(channels_last, torch.no_grad),
            "bare inference_mode": lambda: bare(channels_last, torch.inference_mode),
            "bare no_grad, NCHW": lambda: bare(nchw, torch.no_grad),
            "bare no_grad, bfloat16 autocast": lambda: bare(
                channels_last, lambda: _Both(torch.no_grad(), autocast())
            ),
        }
        for case in cases.values():
            case()  # warm-up: oneDNN builds its kernels on the first call
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        outputs = {}
        loads = []
        for _ in range(config["infer_repeats"]):
            for name, case in cases.items():
                loads.append(load())
                start = time.process_time()
                outputs[name] = np.asarray(case())
                seconds[name].append(time.process_time() - start)
        best = {name: min(v) for name, v in seconds.items()}
        reference = outputs["bare no_grad"]
        results[kind] = {
            "images_per_cpu_s": {name: n / s for name, s in best.items()},
            "ratio_to_bare": {name: s / best["bare no_grad"] for name, s in best.items()},
            "recall": {
                name: _recall(reference, out)
                for name, out in outputs.items()
                if name != "transform"
            },
            "identical": {
                name: bool(np.array_equal(reference, out))
                for name, out in outputs.items()
                if name != "transform"
            },
            "load": (min(loads), max(loads)),
        }
    return results


class _Both:
    """Two context managers entered as one."""

    def __init__(self, first, second) -> None:
        self.first, self.second = first, second

    def __enter__(self):
        self.first.__enter__()
        self.second.__enter__()

    def __exit__(self, *exc):
        self.second.__exit__(*exc)
        self.first.__exit__(*exc)


def inference_report(r: dict, config: dict) -> list[str]:
    side = config["image"]
    lines = [
        f"Inference: {config['infer']} random {side}x{side} images, default embedders (one "
        f"epoch of training), one torch thread; CPU time, best of {config['infer_repeats']} "
        "interleaved; the transform includes its checks, whitening and normalisation.",
        "",
        "| embedder | pass | images per CPU s | time / bare no_grad | recall@10 vs bare "
        "| bitwise equal |",
        "|---|---|---:|---:|---:|---|",
    ]
    for kind, figures in r.items():
        for name, speed in figures["images_per_cpu_s"].items():
            recall = figures["recall"].get(name)
            equal = figures["identical"].get(name)
            lines.append(
                f"| {kind} | {name} | {speed:,.0f} | {figures['ratio_to_bare'][name]:.2f} | "
                f"{'' if recall is None else f'{recall:.3f}'} | {'' if equal is None else equal} |"
            )
    low = min(f["load"][0] for f in r.values())
    high = max(f["load"][1] for f in r.values())
    lines += ["", f"Load average during these runs: {low:.1f}-{high:.1f}."]
    return lines


# ----------------------------------------------------------------------------- rank --index


def rank_setup(config: dict, folder: Path) -> dict:
    """A saved ranker, an index of ``config['index']`` embeddings, a query and a sparse h5."""
    import h5py
    from bench_search import make_embeddings
    from PIL import Image

    from galaxysim import SimilarityRanker, load_model, save_model
    from galaxysim.ranking import NeighborSearch
    from galaxysim.ranking.search import faiss_available
    from galaxysim.symmetry import dihedral_views

    side = config["image"]
    images = np.random.default_rng(3).random((64, side, side, 3), dtype=np.float32)
    embedder = make_embedder("contrastive", side)
    ranker = SimilarityRanker(embedder=embedder, n_neighbors=10).fit(images)
    model = save_model(ranker, folder / "ranker.safetensors")
    query = folder / "query.png"
    Image.fromarray((images[0] * 255).round().astype(np.uint8)).save(query)
    dim = ranker.transform(images[:1]).shape[1]
    stored = make_embeddings(config["index"], dim, np.random.default_rng(4))
    algorithm = "faiss-flat" if faiss_available() else "exact"
    index = folder / "index"
    NeighborSearch(algorithm=algorithm).fit(stored).save(index)
    del stored
    # Every row is written (a file with chunks never written is refused as incomplete); the
    # rows other than the neighbours are blank, so that the file compresses to little.
    loaded = load_model(model)
    views = dihedral_views(images[:1])
    embedded = np.split(np.asarray(loaded.transform(np.concatenate(views))), len(views))
    rows = set(NeighborSearch.load(index).kneighbors_views(embedded, 10)[1][0].tolist())
    data = folder / "collection.h5"
    n, block = config["index"], 16_384
    with h5py.File(data, "w") as handle:
        pixels = handle.create_dataset(
            "images",
            (n, side, side, 3),
            dtype=np.uint8,
            chunks=(16, side, side, 3),
            compression="gzip",
            compression_opts=1,
        )
        for start in range(0, n, block):
            stop = min(start + block, n)
            part = np.zeros((stop - start, side, side, 3), dtype=np.uint8)
            for row in rows & set(range(start, stop)):
                part[row - start] = (images[row % len(images)] * 255).astype(np.uint8)
            pixels[start:stop] = part
        for key in ("ans", "ra", "dec", "redshift", "pxscale"):
            handle[key] = np.zeros(n)
    return {
        "model": model,
        "index": index,
        "query": query,
        "data": data,
        "crop": side,
        "algorithm": algorithm,
    }


RANK_CHILD = """
import json, sys, time
start = time.perf_counter()
import galaxysim.app.cli
cli = time.perf_counter()
sys.path.insert(0, {benchmarks!r})
import bench_scale
used = bench_scale.rank_imports()
imported = time.perf_counter()
steps = bench_scale.rank_steps({setup!r}, {out!r})
print(json.dumps({{"imports_cli": cli - start, "imports_used": imported - cli, **steps}}))
"""


def rank_imports() -> list[str]:
    """Import what ``rank --index`` imports as it runs (the first call pays for it)."""
    import matplotlib.pyplot  # noqa: F401

    import galaxysim.app.collections
    import galaxysim.app.models
    import galaxysim.app.output_folder
    import galaxysim.app.provenance
    import galaxysim.datasets.chunks
    import galaxysim.ranking
    import galaxysim.ranking.result
    import galaxysim.symmetry  # noqa: F401

    return sorted(name for name in sys.modules if name.startswith("galaxysim"))


def _command(setup: dict, out: str) -> list[str]:
    return [
        "rank",
        "--index",
        str(setup["index"]),
        "--model",
        str(setup["model"]),
        "--query",
        str(setup["query"]),
        "--data",
        str(setup["data"]),
        "--crop",
        str(setup["crop"]),
        "--query-framing",
        "full",
        "--n-neighbors",
        "10",
        "--out",
        out,
    ]


def rank_steps(setup: dict, out: str) -> dict:
    """The command after imports, then each of its steps timed on its own (seconds)."""
    import contextlib
    import io

    from galaxysim.app.cli import main
    from galaxysim.app.collections import load_query
    from galaxysim.app.models import load_ranker
    from galaxysim.datasets.chunks import image_chunks
    from galaxysim.ranking import NeighborSearch
    from galaxysim.ranking.result import make_ranking

    times = {}
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(_command(setup, out))
    times["command"] = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"rank --index failed with status {status}")

    def step(name, fn):
        begin = time.perf_counter()
        value = fn()
        times[name] = time.perf_counter() - begin
        return value

    ranker = step("model load", lambda: load_ranker(Path(setup["model"]), trust_pickle=False))
    search = step("index load", lambda: NeighborSearch.load(setup["index"]))
    query, _ = step(
        "query read", lambda: load_query(setup["query"], ranker.image_shape_, framing="full")
    )

    embedded = step("query embedding, 8 views", lambda: ranker.embed_views(query[np.newaxis]))
    distances, indices = step("search", lambda: search.kneighbors_views(embedded, 10))

    def neighbours():
        chunks = image_chunks(setup["data"], crop=int(setup["crop"]))
        return np.concatenate([chunks.piece(int(i), int(i) + 1).read() for i in indices[0]])

    images = step("neighbour images", neighbours)
    ranking = make_ranking(
        indices[0],
        distances[0],
        n_collection=search.n_samples_fit_,
        method="embedding",
    )
    import dataclasses

    ranking = dataclasses.replace(ranking, neighbor_images=images, query_image=query)
    folder = Path(out + "_steps")
    folder.mkdir()

    def write():
        ranking.to_csv(folder / "ranking.csv")
        ranking.plot(n_neighbors=len(ranking)).savefig(folder / "neighbours.png", dpi=110)

    step("writing ranking.csv and neighbours.png", write)
    return times


def rank_part(config: dict, folder: Path) -> dict:
    """An index of ``config['index']`` embeddings; rank --index timed in fresh processes."""
    setup = rank_setup(config, folder)
    runs = []
    for repeat in range(config["repeats"]):
        code = RANK_CHILD.format(
            benchmarks=str(Path(__file__).resolve().parent),
            setup={k: str(v) for k, v in setup.items()},
            out=str(folder / f"ranked{repeat}"),
        )
        before = load()
        completed = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"rank --index failed:\n{completed.stderr}")
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        figures["load"] = before
        runs.append(figures)
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    return {"best": best, "algorithm": setup["algorithm"], "n": config["index"], "runs": runs}


def rank_report(r: dict, config: dict) -> list[str]:
    best = r["best"]
    lines = [
        f"rank --index: {r['n']:,} stored embeddings ({r['algorithm']} index), default "
        f"ContrastiveEmbedder at {config['image']} pixels, 10 neighbours read from a gzip HDF5 "
        f"file (chunks of 16 images); each run in a fresh process, best of {config['repeats']} "
        "(load average "
        f"{min(x['load'] for x in r['runs']):.1f}-{max(x['load'] for x in r['runs']):.1f}).",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| imports: `galaxysim.app.cli` | {best['imports_cli']:.2f} |",
        f"| imports: what the command imports as it runs | {best['imports_used']:.2f} |",
    ]
    for name in (
        "model load",
        "index load",
        "query read",
        "query embedding, 8 views",
        "search",
        "neighbour images",
        "writing ranking.csv and neighbours.png",
    ):
        lines.append(f"| {name} | {best[name]:.3f} |")
    lines.append(f"| **the command, after imports** | **{best['command']:.2f}** |")
    return lines


# ----------------------------------------------------------------------------- memory


def _open(path: Path) -> np.ndarray:
    import zarr

    return zarr.open_array(str(path), mode="r")[:]


def _child(source: str, model: str, out: str) -> None:
    """Embed ``source`` in this (fresh) process and print its memory figures as JSON."""
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import galaxysim.scale

    after_imports = status_bytes("VmRSS") or 0
    reset = reset_peak()
    start = time.perf_counter()
    result = galaxysim.scale.embed_collection(source, model, out, chunk_size=CHUNK, crop=CROP)
    seconds = time.perf_counter() - start
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = status_bytes("VmHWM") if reset else None
    print(
        json.dumps(
            {
                "above_imports_bytes": (peak if peak is not None else maxrss) - after_imports,
                "output_bytes": int(np.prod(result.shape)) * 8,
                "seconds": seconds,
                "n": int(result.shape[0]),
            }
        )
    )


def peak_memory(n: int, side: int, model: Path, folder: Path) -> dict:
    """Write a file of ``n`` cutouts, embed it in a fresh process, and return the figures."""
    source = write_h5(folder / f"galaxy10_{n}.h5", n, side)
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(model), str(folder / f"m{n}.zarr")],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"embedding {n} images failed:\n{completed.stderr}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["file_bytes"] = source.stat().st_size
    source.unlink()
    return figures


def memory_part(config: dict, folder: Path) -> list[dict]:
    model = folder / "model.safetensors"
    if not model.exists():
        make_model(model)
    return [peak_memory(n, config["side"], model, folder) for n in config["sizes"]]


def memory_report(memory: list[dict]) -> list[str]:
    lines = [
        f"Peak memory, embedding in one fresh process with chunks of {CHUNK}:",
        "",
        "| images | file (MB) | embeddings (MB) | peak above imports (MB) | time (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for figures in memory:
        lines.append(
            f"| {figures['n']:,} | {figures['file_bytes'] / 1e6:,.0f} | "
            f"{figures['output_bytes'] / 1e6:,.1f} | "
            f"{figures['above_imports_bytes'] / 1e6:,.0f} | {figures['seconds']:.1f} |"
        )
    return lines


def run(config: dict, folder: Path, parts: tuple[str, ...]) -> tuple[str, dict]:
    """Measure the chosen parts; return the Markdown report and the numbers."""
    results, lines = {}, []
    for part, measure, report in (
        ("dask", lambda: dask_part(config, folder), lambda r: dask_report(r, config)),
        ("inference", lambda: inference_part(config), lambda r: inference_report(r, config)),
        ("rank", lambda: rank_part(config, folder), lambda r: rank_report(r, config)),
        ("memory", lambda: memory_part(config, folder), memory_report),
    ):
        if part in parts:
            start = time.perf_counter()
            results[part] = measure()
            lines += [
                *report(results[part]),
                "",
                f"({part}: {time.perf_counter() - start:.0f} s)",
                "",
            ]
    return "\n".join(lines).rstrip(), results


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"--parts takes a comma-separated list of {', '.join(PARTS)}; got {text!r}"
        )
    return parts


def main(argv: list[str] | None = None) -> dict | None:
    """Parse the command line, run the benchmark, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files and models, seconds")
    parser.add_argument(
        "--parts", type=_parts, default=PARTS, help=f"comma-separated, of {','.join(PARTS)}"
    )
    parser.add_argument("--child", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return None
    config = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="galaxysim_bench_") as folder:
        report, results = run(config, Path(folder), args.parts)
    script = "bench_scale.py" + ("" if args.parts == PARTS else f" --parts {','.join(args.parts)}")
    print_report("Scale", report, script, args.quick)
    return results


if __name__ == "__main__":
    main()
