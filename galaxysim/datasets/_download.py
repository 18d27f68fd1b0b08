"""Resumable HTTP download of one large file, verified by SHA-256.

Data files such as Galaxy10 DECaLS (2.5 GB) take minutes to fetch, and a
dropped connection should not cost the bytes already received. The file
is therefore written to ``<name>.part`` beside its destination; a later
call asks the server for the rest with an HTTP ``Range`` request, and only
a complete file whose checksum matches is renamed (atomically, with
:func:`os.replace`) to its final name. So the final name only ever holds
a verified file. Every byte is written to the ``.part`` as it arrives; a
server that stalls or trickles is given up after about two ``timeout``
periods, and a lock file (``<name>.lock``) keeps two downloads from writing
one ``.part`` (see :func:`download_file`).

Only the standard library (:mod:`urllib`) is used for the transfer.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
from collections.abc import Callable
from numbers import Real
from pathlib import Path
from typing import Any, NamedTuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from .._filelock import FileLock, LockHeldError
from .._validation import PathLike, check_positive_int
from .._version import __version__

__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "DownloadInProgressError",
    "IncompleteDownloadError",
    "download_file",
    "file_sha256",
    "lock_path",
    "part_path",
]

_USER_AGENT = f"galaxysim/{__version__} (+python urllib)"
_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(OSError):
    """A download failed: server unreachable, HTTP error or unexpected reply."""


class ChecksumMismatchError(DownloadError):
    """A file's SHA-256 differs from the expected one."""


class IncompleteDownloadError(DownloadError):
    """The transfer stopped early; the ``.part`` file is kept for resuming."""


class DownloadInProgressError(DownloadError):
    """Another download into the same file (another process or thread) is running."""


def part_path(path: PathLike) -> Path:
    """Return the path of the partial file used while downloading ``path``.

    Parameters
    ----------
    path : str or path-like
        Final destination of the download.

    Returns
    -------
    part : pathlib.Path
        ``path`` with ``.part`` appended to its name, in the same folder (so
        the final rename stays on one file system and is atomic).

    Examples
    --------
    >>> from galaxysim.datasets._download import part_path
    >>> part_path("data/Galaxy10_DECals.h5").name
    'Galaxy10_DECals.h5.part'
    """
    path = Path(path)
    return path.with_name(path.name + ".part")


def check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str):
        raise TypeError(f"sha256 must be a hex string or None, got {type(sha256).__name__}.")
    digest = sha256.strip().lower()
    if not _SHA256_PATTERN.fullmatch(digest):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}.")
    return digest


def check_url(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}.")
    return url


def _hash_file(path: Path, chunk_size: int, *, verbose: bool = False) -> hashlib._Hash:
    hasher = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as stream,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"Checking {path.name}",
            disable=not verbose,
            leave=False,
        ) as bar,
    ):
        while block := stream.read(chunk_size):
            hasher.update(block)
            bar.update(len(block))
    return hasher


def file_sha256(path: PathLike, *, chunk_size: int = 1 << 20, verbose: bool = False) -> str:
    """Return the SHA-256 of a file as 64 lowercase hex digits, reading it in blocks.

    Parameters
    ----------
    path : str or path-like
        The file.
    chunk_size : int, default=1 MiB
        Bytes read at a time (memory use stays at this size).
    verbose : bool, default=False
        Show a progress bar.

    Returns
    -------
    digest : str

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.datasets._download import file_sha256
    >>> path = os.path.join(tempfile.mkdtemp(), "empty")
    >>> open(path, "wb").close()
    >>> file_sha256(path)[:16]
    'e3b0c44298fc1c14'
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not an existing file.")
    return _hash_file(path, chunk_size, verbose=verbose).hexdigest()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__


class _Body(NamedTuple):
    """Where a response body comes from: its URL, its first byte's offset, its length."""

    url: str
    offset: int
    length: int | None


