"""Benchmark ContrastiveEmbedder: epoch time, estimator overhead, augmentation cost, convergence.

All on make_galaxies images at the estimator's default network size
(``representation_dim=128, n_stages=4, base_channels=32, projection_dim=64``,
batch 128, NT-Xent at temperature 0.2, the default GalaxyAugmentation, the
embedding PCA-whitened to 64 directions: all read from ContrastiveEmbedder's
defaults), on the CPU with ``--threads`` torch threads:

1. **Epoch time.** ``ContrastiveEmbedder.fit`` with ``max_epochs=2`` and no
   validation on ``n_timing`` images, per epoch, extrapolated to one epoch of
   the 9,796 images of Galaxy10's five spiral and edge-on classes.
2. **Estimator overhead.** The same training written as a bare PyTorch loop
   (the same ContrastiveEncoder, AdamW, two GalaxyAugmentation views per
   batch, nt_xent_loss, the same batch size and number of steps), timed
   interleaved with the estimator, ``repeats`` times; the ratio is the
   median of the back-to-back pairs. The estimator is timed with
   ``n_components=None`` (the training alone) and with the default ``n_components=64``,
   whose extra embedding pass over the training images (and the SVD of
   their embedding) is part of ``fit``.
3. **Augmentation against the training step.** Images per second of
   GalaxyAugmentation on batches of the default batch size, 128 (whole, and
   its geometric and photometric halves), and the share of a training step
   (two views of 128 images augmented, then forward, backward and optimiser
   step of the 256 views) spent augmenting.
4. **Time to a converged embedding.** The bare loop of part 2 trains on
   ``n_curve`` galaxies (all of them, no validation); after every epoch the
   training images are embedded (eval mode, PCA-whitened as ``fit`` and
   ``transform`` do, by the estimator's own ``shrunk_whitening``) and scored by
   :func:`galaxysim.metrics.same_class_rate` with 10 neighbours (epoch 0:
   the untrained network). Training stops once the
   rate has plateaued (the last ``plateau_window`` epochs gain no more than
   0.005 over the best trained epoch before them, after at least
   ``plateau_window + 3`` epochs) or at ``max_epochs``. The trained
   epochs needed to come within 0.01 of the best rate, times part 1's epoch
   time for 9,796 images, estimate the training time on a Galaxy10-sized
   collection (a larger collection takes more steps per epoch, so it may
   need fewer epochs: this is an upper estimate).

Usage::

    python benchmarks/bench_contrastive.py           # ~20 minutes on 2 shared cores
    python benchmarks/bench_contrastive.py --quick   # seconds: 32x32, 64 images
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from galaxysim.datasets import make_galaxies
from galaxysim.embedders import ContrastiveEmbedder, ContrastiveEncoder, GalaxyAugmentation
from galaxysim.embedders.contrastive_network import nt_xent_loss
from galaxysim.embedders.whitening import shrunk_whitening
from galaxysim.metrics import same_class_rate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import print_report

EPOCH_IMAGES = 9796  # the five spiral and edge-on classes of Galaxy10 DECaLS
# The estimator's defaults, read from it so that the bare loop trains, and the
# convergence curve whitens, exactly as ContrastiveEmbedder does by default.
DEFAULTS = ContrastiveEmbedder().get_params()
BATCH = DEFAULTS["batch_size"]
NETWORK = {
    name: DEFAULTS[name]
    for name in ("representation_dim", "n_stages", "base_channels", "projection_dim")
}
TEMPERATURE = DEFAULTS["temperature"]
LEARNING_RATE, WEIGHT_DECAY = DEFAULTS["learning_rate"], DEFAULTS["weight_decay"]
WHITEN = DEFAULTS["n_components"]


class Setup(NamedTuple):
    """Sizes of one benchmark run."""

    image_size: int
    batch_size: int
    n_timing: int  # images per epoch in parts 1 and 2
    epochs: int  # epochs per timed fit in parts 1 and 2
    repeats: int
    augment_batches: int  # batches timed in part 3
    n_curve: int  # galaxies of part 4
    max_epochs: int
    plateau_window: int
    network: dict


# --quick only checks that the script runs: a small network on small images.
QUICK = Setup(
    image_size=32,
    batch_size=32,
    n_timing=64,
    epochs=1,
    repeats=1,
    augment_batches=1,
    n_curve=64,
    max_epochs=2,
    plateau_window=2,
    network=dict(representation_dim=16, n_stages=2, base_channels=8, projection_dim=16),
)
FULL = Setup(
    image_size=64,
    batch_size=BATCH,
    n_timing=2 * BATCH,
    epochs=2,
    repeats=4,
    augment_batches=4,
    n_curve=2000,
    max_epochs=15,
    plateau_window=3,
    network=NETWORK,
)


def _tensor(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, C) images as the (n, C, H, W) channels-last view the estimator trains on."""
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def _network(channels: int, network: dict, seed: int = 0) -> ContrastiveEncoder:
    torch.manual_seed(seed)
    # The network calls the width of its representation n_components.
    shape = {("n_components" if k == "representation_dim" else k): v for k, v in network.items()}
    return ContrastiveEncoder(channels, **shape).to(memory_format=torch.channels_last)


