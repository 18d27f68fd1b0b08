"""The ``galaxysim`` command.

``galaxysim demo --out DIR`` runs the Milky Way challenge on the built-in
synthetic galaxies and writes its results into DIR. Every error prints one
line and exits with status 1 (2 for bad command-line usage, 130 for Ctrl-C),
never a traceback; set ``GALAXYSIM_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from .arguments import positive_int, resolve_n_neighbors
from .building import add_model_options, build_ranker, build_study_ranker, ranking_params
from .indexed import add_embed_parser, add_index_parser

__all__ = ["build_parser", "main"]


class CLIError(Exception):
    """An error to report to the user in one line."""


def _fit_or_reuse(args: argparse.Namespace, images, labels, target_names):
    """Fit a new ranker, or reuse the embedder of the one saved in --model."""
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator

    from .models import load_ranker

    names = list(target_names) if target_names is not None else None
    ranker = build_ranker(args).set_params(target_names=names)
    if getattr(args, "model", None):
        saved = load_ranker(Path(args.model), trust_pickle=args.trust_pickle)
        if saved.image_shape_ != tuple(images.shape[1:]):
            raise CLIError(
                f"--model was fitted on images of shape {saved.image_shape_}, but --data gives "
                f"{tuple(images.shape[1:])}; match --crop/--image-size to the model."
            )
        # The fitted embedder is reused as it is (frozen); the density and the index
        # are refitted on this collection's embeddings (seconds).
        ranker = clone(saved).set_params(
            embedder=FrozenEstimator(saved.embedder_), target_names=names, **ranking_params(args)
        )
    start = time.perf_counter()
    ranker.fit(images, labels)
    return ranker, time.perf_counter() - start


def _fit_study(args: argparse.Namespace, ranker, collection):
    """The original study's autoencoder and flow, fitted for figures (None: ranking uses them)."""
    from ..embedders import AutoencoderEmbedder

    if isinstance(ranker.embedder_, AutoencoderEmbedder):
        return None  # the ranker's own embedder draws the autoencoder figures
    names = collection.target_names
    study = build_study_ranker(args).set_params(target_names=list(names) if names else None)
    return study.fit(collection.images, collection.target)


def _run_demo(args: argparse.Namespace) -> int:
    from .collections import TARGET_CLASS, default_query, make_builtin_collection
    from .output_folder import staged_output
    from .outputs import RankingReport, write_ranking_outputs
    from .provenance import run_provenance

    resolve_n_neighbors(args, args.n_samples, "--n-samples")
    start = time.perf_counter()
    with staged_output(args.out, force=args.force) as staging:
        collection = make_builtin_collection(
            args.n_samples, image_size=args.image_size, random_state=args.random_state
        )
        query, query_name = default_query(args.image_size)
        provenance = run_provenance(
            args.argv,
            random_state=args.random_state,
            data={
                "generator": "galaxysim.datasets.make_galaxies",
                "n_samples": args.n_samples,
                "image_size": args.image_size,
                "random_state": args.random_state,
            },
            query={
                "generator": "galaxysim.app.collections.default_query",
                "image_size": args.image_size,
                "name": query_name,
            },
        )
        print(
            f"galaxysim {__version__} demo: {len(collection)} built-in galaxies of "
            f"{args.image_size}x{args.image_size}; query: {query_name}"
        )
        ranker, fit_seconds = _fit_or_reuse(
            args, collection.images, collection.target, collection.target_names
        )
        study = _fit_study(args, ranker, collection)
        report = RankingReport(
            study=study,
            target_label=collection.target_names.index(TARGET_CLASS),
            query_name=query_name,
            n_neighbors=16,
            random_state=args.random_state,
            title="galaxysim demo: the Milky Way challenge on built-in galaxies",
            notes="Synthetic galaxies of the five Galaxy10 spiral and edge-on classes, ranked by "
            "similarity to the Milky Way. The Milky Way is a barred spiral, so a good ranking "
            "puts Barred Spiral first and the edge-on classes last.",
            extra_summary={"fit seconds": round(fit_seconds, 1)},
            provenance=provenance,
        )
        files = write_ranking_outputs(staging, ranker, collection, query, report)
    _print_outputs(args.out, files, time.perf_counter() - start)
    return 0


