"""Files that appear complete or not at all.

A file is written under a temporary name in its own folder and renamed onto
its final name (:func:`os.replace`, atomic on one file system) only once it
is complete and flushed to disk, so an interrupted or failed write never
leaves a half-written file, and never destroys the previous one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_open", "atomic_write"]

_UMASK_LOCK = threading.Lock()


def _file_mode() -> int:
    """The mode :func:`open` would give a new file (0o666 less the umask).

    A temporary file is created private (0o600); the finished file gets the
    mode the user expects of any new file instead.
    """
    with _UMASK_LOCK:  # reading the umask means setting it for a moment
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file renamed onto it on success.

    Parameters
    ----------
    path : str or path-like
        The final file. Its folder must exist.
    mode : {"w", "wb"}, default="w"
        Text or binary writing.
    **kwargs
        Passed to :func:`open` (``newline``, ``encoding``).

    Yields
    ------
    stream : file object
        Write into it; when the block ends without an exception the file is
        flushed, synced and renamed to ``path``; otherwise it is deleted and
        ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with atomic_open(target) as stream:
    ...     _ = stream.write("done")
    >>> open(target).read()
    'done'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}.")
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); return the path.

    Examples
    --------
    >>> import tempfile, os
    >>> atomic_write(os.path.join(tempfile.mkdtemp(), "b.bin"), b"xyz").read_bytes()
    b'xyz'
    """
    binary = isinstance(data, (bytes, bytearray))
    with atomic_open(
        path, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
    ) as stream:
        stream.write(data)
    return Path(path)
