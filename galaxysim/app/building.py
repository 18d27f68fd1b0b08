"""The models a command trains, built from its command-line options.

``galaxysim demo`` and ``galaxysim rank`` share the model options
(:func:`add_model_options`): which embedder (``--embedder``, the contrastive
one by default), its size and training, the density and the ranking.
:func:`build_ranker` turns them into an unfitted
:class:`~galaxysim.ranking.SimilarityRanker`; :func:`build_study_ranker` into
the original study's autoencoder and flow, whose figures the demo shows
whichever embedder ranks.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .arguments import DEFAULT_N_NEIGHBORS, positive_int

__all__ = [
    "EMBEDDERS",
    "add_model_options",
    "build_embedder",
    "build_ranker",
    "build_study_ranker",
    "ranking_params",
]

#: The embedders ``--embedder`` chooses from; the first is the default.
EMBEDDERS = ("contrastive", "autoencoder", "pca")
# Embedding sizes when --n-components is not given.
_DEFAULT_DIMS = {"contrastive": 64, "autoencoder": 32, "pca": 32}
# Training epochs when --max-epochs is not given: enough for the 2,000 built-in
# galaxies to converge within the demo's few minutes on two CPU cores.
_DEFAULT_EPOCHS = {"contrastive": 15, "autoencoder": 30}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the model options of ``demo`` and ``rank`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_options(parser)
    >>> parser.parse_args([]).embedder
    'contrastive'
    """
    group = parser.add_argument_group("model")
    group.add_argument(
        "--embedder",
        choices=EMBEDDERS,
        default=EMBEDDERS[0],
        help=(
            "how galaxies are compared: a contrastive self-supervised network (default), "
            "the original study's autoencoder, or PCA of the pixels"
        ),
    )
    group.add_argument(
        "--n-components",
        type=positive_int,
        default=None,
        help="embedding size (default: 64 contrastive (whitened from a representation of 128), "
        "32 autoencoder and PCA)",
    )
    group.add_argument(
        "--latent-dim",
        type=positive_int,
        default=None,
        action=_DeprecatedAlias,
        dest="n_components",
        help="deprecated alias of --n-components (removed in 0.4)",
    )
    group.add_argument(
        "--max-epochs",
        type=positive_int,
        default=None,
        help="training epochs of the embedders at most (default: 15 contrastive, 30 autoencoder)",
    )
    # A light autoencoder by default, so that a CPU finishes in minutes; the
    # original study's 6 blocks of 16 channels is --n-blocks 6 --base-channels 16.
    group.add_argument(
        "--n-stages",
        type=positive_int,
        default=5,
        help="autoencoder stages, each halving the image (default: %(default)s)",
    )
    group.add_argument(
        "--n-blocks",
        type=positive_int,
        default=1,
        help="residual blocks per autoencoder stage (default: %(default)s)",
    )
    group.add_argument(
        "--base-channels",
        type=positive_int,
        default=8,
        help="autoencoder base channels (default: %(default)s)",
    )
    group.add_argument(
        "--flow-max-epochs",
        type=positive_int,
        default=50,
        help="flow epochs at most (default: %(default)s)",
    )
    group.add_argument(
        "--method",
        choices=("embedding", "likelihood"),
        default="embedding",
        help="ranking method (default: %(default)s)",
    )
    group.add_argument(
        "--no-invariance",
        action="store_true",
        help="compare the query only as given, not in its 8 rotations and flips",
    )
    group.add_argument(
        "--n-neighbors",
        type=positive_int,
        default=None,
        help=(
            f"neighbours to show (default: {DEFAULT_N_NEIGHBORS}, or all galaxies when there "
            "are fewer; more than there are is an error); ranking.csv ranks the whole collection"
        ),
    )
    group.add_argument("--random-state", type=int, default=0, help="seed (default: %(default)s)")


