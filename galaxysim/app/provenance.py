"""Where a run's outputs came from, for ``summary.json``.

:func:`run_provenance` records the command line, the versions of the
packages that computed the result, the seed, and a SHA-256 of every input
file, so that a result can be traced to exactly what produced it and
checked against the files later (``sha256sum`` gives the same digests for
files).
"""

from __future__ import annotations

import hashlib
import os
import platform
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._validation import PathLike
from .._version import __version__

__all__ = ["folder_sha256", "input_record", "run_provenance"]


def _file_sha256(path: PathLike) -> str:
    from ..datasets._download import file_sha256

    return file_sha256(path)


def folder_sha256(folder: PathLike) -> str:
    """One SHA-256 for a folder's regular files, found recursively.

    It is the SHA-256 of the lines ``"<relative path>\\t<file SHA-256>\\n"``
    (paths with ``/``, sorted), so it changes when any file is added,
    removed, renamed or altered. FIFOs, sockets and devices are skipped,
    never opened.

    Examples
    --------
    >>> import hashlib, os, tempfile
    >>> from galaxysim.app.provenance import folder_sha256
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.txt"), "wb") as stream:
    ...     _ = stream.write(b"x")
    >>> line = "a.txt\\t" + hashlib.sha256(b"x").hexdigest() + "\\n"
    >>> folder_sha256(folder) == hashlib.sha256(line.encode()).hexdigest()
    True
    """
    root = Path(folder)
    lines = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(current, name)
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                continue  # a dangling link
            if regular:
                relative = path.relative_to(root).as_posix()
                lines.append(f"{relative}\t{_file_sha256(path)}\n")
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()


def input_record(path: PathLike) -> dict[str, str]:
    """``{"path": ..., "sha256": ...}`` of a file, or of a folder with :func:`folder_sha256`.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.app.provenance import input_record
    >>> path = os.path.join(tempfile.mkdtemp(), "empty")
    >>> open(path, "wb").close()
    >>> input_record(path)["sha256"][:16]
    'e3b0c44298fc1c14'
    """
    path = Path(path)
    if path.is_dir():
        return {"path": str(path.resolve()), "kind": "folder", "sha256": folder_sha256(path)}
    return {"path": str(path.resolve()), "kind": "file", "sha256": _file_sha256(path)}


def _versions() -> dict[str, str | None]:
    import numpy
    import sklearn

    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = None
    return {
        "galaxysim": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch_version,
        "scikit-learn": sklearn.__version__,
    }


def run_provenance(
    argv: Sequence[str],
    *,
    random_state: int | None,
    data: Any = None,
    query: Any = None,
    model: PathLike | None = None,
) -> dict[str, Any]:
    """The ``provenance`` record of ``summary.json``.

    Parameters
    ----------
    argv : sequence of str
        The command line, ``galaxysim`` first.
    random_state : int or None
        The run's seed.
    data, query : path-like or dict, optional
        An input file or folder (hashed with :func:`input_record`), or a
        dict describing a generated input (the generator and its
        parameters), stored as it is.
    model : path-like, optional
        The model file read, hashed.

    Returns
    -------
    record : dict
        ``argv``, ``versions``, ``random_state``, ``data``, ``query`` and
        ``model`` (None when not given).

    Examples
    --------
    >>> from galaxysim.app.provenance import run_provenance
    >>> record = run_provenance(["galaxysim", "demo"], random_state=0,
    ...                         data={"generator": "make_galaxies", "n_samples": 10})
    >>> sorted(record), record["data"]["generator"], record["model"]
    (['argv', 'data', 'model', 'query', 'random_state', 'versions'], 'make_galaxies', None)
    """

    def describe(value: Any) -> Any:
        if value is None or isinstance(value, dict):
            return value
        return input_record(value)

    return {
        "argv": list(argv),
        "versions": _versions(),
        "random_state": random_state,
        "data": describe(data),
        "query": describe(query),
        "model": describe(model),
    }
