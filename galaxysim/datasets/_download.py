"""Resumable HTTP download of one large file, verified by SHA-256.

Data files such as Galaxy10 DECaLS (2.5 GB) take minutes to fetch, and a
dropped connection should not cost the bytes already received. The file
is therefore written to ``<name>.part`` beside its destination; a later
call asks the server for the rest with an HTTP ``Range`` request, and only
a complete file whose checksum matches is renamed (atomically, with
:func:`os.replace`) to its final name. So the final name only ever holds
a verified file.

Only the standard library (:mod:`urllib`) is used for the transfer.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from numbers import Real
from pathlib import Path
from typing import Any, Callable
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from .._validation import PathLike, check_positive_int
from .._version import __version__

__all__ = [
    "DownloadError",
    "ChecksumMismatchError",
    "IncompleteDownloadError",
    "download_file",
    "file_sha256",
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


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str):
        raise TypeError(f"sha256 must be a hex string or None, got {type(sha256).__name__}.")
    digest = sha256.strip().lower()
    if not _SHA256_PATTERN.fullmatch(digest):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}.")
    return digest


def _check_url(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}.")
    return url


def _hash_file(path: Path, chunk_size: int, *, verbose: bool = False) -> "hashlib._Hash":
    hasher = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as stream, tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=f"Checking {path.name}", disable=not verbose, leave=False,
    ) as bar:
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


def _append_stream(
    response: Any, part: Path, mode: str, hasher: "hashlib._Hash", chunk_size: int,
    bar: Any, url: str, offset: int,
) -> int:
    """Write the response body into ``part`` as it arrives; the number of bytes received."""
    received = 0
    with open(part, mode) as stream:
        try:
            while block := response.read(chunk_size):
                stream.write(block)
                hasher.update(block)
                received += len(block)
                bar.update(len(block))
        except (http.client.HTTPException, OSError) as exc:
            raise IncompleteDownloadError(
                f"The download of {url} broke off after {offset + received} bytes "
                f"({_reason(exc)}). The partial file {str(part)!r} is kept; call again "
                "to resume from there."
            ) from None
    return received


def _transfer(
    url: str, part: Path, *, timeout: float, chunk_size: int, verbose: bool, desc: str
) -> "hashlib._Hash":
    """Bring ``part`` up to the full remote file and return the hash of its content.

    Resumes from the bytes already in ``part``. Raises DownloadError (nothing
    written), or IncompleteDownloadError (``part`` kept) when the stream ends
    early.
    """
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    prefix_hash = None
    if offset:
        headers["Range"] = f"bytes={offset}-"
        # Hashed before connecting, so the connection never waits idle on it.
        prefix_hash = _hash_file(part, chunk_size)
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        content_range = exc.headers.get("Content-Range", "") if exc.headers else ""
        exc.close()
        if exc.code == 416 and offset:
            # "Range not satisfiable": the .part already holds every byte, unless
            # the server reports a different total (the remote file changed).
            match = _UNSATISFIED_RANGE.fullmatch(content_range.strip())
            if match is None or int(match.group(1)) == offset:
                return prefix_hash
            part.unlink()
            return _transfer(url, part, timeout=timeout, chunk_size=chunk_size,
                             verbose=verbose, desc=desc)
        raise DownloadError(
            f"Downloading {url} failed: the server answered HTTP {exc.code} ({exc.reason})."
        ) from None
    except (URLError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(
            f"Could not reach {url}: {_reason(exc)}. Check the network connection and "
            "the address, then try again."
        ) from None

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
            hasher = prefix_hash
            mode = "ab"
        else:
            # A plain 200 reply carries the whole file, also when a Range was asked
            # for and ignored: start the .part again from its first byte.
            offset = 0
            hasher = hashlib.sha256()
            mode = "wb"
        total = offset + length if length is not None else None
        with tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=desc, disable=not verbose,
        ) as bar:
            received = _append_stream(response, part, mode, hasher, chunk_size, bar, url, offset)
    if length is not None and received < length:
        raise IncompleteDownloadError(
            f"The download of {url} stopped after {offset + received} of {total} bytes. "
            f"The partial file {str(part)!r} is kept; call again to resume from there."
        )
    return hasher


def download_file(
    url: str,
    path: PathLike,
    *,
    sha256: str | None = None,
    overwrite: bool = False,
    check: Callable[[Path], None] | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    verbose: bool = False,
) -> Path:
    """Download ``url`` to ``path``, resuming a partial download and verifying it.

    Bytes go to ``<path>.part``. If that file exists from an earlier,
    interrupted call, only the missing bytes are requested (HTTP ``Range``);
    a server that ignores ranges (HTTP 200) sends the whole file, which then
    replaces the ``.part``. Once complete, the SHA-256 is compared with
    ``sha256`` and ``check`` is run; only then is the ``.part`` renamed to
    ``path`` with :func:`os.replace`, so ``path`` never holds a partial or
    unverified file.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` address of the file.
    path : str or path-like
        Destination. Its folder is created if needed.
    sha256 : str, optional
        Expected SHA-256 (64 hex digits). When None the content is not verified.
    overwrite : bool, default=False
        Replace an existing file at ``path`` (only after the new one is
        verified). When False an existing ``path`` raises FileExistsError.
    check : callable, optional
        ``check(part_path)`` runs on the complete, checksum-verified file
        before the rename and raises if the content is unusable; the
        ``.part`` is then deleted and the exception propagates.
    timeout : float, default=60
        Seconds to wait for the server to connect or send data.
    chunk_size : int, default=1 MiB
        Bytes read and written at a time.
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
    IncompleteDownloadError
        The transfer broke off early; the ``.part`` is kept, and calling
        again resumes it.
    ChecksumMismatchError
        The complete file has another SHA-256; the ``.part`` is deleted.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> from galaxysim.datasets._download import download_file
    >>> download_file("https://example.org/data.h5", "data.h5",
    ...               sha256="0" * 64)  # doctest: +SKIP
    PosixPath('data.h5')
    """
    url = _check_url(url)
    expected = _check_sha256(sha256)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if isinstance(timeout, bool) or not isinstance(timeout, Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a file path (str or os.PathLike), got {type(path).__name__}."
        )
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"path {str(path)!r} already exists; pass overwrite=True to replace it."
        )
    if path.is_dir():
        raise IsADirectoryError(f"path {str(path)!r} is a folder; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)

    hasher = _transfer(url, part, timeout=float(timeout), chunk_size=chunk_size,
                       verbose=verbose, desc=path.name)
    got = hasher.hexdigest()
    if expected is not None and got != expected:
        part.unlink()
        raise ChecksumMismatchError(
            f"The file downloaded from {url} has SHA-256 {got}, expected {expected}. "
            f"The corrupt partial file was deleted and nothing was written to "
            f"{str(path)!r}; call again to download from scratch."
        )
    if check is not None:
        try:
            check(part)
        except BaseException:
            part.unlink()
            raise
    os.replace(part, path)
    return path