def _step(net, optimizer, augmentation, images, generator) -> torch.Tensor:
    """One training step as a user would write it: two views, NT-Xent, AdamW."""
    views = torch.stack([augmentation(images, generator), augmentation(images, generator)], 1)
    n = views.shape[0]
    flat = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
    projections = net.project(net(flat)).reshape(n, 2, -1)
    loss = nt_xent_loss(projections[:, 0], projections[:, 1], TEMPERATURE)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class BareLoop:
    """The training of ContrastiveEmbedder.fit without the estimator around it."""

    def __init__(self, images: np.ndarray, setup: Setup, seed: int = 0) -> None:
        self.data = _tensor(images)
        self.batch_size = setup.batch_size
        self.net = _network(images.shape[-1], setup.network, seed)
        self.representation_dim = setup.network["representation_dim"]
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY
        )
        self.augmentation = GalaxyAugmentation()
        self.order_generator = torch.Generator().manual_seed(seed)
        self.view_generator = torch.Generator().manual_seed(seed + 1)

    def epoch(self) -> float:
        """One shuffled pass; the mean training loss."""
        self.net.train()
        total = torch.zeros(())
        order = torch.randperm(len(self.data), generator=self.order_generator)
        for start in range(0, len(self.data), self.batch_size):
            batch = self.data[order[start : start + self.batch_size]]
            total += _step(
                self.net, self.optimizer, self.augmentation, batch, self.view_generator
            ) * len(batch)
        self.net.eval()
        return float(total) / len(self.data)

    def embed(self) -> np.ndarray:
        """The training images' embedding, PCA-whitened as ``fit`` and ``transform`` do."""
        self.net.eval()
        with torch.no_grad():
            parts = [self.net(self.data[i : i + BATCH]) for i in range(0, len(self.data), BATCH)]
        embedding = torch.cat(parts).double().numpy()
        mean, components = shrunk_whitening(embedding, self.representation_dim, WHITEN)
        return (embedding - mean) @ components.T


def _estimator(setup: Setup, whiten: int | None) -> ContrastiveEmbedder:
    # No validation and no early stopping: the training alone, as in the bare loop.
    return ContrastiveEmbedder(
        **setup.network,
        temperature=TEMPERATURE,
        max_epochs=setup.epochs,
        batch_size=setup.batch_size,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        n_components=whiten,
        early_stopping=False,
        validation_fraction=0.0,
        device="cpu",
        random_state=0,
    )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- parts 1 and 2: epoch time and overhead ---------------------------------------------------