def _parse_classes(values):
    from ..datasets import SEED_CLASSES

    if not values:
        return SEED_CLASSES
    parsed = []
    for value in values:
        parsed.append(int(value) if value.isdigit() else value)
    return parsed


def _check_rank_options(args: argparse.Namespace) -> None:
    """Refuse options that contradict each other, or that nothing would read."""
    if args.query_crop is not None and args.query_framing is not None:
        raise CLIError(
            "--query-crop and --query-framing both say how to frame the query; give one of them."
        )
    if args.trust_pickle and args.model is None:
        raise CLIError("--trust-pickle applies to a --model file, and none was given.")
    if args.index is not None and args.classes:
        raise CLIError(
            "--classes selects images to fit on; with --index nothing is fitted, so "
            "drop --classes (the index holds the collection it was built from)."
        )


def _parse_framing(text: str | None) -> str | float:
    if text is None:
        return "galaxy10"
    if text in ("galaxy10", "full"):
        return text
    try:
        return float(text)
    except ValueError:
        raise CLIError(
            f"--query-framing must be 'galaxy10', 'full' or a number, got {text!r}."
        ) from None


def _check_rank_inputs(args: argparse.Namespace) -> None:
    """Refuse unusable inputs before any lock, hashing or training."""
    from .._limits import check_regular_file
    from .collections import check_source
    from .output_folder import check_not_an_input

    data = check_source(args.data, "--data")
    check_regular_file(args.query, "--query")
    if args.model:
        check_regular_file(args.model, "--model")
    if args.classes and data.is_dir() and not (data / "labels.csv").is_file():
        raise CLIError(
            f"--classes needs labelled images, but --data {str(args.data)!r} is a folder "
            "without labels.csv; drop --classes or add a labels.csv (columns filename, ans)."
        )
    check_not_an_input(args.out, data=args.data, query=args.query, model=args.model)


def _run_rank(args: argparse.Namespace) -> int:
    from .collections import TARGET_CLASS, load_collection, load_query
    from .output_folder import staged_output
    from .outputs import RankingReport, write_ranking_outputs
    from .provenance import run_provenance

    _check_rank_options(args)
    framing = _parse_framing(args.query_framing)
    if args.index is not None:
        from .indexed import rank_with_index

        args.query_framing_value = framing
        return rank_with_index(args)
    if args.data is None:
        raise CLIError("rank needs --data (the collection), or --index with --model.")
    _check_rank_inputs(args)
    start = time.perf_counter()
    with staged_output(args.out, force=args.force) as staging:
        provenance = run_provenance(
            args.argv,
            random_state=args.random_state,
            data=args.data,
            query=args.query,
            model=args.model,
        )
        collection = load_collection(
            args.data,
            classes=_parse_classes(args.classes),
            crop=args.crop,
            image_size=args.image_size,
            verbose=not args.quiet,
            name="--data",
        )
        resolve_n_neighbors(args, len(collection), f"--data {args.data!r}")
        query, _ = load_query(
            args.query, collection.images.shape[1:], crop=args.query_crop, framing=framing
        )
        print(
            f"galaxysim {__version__} rank: {len(collection)} galaxies from {args.data}; "
            f"query {args.query}"
        )
        ranker, fit_seconds = _fit_or_reuse(
            args, collection.images, collection.target, collection.target_names
        )
        target_names = collection.target_names
        target_label = None
        if target_names is not None and TARGET_CLASS in target_names:
            target_label = target_names.index(TARGET_CLASS)
        query_name = Path(args.query).name
        report = RankingReport(
            target_label=target_label,
            query_name=query_name,
            n_neighbors=args.n_neighbors,
            random_state=args.random_state,
            title=f"galaxysim ranking for {query_name}",
            extra_summary={"fit seconds": round(fit_seconds, 1), "data": str(args.data)},
            provenance=provenance,
        )
        files = write_ranking_outputs(staging, ranker, collection, query, report)
    _print_outputs(args.out, files, time.perf_counter() - start)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from .collections import check_source
    from .evaluation import EvaluationSettings, run_evaluation
    from .output_folder import check_not_an_input, staged_output
    from .provenance import run_provenance

    data = None
    if args.data != "builtin":
        if not Path(args.data).exists():
            raise CLIError(f"--data {args.data!r} does not exist (give a path or 'builtin').")
        data = check_source(args.data, "--data")
    check_not_an_input(args.out, data=data, query=args.query)
    start = time.perf_counter()
    with staged_output(args.out, force=args.force) as staging:
        settings = EvaluationSettings(
            methods=args.methods, quick=args.quick, random_state=args.random_state
        )
        table = run_evaluation(
            args.data,
            staging,
            query=args.query,
            settings=settings,
            n_samples=args.n_samples,
            verbose=not args.quiet,
        )
        provenance = run_provenance(
            args.argv,
            random_state=args.random_state,
            query=args.query,
            data=data or {"generator": "galaxysim.datasets.make_galaxies"},
        )
        (staging / "summary.json").write_text(json.dumps({"provenance": provenance}, indent=2))
    print(table.to_markdown())
    print(
        "wrote evaluation.csv, evaluation.md, evaluation.png and summary.json to "
        f"{args.out} in {time.perf_counter() - start:.0f} s"
    )
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from .info import print_info

    return print_info(as_json=args.json)


