"""The ``galaxysim`` command.

``galaxysim demo --out DIR`` runs the Milky Way challenge on the built-in
synthetic galaxies and writes its results into DIR. Errors print one line and
exit with status 1 (2 for bad command-line usage), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ._version import __version__

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


def _run_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .datasets import SYNTHETIC_CLASSES, load_milky_way, make_galaxies, make_milky_way
    from .plotting import plot_image_grid

    out = prepare_output_dir(args.out, force=args.force)
    start = time.perf_counter()
    X, y = make_galaxies(args.n_samples, image_size=args.image_size, random_state=args.random_state)
    try:
        target = load_milky_way(size=args.image_size)
        target_name = "Milky Way (NASA/JPL-Caltech/R. Hurt illustration)"
    except ImportError:
        target = make_milky_way(image_size=args.image_size)
        target_name = "Milky Way (built-in synthetic stand-in)"

    per_class = 8
    rows, labels = [], []
    for k, name in enumerate(SYNTHETIC_CLASSES):
        members = np.flatnonzero(y == k)[:per_class]
        if len(members) < per_class:
            continue
        rows.append(X[members])
        labels.append(name)
    grid = np.concatenate(rows + [np.repeat(target[None], 1, axis=0)])
    n_blank = per_class - 1
    # The target gets a row of its own; blank panels pad it to the grid width.
    grid = np.concatenate([grid, np.zeros((n_blank, *target.shape), dtype=grid.dtype)])
    titles = [""] * (len(grid) - per_class) + ["target"] + [""] * n_blank
    fig = plot_image_grid(
        grid,
        titles=titles,
        n_cols=per_class,
        row_labels=labels + ["Milky Way"],
        suptitle=f"galaxysim demo: {len(X)} built-in galaxies and the target",
    )
    grid_path = out / "galaxies.png"
    fig.savefig(grid_path, dpi=110)
    np.savez_compressed(
        out / "dataset.npz",
        images=X,
        target=y,
        target_names=np.asarray(SYNTHETIC_CLASSES),
        query=target,
    )
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{name}: {int((y == k).sum())}" for k, name in enumerate(SYNTHETIC_CLASSES))
    print(f"galaxysim {__version__} demo: {len(X)} galaxies of {args.image_size}x{args.image_size} ({counts})")
    print(f"query: {target_name}")
    print(f"wrote {grid_path} and {out / 'dataset.npz'} in {seconds:.1f} s")
    return 0


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
        "the results into a folder.",
    )
    demo.add_argument("--out", default="galaxysim-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--force", action="store_true", help="write into a non-empty --out folder")
    demo.add_argument("--n-samples", type=_positive_int, default=1000, help="galaxies to generate (default: %(default)s)")
    demo.add_argument("--image-size", type=_positive_int, default=64, help="image side in pixels (default: %(default)s)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: %(default)s)")
    demo.set_defaults(handler=_run_demo)
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
