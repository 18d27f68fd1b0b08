"""An exclusive, non-blocking lock on a file path, so one download at a time writes a file.

:class:`FileLock` takes an operating-system lock (:func:`fcntl.flock`) on a
small lock file. The operating system releases it when the holder closes
it or dies, so a lock left by a killed process never blocks anyone: the
lock file may stay behind, but nobody holds a lock on it and the next
caller takes it over. :meth:`FileLock.release` deletes the lock file.

Where :mod:`fcntl` is missing (Windows), or the file system refuses
``flock``, the lock is the lock file's existence instead (created with
``O_CREAT | O_EXCL``). A process killed while holding such a lock leaves the
file behind; :class:`LockHeldError` then says so (``may_be_stale``), and
the file can be deleted by hand.

Acquiring never waits: a lock held elsewhere (another process, or another
thread of this one) raises :class:`LockHeldError` at once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ._validation import PathLike

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "LockHeldError"]

# Tries at taking a flock when each try finds the file replaced under it
# (its holder deleted it while releasing); more than two is a race storm.
_ATTEMPTS = 5


class LockHeldError(BlockingIOError):
    """The lock is held by another process or thread.

    ``may_be_stale`` is True when the lock is only the file's existence (no
    ``flock``), so a process that died while holding it may have left it.
    """

    def __init__(self, path: Path, *, may_be_stale: bool) -> None:
        self.path = path
        self.may_be_stale = may_be_stale
        hint = f" If nothing holds it any more, delete {str(path)!r}." if may_be_stale else ""
        super().__init__(f"The lock {str(path)!r} is held by another process or thread.{hint}")


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, current = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)


def _remove(path: Path) -> None:
    # A lock file that cannot be deleted is harmless for flock, and must not
    # hide the exception that is ending the locked block.
    with contextlib.suppress(OSError):
        path.unlink()


class FileLock:
    """An exclusive lock on ``path`` (a lock file), taken without waiting.

    Parameters
    ----------
    path : str or path-like
        The lock file; its folder must exist. It is created when the lock
        is taken and deleted when it is released.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim._filelock import FileLock, LockHeldError
    >>> where = os.path.join(tempfile.mkdtemp(), "data.h5.lock")
    >>> with FileLock(where):
    ...     try:
    ...         FileLock(where).acquire()
    ...     except LockHeldError:
    ...         print("held elsewhere")
    held elsewhere
    >>> os.path.exists(where)
    False
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._flock = False

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> FileLock:
        """Take the lock, or raise :class:`LockHeldError` at once if it is held.

        Returns
        -------
        self : FileLock
        """
        if self._fd is not None:
            raise RuntimeError(f"{str(self.path)!r} is already locked by this FileLock.")
        for _ in range(_ATTEMPTS):
            fd, created = self._open()
            if fd is None:
                continue  # deleted between our two opens: its holder released it
            if fcntl is None:
                return self._own(fd, flock=False)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LockHeldError(self.path, may_be_stale=False) from None
            except OSError:
                # No flock on this file system (some network mounts): having
                # created the file is the lock, as without fcntl.
                if created:
                    return self._own(fd, flock=False)
                os.close(fd)
                raise LockHeldError(self.path, may_be_stale=True) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                return self._own(fd, flock=True)
            # The holder deleted the file between our open and flock: the lock we
            # got is on a dead file. Try again on the current one.
            os.close(fd)
        raise LockHeldError(self.path, may_be_stale=False)

    def _open(self) -> tuple[int | None, bool]:
        """Open the lock file: ``(fd, True)`` when this call created it."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            if fcntl is None:
                raise LockHeldError(self.path, may_be_stale=True) from None
        try:
            return os.open(self.path, os.O_RDWR), False
        except FileNotFoundError:
            return None, False

    def _own(self, fd: int, *, flock: bool) -> FileLock:
        self._fd, self._flock = fd, flock
        if not flock:
            # Who holds it, for a person deciding whether the file is stale.
            os.write(fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        """Release the lock and delete the lock file; nothing happens when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._flock:
            # Deleted while still locked, so whoever opened it meanwhile sees (by
            # its inode) that the file was replaced, and retries.
            _remove(self.path)
            os.close(fd)  # releases the flock
        else:
            os.close(fd)  # Windows deletes no open file
            _remove(self.path)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