def _append_stream(
    response: Any,
    part: Path,
    mode: str,
    hasher: hashlib._Hash,
    bar: Any,
    body: _Body,
    *,
    chunk_size: int,
    pace: tuple[float, int],
) -> int:
    """Write the response body into ``part`` as it arrives; the number of bytes received.

    Each read returns what the socket has (``read1``) and is written and
    flushed at once, so the ``.part`` holds every byte received when the
    transfer fails. ``pace = (timeout, min_bytes)``: the time since the last
    check is measured after each read, and once it reaches ``timeout`` at
    least ``min_bytes`` must have arrived in it (unless the body is complete).
    """
    timeout, min_bytes = pace
    url, offset, length = body
    received = window_bytes = 0
    window_start = time.monotonic()
    with open(part, mode) as stream:
        try:
            while block := response.read1(chunk_size):
                stream.write(block)
                stream.flush()
                hasher.update(block)
                received += len(block)
                window_bytes += len(block)
                bar.update(len(block))
                elapsed = time.monotonic() - window_start
                if elapsed < timeout:
                    continue
                if window_bytes < min_bytes and (length is None or received < length):
                    raise IncompleteDownloadError(
                        f"The download of {url} is too slow: only {window_bytes} bytes arrived "
                        f"in the last {elapsed:.1f} s (at least min_bytes={min_bytes} are "
                        f"needed every timeout={timeout:g} s). The {offset + received} bytes "
                        f"received are kept in {str(part)!r}; call again to resume, or pass "
                        "a larger timeout on a slow connection."
                    )
                window_start, window_bytes = time.monotonic(), 0
        except DownloadError:
            raise
        except TimeoutError:
            raise IncompleteDownloadError(
                f"The download of {url} stalled: no data arrived for timeout={timeout:g} s "
                f"after {offset + received} bytes. The partial file {str(part)!r} is kept; "
                "call again to resume, or pass a larger timeout on a slow connection."
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            raise IncompleteDownloadError(
                f"The download of {url} broke off after {offset + received} bytes "
                f"({_reason(exc)}). The partial file {str(part)!r} is kept; call again "
                "to resume from there."
            ) from None
    return received


def _open(url: str, part: Path, offset: int, timeout: float) -> Any | None:
    """Ask for the bytes from ``offset`` on; the response, or None if ``part`` is complete.

    A "range not satisfiable" (416) answer whose total is ``offset`` means
    the ``.part`` already holds every byte (None). One giving another total
    (the remote file changed) deletes ``part`` and asks for the whole file.
    """
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        content_range = exc.headers.get("Content-Range", "") if exc.headers else ""
        exc.close()
        if exc.code == 416 and offset:
            match = _UNSATISFIED_RANGE.fullmatch(content_range.strip())
            if match is None or int(match.group(1)) == offset:
                return None
            part.unlink()
            return _open(url, part, 0, timeout)
        raise DownloadError(
            f"Downloading {url} failed: the server answered HTTP {exc.code} ({exc.reason})."
        ) from None
    except (URLError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(
            f"Could not reach {url}: {_reason(exc)}. Check the network connection and "
            "the address, then try again."
        ) from None


def _transfer(
    url: str,
    part: Path,
    *,
    expected: str | None,
    pace: tuple[float, int],
    chunk_size: int,
    verbose: bool,
    desc: str,
) -> hashlib._Hash:
    """Bring ``part`` up to the full remote file and return the hash of its content.

    Resumes from the bytes already in ``part``; a ``part`` whose hash is
    already ``expected`` is complete and is not downloaded again. Raises
    DownloadError (nothing written), or IncompleteDownloadError (``part``
    kept) when the stream ends early, stalls or trickles.
    """
    offset = part.stat().st_size if part.is_file() else 0
    # Hashed before connecting, so the connection never waits idle on it.
    prefix_hash = _hash_file(part, chunk_size) if offset else None
    if prefix_hash is not None and prefix_hash.hexdigest() == expected:
        return prefix_hash
    response = _open(url, part, offset, pace[0])
    if response is None:
        # _open answers None only for a resumed download (offset > 0), which has a prefix hash.
        assert prefix_hash is not None
        return prefix_hash
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                raise DownloadError(
                    f"Resuming {url} failed: asked for bytes from {offset}, the server sent "
                    f"Content-Range {response.headers.get('Content-Range')!r}. Delete "
                    f"{str(part)!r} and try again."
                )
            # offset > 0: the bytes already in part were hashed above.
            assert prefix_hash is not None
            hasher, mode = prefix_hash, "ab"
        else:
            # A plain 200 reply carries the whole file, also when a Range was asked
            # for and ignored: start the .part again from its first byte.
            offset, hasher, mode = 0, hashlib.sha256(), "wb"
        total = offset + length if length is not None else None
        with tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not verbose,
        ) as bar:
            received = _append_stream(
                response,
                part,
                mode,
                hasher,
                bar,
                _Body(url, offset, length),
                chunk_size=chunk_size,
                pace=pace,
            )
    if length is not None and received < length:
        raise IncompleteDownloadError(
            f"The download of {url} stopped after {offset + received} of {total} bytes. "
            f"The partial file {str(part)!r} is kept; call again to resume from there."
        )
    return hasher


def lock_path(path: PathLike) -> Path:
    """Return the path of the lock file taken while downloading into ``path``.

    Parameters
    ----------
    path : str or path-like
        Final destination of the download.

    Returns
    -------
    lock : pathlib.Path
        ``path`` with ``.lock`` appended to its name, in the same folder.

    Examples
    --------
    >>> from galaxysim.datasets._download import lock_path
    >>> lock_path("data/Galaxy10_DECals.h5").name
    'Galaxy10_DECals.h5.lock'
    """
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _check_destination(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"path {str(path)!r} already exists; pass overwrite=True to replace it."
        )
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give a file name.")


def _lock(path: Path, url: str) -> FileLock:
    try:
        return FileLock(lock_path(path)).acquire()
    except LockHeldError as exc:
        stale = (
            f" If no download is running, a killed one left the lock: delete {str(exc.path)!r}."
            if exc.may_be_stale
            else ""
        )
        raise DownloadInProgressError(
            f"Another download into {str(path)!r} is running (it holds {str(exc.path)!r}), "
            f"so {url} was not fetched. Wait for it to finish, then call again.{stale}"
        ) from None


def _verify(
    part: Path,
    hasher: hashlib._Hash,
    expected: str | None,
    check: Callable[[Path], None] | None,
    url: str,
    path: Path,
) -> None:
    """Compare the checksum and run ``check``; delete ``part`` if it is not the file."""
    got = hasher.hexdigest()
    if expected is not None and got != expected:
        part.unlink()
        raise ChecksumMismatchError(
            f"The file downloaded from {url} has SHA-256 {got}, expected {expected}. "
            f"The corrupt partial file was deleted and nothing was written to "
            f"{str(path)!r}; call again to download from scratch."
        )
    if check is None:
        return
    try:
        check(part)
    except KeyboardInterrupt:
        # Interrupted, not rejected: the complete (and, with a checksum, verified)
        # .part stays, and the next call checks it again without downloading.
        raise
    except BaseException:
        part.unlink()
        raise


def download_file(
    url: str,
    path: PathLike,
    *,
    sha256: str | None = None,
    overwrite: bool = False,
    check: Callable[[Path], None] | None = None,
    timeout: float = 60.0,
    min_bytes: int = 16384,
    chunk_size: int = 1 << 20,
    verbose: bool = False,
) -> Path:
    """Download ``url`` to ``path``, resuming a partial download and verifying it.

    Bytes go to ``<path>.part`` as they arrive. If that file exists from an
    earlier, interrupted call, only the missing bytes are requested (HTTP
    ``Range``); a server that ignores ranges (HTTP 200) sends the whole
    file, which then replaces the ``.part``. Once complete, the SHA-256 is
    compared with ``sha256`` and ``check`` is run; only then is the ``.part``
    renamed to ``path`` with :func:`os.replace`, so ``path`` never holds a
    partial or unverified file.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` address of the file.
    path : str or path-like
        Destination. Its folder is created if needed.
    sha256 : str, optional
        Expected SHA-256 (64 hex digits). When None the content is not
        verified. When given, a ``.part`` that already has this checksum is
        complete and is used without contacting the server.
    overwrite : bool, default=False
        Replace an existing file at ``path`` (only after the new one is
        verified). When False an existing ``path`` raises FileExistsError.
    check : callable, optional
        ``check(part_path)`` runs on the complete, checksum-verified file
        before the rename and raises if the content is unusable; the
        ``.part`` is then deleted and the exception propagates. A
        KeyboardInterrupt (Ctrl-C) during ``check`` keeps the ``.part``: the
        next call checks it again instead of downloading it.
    timeout : float, default=60
        Seconds to wait for the server to connect or send data, and the
        length of the progress window, see Notes.
    min_bytes : int, default=16384
        Fewest bytes that must arrive in each ``timeout``-second window;
        0 only stops a transfer that sends nothing for ``timeout`` seconds.
    chunk_size : int, default=1 MiB
        Most bytes read and written at a time.
    verbose : bool, default=False
        Show a progress bar (tqdm) on stderr.

    Returns
    -------
    path : pathlib.Path
        The verified file.

    Raises
    ------
    DownloadError
        The server could not be reached, answered with an HTTP error, or
        sent an unexpected range. An existing ``.part`` is left as it was.
    DownloadInProgressError
        Another download into ``path`` (another process or thread) is
        running. Raised at once, without waiting; nothing is touched.
    IncompleteDownloadError
        The transfer broke off early, stalled or trickled (see Notes); the
        ``.part`` is kept, and calling again resumes it.
    ChecksumMismatchError
        The complete file has another SHA-256; the ``.part`` is deleted.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Notes
    -----
    *Progress deadline.* The transfer fails (IncompleteDownloadError)
    when no byte arrives for ``timeout`` seconds, and when, over a window of
    ``timeout`` seconds, fewer than ``min_bytes`` arrive: windows run back to
    back from the start of the body and are checked after each read, so a
    server that stalls or trickles (say 1 byte a second) is given up within
    about ``2 * timeout`` seconds. The default of 16 KiB a minute (273
    bytes/s) only stops transfers too slow to ever finish a large file. The
    HTTP headers are not under this deadline, only each read of them.

    *Lock.* While it runs, the call holds an operating-system lock
    (:func:`fcntl.flock`) on ``<path>.lock``, deleted when the call ends in
    any way, Ctrl-C included. A second call for the same ``path`` raises
    DownloadInProgressError at once instead of writing the same ``.part``.
    The operating system drops the lock of a killed process; where
    :mod:`fcntl` is missing (Windows), the lock is the file's existence,
    and the error says to delete a lock file left by a killed process.

    Examples
    --------
    >>> from galaxysim.datasets._download import download_file
    >>> download_file("https://example.org/data.h5", "data.h5",
    ...               sha256="0" * 64)  # doctest: +SKIP
    PosixPath('data.h5')
    """
    url = check_url(url)
    expected = check_sha256(sha256)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    min_bytes = check_positive_int(min_bytes, "min_bytes", minimum=0)
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike), got {type(path).__name__}."
        )
    path = Path(path).expanduser()
    _check_destination(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)
    lock = _lock(path, url)
    try:
        # Again under the lock: a download that held it may have just finished.
        _check_destination(path, overwrite)
        hasher = _transfer(
            url,
            part,
            expected=expected,
            pace=(float(timeout), min_bytes),
            chunk_size=chunk_size,
            verbose=verbose,
            desc=path.name,
        )
        _verify(part, hasher, expected, check, url, path)
        os.replace(part, path)
    finally:
        lock.release()
    return path