def speed(setup: Setup) -> dict:
    """Seconds of the bare loop and of the estimator, interleaved ``repeats`` times."""
    images, _ = make_galaxies(setup.n_timing, image_size=setup.image_size, random_state=0)

    def bare() -> None:
        loop = BareLoop(images, setup)
        for _ in range(setup.epochs):
            loop.epoch()

    # Warm-up: the first pass pays for allocator and kernel set-up.
    BareLoop(images[: setup.batch_size], setup).epoch()
    cases = {
        "bare": bare,
        "estimator": lambda: _estimator(setup, None).fit(images),
        "estimator_whiten": lambda: _estimator(setup, WHITEN).fit(images),
    }
    runs = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(setup.repeats):
        # Interleaved, and each case first in turn, so that all see the same load.
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            runs[name].append(_timed(cases[name]))
    ratios = {
        name: statistics.median(t / b for t, b in zip(times, runs["bare"]))
        for name, times in runs.items()
        if name != "bare"
    }
    return {
        "runs": runs,
        "ratios": ratios,
        "steps": setup.epochs * -(-setup.n_timing // setup.batch_size),
    }


def _per_epoch_of_galaxy10(seconds: float, setup: Setup) -> float:
    return seconds / setup.epochs / setup.n_timing * EPOCH_IMAGES


# --- part 3: augmentation against the training step ---------------------------------------------


def augmentation_cost(setup: Setup) -> dict:
    """Seconds per batch of GalaxyAugmentation (and its halves) and of a training step."""
    images, _ = make_galaxies(BATCH, image_size=setup.image_size, random_state=1)
    batch = _tensor(images)[: setup.batch_size]
    augmentation = GalaxyAugmentation()
    generator = torch.Generator().manual_seed(0)
    timings = {"whole": [], "geometric": [], "photometric": [], "network step": []}
    net = _network(batch.shape[1], setup.network)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    views = torch.stack([augmentation(batch, generator), augmentation(batch, generator)], 1)
    augmentation(batch, generator)  # warm-up

    def network_step() -> None:
        net.train()
        flat = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        projections = net.project(net(flat)).reshape(len(batch), 2, -1)
        loss = nt_xent_loss(projections[:, 0], projections[:, 1], TEMPERATURE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    network_step()  # warm-up
    for _ in range(setup.augment_batches):
        timings["whole"].append(_timed(lambda: augmentation(batch, generator)))
        timings["geometric"].append(_timed(lambda: augmentation.geometric(batch, generator)))
        timings["photometric"].append(_timed(lambda: augmentation.photometric(batch, generator)))
        timings["network step"].append(_timed(network_step))
    medians = {name: statistics.median(times) for name, times in timings.items()}
    medians["batch"] = len(batch)
    return medians


# --- part 4: time to a converged embedding -------------------------------------------------------


def convergence(setup: Setup) -> dict:
    """same_class_rate after each epoch of the bare loop, until it plateaus."""
    images, labels = make_galaxies(setup.n_curve, image_size=setup.image_size, random_state=0)
    loop = BareLoop(images, setup)
    rates = [same_class_rate(loop.embed(), labels, n_neighbors=10)]  # epoch 0: untrained
    losses, seconds = [float("nan")], []
    window = setup.plateau_window
    for _ in range(setup.max_epochs):
        seconds.append(_timed(lambda: losses.append(loop.epoch())))
        rates.append(same_class_rate(loop.embed(), labels, n_neighbors=10))
        trained = rates[1:]  # the plateau of training, not the untrained network's rate
        if len(trained) >= window + 3 and max(trained[-window:]) <= max(trained[:-window]) + 0.005:
            break
    best = max(rates[1:])
    to_converge = next(epoch for epoch, rate in enumerate(rates) if epoch and rate >= best - 0.01)
    chance = float(np.sum((np.bincount(labels) / len(labels)) ** 2))
    return {
        "rates": rates,
        "losses": losses,
        "seconds": seconds,
        "best": best,
        "epochs_to_converge": to_converge,
        "chance": chance,
        "plateaued": len(rates) - 1 < setup.max_epochs,
    }


# --- report ---------------------------------------------------------------------------------------


def report(
    setup: Setup, threads: int, timing: dict, augment: dict, curve: dict
) -> tuple[str, dict]:
    runs, ratios = timing["runs"], timing["ratios"]
    epoch_s = {
        name: _per_epoch_of_galaxy10(statistics.median(times), setup)
        for name, times in runs.items()
    }
    whiten_s = (
        (statistics.median(runs["estimator_whiten"]) - statistics.median(runs["estimator"]))
        / setup.n_timing
        * EPOCH_IMAGES
    )
    per_image = {
        name: augment["batch"] / augment[name]
        for name in ("whole", "geometric", "photometric", "network step")
    }
    augment_share = 2 * augment["whole"] / (2 * augment["whole"] + augment["network step"])
    converge_s = epoch_s["estimator"] * curve["epochs_to_converge"] + max(whiten_s, 0.0)
    lines = [
        f"make_galaxies images of {setup.image_size}x{setup.image_size}x3; ContrastiveEmbedder("
        f"{', '.join(f'{k}={v}' for k, v in setup.network.items())}), batch "
        f"{setup.batch_size}, NT-Xent at temperature {TEMPERATURE}, default GalaxyAugmentation"
        f"{'' if setup.network == NETWORK else ' (a small network: --quick)'}; {threads} torch "
        "threads on the CPU.",
        "",
        f"1-2. Training on {setup.n_timing} images for {setup.epochs} epoch(s) "
        f"({timing['steps']} steps), median of {setup.repeats}; seconds per epoch "
        f"extrapolated to {EPOCH_IMAGES:,} images:",
        "",
        "| training | seconds (median) | s/epoch of 9,796 | ratio to bare loop (median) |",
        "|---|---:|---:|---:|",
        f"| bare PyTorch loop | {statistics.median(runs['bare']):.2f} | "
        f"{epoch_s['bare']:.0f} | 1.000 |",
        f"| ContrastiveEmbedder.fit, n_components=None | "
        f"{statistics.median(runs['estimator']):.2f} | {epoch_s['estimator']:.0f} | "
        f"{ratios['estimator']:.3f} |",
        f"| ContrastiveEmbedder.fit, n_components={WHITEN} (default) | "
        f"{statistics.median(runs['estimator_whiten']):.2f} | "
        f"{epoch_s['estimator_whiten']:.0f} | {ratios['estimator_whiten']:.3f} |",
        "",
        f"3. Augmentation on batches of {augment['batch']} against the training step "
        f"(2 x {augment['batch']} views), median of {setup.augment_batches}:",
        "",
        "| work | seconds per batch | images/s |",
        "|---|---:|---:|",
    ]
    for name, label in [
        ("whole", "GalaxyAugmentation (one view)"),
        ("geometric", "geometric part only"),
        ("photometric", "photometric part only"),
        ("network step", "network step (forward, backward, AdamW)"),
    ]:
        lines.append(f"| {label} | {augment[name]:.3f} | {per_image[name]:,.0f} |")
    lines += [
        "",
        f"Share of a training step spent augmenting (two views): {augment_share:.1%}.",
        "",
        f"4. same_class_rate (10 neighbours, leave-one-out) of the whitened embedding of "
        f"{setup.n_curve} galaxies after each epoch of the bare loop (chance "
        f"{curve['chance']:.3f}):",
        "",
        "| epoch | same-class rate | train loss | epoch seconds |",
        "|---:|---:|---:|---:|",
    ]
    for epoch, rate in enumerate(curve["rates"]):
        loss = curve["losses"][epoch]
        seconds = curve["seconds"][epoch - 1] if epoch else float("nan")
        lines.append(f"| {epoch} | {rate:.3f} | {loss:.4f} | {seconds:.1f} |")
    lines += [
        "",
        f"Best rate after training {curve['best']:.3f}, untrained network "
        f"{curve['rates'][0]:.3f} ({'plateaued' if curve['plateaued'] else 'not plateaued'}"
        f" by epoch {len(curve['rates']) - 1}); within 0.01 of the best after "
        f"{curve['epochs_to_converge']} epoch(s). Estimated fit on {EPOCH_IMAGES:,} images: "
        f"{curve['epochs_to_converge']} x {epoch_s['estimator']:.0f} s + "
        f"{max(whiten_s, 0.0):.0f} s whitening = {converge_s / 60:.1f} minutes.",
    ]
    results = {
        "seconds_per_epoch": epoch_s,
        "ratios": ratios,
        "whiten_seconds": whiten_s,
        "images_per_second": per_image,
        "augment_share": augment_share,
        "rates": curve["rates"],
        "epochs_to_converge": curve["epochs_to_converge"],
        "converge_minutes": converge_s / 60,
    }
    return "\n".join(lines), results


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, run the four parts, print the report; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, runs in seconds")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2, the cores of the reference machine)",
    )
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="most epochs of the convergence curve (part 4)"
    )
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else FULL
    if args.max_epochs is not None:
        setup = setup._replace(max_epochs=args.max_epochs)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        timing = speed(setup)
        augment = augmentation_cost(setup)
        curve = convergence(setup)
    finally:
        torch.set_num_threads(previous)
    text, results = report(setup, args.threads, timing, augment, curve)
    print_report("Contrastive embedder", text, "bench_contrastive.py", args.quick)
    return results


if __name__ == "__main__":
    main()
