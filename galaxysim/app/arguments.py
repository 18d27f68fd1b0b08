"""Argument types shared by the ``galaxysim`` subcommands."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_N_NEIGHBORS", "positive_int", "resolve_n_neighbors"]

#: Neighbours shown when ``--n-neighbors`` is not given (fewer in a smaller collection).
DEFAULT_N_NEIGHBORS = 16


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, else a usage error naming the text.

    Examples
    --------
    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def resolve_n_neighbors(args: argparse.Namespace, n_galaxies: int, where: str) -> None:
    """Set ``args.n_neighbors``: by default 16, or every galaxy when there are fewer.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options with ``n_neighbors`` (None when not given).
    n_galaxies : int
        Galaxies the command ranks.
    where : str
        Where they come from, for the message (e.g. ``"--data 'cutouts'"``).

    Raises
    ------
    ValueError
        ``--n-neighbors`` was given larger than ``n_galaxies``.

    Examples
    --------
    >>> args = argparse.Namespace(n_neighbors=None)
    >>> resolve_n_neighbors(args, 5, "--data")
    >>> args.n_neighbors
    5
    >>> too_many = argparse.Namespace(n_neighbors=10**12)
    >>> resolve_n_neighbors(too_many, 5, "--data 'x'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --n-neighbors 1000000000000 is more than the 5 galaxies in --data 'x'; ask ...
    """
    if args.n_neighbors is None:
        args.n_neighbors = min(DEFAULT_N_NEIGHBORS, n_galaxies)
    elif args.n_neighbors > n_galaxies:
        raise ValueError(
            f"--n-neighbors {args.n_neighbors} is more than the {n_galaxies:,} "
            f"galaxies in {where}; ask for at most {n_galaxies:,}."
        )
