"""Embedding a large collection: Dask throughput with 1 and 2 workers, and flat peak memory.

Two measurements, both on generated Galaxy10-layout HDF5 files (random
uint8 cutouts with the Galaxy10 keys), cropped to 64 pixels while read, and
an ``AutoencoderEmbedder`` at its default size (5 stages of 6 residual
blocks; trained for one epoch, since the weights do not change the speed):

- **throughput** (images/s) of :func:`galaxysim.scale.embed_collection`
  in this process, and on a ``LocalCluster`` of 1 and of 2 worker
  processes (one thread each, on 127.0.0.1), and the 2/1 ratio. Starting
  the cluster and the imports in its workers are not timed; shipping the
  model to the workers is.
- **peak memory** of embedding files of two sizes sequentially, each in a
  fresh Python process: the peak resident memory above what the imports
  hold (Linux ``VmHWM`` after ``/proc/self/clear_refs``), beside the size
  of the file and of the embeddings. Flat means the peak does not grow
  with the number of images.

Usage::

    python benchmarks/bench_scale.py           # 4,096 images timed; 4,096 and 17,736 cutouts of 256x256
    python benchmarks/bench_scale.py --quick   # 512 images timed; 256 and 1,024 of 128x128
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_report, reset_peak, status_bytes

CROP, CHUNK = 64, 256
FULL = {"timed": 4096, "side": 256, "sizes": (4096, 17736)}
QUICK = {"timed": 512, "side": 128, "sizes": (256, 1024)}


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


def make_model(path: Path) -> Path:
    """A default-size autoencoder for 64-pixel images, trained for one epoch, saved to ``path``."""
    from galaxysim import AutoencoderEmbedder, save_model

    images = np.random.default_rng(1).random((64, CROP, CROP, 3), dtype=np.float32)
    model = AutoencoderEmbedder(max_epochs=1, device="cpu", random_state=0).fit(images)
    return save_model(model, path)


def _timed(source: Path, model: Path, out: Path, client=None) -> float:
    from galaxysim.scale import embed_collection

    start = time.perf_counter()
    embed_collection(source, model, out, chunk_size=CHUNK // 4, client=client, crop=CROP)
    return time.perf_counter() - start


def throughput(source: Path, model: Path, n: int, folder: Path) -> dict:
    """Images per second here and on LocalClusters of 1 and 2 worker processes."""
    from distributed import Client, LocalCluster

    results = {"sequential": n / _timed(source, model, folder / "here.zarr")}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(workers)
            client.run(importlib.import_module, "galaxysim.scale")  # imports are not timed
            seconds = _timed(source, model, folder / f"dask{workers}.zarr", client)
        results[f"dask_{workers}"] = n / seconds
    here = np.asarray(_open(folder / "here.zarr"))
    results["bit_identical"] = all(
        np.array_equal(here, _open(folder / f"dask{w}.zarr")) for w in (1, 2)
    )
    results["ratio_2_over_1"] = results["dask_2"] / results["dask_1"]
    return results


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


def run(config: dict, folder: Path) -> tuple[str, dict]:
    """Measure throughput and memory; return the Markdown report and the numbers."""
    model = make_model(folder / "model.safetensors")
    source = write_h5(folder / "timed.h5", config["timed"], config["side"])
    speed = throughput(source, model, config["timed"], folder)
    memory = [peak_memory(n, config["side"], model, folder) for n in config["sizes"]]
    lines = [
        f"Throughput: {config['timed']:,} cutouts of {config['side']}x{config['side']}, crop "
        f"{CROP}, chunks of {CHUNK // 4}, default AutoencoderEmbedder, one thread per process; "
        f"{os.cpu_count()} CPU cores.",
        "",
        "| where | images/s |",
        "|---|---:|",
        f"| this process | {speed['sequential']:,.0f} |",
        f"| LocalCluster, 1 worker | {speed['dask_1']:,.0f} |",
        f"| LocalCluster, 2 workers | {speed['dask_2']:,.0f} |",
        f"| 2 workers / 1 worker | {speed['ratio_2_over_1']:.2f} |",
        "",
        f"Dask results equal this process's bit for bit: {speed['bit_identical']}.",
        "",
        f"Peak memory, embedding in one process with chunks of {CHUNK}:",
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
    return "\n".join(lines), {"throughput": speed, "memory": memory}


def main(argv: list[str] | None = None) -> dict | None:
    """Parse the command line, run the benchmark, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files, seconds")
    parser.add_argument("--child", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return None
    config = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="galaxysim_bench_") as folder:
        report, results = run(config, Path(folder))
    print_report("Scale", report, "bench_scale.py", args.quick)
    return results


if __name__ == "__main__":
    main()
