"""Training speed of ContrastiveEmbedder streamed from a Galaxy10-layout HDF5 file, vs a bare loop.

1. **The file.** A Galaxy10-layout HDF5 file is generated (or reused with
   ``--h5``): ``images`` of shape (n, 256, 256, 3) uint8, each a built-in
   galaxy (``make_galaxies``, 64x64, drawn from a pool of 512) pasted at the
   centre of a noisy sky, with ``ans``, ``ra``, ``dec``, ``redshift`` and
   ``pxscale``; written 512 cutouts at a time, so the generator never holds
   the collection. Nothing is compressed: training reads rows at random.
   ``--source`` trains on an existing collection instead (HDF5, zarr or a
   folder, framed by ``--crop`` and ``--image-size``), such as the 3,332
   SDSS JPEGs of ``../shared/data``.
2. **Bare loop.** The estimator's network (``--encoder``, ``DihedralEncoder`` or
   ``ContrastiveEncoder``, with the estimator's defaults, or ``--base-channels``,
   channels-last), AdamW, two ``GalaxyAugmentation`` views per image drawn on
   the device, NT-Xent, even
   batches of 128, on the 64x64 centre crops held in memory as tensors (on
   the GPU with ``--device cuda``); every epoch trains on 90 % of the images
   and then measures the loss of fixed views of the other 10 % without
   gradients, as ``fit`` does.
3. **The estimator, streamed.** ``ContrastiveEmbedder.fit(ImageCollection(h5,
   crop=64))`` (``early_stopping=False``, so that every epoch runs): worker
   processes read and crop the rows of each batch while the device trains
   (pinned memory on a GPU), the uint8 pixels are scaled on the device; then
   ``transform`` of the collection, timed alone: it is the whitening pass
   that ``fit`` ends with. Seconds per epoch = (fit - transform) / epochs.
   With ``--in-memory``, also ``fit`` on the same tensors as the bare loop.

The runs are interleaved ``--repeats`` times; the table gives the median
images per second (all n images of an epoch, trained or validated, per
second), the ratio of the estimator's epoch time to the bare loop's in the
same run, and the projected wall time of 30 epochs (30 epochs plus the
whitening pass). ``--precision bfloat16`` runs the forward pass and the loss
of both under :func:`torch.autocast` (the estimator through the training
loop's ``autocast_dtype``, which it does not expose yet).

Imports only torch, numpy, h5py and galaxysim (which needs zuko and tqdm).

Usage::

    python benchmarks/bench_train_scale.py                    # 9,796 images, 2 epochs (~10 min)
    python benchmarks/bench_train_scale.py --n-images 17736   # the whole Galaxy10 size
    python benchmarks/bench_train_scale.py --device cuda --precision bfloat16 --epochs 3 --in-memory
    python benchmarks/bench_train_scale.py --source ../shared/data/sdss_gz1_unlabeled \\
        --crop 212 --image-size 64
    python benchmarks/bench_train_scale.py --quick            # seconds
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from galaxysim import ContrastiveEmbedder
from galaxysim._device import resolve_device
from galaxysim.datasets import ImageCollection, make_galaxies
from galaxysim.embedders import ContrastiveEncoder, DihedralEncoder, GalaxyAugmentation
from galaxysim.embedders.contrastive_network import nt_xent_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from _shared import print_report

DEFAULTS = ContrastiveEmbedder().get_params()
CUTOUT, CROP, POOL, WRITE_ROWS = 256, 64, 512, 512
QUICK_NETWORK = {"representation_dim": 8, "n_stages": 2, "base_channels": 4, "projection_dim": 8}
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def write_galaxy10_layout(path: Path, n_images: int, seed: int = 0) -> Path:
    """A Galaxy10-layout HDF5 file of ``n_images`` generated cutouts, written in blocks."""
    rng = np.random.default_rng(seed)
    pool, labels = make_galaxies(min(POOL, n_images), image_size=CROP, random_state=seed)
    pool = (pool * 255).round().astype(np.uint8)
    skies = np.clip(rng.normal(20, 6, size=(8, CUTOUT, CUTOUT, 3)), 0, 255).astype(np.uint8)
    top = (CUTOUT - CROP) // 2
    with h5py.File(path, "w") as handle:
        images = handle.create_dataset("images", (n_images, CUTOUT, CUTOUT, 3), dtype=np.uint8)
        picks = rng.integers(len(pool), size=n_images)
        for start in range(0, n_images, WRITE_ROWS):
            rows = picks[start : start + WRITE_ROWS]
            block = skies[rng.integers(len(skies), size=len(rows))]
            block[:, top : top + CROP, top : top + CROP] = pool[rows]
            images[start : start + len(rows)] = block
        handle["ans"] = labels[picks].astype(np.uint8) + 5  # Galaxy10's classes 5-9
        for key in ("ra", "dec", "redshift"):
            handle[key] = rng.random(n_images)
        handle["pxscale"] = np.full(n_images, 0.262)
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clocks() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its finished children).

    On a shared machine the wall time follows the other jobs; the CPU time
    follows the work done (the reading workers' share is counted once they
    have stopped, at the end of ``fit``).
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime


class _Autocast(ContrastiveEmbedder):
    """ContrastiveEmbedder training under torch.autocast (the loop's option, not yet public)."""

    def _fit_module(self, *args, **kwargs):
        return super()._fit_module(*args, autocast_dtype=torch.bfloat16, **kwargs)


ENCODERS = {"conv": ContrastiveEncoder, "dihedral": DihedralEncoder}


def bare_loop(
    data: torch.Tensor,
    network_params: dict,
    device: torch.device,
    epochs: int,
    batch: int,
    autocast: torch.dtype | None,
) -> tuple[float, float]:
    """(wall, CPU) seconds per epoch of the plain PyTorch training (and validation) of fit."""
    torch.manual_seed(0)
    params = dict(network_params)
    encoder = params.pop("encoder")
    # The networks call the width of the representation n_components.
    params["n_components"] = params.pop("representation_dim")
    network = ENCODERS[encoder](3, **params).to(device)
    if encoder == "conv":
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=DEFAULTS["learning_rate"], weight_decay=DEFAULTS["weight_decay"]
    )
    augmentation = GalaxyAugmentation()
    generator = torch.Generator(device=device).manual_seed(1)
    n = data.shape[0]
    order = torch.randperm(n)
    n_val = -(-n * 1 // 10)
    train, val = data[order[n_val:]], data[order[:n_val]]
    val_views = torch.stack([augmentation(val, generator) for _ in range(2)], 1)

    def loss_of(views: torch.Tensor) -> torch.Tensor:
        with (
            contextlib.nullcontext()
            if autocast is None
            else torch.autocast(device.type, dtype=autocast)
        ):
            images = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            projections = network.project(network(images)).float().reshape(len(views), 2, -1)
        return nt_xent_loss(projections[:, 0], projections[:, 1], DEFAULTS["temperature"])

    _sync(device)
    start = _clocks()
    for _ in range(epochs):
        network.train()
        perm = torch.randperm(len(train), device=device)
        n_batches = -(-len(train) // batch)
        bounds = [len(train) * i // n_batches for i in range(n_batches + 1)]
        for a, b in itertools.pairwise(bounds):
            images = train[perm[a:b]]
            views = torch.stack([augmentation(images, generator) for _ in range(2)], 1)
            loss = loss_of(views)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            for a in range(0, len(val_views), batch):
                loss_of(val_views[a : a + batch])
        float(loss.detach())  # as fit reads the epoch's loss
    _sync(device)
    return tuple((end - begin) / epochs for begin, end in zip(start, _clocks()))


def estimator_fit(
    source, embedder: ContrastiveEmbedder, device: torch.device, epochs: int
) -> tuple[tuple[float, float], float]:
    """((wall, CPU) seconds per epoch of fit, wall seconds of transform) on ``source``.

    The transform, timed alone, stands for the whitening pass that ends fit,
    and is taken out of fit's time before dividing by the epochs.
    """
    _sync(device)
    start = _clocks()
    embedder.fit(source)
    _sync(device)
    fitted = _clocks()
    embedder.transform(source)
    _sync(device)
    done = _clocks()
    whiten = [b - a for a, b in zip(fitted, done)]
    epoch = tuple((b - a - w) / epochs for a, b, w in zip(start, fitted, whiten))
    return epoch, whiten[0]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="96 images, a tiny network, 1 epoch")
    parser.add_argument("--n-images", type=int, default=9796)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="float32")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="reading processes (default: ImageCollection's)"
    )
    parser.add_argument("--base-channels", type=int, default=DEFAULTS["base_channels"])
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default=DEFAULTS["encoder"])
    parser.add_argument(
        "--in-memory", action="store_true", help="also time fit on the in-memory tensors"
    )
    parser.add_argument("--h5", type=Path, default=None, help="reuse (or keep) this file")
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="train on this collection (HDF5, zarr or folder) instead",
    )
    parser.add_argument("--crop", type=int, default=None, help=f"(default {CROP} for the file)")
    parser.add_argument("--image-size", type=int, default=None)
    return parser.parse_args(argv)


