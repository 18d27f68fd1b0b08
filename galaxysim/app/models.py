"""Reading the model a command is given: weights-only files, and pickles only when trusted.

A ``.safetensors`` model file (:func:`galaxysim.load_model`) can come from
anyone. A pickle (``.joblib``) runs code when it is loaded, so it is refused
unless the user passes ``--trust-pickle`` for a file they made or trust.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["ModelFileRefused", "load_ranker"]


class ModelFileRefused(ValueError):
    """The ``--model`` file is not loaded: unsafe, unreadable, or not a fitted ranker."""


_PICKLE_REFUSED = (
    "it is not a galaxysim model file (.safetensors). Loading a pickle (joblib) file runs "
    "whatever code it contains, so one from someone else can take over this computer; "
    "pass --trust-pickle only for a file you made yourself or fully trust"
)


_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def _is_pickle(path: Path) -> bool:
    """Whether the file starts as a pickle of protocol 2 or later does."""
    with open(path, "rb") as stream:
        start = stream.read(2)
    return len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5


def load_ranker(path: Path, *, trust_pickle: bool) -> Any:
    """The fitted SimilarityRanker in ``path``; a pickle only with ``trust_pickle``.

    Parameters
    ----------
    path : pathlib.Path
        The ``--model`` file.
    trust_pickle : bool
        Load a pickle (joblib) file; without it a pickle is refused.

    Returns
    -------
    ranker : SimilarityRanker
        A fitted ranker.

    Raises
    ------
    ModelFileRefused
        For a pickle without ``trust_pickle``, a file that is not a galaxysim
        model, or one that holds no fitted ranker.

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "model.joblib"
    >>> _ = path.write_bytes(b"\\x80\\x04not really")
    >>> load_ranker(path, trust_pickle=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.app.models.ModelFileRefused: --model '...model.joblib' could not be loaded: ...
    """
    from ..persistence import load_model
    from ..ranking import SimilarityRanker

    if not trust_pickle or path.suffix == ".safetensors":
        try:
            saved = load_model(path, expected=SimilarityRanker)
        except ValueError as exc:
            reason = str(exc)
            if path.suffix == ".safetensors" and _is_pickle(path):
                reason = (
                    "it is a pickle named like a model file; a pickle runs code when "
                    "loaded, so it is never loaded under a .safetensors name"
                )
            elif _is_pickle(path) or path.suffix in _PICKLE_SUFFIXES:
                reason = _PICKLE_REFUSED
            raise ModelFileRefused(
                f"--model {str(path)!r} could not be loaded: {reason}."
            ) from None
    else:
        import joblib

        print(
            f"galaxysim: warning: --trust-pickle: loading the pickle {str(path)!r}, which can "
            "run any code it contains.",
            file=sys.stderr,
        )
        try:
            saved = joblib.load(path)
        except Exception as exc:  # joblib raises many kinds for a corrupt file
            raise ModelFileRefused(f"--model {str(path)!r} could not be loaded: {exc}") from None
    if not isinstance(saved, SimilarityRanker) or not hasattr(saved, "embedder_"):
        raise ModelFileRefused(f"--model {str(path)!r} does not hold a fitted SimilarityRanker.")
    return saved
