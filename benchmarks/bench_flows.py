"""Speed and quality of FlowDensityEstimator, measured against zuko used directly.

Two parts, on synthetic galaxies from :func:`galaxysim.datasets.synthetic.make_galaxies`:

1. **Vector flows.** The images are reduced to ``d`` principal components.
   Each flow kind is trained once through :class:`FlowDensityEstimator` and
   once by a plain loop over the same zuko flow (same standardisation, layers,
   widths, batch size, learning rate, epochs, 10% validation pass per
   epoch), alternating, ``--repeats`` times; the table gives the fastest
   seconds per optimiser step of each, their ratio, and the held-out
   log-likelihood (nats, in PCA units); the time ratio is the median over
   the back-to-back pairs. The jammy_flows backend
   (Gaussianization layers) runs the same when it is installed.
2. **Image flow.** The multiscale flow is trained on 32x32 images for a fixed
   wall-clock budget (the number of epochs is set from the time of a first
   one-epoch fit); the table gives held-out bits per dimension next to the
   bits per dimension PNG needs for the same images, and a grid of sampled
   galaxies is saved. A last table shows the out-of-distribution scores of
   that flow on held-out galaxies, the drawn Milky Way, a blank sky, noise
   and (when ``../shared/data`` is present) real Galaxy10 cutouts.

Usage::

    python benchmarks/bench_flows.py            # ~8 minutes on 2 shared cores
    python benchmarks/bench_flows.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import zuko
from sklearn.decomposition import PCA

from galaxysim.datasets.synthetic import make_galaxies
from galaxysim.flows import FlowDensityEstimator
from galaxysim.flows.ood import png_bits
from galaxysim.flows.vector import zuko_flow

ROOT = Path(__file__).resolve().parents[1]


def train_zuko_directly(flow, train, val, *, epochs, batch_size, learning_rate, seed):
    """The loop a zuko user writes: Adam on the mean NLL, a validation pass per epoch."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
    n_steps = 0
    for _ in range(epochs):
        flow.train()
        for idx in torch.randperm(len(train), generator=generator).split(batch_size):
            loss = -flow().log_prob(train[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n_steps += 1
        flow.eval()
        with torch.no_grad():
            -flow().log_prob(val).mean()
    return n_steps


def vector_benchmark(features, test_features, config):
    """Rows of the vector table: s/step and held-out log-likelihood, ours vs zuko."""
    n_train = len(features) - math.ceil(0.1 * len(features))
    steps_per_epoch = math.ceil(n_train / config["batch_size"])
    rows = []
    for kind in ("affine", "spline", "autoregressive"):
        # Untimed one-epoch warm-up of both paths at full size: first calls pay for lazy
        # initialisation and memory allocation in torch.
        FlowDensityEstimator(
            flow=kind,
            n_layers=config["layers"],
            hidden_features=config["hidden"],
            max_epochs=1,
            batch_size=config["batch_size"],
            early_stopping=False,
            device="cpu",
            random_state=0,
        ).fit(features)
        warm = torch.as_tensor(features, dtype=torch.float32)
        train_zuko_directly(
            zuko_flow(features.shape[1], kind, config["layers"], config["hidden"]),
            warm,
            warm[:64],
            epochs=1,
            batch_size=config["batch_size"],
            learning_rate=1e-3,
            seed=0,
        )
        times = {"galaxysim": [], "zuko": []}
        scores = {}
        for repeat in range(config["repeats"]):
            est = FlowDensityEstimator(
                flow=kind,
                n_layers=config["layers"],
                hidden_features=config["hidden"],
                max_epochs=config["epochs"],
                batch_size=config["batch_size"],
                learning_rate=1e-3,
                early_stopping=False,
                device="cpu",
                random_state=repeat,
            )
            start = time.perf_counter()
            est.fit(features)
            seconds = time.perf_counter() - start
            times["galaxysim"].append(seconds / (config["epochs"] * steps_per_epoch))
            scores.setdefault("galaxysim", est.score(test_features))

            # Same standardisation and split sizes as the estimator.
            order = np.random.default_rng(repeat).permutation(len(features))
            train, val = features[order[:n_train]], features[order[n_train:]]
            loc, scale = train.mean(axis=0), train.std(axis=0)

            def to_tensor(a, loc=loc, scale=scale):
                return torch.as_tensor((a - loc) / scale, dtype=torch.float32)

            torch.manual_seed(repeat)
            flow = zuko_flow(features.shape[1], kind, config["layers"], config["hidden"])
            start = time.perf_counter()
            n_steps = train_zuko_directly(
                flow,
                to_tensor(train),
                to_tensor(val),
                epochs=config["epochs"],
                batch_size=config["batch_size"],
                learning_rate=1e-3,
                seed=repeat,
            )
            times["zuko"].append((time.perf_counter() - start) / n_steps)
            with torch.no_grad():
                log_prob = flow().log_prob(to_tensor(test_features)).double().numpy()
            scores.setdefault("zuko", float(np.mean(log_prob - np.log(scale).sum())))
        best = {name: min(values) for name, values in times.items()}
        # Each repeat times both back to back; the median of those paired ratios is the
        # figure least moved by other jobs' load on the shared cores.
        ratio = float(np.median(np.divide(times["galaxysim"], times["zuko"])))
        rows.append((kind, "zuko directly", best["zuko"], scores["zuko"], 1.0))
        rows.append((kind, "FlowDensityEstimator", best["galaxysim"], scores["galaxysim"], ratio))
    try:
        est = FlowDensityEstimator(
            backend="jammy",
            flow="gaussianization",
            n_layers=config["layers"],
            max_epochs=config["epochs"],
            batch_size=config["batch_size"],
            learning_rate=1e-3,
            early_stopping=False,
            device="cpu",
            random_state=0,
        )
        start = time.perf_counter()
        est.fit(features)
        seconds = (time.perf_counter() - start) / (config["epochs"] * steps_per_epoch)
        score = est.score(test_features)
        rows.append(("gaussianization", 'backend="jammy"', seconds, score, float("nan")))
    except ImportError:
        nan = float("nan")
        rows.append(("gaussianization", "jammy_flows not installed", nan, nan, nan))
    return rows


def image_benchmark(train_images, test_images, config, figure):
    """Row of the image table, after a fixed wall-clock budget; saves a sample grid."""
    params = dict(
        n_levels=config["levels"],
        n_layers=config["steps"],
        hidden_features=config["image_hidden"],
        batch_size=64,
        learning_rate=1e-3,
        patience=5,
        device="cpu",
        random_state=0,
    )
    warm_up = {**params, "batch_size": 16}
    FlowDensityEstimator(max_epochs=1, **warm_up).fit(train_images[:32])
    start = time.perf_counter()
    FlowDensityEstimator(max_epochs=1, **params).fit(train_images)
    epoch_seconds = time.perf_counter() - start
    epochs = max(1, int((config["budget"] - epoch_seconds) / epoch_seconds))
    start = time.perf_counter()
    est = FlowDensityEstimator(max_epochs=epochs, **params).fit(train_images)
    seconds = time.perf_counter() - start
    bits = float(est.bits_per_dim(test_images).mean())
    n_dims = int(np.prod(test_images.shape[1:]))
    png = float(png_bits(test_images).mean() / n_dims)
    if figure is not None:
        from galaxysim.plotting import plot_image_grid

        samples = np.concatenate(
            [
                test_images[:8],
                est.sample(8, random_state=0, temperature=0.7),
                est.sample(8, random_state=1, temperature=0.7),
                est.sample(8, random_state=2, temperature=1.0),
            ]
        )
        fig = plot_image_grid(
            samples,
            n_cols=8,
            image_size=1.0,
            row_labels=["held-out data", "T = 0.7", "T = 0.7", "T = 1.0"],
            suptitle=f"FlowDensityEstimator samples ({bits:.2f} bits/dim held out)",
        )
        figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(figure, dpi=80)
    row = (
        len(train_images),
        len(test_images),
        est.history_.n_epochs,
        seconds,
        epoch_seconds,
        bits,
        png,
    )
    return row, est


def ood_benchmark(est, test_images):
    """Rows of the out-of-distribution table: how each score ranks unlike images."""
    from galaxysim.datasets.synthetic import make_milky_way
    from galaxysim.images import center_crop, load_images, resize

    size = test_images.shape[1]
    n_dims = int(np.prod(test_images.shape[1:]))
    rng = np.random.default_rng(0)
    sets = {
        "held-out make_galaxies": test_images,
        "make_milky_way() (a drawing: no sky, no noise)": make_milky_way(size)[None],
        "blank dark sky (constant 0.05)": np.full((4, *test_images.shape[1:]), 0.05, np.float32),
        "uniform noise": rng.random((4, *test_images.shape[1:])).astype(np.float32),
    }
    samples = ROOT.parent / "shared" / "data" / "galaxy10_decals_samples"
    if samples.is_dir():
        # Frame the real cutouts like make_galaxies: the central 64 of 256 pixels.
        real, _ = load_images(samples)
        sets["real Galaxy10 DECaLS (100 samples)"] = resize(center_crop(real, 64), size)
    rows = []
    for name, images in sets.items():
        rows.append(
            (
                name,
                len(images),
                float(est.bits_per_dim(images).mean()),
                float(est.typicality(images).mean()),
                float(est.complexity_corrected_score(images).mean() / n_dims),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print Markdown tables, the command and the machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on shared cores more threads spin)",
    )
    parser.add_argument("--budget", type=float, default=None, help="image-flow seconds")
    parser.add_argument(
        "--parts",
        default="vector,image",
        help="comma-separated parts to run: vector, image (default both)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="sample grid path (full mode: docs/images/flow_samples.png)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.quick:
        config = dict(
            n_images=300,
            size=16,
            dims=8,
            layers=2,
            hidden=(16, 16),
            epochs=2,
            batch_size=64,
            repeats=1,
            levels=2,
            steps=1,
            image_hidden=(8,),
            budget=3.0,
        )
        figure = args.figure
    else:
        config = dict(
            n_images=3000,
            size=32,
            dims=64,
            layers=4,
            hidden=(64, 64),
            epochs=20,
            batch_size=256,
            repeats=5,
            levels=3,
            steps=4,
            image_hidden=(64, 64),
            budget=240.0,
        )
        figure = args.figure or ROOT / "docs" / "images" / "flow_samples.png"
    if args.budget is not None:
        config["budget"] = args.budget

    start = time.perf_counter()
    images, _ = make_galaxies(config["n_images"], image_size=config["size"], random_state=0)
    n_test = config["n_images"] // 6
    train_images, test_images = images[n_test:], images[:n_test]
    flat_train = train_images.reshape(len(train_images), -1)
    pca = PCA(n_components=config["dims"], random_state=0).fit(flat_train)
    features = pca.transform(flat_train)
    test_features = pca.transform(test_images.reshape(n_test, -1))
    data_seconds = time.perf_counter() - start

    parts = {part.strip() for part in args.parts.split(",")}
    unknown = parts - {"vector", "image"}
    if unknown:
        parser.error(f"--parts takes 'vector' and/or 'image', got {sorted(unknown)}")
    command = "python benchmarks/bench_flows.py" + (" --quick" if args.quick else "")
    if args.parts != "vector,image":
        command += f" --parts {args.parts}"
    if "vector" in parts:
        rows = vector_benchmark(features, test_features, config)
        print_vector_table(rows, config, len(features), n_test)
    if "image" in parts:
        row, est = image_benchmark(train_images, test_images, config, figure)
        print_image_table(row, config, figure)
        print_ood_table(ood_benchmark(est, test_images))
    print(f"\ncommand: `{command}`")
    print(f"date: {date.today().isoformat()}")
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s) of "
        f"{os.cpu_count()} CPU cores (shared), Python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, zuko {zuko.__version__}"
    )
    print(f"data generation: {data_seconds:.1f} s")


def print_vector_table(vector_rows, config, n_train, n_test):
    """Print the vector-flow rows as a Markdown table with its settings."""
    print(
        f"## Vector flows: d={config['dims']} PCA features of {n_train} "
        f"{config['size']}x{config['size']} make_galaxies images ({n_test} held out), "
        f"{config['layers']} layers, hidden {config['hidden']}, batch {config['batch_size']}, "
        f"{config['epochs']} epochs; s/step: fastest of {config['repeats']} fits; "
        f"ratio: median over the {config['repeats']} back-to-back pairs\n"
    )
    print(
        "| flow | implementation | s/step | held-out log-likelihood (nats) | time ratio vs zuko |"
    )
    print("|---|---|---|---|---|")
    for kind, implementation, seconds, score, ratio in vector_rows:
        print(f"| {kind} | {implementation} | {seconds:.5f} | {score:.3f} | {ratio:.3f} |")
    print()


def print_image_table(image_row, config, figure):
    """Print the image-flow row as a Markdown table with its settings."""
    n_train, n_held, epochs, seconds, epoch_seconds, bits, png = image_row
    print(
        f"## Image flow: {config['size']}x{config['size']}x3 make_galaxies images, "
        f"{config['levels']} levels x {config['steps']} steps, hidden {config['image_hidden']}, "
        f"budget {config['budget']:.0f} s\n"
    )
    print(
        "| train images | held-out images | epochs | fit s | s/epoch | held-out bits/dim "
        "| PNG bits/dim |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {n_train} | {n_held} | {epochs} | {seconds:.1f} | {epoch_seconds:.2f} "
        f"| {bits:.3f} | {png:.3f} |"
    )
    if figure is not None:
        print(f"\nsample grid: {figure}")


def print_ood_table(rows):
    """Print the out-of-distribution rows as a Markdown table."""
    print("\n## Out-of-distribution scores of the image flow above (means per set)\n")
    print(
        "| images | n | bits/dim | typicality (percentile) "
        "| complexity-corrected score (bits/dim) |"
    )
    print("|---|---|---|---|---|")
    for name, n, bits, typicality, corrected in rows:
        print(f"| {name} | {n} | {bits:.3f} | {typicality:.1f} | {corrected:.3f} |")


if __name__ == "__main__":
    main()