def _setup(args: argparse.Namespace, folder: str) -> tuple[ImageCollection, str]:
    """The collection to train on, and how it came about, for the report."""
    if args.source is not None:
        collection = ImageCollection(
            args.source, crop=args.crop, image_size=args.image_size, num_workers=args.workers
        )
        return collection, f"{len(collection):,} images of {args.source.name} ({collection.kind})"
    path = args.h5 or Path(folder) / "galaxy10_layout.h5"
    start = time.perf_counter()
    written = "reused"
    if not path.exists():
        write_galaxy10_layout(path, args.n_images)
        written = f"written in {time.perf_counter() - start:.0f} s"
    collection = ImageCollection(
        path, crop=args.crop or CROP, image_size=args.image_size, num_workers=args.workers
    )
    return collection, (
        f"{len(collection):,} generated cutouts of {CUTOUT}x{CUTOUT} (HDF5 {written})"
    )


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    if args.quick:
        args.n_images, args.epochs = 96, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    network = _network_of(args)
    batch_size = 32 if args.quick else DEFAULTS["batch_size"]
    params = {
        **network,
        "max_epochs": args.epochs,
        "early_stopping": False,
        "device": device,
        "random_state": 0,
        "batch_size": batch_size,
    }
    autocast = PRECISIONS[args.precision]
    cls = ContrastiveEmbedder if autocast is None else _Autocast
    with tempfile.TemporaryDirectory(prefix="bench_train_scale_") as folder:
        collection, described = _setup(args, folder)
        pixels = collection.read(np.arange(len(collection)))
        data = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(device)
        times: dict[str, list] = {"bare": [], "streamed": [], "whiten": [], "in-memory": []}
        # Warm-up: torch imports and initialises parts of itself on first use.
        bare_loop(data[: 2 * batch_size], network, device, 1, batch_size, autocast)
        for _ in range(args.repeats):
            times["bare"].append(
                bare_loop(data, network, device, args.epochs, batch_size, autocast)
            )
            epoch, whiten = estimator_fit(collection, cls(**params), device, args.epochs)
            times["streamed"].append(epoch)
            times["whiten"].append(whiten)
            if args.in_memory:
                times["in-memory"].append(
                    estimator_fit(pixels, cls(**params), device, args.epochs)[0]
                )
    result = _summary(args, times, device, collection, described, load_before)
    print_report(
        "Training from disk against a bare loop",
        result["report"],
        "bench_train_scale.py" + _flags(sys.argv[1:] if argv is None else argv),
        args.quick,
    )
    return result


