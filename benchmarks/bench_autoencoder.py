"""Benchmark AutoencoderEmbedder: training speed, embedding throughput, latent-space quality.

Speed: seconds per epoch on 9,796 images of 64x64 (the size of the Galaxy10
spiral and edge-on subset), for the estimator and for a bare PyTorch loop of
the same network measured in the same run, plus the variants that might make
training faster (channels-last memory, torch.compile, bfloat16 autocast,
thread count, larger batches), each with the loss it reached so that a
faster but worse variant shows. To keep the run short each measurement
trains on ``--timing-batches`` batches of make_galaxies images and the time
is extrapolated to an epoch of 9,796 images; the loss is the mean training
loss over those batches (the bare-loop variants share the images, their
order and the initial weights; the estimator draws its own order from its
random_state). torch.compile is only tried with ``--compile``: compiling
takes minutes on a small CPU.

Throughput: images per second of ``transform``.

Quality: on make_galaxies data (2,000 images to fit, 500 held out), the share
of each held-out image's 10 nearest fitted images that have its class, in the
autoencoder's latent space and in PCA with as many components. Optionally
saves a grid of held-out images and their reconstructions.

Run ``python benchmarks/bench_autoencoder.py --quick`` for a seconds-long
smoke run; without ``--quick`` it runs the full measurements.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from galaxysim._training import resolve_device, seeded
from galaxysim.datasets.synthetic import make_galaxies
from galaxysim.embedders import AutoencoderEmbedder, ConvAutoencoder

EPOCH_IMAGES = 9796  # the five spiral and edge-on classes of Galaxy10 DECaLS


class Setup(NamedTuple):
    """Sizes of one benchmark run."""

    image_size: int
    n_stages: int
    n_blocks: int
    base_channels: int
    latent_dim: int
    batch_size: int
    timing_batches: int
    repeats: int
    other_batches: tuple[int, ...]
    throughput_images: int
    n_fit: int
    n_held: int
    quality_epochs: int
    patience: int

    def network_kwargs(self) -> dict:
        """The shape of the network, as ConvAutoencoder takes it."""
        return dict(
            latent_dim=self.latent_dim,
            n_stages=self.n_stages,
            n_blocks=self.n_blocks,
            base_channels=self.base_channels,
        )

    def estimator_kwargs(self) -> dict:
        """The same shape, as AutoencoderEmbedder takes it."""
        kwargs = self.network_kwargs()
        kwargs["n_components"] = kwargs.pop("latent_dim")
        return kwargs


QUICK = Setup(
    image_size=16,
    n_stages=2,
    n_blocks=1,
    base_channels=4,
    latent_dim=8,
    batch_size=16,
    timing_batches=2,
    repeats=1,
    other_batches=(32,),
    throughput_images=64,
    n_fit=120,
    n_held=40,
    quality_epochs=2,
    patience=2,
)
FULL = Setup(
    image_size=64,
    n_stages=5,
    n_blocks=6,
    base_channels=16,
    latent_dim=32,
    batch_size=64,
    timing_batches=6,
    repeats=3,
    other_batches=(32, 128, 256),
    throughput_images=1024,
    n_fit=2000,
    n_held=500,
    quality_epochs=100,
    patience=10,
)


# --- training speed -------------------------------------------------------------------------


def bare_loop(
    images: np.ndarray,
    setup: Setup,
    device: torch.device,
    *,
    batch_size: int,
    channels_last: bool = False,
    compile_model: bool = False,
    bf16: bool = False,
) -> tuple[float, float, float]:
    """Train a fresh network for one pass over ``images`` with a plain PyTorch loop.

    Returns (seconds, mean training loss, seconds spent before the first
    batch finished, i.e. compilation when ``compile_model``).
    """
    start = time.perf_counter()
    height, width, channels = images.shape[1:]
    with seeded(0):
        net = ConvAutoencoder(channels, height, width, **setup.network_kwargs())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device, memory_format=fmt)
    model = torch.compile(net) if compile_model else net
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = torch.from_numpy(images).permute(0, 3, 1, 2)
    if not channels_last:
        data = data.contiguous()
    data = data.to(device)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0)).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    total, first = torch.zeros((), device=device), None
    net.train()
    for i in range(0, len(images), batch_size):
        batch = data[order[i : i + batch_size]]
        with autocast:
            loss = F.mse_loss(model(batch).float(), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
        if first is None:
            _sync(device)
            first = time.perf_counter() - start
    mean = float(total) / len(images)
    _sync(device)
    return time.perf_counter() - start, mean, first


def estimator_fit(
    images: np.ndarray,
    setup: Setup,
    device: torch.device,
    *,
    augment: bool = False,
    validation_fraction: float = 0.0,
) -> tuple[float, float]:
    """Time ``AutoencoderEmbedder.fit`` for one epoch; returns (seconds, training loss)."""
    est = AutoencoderEmbedder(
        **setup.estimator_kwargs(),
        max_epochs=1,
        batch_size=setup.batch_size,
        random_dihedral=augment,
        validation_fraction=validation_fraction,
        early_stopping=validation_fraction > 0,
        device=device,
        random_state=0,
    )
    start = time.perf_counter()
    est.fit(images)
    _sync(device)
    return time.perf_counter() - start, est.history_.train_loss[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_epoch(seconds: float, n_images: int) -> float:
    return seconds / n_images * EPOCH_IMAGES


VARIANTS = ("augment", "validation", "bf16", "batches", "compile")


def speed_rows(
    setup: Setup, device: torch.device, threads: list[int], variants: set[str]
) -> list[list[str]]:
    """Rows of the speed table; ratios are to the bare loop in the same run.

    The bare loop and the estimator are measured at every thread count; the
    ``variants`` only at the first.
    """
    n_images = setup.batch_size * setup.timing_batches
    images, _ = make_galaxies(
        max(n_images, max(setup.other_batches, default=0) * 2),
        image_size=setup.image_size,
        random_state=0,
    )
    timing = images[:n_images]
    rows = []
    default_threads = torch.get_num_threads()

    def measure(fn, repeats):
        results = [fn() for _ in range(repeats)]
        return min(r[0] for r in results), statistics.median(r[0] for r in results), results[0][1]

    for n_threads in threads:
        torch.set_num_threads(n_threads)
        # Warm-up: the first pass pays for allocator and kernel set-up.
        bare_loop(timing[: setup.batch_size], setup, device, batch_size=setup.batch_size)
        bare_loop(
            timing[: setup.batch_size],
            setup,
            device,
            batch_size=setup.batch_size,
            channels_last=True,
        )
        # Estimator and bare loop are interleaved so that both see the same load.
        bare_times, bare_cl_times, est_times = [], [], []
        for _ in range(setup.repeats):
            bare_times.append(bare_loop(timing, setup, device, batch_size=setup.batch_size))
            bare_cl_times.append(
                bare_loop(timing, setup, device, batch_size=setup.batch_size, channels_last=True)
            )
            est_times.append(estimator_fit(timing, setup, device))
        base = min(t[0] for t in bare_cl_times)
        for name, results in [
            ("bare loop, NCHW contiguous", bare_times),
            ("bare loop, channels-last", bare_cl_times),
            ("estimator fit (no augment, no validation)", est_times),
        ]:
            best = min(r[0] for r in results)
            rows.append(
                [
                    name,
                    str(n_threads),
                    str(setup.batch_size),
                    f"{_per_epoch(best, n_images):.1f}",
                    f"{_per_epoch(statistics.median(r[0] for r in results), n_images):.1f}",
                    f"{best / base:.3f}",
                    f"{results[0][1]:.5f}",
                ]
            )
        if n_threads != threads[0]:
            continue
        extras = []
        if "augment" in variants:
            extras.append(
                (
                    "estimator fit + augmentation",
                    lambda: estimator_fit(timing, setup, device, augment=True),
                )
            )
        if "validation" in variants:
            extras.append(
                (
                    "estimator fit + augmentation + 10% validation",
                    lambda: estimator_fit(
                        timing, setup, device, augment=True, validation_fraction=0.1
                    ),
                )
            )
        if "bf16" in variants:
            extras.append(
                (
                    "bare loop, channels-last, bf16 autocast",
                    lambda: bare_loop(
                        timing,
                        setup,
                        device,
                        batch_size=setup.batch_size,
                        channels_last=True,
                        bf16=True,
                    ),
                )
            )
        for batch_size in setup.other_batches if "batches" in variants else ():
            n_big = batch_size * max(2, setup.timing_batches * setup.batch_size // batch_size)
            big = images[:n_big]
            extras.append(
                (
                    f"bare loop, channels-last, batch {batch_size}",
                    lambda b=batch_size, data=big: _rescaled(
                        bare_loop(data, setup, device, batch_size=b, channels_last=True),
                        len(data),
                        n_images,
                    ),
                )
            )
        for name, fn in extras:
            best, median, loss = measure(fn, max(1, setup.repeats - 1))
            batch = name.rsplit("batch ", 1)[-1] if "batch " in name else str(setup.batch_size)
            rows.append(
                [
                    name,
                    str(n_threads),
                    batch,
                    f"{_per_epoch(best, n_images):.1f}",
                    f"{_per_epoch(median, n_images):.1f}",
                    f"{best / base:.3f}",
                    f"{loss:.5f}",
                ]
            )
        if "compile" in variants:
            rows.append(compile_row(timing, setup, device, n_threads, base, n_images))
    torch.set_num_threads(default_threads)
    return rows


def _rescaled(result: tuple[float, float, float], n_done: int, n_wanted: int):
    seconds, loss, first = result
    return seconds * n_wanted / n_done, loss, first


def compile_row(images, setup, device, n_threads, base, n_images) -> list[str]:
    """torch.compile: steady-state time after a first (compiling) pass, and the compile time."""
    try:
        _first_pass, _, first_batch = bare_loop(
            images,
            setup,
            device,
            batch_size=setup.batch_size,
            channels_last=True,
            compile_model=True,
        )
        seconds, loss, _ = bare_loop(
            images,
            setup,
            device,
            batch_size=setup.batch_size,
            channels_last=True,
            compile_model=True,
        )
    except Exception as exc:  # compilation needs a working C++ toolchain
        return [
            "bare loop, channels-last, torch.compile",
            str(n_threads),
            str(setup.batch_size),
            "failed",
            "",
            "",
            type(exc).__name__,
        ]
    return [
        f"bare loop, channels-last, torch.compile (first batch incl. compile {first_batch:.0f} s)",
        str(n_threads),
        str(setup.batch_size),
        f"{_per_epoch(seconds, n_images):.1f}",
        "",
        f"{seconds / base:.3f}",
        f"{loss:.5f}",
    ]


# --- throughput ---------------------------------------------------------------------------------


def throughput_rows(setup: Setup, device: torch.device, threads: list[int]) -> list[list[str]]:
    images, _ = make_galaxies(setup.throughput_images, image_size=setup.image_size, random_state=1)
    est = AutoencoderEmbedder(
        **setup.estimator_kwargs(),
        max_epochs=1,
        batch_size=setup.batch_size,
        device=device,
        random_state=0,
    )
    est.fit(images[: setup.batch_size * 2])
    rows = []
    default_threads = torch.get_num_threads()
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        est.transform(images[:8])  # warm-up
        times = []
        for _ in range(max(1, setup.repeats)):
            start = time.perf_counter()
            est.transform(images)
            times.append(time.perf_counter() - start)
        rows.append([str(n_threads), str(len(images)), f"{len(images) / min(times):.0f}"])
    torch.set_num_threads(default_threads)
    return rows


# --- quality ------------------------------------------------------------------------------------


def same_class_rate(fit_codes, fit_labels, held_codes, held_labels, k: int = 10) -> float:
    """Mean share of each held-out sample's k nearest fitted samples that share its class."""
    index = (
        NearestNeighbors(n_neighbors=k).fit(fit_codes).kneighbors(held_codes, return_distance=False)
    )
    return float((fit_labels[index] == held_labels[:, None]).mean())


