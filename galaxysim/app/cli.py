"""The ``galaxysim`` command.

``galaxysim demo --out DIR`` runs the Milky Way challenge on the built-in
synthetic galaxies and writes its results into DIR. Errors print one line and
exit with status 1 (2 for bad command-line usage), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .._version import __version__

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """An error to report to the user in one line."""


def prepare_output_dir(path: str | Path, *, force: bool = False) -> Path:
    """Create ``path``; refuse a non-empty folder unless ``force``.

    With ``force`` the files the command writes replace those of the same
    name; nothing else in the folder is touched.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CLIError(
            f"--out {str(out)!r} is not empty; choose another folder or pass --force "
            "to replace the files this command writes there."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _build_ranker(args: argparse.Namespace):
    from ..embedders import AutoencoderEmbedder
    from ..flows import FlowDensityEstimator
    from ..ranking import SimilarityRanker

    verbose = 0 if args.quiet else 1
    embedder = AutoencoderEmbedder(
        latent_dim=args.latent_dim,
        n_stages=args.stages,
        n_blocks=args.blocks,
        base_channels=args.channels,
        max_epochs=args.epochs,
        random_state=args.random_state,
        verbose=verbose,
    )
    density = FlowDensityEstimator(
        flow="affine", n_layers=4, max_epochs=args.flow_epochs,
        random_state=args.random_state, verbose=verbose,
    )
    return SimilarityRanker(
        embedder, density, n_neighbors=args.k, method=args.method,
        invariance=None if args.no_invariance else "dihedral",
    )


def _load_query(path: str, image_shape: tuple[int, ...], crop: int | None, framing: str):
    from ..datasets import load_milky_way
    from ..images import center_crop, load_image, resize

    if crop is not None:
        return resize(center_crop(load_image(path), crop), image_shape[:2])
    if image_shape[0] != image_shape[1]:
        return resize(load_image(path), image_shape[:2])
    # The framing of load_milky_way fits any galaxy picture: it scales the
    # picture so the galaxy fills the frame as a Galaxy10 galaxy fills its crop.
    return load_milky_way(size=image_shape[0], path=path, framing=framing)


def _fit_or_reuse(args: argparse.Namespace, images, labels, target_names):
    """Fit a new ranker, or reuse the embedder of the one saved in --model."""
    from sklearn.base import clone

    names = list(target_names) if target_names is not None else None
    ranker = _build_ranker(args).set_params(target_names=names)
    if getattr(args, "model", None):
        import joblib

        model_path = Path(args.model)
        if not model_path.is_file():
            raise CLIError(f"--model {str(model_path)!r} does not exist.")
        try:
            saved = joblib.load(model_path)
        except Exception as exc:  # joblib raises many kinds for a corrupt file
            raise CLIError(f"--model {str(model_path)!r} could not be loaded: {exc}") from None
        if not hasattr(saved, "embedder_"):
            raise CLIError(f"--model {str(model_path)!r} does not hold a fitted SimilarityRanker.")
        if saved.image_shape_ != tuple(images.shape[1:]):
            raise CLIError(
                f"--model was fitted on images of shape {saved.image_shape_}, but --data gives "
                f"{tuple(images.shape[1:])}; match --crop/--size to the model."
            )
        # The fitted embedder is reused as it is; the density and the index are
        # refitted on this collection's embeddings (seconds).
        ranker = clone(saved).set_params(
            embedder=saved.embedder_, n_neighbors=args.k, method=args.method,
            invariance=None if args.no_invariance else "dihedral", target_names=names,
        )
    start = time.perf_counter()
    ranker.fit(images, labels)
    return ranker, time.perf_counter() - start


def _run_demo(args: argparse.Namespace) -> int:
    from .outputs import write_ranking_outputs
    from ..datasets import SYNTHETIC_CLASSES, load_milky_way, make_galaxies, make_milky_way

    out = prepare_output_dir(args.out, force=args.force)
    start = time.perf_counter()
    X, y = make_galaxies(args.n_samples, image_size=args.image_size, random_state=args.random_state)
    try:
        query = load_milky_way(size=args.image_size)
        query_name = "Milky Way (NASA/JPL-Caltech/R. Hurt illustration)"
    except ImportError:
        query = make_milky_way(image_size=args.image_size)
        query_name = "Milky Way (built-in drawing)"
    print(f"galaxysim {__version__} demo: {len(X)} built-in galaxies of {args.image_size}x{args.image_size}; query: {query_name}")
    ranker, fit_seconds = _fit_or_reuse(args, X, y, SYNTHETIC_CLASSES)
    files = write_ranking_outputs(
        out, ranker, X, query, labels=y, target_names=SYNTHETIC_CLASSES,
        target_label=SYNTHETIC_CLASSES.index("Barred Spiral"), query_name=query_name,
        n_show=16, random_state=args.random_state,
        title="galaxysim demo: the Milky Way challenge on built-in galaxies",
        notes="Synthetic galaxies of the five Galaxy10 spiral and edge-on classes, ranked by "
        "similarity to the Milky Way. The Milky Way is a barred spiral, so a good ranking "
        "puts Barred Spiral first and the edge-on classes last.",
        extra_summary={"fit seconds": round(fit_seconds, 1)},
    )
    _print_outputs(files, time.perf_counter() - start)
    return 0


def _load_collection(args: argparse.Namespace):
    """Images, labels (or None), class names (or None) and file names of --data."""
    from ..datasets import load_galaxy10_decals, load_galaxy10_folder
    from ..images import load_images, preprocess_images


    data = Path(args.data)
    if not data.exists():
        raise CLIError(f"--data {str(data)!r} does not exist.")
    classes = _parse_classes(args.classes)
    if data.is_dir():
        if (data / "labels.csv").is_file():
            bunch = load_galaxy10_folder(data, classes=classes, crop=args.crop, size=args.size)
            names = [os.path.relpath(name, data) for name in bunch.filenames]
            return bunch.images, bunch.target, list(bunch.target_names), names
        images, names = load_images(data)
        return preprocess_images(images, crop=args.crop, size=args.size), None, None, names
    bunch = load_galaxy10_decals(data, classes=classes, crop=args.crop, size=args.size, verbose=not args.quiet)
    names = [f"row {i}" for i in bunch.indices]  # the row in the h5 file
    return bunch.images, bunch.target, list(bunch.target_names), names


def _parse_classes(values):
    from ..datasets import SEED_CLASSES

    if not values:
        return SEED_CLASSES
    parsed = []
    for value in values:
        parsed.append(int(value) if value.isdigit() else value)
    return parsed


def _run_rank(args: argparse.Namespace) -> int:
    from .outputs import write_ranking_outputs

    framing = args.query_framing
    if framing not in ("galaxy10", "full"):
        try:
            framing = float(framing)
        except ValueError:
            raise CLIError(f"--query-framing must be 'galaxy10', 'full' or a number, got {framing!r}.") from None
    out = prepare_output_dir(args.out, force=args.force)
    start = time.perf_counter()
    images, labels, target_names, names = _load_collection(args)
    query = _load_query(args.query, images.shape[1:], args.query_crop, framing)
    print(f"galaxysim {__version__} rank: {len(images)} galaxies from {args.data}; query {args.query}")
    ranker, fit_seconds = _fit_or_reuse(args, images, labels, target_names)
    target_label = None
    if target_names is not None and "Barred Spiral" in target_names:
        target_label = target_names.index("Barred Spiral")
    files = write_ranking_outputs(
        out, ranker, images, query, labels=labels, target_names=target_names,
        target_label=target_label, names=names, query_name=Path(args.query).name, n_show=args.k,
        random_state=args.random_state, title=f"galaxysim ranking for {Path(args.query).name}",
        extra_summary={"fit seconds": round(fit_seconds, 1), "data": str(args.data)},
    )
    _print_outputs(files, time.perf_counter() - start)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import run_evaluation

    if args.data != "builtin" and not Path(args.data).exists():
        raise CLIError(f"--data {args.data!r} does not exist (give a path or 'builtin').")
    out = prepare_output_dir(args.out, force=args.force)
    start = time.perf_counter()
    table = run_evaluation(
        args.data, out, query=args.query, methods=args.methods, quick=args.quick,
        n_samples=args.n_samples, random_state=args.random_state, verbose=not args.quiet,
    )
    print(table.to_markdown())
    print(f"wrote evaluation.csv, evaluation.md and evaluation.png to {out} in {time.perf_counter() - start:.0f} s")
    return 0


def _print_outputs(files: dict, seconds: float) -> None:
    summary = json.loads(Path(files["summary"]).read_text())
    for key in ("precision_at_10", "precision_at_50", "chance"):
        if key in summary:
            print(f"  {key}: {summary[key]:.2f}")
    if summary.get("warning"):
        print(f"  warning: {summary['warning']}")
    print(f"wrote {', '.join(sorted(p.name for p in files.values()))} to {Path(files['report']).parent} in {seconds:.0f} s")


def _add_model_options(parser: argparse.ArgumentParser, *, epochs: int) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--latent-dim", type=_positive_int, default=32, help="embedding size (default: %(default)s)")
    # A light autoencoder by default, so that a CPU finishes in minutes; the
    # original study's 6 blocks of 16 channels is --blocks 6 --channels 16.
    group.add_argument("--stages", type=_positive_int, default=5, help="autoencoder stages, each halving the image (default: %(default)s)")
    group.add_argument("--blocks", type=_positive_int, default=1, help="residual blocks per stage (default: %(default)s)")
    group.add_argument("--channels", type=_positive_int, default=8, help="autoencoder base channels (default: %(default)s)")
    group.add_argument("--epochs", type=_positive_int, default=epochs, help="autoencoder epochs at most (default: %(default)s)")
    group.add_argument("--flow-epochs", type=_positive_int, default=50, help="flow epochs at most (default: %(default)s)")
    group.add_argument("--method", choices=("embedding", "likelihood"), default="embedding", help="ranking method (default: %(default)s)")
    group.add_argument("--no-invariance", action="store_true", help="compare the query only as given, not in its 8 rotations and flips")
    group.add_argument("--k", type=_positive_int, default=16, help="neighbours to show (default: %(default)s); ranking.csv ranks the whole collection")
    group.add_argument("--random-state", type=int, default=0, help="seed (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``galaxysim`` command."""
    parser = argparse.ArgumentParser(
        prog="galaxysim",
        description="Find the galaxies that look most like a given galaxy.",
    )
    parser.add_argument("--version", action="version", version=f"galaxysim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the Milky Way challenge on built-in data",
        description="Run the Milky Way challenge on built-in synthetic galaxies and write "
        "ranking.csv, neighbours.png, latent.png, training.png, generated.png, summary.json, "
        "report.html and model.joblib into a folder.",
    )
    demo.add_argument("--out", default="galaxysim-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--n-samples", type=_positive_int, default=2000, help="galaxies to generate (default: %(default)s)")
    demo.add_argument("--image-size", type=_positive_int, default=64, help="image side in pixels (default: %(default)s)")
    _add_model_options(demo, epochs=30)
    demo.set_defaults(handler=_run_demo)

    rank = sub.add_parser(
        "rank",
        help="rank a collection (Galaxy10 h5 or a folder of images) by similarity to a query image",
        description="Fit (or load) a model on a collection and rank it by similarity to a "
        "query image; writes the same files as the demo.",
    )
    rank.add_argument("--data", required=True, help="Galaxy10_DECals.h5, or a folder of images (with labels.csv for labels)")
    rank.add_argument("--query", required=True, help="the query image (PNG/JPEG/TIFF/FITS)")
    rank.add_argument("--out", required=True, help="output folder")
    rank.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    rank.add_argument("--quiet", action="store_true", help="no progress bars")
    rank.add_argument("--model", help="a model.joblib written earlier: reuse its trained embedder instead of training one")
    rank.add_argument("--classes", nargs="+", help="Galaxy10 labels or names to keep (default: 5 6 7 8 9)")
    rank.add_argument("--crop", type=_positive_int, default=64, help="center crop of the collection's images (default: %(default)s)")
    rank.add_argument("--size", type=_positive_int, default=None, help="resize after cropping (default: keep)")
    rank.add_argument("--query-crop", type=_positive_int, default=None, help="center crop of the query before it is resized to the collection's size (replaces --query-framing)")
    rank.add_argument(
        "--query-framing", default="galaxy10",
        help="'galaxy10' (default): scale the query so its galaxy fills the frame as a Galaxy10 "
        "galaxy fills its 64-pixel crop; 'full': the whole picture; or a number, the half-light "
        "diameter as a fraction of the side",
    )
    _add_model_options(rank, epochs=30)
    rank.set_defaults(handler=_run_rank)

    evaluate = sub.add_parser(
        "evaluate",
        help="compare every ranking method and baseline on one collection",
        description="Run every ranking method (raw pixels, PCA, autoencoder, autoencoder with "
        "dihedral invariance, the flow's latent space, likelihood closeness) on one collection "
        "and write evaluation.csv, evaluation.md and evaluation.png.",
    )
    evaluate.add_argument("--data", default="builtin", help="'builtin', a Galaxy10 h5, or a folder with labels.csv (default: %(default)s)")
    evaluate.add_argument("--query", help="query image (default: the Milky Way)")
    evaluate.add_argument("--methods", nargs="+", help="methods to run (default: all)")
    evaluate.add_argument("--out", default="galaxysim-evaluation", help="output folder (default: %(default)s)")
    evaluate.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    evaluate.add_argument("--quick", action="store_true", help="tiny models and data (seconds), for a smoke test")
    evaluate.add_argument("--n-samples", type=_positive_int, default=None, help="use at most this many galaxies")
    evaluate.add_argument("--random-state", type=int, default=0, help="seed (default: %(default)s)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress output")
    evaluate.set_defaults(handler=_run_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("galaxysim: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, ImportError, KeyError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"galaxysim: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
