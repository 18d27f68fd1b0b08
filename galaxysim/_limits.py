"""Limits for untrusted input: regular files only, and no allocation beyond the memory there is.

Files come from other people. A FIFO or a device given as an image would
block or read forever; a small file can declare an image or a data set of
many gigabytes. These checks run before anything is opened or allocated,
and fail with an error that says what was asked, what there is, and how to
ask for less.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "InsufficientMemoryError",
    "available_memory_bytes",
    "check_allocation",
    "check_regular_file",
    "format_bytes",
]


class InsufficientMemoryError(MemoryError, ValueError):
    """Raised before an allocation that the available memory cannot hold.

    It is a :class:`MemoryError` (what it is about) and a :class:`ValueError`
    (what asked for it: an input too large for this machine), so code that
    reports bad input catches it too.
    """


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is a regular file (symlinks followed), else raise.

    The check uses :func:`os.stat`, which never opens the file, so a FIFO
    cannot block it.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str, default="file"
        How the file is called in error messages (e.g. ``"Image file"``).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    IsADirectoryError
        If ``path`` is a folder.
    ValueError
        If ``path`` is a FIFO, a device, a socket or anything else that is
        not a regular file.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim._limits import check_regular_file
    >>> folder = tempfile.mkdtemp()
    >>> check_regular_file(folder, "Image file")
    Traceback (most recent call last):
    ...
    IsADirectoryError: Image file '...' is a folder; expected a regular file.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise OSError(f"Could not inspect {what} {str(path)!r}: {exc}") from None
    if stat.S_ISREG(mode):
        return path
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    error = IsADirectoryError if stat.S_ISDIR(mode) else ValueError
    raise error(f"{what} {str(path)!r} is {kind}; expected a regular file.")


def _meminfo_available(meminfo: str = "/proc/meminfo") -> int | None:
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory_bytes() -> int | None:
    """Memory that new allocations can use without swapping, in bytes; None if unknown.

    Linux's ``MemAvailable`` (free memory plus the page cache and buffers
    the kernel can drop), else free physical pages from :func:`os.sysconf`.

    Returns
    -------
    n_bytes : int or None

    Examples
    --------
    >>> from galaxysim._limits import available_memory_bytes
    >>> n_bytes = available_memory_bytes()
    >>> n_bytes is None or n_bytes > 0
    True
    """
    found = _meminfo_available()
    if found is not None:
        return found
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n_bytes: float) -> str:
    """``n_bytes`` in binary units, e.g. ``'9.16 GiB'``.

    Examples
    --------
    >>> format_bytes(9.16 * 2**30)
    '9.16 GiB'
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.2f} {unit}"
    return f"{int(n_bytes)} bytes"


def check_allocation(
    n_bytes: float,
    what: str,
    hint: str,
    *,
    available: int | None = None,
    where: str = "memory",
) -> None:
    """Raise :class:`InsufficientMemoryError` if ``n_bytes`` exceed the memory available.

    Parameters
    ----------
    n_bytes : float
        What the allocation (or the computation) needs.
    what : str
        What needs it, for the message (e.g. ``"the 200,000 images"``).
    hint : str
        How to need less (e.g. ``"Pass a smaller crop or image_size."``).
    available : int, optional
        Bytes available; by default :func:`available_memory_bytes`. Nothing
        is checked when it is unknown.
    where : str, default="memory"
        Which memory, for the message (e.g. ``"free GPU memory"``).

    Raises
    ------
    InsufficientMemoryError
        A MemoryError and a ValueError.

    Examples
    --------
    >>> from galaxysim._limits import check_allocation
    >>> check_allocation(2**40, "the images", "Crop them.", available=2**30)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim._limits.InsufficientMemoryError: the images would take about 1.00 TiB, but only ...
    """
    if available is None:
        available = available_memory_bytes()
    if available is None or n_bytes <= available:
        return
    raise InsufficientMemoryError(
        f"{what} would take about {format_bytes(n_bytes)}, but only {format_bytes(available)} "
        f"of {where} is available. {hint}"
    )