def quality(
    setup: Setup, device: torch.device, figure: Path | None, verbose: int
) -> tuple[list[list[str]], dict]:
    X, y = make_galaxies(setup.n_fit + setup.n_held, image_size=setup.image_size, random_state=0)
    X_fit, y_fit = X[: setup.n_fit], y[: setup.n_fit]
    X_held, y_held = X[setup.n_fit :], y[setup.n_fit :]
    start = time.perf_counter()
    ae = AutoencoderEmbedder(
        **setup.estimator_kwargs(),
        max_epochs=setup.quality_epochs,
        patience=setup.patience,
        batch_size=setup.batch_size,
        device=device,
        random_state=0,
        verbose=verbose,
    ).fit(X_fit)
    fit_seconds = time.perf_counter() - start
    flat_fit, flat_held = X_fit.reshape(len(X_fit), -1), X_held.reshape(len(X_held), -1)
    pca = PCA(setup.latent_dim, random_state=0).fit(flat_fit)
    pca_recon = pca.inverse_transform(pca.transform(flat_held))
    rows = [
        [
            "autoencoder latent",
            str(setup.latent_dim),
            f"{same_class_rate(ae.transform(X_fit), y_fit, ae.transform(X_held), y_held):.3f}",
            f"{-ae.score(X_held):.5f}",
        ],
        [
            "PCA",
            str(setup.latent_dim),
            f"{same_class_rate(pca.transform(flat_fit), y_fit, pca.transform(flat_held), y_held):.3f}",  # noqa: E501
            f"{np.mean((pca_recon - flat_held) ** 2):.5f}",
        ],
        [
            "raw pixels",
            str(flat_fit.shape[1]),
            f"{same_class_rate(flat_fit, y_fit, flat_held, y_held):.3f}",
            "0",
        ],
        [
            "chance (class shares)",
            "",
            f"{np.mean(np.bincount(y_fit)[y_held] / len(y_fit)):.3f}",
            "",
        ],
    ]
    info = dict(
        fit_seconds=fit_seconds,
        epochs=ae.history_.n_epochs,
        best_epoch=ae.history_.best_epoch,
        stopped_early=ae.history_.stopped_early,
    )
    if figure is not None:
        save_reconstructions(ae, X_held[:8], figure)
    return rows, info