def _flags(argv: list[str]) -> str:
    shown = [a for a in argv if a != "--quick"]
    return (" " + " ".join(shown)) if shown else ""


def _summary(args, times, device, collection, described, load_before) -> dict:
    n = len(collection)
    bare = statistics.median(wall for wall, _ in times["bare"])
    whiten = statistics.median(times["whiten"])
    rows = []
    for name, label in (
        ("bare", "bare PyTorch loop, tensors in memory"),
        ("streamed", f"ContrastiveEmbedder.fit(ImageCollection({collection.kind}))"),
        ("in-memory", "ContrastiveEmbedder.fit(tensors in memory)"),
    ):
        if not times[name]:
            continue
        epoch = statistics.median(wall for wall, _ in times[name])
        ratio, cpu_ratio = (
            statistics.median(t[i] / b[i] for t, b in zip(times[name], times["bare"]))
            for i in (0, 1)
        )
        extra = 0.0 if name == "bare" else whiten
        rows.append(
            {
                "run": label,
                "images_per_second": n / epoch,
                "epoch_seconds": epoch,
                "ratio": ratio,
                "cpu_ratio": cpu_ratio,
                "cpu_seconds": statistics.median(cpu for _, cpu in times[name]),
                "minutes_30": (30 * epoch + extra) / 60,
            }
        )
    lines = [
        "| run | images/s | s/epoch | ratio to bare (wall) | CPU s/epoch | ratio (CPU) "
        "| 30 epochs (min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['run']} | {r['images_per_second']:,.0f} | {r['epoch_seconds']:.3g} | "
        f"{r['ratio']:.3f} | {r['cpu_seconds']:.3g} | {r['cpu_ratio']:.3f} | "
        f"{r['minutes_30']:.3g} |"
        for r in rows
    ]
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} torch threads"
    )
    load_after = os.getloadavg()
    report = (
        f"{described}, read as {collection.image_shape}; network "
        f"{ {k: v for k, v in sorted(_network_of(args).items())} }, batch "
        f"{32 if args.quick else DEFAULTS['batch_size']}, {args.precision}; {device} "
        f"({device_name}); {collection.num_workers} reading worker(s); {args.epochs} epoch(s) "
        f"timed per run, {args.repeats} run(s); torch {torch.__version__}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.\n\n"
        + "\n".join(lines)
        + f"\n\nWhitening pass (transform of the collection): {whiten:.3g} s, counted once in "
        "the 30-epoch time."
    )
    return {"rows": rows, "whiten_seconds": whiten, "bare_epoch_seconds": bare, "report": report}


def _network_of(args: argparse.Namespace) -> dict:
    if args.quick:
        return QUICK_NETWORK | {"encoder": args.encoder}
    return {name: DEFAULTS[name] for name in QUICK_NETWORK} | {
        "base_channels": args.base_channels,
        "encoder": args.encoder,
    }


if __name__ == "__main__":
    main()
