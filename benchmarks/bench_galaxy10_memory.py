"""Peak memory of load_galaxy10_decals against the size of what it returns.

Writes an HDF5 file with Galaxy10 DECaLS's layout and size (17,736 uint8
cutouts of 256x256x3, 3.5 GB, labels in the real class proportions; the
pixels are random bytes, which costs the reader as much as real ones),
then loads the five seed classes cropped to 64 pixels in a fresh Python
process per method and records the peak resident memory: ``ru_maxrss`` for
the whole process, and the peak above the memory held once the imports are
done (Linux's ``VmHWM``, reset after the imports through
``/proc/self/clear_refs``, minus ``VmRSS`` at that point), which is what the
method itself costs:

- ``imports only``: the same imports and the labels read, no images
  (the interpreter's own footprint);
- ``load_galaxy10_decals``: the chunked loader;
- ``naive f["images"][:]``: reading the whole images dataset at once;
- ``naive read, select, crop``: the whole dataset read, the seed classes
  picked by a boolean mask, then cropped and converted.

Usage::

    python benchmarks/bench_galaxy10_memory.py           # full size, ~3.5 GB on disk
    python benchmarks/bench_galaxy10_memory.py --quick   # 300 images, seconds

The file goes to a temporary folder (``--dir`` to choose) and is deleted
afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import reset_peak, status_bytes

REAL_CLASS_COUNTS = (1081, 1853, 2645, 2027, 334, 2043, 1829, 2628, 1423, 1873)
SEED_CLASSES = (5, 6, 7, 8, 9)
IMAGE_SHAPE = (256, 256, 3)
CROP = 64
QUICK_IMAGES = 300
WRITE_ROWS = 256

METHODS = {
    "baseline": "imports only",
    "loader": "load_galaxy10_decals",
    "naive_read": 'naive f["images"][:]',
    "naive_pipeline": "naive read, select, crop",
}


def class_counts(n_images: int) -> np.ndarray:
    """Split ``n_images`` over the ten classes in the real proportions."""
    real = np.asarray(REAL_CLASS_COUNTS)
    if n_images == real.sum():
        return real
    counts = np.maximum(1, np.floor(real * n_images / real.sum()).astype(int))
    counts[np.argmax(counts)] += n_images - counts.sum()
    return counts


def write_file(path: Path, n_images: int, seed: int = 0) -> np.ndarray:
    """Write a Galaxy10-shaped HDF5 file of random pixels; return its labels."""
    import h5py

    rng = np.random.default_rng(seed)
    ans = rng.permutation(np.repeat(np.arange(10), class_counts(n_images))).astype(np.uint8)
    row_bytes = int(np.prod(IMAGE_SHAPE))
    with h5py.File(path, "w") as handle:
        images = handle.create_dataset("images", shape=(n_images, *IMAGE_SHAPE), dtype=np.uint8)
        for start in range(0, n_images, WRITE_ROWS):
            stop = min(start + WRITE_ROWS, n_images)
            block = np.frombuffer(rng.bytes((stop - start) * row_bytes), dtype=np.uint8)
            images[start:stop] = block.reshape(stop - start, *IMAGE_SHAPE)
        handle["ans"] = ans
        handle["ra"] = rng.uniform(0.0, 360.0, n_images)
        handle["dec"] = rng.uniform(-20.0, 80.0, n_images)
        handle["redshift"] = rng.uniform(0.0, 0.25, n_images)
        handle["pxscale"] = np.full(n_images, 0.262)
    return ans


def _child(method: str, path: str) -> None:
    """Run one method in this (fresh) process and print its memory figures as JSON."""
    import resource

    import h5py

    from galaxysim.datasets.galaxy10 import load_galaxy10_decals
    from galaxysim.images import preprocess_images

    after_imports = status_bytes("VmRSS")
    reset = reset_peak()
    start = time.perf_counter()
    output_bytes = 0
    if method == "loader":
        images, _ = load_galaxy10_decals(path, classes=SEED_CLASSES, crop=CROP, return_X_y=True)
        output_bytes = images.nbytes
    else:
        with h5py.File(path, "r") as handle:
            ans = handle["ans"][()]
            if method == "naive_read":
                images = handle["images"][:]
                output_bytes = images.nbytes
            elif method == "naive_pipeline":
                everything = handle["images"][:]
                images = preprocess_images(everything[np.isin(ans, SEED_CLASSES)], crop=CROP)
                output_bytes = images.nbytes
    seconds = time.perf_counter() - start
    # ru_maxrss (KiB on Linux) covers the whole process, imports included;
    # VmHWM after the reset covers only the work measured here.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak_since = status_bytes("VmHWM") if reset else None
    above = None
    if peak_since is not None and after_imports is not None:
        above = peak_since - after_imports
    print(
        json.dumps(
            {
                "maxrss_bytes": maxrss,
                "after_imports_bytes": after_imports,
                "above_imports_bytes": above,
                "output_bytes": output_bytes,
                "seconds": seconds,
            }
        )
    )


def measure(method: str, path: Path) -> dict:
    """Run ``method`` in a fresh interpreter and return its measurements."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", method, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(n_images: int, folder: Path, keep: bool) -> str:
    """Write the file, measure every method, and return the Markdown report."""
    file_bytes = n_images * int(np.prod(IMAGE_SHAPE))
    free = shutil.disk_usage(folder).free
    if free < file_bytes * 1.1 + 2**30:
        raise SystemExit(
            f"{folder} has {free / 1e9:.1f} GB free; the benchmark file needs "
            f"{file_bytes / 1e9:.1f} GB plus 1 GB of room. Use --dir or --quick."
        )
    path = folder / "Galaxy10_DECals_bench.h5"
    try:
        began = time.perf_counter()
        ans = write_file(path, n_images)
        write_seconds = time.perf_counter() - began
        n_selected = int(np.isin(ans, SEED_CLASSES).sum())
        results = {method: measure(method, path) for method in METHODS}
    finally:
        if not keep:
            path.unlink(missing_ok=True)
    output_bytes = results["loader"]["output_bytes"]
    lines = [
        f"File: {n_images:,} images of {IMAGE_SHAPE}, {file_bytes / 1e9:.2f} GB of pixels "
        f"(written in {write_seconds:.0f} s); selected: {n_selected:,} images of classes "
        f"{list(SEED_CLASSES)}, crop {CROP}; output {output_bytes / 1e6:.0f} MB float32.",
        "",
        "| method | peak RSS, ru_maxrss (MB) | peak above RSS after imports (MB) "
        "| that / output size | time (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, label in METHODS.items():
        result = results[method]
        above = result["above_imports_bytes"]
        if above is None:  # no /proc: fall back to the difference of whole-process peaks
            above = result["maxrss_bytes"] - results["baseline"]["maxrss_bytes"]
        lines.append(
            f"| {label} | {result['maxrss_bytes'] / 1e6:,.0f} | {above / 1e6:,.0f} | "
            f"{above / output_bytes:.2f} | {result['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the benchmark, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_IMAGES} images instead of 17,736 (seconds)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder for the generated file (default: a new temporary one)",
    )
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    n_images = QUICK_IMAGES if args.quick else sum(REAL_CLASS_COUNTS)
    command = "python benchmarks/bench_galaxy10_memory.py" + (" --quick" if args.quick else "")
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        report = run(n_images, args.dir, args.keep)
    elif args.keep:
        report = run(n_images, Path(tempfile.mkdtemp(prefix="galaxysim_bench_")), True)
    else:
        with tempfile.TemporaryDirectory(prefix="galaxysim_bench_") as folder:
            report = run(n_images, Path(folder), False)
    print(
        f"# Galaxy10 loader memory ({date.today().isoformat()}, "
        f"{platform.machine()}, Python {platform.python_version()})\n"
    )
    print(report)
    print(f"\nCommand: `{command}`")


if __name__ == "__main__":
    main()
