"""Peak memory of reading large image files with a crop: cropping while decoding against after.

Writes three large PNGs (smooth sky with a galaxy-like glow, so they
compress to a few hundred KB as real cutouts do) and one large JPEG, then
reads them with a 32-pixel centre crop in a fresh Python process per case
and records the peak resident memory above the memory held once the imports
are done (Linux's ``VmHWM``, reset after the imports through
``/proc/self/clear_refs``; elsewhere ``ru_maxrss`` minus the RSS after the
imports):

- ``before``: the whole file decoded to float, then cropped, as galaxysim
  did it: ``preprocess_images(np.stack([load_image(p) for p in paths]),
  crop=32)`` (the CLI's unlabelled-folder path);
- ``after``: ``load_images(paths, crop=32)``, which crops each file's
  8-bit pixels before the float conversion, one file at a time;
- the same for one JPEG, without and with ``image_size=32`` (where the
  JPEG is also decoded at 1/8 scale).

Usage::

    python benchmarks/bench_image_memory.py           # 8000x8000 images
    python benchmarks/bench_image_memory.py --quick   # 2000x2000, seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_report, reset_peak, status_bytes

SIDE, QUICK_SIDE, CROP = 8000, 2000, 32
N_PNG = 3
CASES = {
    "png_before": ("3 PNGs", "decode all to float, stack, crop"),
    "png_after": ("3 PNGs", "load_images(crop=32)"),
    "jpeg_before": ("1 JPEG", "decode to float, crop 256, resize to 32"),
    "jpeg_after": ("1 JPEG", "load_image(crop=256, image_size=32)"),
}


def write_images(folder: Path, side: int) -> dict[str, list[Path]]:
    """Write the PNGs and the JPEG of ``side`` pixels; return their paths by kind."""
    from PIL import Image

    yy, xx = np.ogrid[:side, :side]
    glow = np.exp(-np.hypot(yy - side / 2, xx - side / 2) / (side / 12))
    paths: dict[str, list[Path]] = {"png": [], "jpeg": []}
    for i in range(N_PNG):
        rgb = (np.stack([glow * 230, glow * (200 - 20 * i), glow * 160], axis=-1)).astype(np.uint8)
        paths["png"].append(folder / f"sky_{i}.png")
        Image.fromarray(rgb).save(paths["png"][-1], optimize=False)
    paths["jpeg"].append(folder / "sky.jpg")
    Image.fromarray(rgb).save(paths["jpeg"][0], quality=90)
    return paths


def _run_case(case: str, paths: list[Path]) -> np.ndarray:
    from galaxysim.images import load_image, load_images, preprocess_images

    if case == "png_before":
        return preprocess_images(np.stack([load_image(p) for p in paths]), crop=CROP)
    if case == "png_after":
        return load_images(paths, crop=CROP)[0]
    if case == "jpeg_before":
        return preprocess_images(load_image(paths[0])[None], crop=CROP * 8, image_size=CROP)
    return load_image(paths[0], crop=CROP * 8, image_size=CROP)[None]


def _child(case: str, paths: list[str]) -> None:
    """Run one case in this (fresh) process and print its memory figures as JSON."""
    import galaxysim.images  # noqa: F401  (imports are not part of the measurement)

    after_imports = status_bytes("VmRSS") or 0
    reset = reset_peak()
    start = time.perf_counter()
    result = _run_case(case, [Path(p) for p in paths])
    seconds = time.perf_counter() - start
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = status_bytes("VmHWM") if reset else None
    above = (peak if peak is not None else maxrss) - after_imports
    print(
        json.dumps(
            {
                "above_imports_bytes": above,
                "maxrss_bytes": maxrss,
                "output_shape": list(result.shape),
                "seconds": seconds,
            }
        )
    )


def measure(case: str, paths: list[Path]) -> dict:
    """Run ``case`` in a fresh interpreter and return its measurements."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", case, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(side: int, folder: Path) -> tuple[str, dict]:
    """Write the images, measure every case, and return the Markdown report and the numbers."""
    paths = write_images(folder, side)
    sizes = {kind: sum(p.stat().st_size for p in found) for kind, found in paths.items()}
    results = {case: measure(case, paths[case.split("_")[0]]) for case in CASES}
    lines = [
        f"Files: {N_PNG} PNGs of {side}x{side} RGB ({sizes['png'] / 1e3:,.0f} KB together), "
        f"one JPEG of {side}x{side} ({sizes['jpeg'] / 1e3:,.0f} KB); crop {CROP}.",
        "",
        "| files | how | peak above RSS after imports (MB) | before / after | time (s) |",
        "|---|---|---:|---:|---:|",
    ]
    for case, (files, how) in CASES.items():
        kind, when = case.split("_")
        peak = results[case]["above_imports_bytes"]
        ratio = results[f"{kind}_before"]["above_imports_bytes"] / max(
            results[f"{kind}_after"]["above_imports_bytes"], 1
        )
        shown = f"{ratio:.1f}" if when == "after" else ""
        lines.append(
            f"| {files} | {how} | {peak / 1e6:,.0f} | {shown} | {results[case]['seconds']:.2f} |"
        )
    return "\n".join(lines), results


def main(argv: list[str] | None = None) -> dict | None:
    """Parse the command line, run the benchmark, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SIDE}x{QUICK_SIDE} images instead of {SIDE}x{SIDE}",
    )
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1:])
        return None
    side = QUICK_SIDE if args.quick else SIDE
    with tempfile.TemporaryDirectory(prefix="galaxysim_bench_") as folder:
        report, results = run(side, Path(folder))
    print_report("Image reading memory", report, "bench_image_memory.py", args.quick)
    return results


if __name__ == "__main__":
    main()