def _print_outputs(out: str, files: dict, seconds: float) -> None:
    """Print the key figures and what was written, read back from the final folder."""
    from .._json_input import read_json

    summary = read_json(Path(out) / "summary.json", "summary.json", max_bytes=16 * 2**20)
    for key in ("precision_at_10", "precision_at_50", "chance"):
        if key in summary:
            print(f"  {key}: {summary[key]:.2f}")
    if summary.get("warning"):
        print(f"  warning: {summary['warning']}")
    print(f"wrote {', '.join(sorted(p.name for p in files.values()))} to {out} in {seconds:.0f} s")


def _add_output_options(parser: argparse.ArgumentParser, *, out: str | None, quiet: str) -> None:
    if out is None:
        parser.add_argument("--out", required=True, help="output folder")
    else:
        parser.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out folder: its old contents are removed once this run's "
        "outputs are complete (a failed or interrupted run leaves it untouched)",
    )
    parser.add_argument("--quiet", action="store_true", help=quiet)


def _add_demo_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the Milky Way challenge on built-in data",
        description="Run the Milky Way challenge on built-in synthetic galaxies and write "
        "ranking.csv, neighbours.png, latent.png, training.png, generated.png, summary.json, "
        "report.html and model.safetensors into a folder.",
    )
    _add_output_options(demo, out="galaxysim-demo", quiet="no progress bars")
    demo.add_argument(
        "--n-samples",
        type=positive_int,
        default=2000,
        help="galaxies to generate (default: %(default)s)",
    )
    demo.add_argument(
        "--image-size",
        type=positive_int,
        default=64,
        help="image side in pixels (default: %(default)s)",
    )
    add_model_options(demo)
    demo.set_defaults(handler=_run_demo)


def _add_rank_parser(sub) -> None:
    rank = sub.add_parser(
        "rank",
        help="rank a collection (Galaxy10 h5 or a folder of images) by similarity to a query image",
        description="Fit (or load) a model on a collection and rank it by similarity to a "
        "query image; writes the same files as the demo.",
    )
    rank.add_argument(
        "--data",
        help=(
            "Galaxy10_DECals.h5, or a folder of images (with labels.csv for labels); with "
            "--index, only the neighbours' images are read from it"
        ),
    )
    rank.add_argument(
        "--index",
        help=(
            "an index built by 'galaxysim index': answer from it, embedding only the query "
            "(needs --model)"
        ),
    )
    rank.add_argument("--query", required=True, help="the query image (PNG/JPEG/TIFF/FITS)")
    _add_output_options(rank, out=None, quiet="no progress bars")
    rank.add_argument(
        "--model",
        help=(
            "a model.safetensors written earlier: reuse its trained embedder instead of "
            "training one"
        ),
    )
    rank.add_argument(
        "--trust-pickle",
        action="store_true",
        help="let --model be a pickle (joblib) file; loading one runs any code in it, so only "
        "for a file you made yourself or fully trust",
    )
    rank.add_argument(
        "--classes", nargs="+", help="Galaxy10 labels or names to keep (default: 5 6 7 8 9)"
    )
    rank.add_argument(
        "--crop",
        type=positive_int,
        default=64,
        help="center crop of the collection's images (default: %(default)s)",
    )
    rank.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="resize after cropping (default: keep)",
    )
    rank.add_argument(
        "--query-crop",
        type=positive_int,
        default=None,
        help=(
            "center crop of the query before it is resized to the collection's size "
            "(replaces --query-framing)"
        ),
    )
    rank.add_argument(
        "--query-framing",
        default=None,
        help="'galaxy10' (default): scale the query so its galaxy fills the frame as a Galaxy10 "
        "galaxy fills its 64-pixel crop; 'full': the whole picture; or a number, the half-light "
        "diameter as a fraction of the side",
    )
    add_model_options(rank)
    rank.set_defaults(handler=_run_rank)