class _DeprecatedAlias(argparse.Action):
    """Store the value like the option it is an alias of, and print a warning on stderr."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        new = "--" + self.dest.replace("_", "-")
        print(
            f"warning: {option_string} is deprecated and will be removed in galaxysim 0.4; "
            f"use {new}.",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _verbose(args: argparse.Namespace) -> int:
    return 0 if args.quiet else 1


def build_embedder(args: argparse.Namespace, kind: str | None = None) -> Any:
    """The unfitted embedder of ``kind`` (default ``args.embedder``) from the options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of :func:`add_model_options` (and ``--quiet``).
    kind : {"contrastive", "autoencoder", "pca"}, optional

    Returns
    -------
    embedder : estimator

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_options(parser)
    >>> args = parser.parse_args(["--n-components", "16"])
    >>> args.quiet = True
    >>> build_embedder(args).n_components
    16
    """
    kind = args.embedder if kind is None else kind
    dim = args.n_components or _DEFAULT_DIMS[kind]
    if kind == "pca":
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline

        from ..images import ImagePreprocessor

        # Whitened: every component counts alike, which groups galaxies better than
        # plain PCA (docs/evaluation_builtin.md).
        return make_pipeline(
            ImagePreprocessor(crop=None, flatten=True),
            PCA(dim, whiten=True, random_state=args.random_state),
        )
    epochs = args.max_epochs or _DEFAULT_EPOCHS[kind]
    if kind == "autoencoder":
        from ..embedders import AutoencoderEmbedder

        return AutoencoderEmbedder(
            n_components=dim,
            n_stages=args.n_stages,
            n_blocks=args.n_blocks,
            base_channels=args.base_channels,
            max_epochs=epochs,
            random_state=args.random_state,
            verbose=_verbose(args),
        )
    from ..embedders import ContrastiveEmbedder

    # The network's width stays at its default unless a larger embedding is asked for;
    # the embedding is its whitened projection on `dim` directions.
    width = max(ContrastiveEmbedder().representation_dim, dim)
    return ContrastiveEmbedder(
        n_components=dim,
        representation_dim=width,
        max_epochs=epochs,
        random_state=args.random_state,
        verbose=_verbose(args),
    )


def _flow(args: argparse.Namespace) -> Any:
    from ..flows import FlowDensityEstimator

    return FlowDensityEstimator(
        flow="affine",
        n_layers=4,
        max_epochs=args.flow_max_epochs,
        random_state=args.random_state,
        verbose=_verbose(args),
    )


def ranking_params(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~galaxysim.ranking.SimilarityRanker` parameters set by the options.

    Examples
    --------
    >>> ranking_params(argparse.Namespace(n_neighbors=5, method="embedding", no_invariance=True))
    {'n_neighbors': 5, 'method': 'embedding', 'invariance': None}
    """
    return {
        "n_neighbors": args.n_neighbors,
        "method": args.method,
        "invariance": None if args.no_invariance else "dihedral",
    }


def build_ranker(args: argparse.Namespace) -> Any:
    """The unfitted ranker of the options: the chosen embedder and a flow density.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_options(parser)
    >>> args = parser.parse_args(["--embedder", "pca"])
    >>> args.quiet = True
    >>> type(build_ranker(args).density).__name__
    'FlowDensityEstimator'
    """
    from ..ranking import SimilarityRanker

    return SimilarityRanker(
        embedder=build_embedder(args), density=_flow(args), **ranking_params(args)
    )


def build_study_ranker(args: argparse.Namespace) -> Any:
    """The original study's models: the autoencoder of the options and a flow on its codes.

    The demo fits it beside the ranker that ranks, for the figures only an
    autoencoder can draw (reconstructions, generated galaxies).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_options(parser)
    >>> args = parser.parse_args([])
    >>> args.quiet = True
    >>> type(build_study_ranker(args).embedder).__name__
    'AutoencoderEmbedder'
    """
    from ..ranking import SimilarityRanker

    args = argparse.Namespace(**{**vars(args), "n_components": None})
    return SimilarityRanker(
        embedder=build_embedder(args, "autoencoder"), density=_flow(args), **ranking_params(args)
    )