def save_reconstructions(ae: AutoencoderEmbedder, images: np.ndarray, path: Path) -> None:
    """Two rows: held-out images and their reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recon = ae.inverse_transform(ae.transform(images))
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.1))
    for j in range(n):
        for row, picture in enumerate((images[j], recon[j])):
            axes[row, j].imshow(np.clip(picture, 0, 1))
            axes[row, j].set_xticks([])
            axes[row, j].set_yticks([])
    axes[0, 0].set_ylabel("held out")
    axes[1, 0].set_ylabel("reconstructed")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- report -------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, runs in seconds")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument(
        "--parts",
        default="speed,throughput,quality",
        help="comma-separated subset of speed,throughput,quality",
    )
    parser.add_argument(
        "--threads",
        default=None,
        help="comma-separated torch thread counts to compare (default: 1 and "
        "all cores on the CPU, the current setting on CUDA)",
    )
    parser.add_argument("--timing-batches", type=int, default=None)
    parser.add_argument("--quality-epochs", type=int, default=None)
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="save held-out images and their reconstructions here (PNG)",
    )
    parser.add_argument(
        "--variants",
        default="augment,validation,bf16,batches",
        help="comma-separated speed variants to time besides the bare loop "
        f"and the estimator, from {','.join(VARIANTS)}",
    )
    parser.add_argument(
        "--batches", default=None, help="comma-separated batch sizes for the 'batches' variant"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add the 'compile' variant (compiling takes minutes on a CPU)",
    )
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    setup = QUICK if args.quick else FULL
    if args.timing_batches is not None:
        setup = setup._replace(timing_batches=args.timing_batches)
    if args.quality_epochs is not None:
        setup = setup._replace(quality_epochs=args.quality_epochs)
    device = resolve_device(args.device)
    if args.threads:
        threads = [int(t) for t in args.threads.split(",")]
    elif device.type == "cpu":
        threads = sorted({1, torch.get_num_threads()})
    else:
        threads = [torch.get_num_threads()]
    parts = set(args.parts.split(","))
    variants = {v for v in args.variants.split(",") if v} | ({"compile"} if args.compile else set())
    unknown = variants - set(VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)}; choose from {','.join(VARIANTS)}")
    if args.batches:
        setup = setup._replace(other_batches=tuple(int(b) for b in args.batches.split(",")))

    given = sys.argv[1:] if argv is None else argv
    print(f"Command: python benchmarks/bench_autoencoder.py {shlex.join(given)}".rstrip())
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(
        f"Device: {device} ({where}); torch {torch.__version__}; "
        f"{torch.get_num_threads()} threads by default; {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"Network: {setup.image_size}x{setup.image_size}x3, n_stages={setup.n_stages}, "
        f"n_blocks={setup.n_blocks}, base_channels={setup.base_channels}, "
        f"latent_dim={setup.latent_dim}\n"
    )

    if "speed" in parts:
        print(
            f"## Training speed (extrapolated from {setup.timing_batches} batches of "
            f"{setup.batch_size} to {EPOCH_IMAGES} images; best and median of "
            f"{setup.repeats})\n"
        )
        print(
            table(
                [
                    "setting",
                    "threads",
                    "batch",
                    "s/epoch (best)",
                    "s/epoch (median)",
                    "ratio to bare channels-last",
                    "train loss",
                ],
                speed_rows(setup, device, threads, variants),
            )
        )
        print()
    if "throughput" in parts:
        print("## Embedding throughput (transform)\n")
        print(table(["threads", "images", "images/s"], throughput_rows(setup, device, threads)))
        print()
    if "quality" in parts:
        rows, info = quality(setup, device, args.figure, args.verbose)
        print(
            f"## Same-class agreement of the 10 nearest neighbours ({setup.n_fit} fitted, "
            f"{setup.n_held} held out)\n"
        )
        print(
            table(["space", "dimensions", "same-class rate", "held-out reconstruction MSE"], rows)
        )
        print(
            f"\nAutoencoder fit: {info['fit_seconds']:.0f} s, {info['epochs']} epochs "
            f"(best {info['best_epoch']}, stopped early: {info['stopped_early']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