def _add_evaluate_parser(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="compare every ranking method and baseline on one collection",
        description="Run every ranking method (raw pixels, PCA, autoencoder, autoencoder with "
        "dihedral invariance, the flow's latent space, likelihood closeness) on one collection "
        "and write evaluation.csv, evaluation.md, evaluation.png and summary.json (provenance).",
    )
    evaluate.add_argument(
        "--data",
        default="builtin",
        help="'builtin', a Galaxy10 h5, or a folder with labels.csv (default: %(default)s)",
    )
    evaluate.add_argument("--query", help="query image (default: the Milky Way)")
    evaluate.add_argument("--methods", nargs="+", help="methods to run (default: all)")
    _add_output_options(evaluate, out="galaxysim-evaluation", quiet="no progress output")
    evaluate.add_argument(
        "--quick", action="store_true", help="tiny models and data (seconds), for a smoke test"
    )
    evaluate.add_argument(
        "--n-samples", type=positive_int, default=None, help="use at most this many galaxies"
    )
    evaluate.add_argument("--random-state", type=int, default=0, help="seed (default: %(default)s)")
    evaluate.set_defaults(handler=_run_evaluate)


def _add_info_parser(sub) -> None:
    info = sub.add_parser(
        "info",
        help="show versions, the device, the optional extras and the data found",
        description="Show the versions of galaxysim and its main dependencies, the torch "
        "device, which optional extras are installed, the data folder and whether the "
        "Galaxy10 file and the Milky Way illustration are there.",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=_run_info)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``galaxysim`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        With the subcommands ``demo``, ``rank``, ``evaluate`` and ``info``; the
        model options are spelled like the estimators' parameters
        (``--n-stages``, ``--max-epochs``, ``--n-neighbors``...).

    Examples
    --------
    >>> from galaxysim.app.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--n-neighbors", "8"])
    >>> args.n_neighbors, args.embedder, args.image_size
    (8, 'contrastive', 64)
    """
    parser = argparse.ArgumentParser(
        prog="galaxysim",
        description="Find the galaxies that look most like a given galaxy.",
    )
    parser.add_argument("--version", action="version", version=f"galaxysim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_parser(sub)
    _add_rank_parser(sub)
    _add_evaluate_parser(sub)
    add_embed_parser(sub)
    add_index_parser(sub)
    _add_info_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``galaxysim``; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 for an error (printed in one line to stderr), 2
        without a command, 130 when interrupted.

    Examples
    --------
    >>> from galaxysim.app.cli import main
    >>> main([])  # doctest: +ELLIPSIS
    usage: galaxysim ...
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["galaxysim", *(sys.argv[1:] if argv is None else argv)]
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("galaxysim: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error ends in one line; GALAXYSIM_DEBUG=1 shows the traceback
        if os.environ.get("GALAXYSIM_DEBUG"):
            raise
        print(f"galaxysim: error: {_one_line(exc)}", file=sys.stderr)
        return 1


# Errors whose message says what went wrong in the user's terms.
_EXPECTED = (CLIError, ValueError, TypeError, OSError, ImportError, KeyError, MemoryError)
# Errors whose own message does not say what they mean for a command.
_MEANINGS = (
    (RecursionError, "an input is nested too deeply to be read"),
    (OverflowError, "a number given or read is too large"),
)


def _one_line(exc: BaseException) -> str:
    """The first line of an error's message, said in the user's terms where it is not."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    for kind, meaning in _MEANINGS:
        if isinstance(exc, kind):
            return f"{meaning} ({type(exc).__name__}: {text})" if text else f"{meaning}."
    if isinstance(exc, _EXPECTED):
        if text:
            return text
        if isinstance(exc, MemoryError):
            return (
                "out of memory; ask for fewer or smaller images "
                "(--n-samples, --image-size, --crop)."
            )
        return type(exc).__name__
    # Not one galaxysim expects: name it, so that it can be reported.
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
