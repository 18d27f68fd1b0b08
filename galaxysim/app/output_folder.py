"""The output folder of a run: locked, written aside, and swapped in only when complete.

A run writes its files into a temporary folder beside ``--out``; only when
every file is written is that folder renamed onto ``--out`` (the previous
folder is first renamed aside, then deleted). A run that fails or is
interrupted (Ctrl-C) deletes its temporary folder and leaves ``--out``
exactly as it was, so ``--out`` always holds one complete run, never a mix
of two. A lock file beside ``--out`` (``.<name>.lock``) lets one run at a
time use a folder: a second gets :class:`OutputFolderError` at once, before
any work. Whether the folder can be written is checked at the start, not
after training.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import secrets
import signal
import threading
from pathlib import Path
from typing import Iterator

from .._filelock import FileLock, LockHeldError
from .._validation import PathLike

__all__ = ["OutputFolderError", "check_not_an_input", "staged_output"]

# Folders beside --out: ".<name>.galaxysim-tmp-XXXXXXXX" is a run being written,
# ".<name>.galaxysim-old-XXXXXXXX" the previous outputs while they are replaced.
_STAGING = "galaxysim-tmp"
_ASIDE = "galaxysim-old"


class OutputFolderError(ValueError):
    """The output folder cannot be used: busy, not writable, not empty, or an input."""


def _lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_an_input(out: PathLike, *, data: PathLike | None = None,
                       model: PathLike | None = None) -> None:
    """Refuse an output folder that is, or holds, what the run reads.

    Replacing ``out`` removes everything in it, so it must not be the
    ``data`` folder, hold ``data`` or hold the ``model`` file (symlinks
    resolved).

    Raises
    ------
    OutputFolderError

    Examples
    --------
    >>> from galaxysim.app.output_folder import check_not_an_input
    >>> check_not_an_input("results", data="cutouts")
    >>> check_not_an_input("cutouts", data="cutouts/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.app.output_folder.OutputFolderError: --out 'cutouts' is the --data folder; ...
    """
    target = Path(out).resolve()
    if data is not None:
        source = Path(data).resolve()
        if source == target:
            raise OutputFolderError(
                f"--out {str(out)!r} is the --data folder; a run replaces --out as a whole, "
                "so choose another output folder."
            )
        if _is_within(source, target):
            raise OutputFolderError(
                f"--out {str(out)!r} holds the --data {str(data)!r}; a run replaces --out as "
                "a whole, so choose another output folder."
            )
    if model is not None and _is_within(Path(model).resolve(), target):
        raise OutputFolderError(
            f"--out {str(out)!r} holds the --model {str(model)!r} being read; a run replaces "
            "--out as a whole, so choose another output folder (or copy the model elsewhere)."
        )


def _check_writable(folder: Path, what: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFolderError(
            f"{what} {str(folder)!r} is not writable; choose a folder you can write to."
        )


def _lock(out: Path) -> FileLock:
    try:
        return FileLock(_lock_path(out)).acquire()
    except LockHeldError as exc:
        stale = " If no run is going on, delete that file." if exc.may_be_stale else ""
        raise OutputFolderError(
            f"another galaxysim run is writing into --out {str(out)!r} (it holds "
            f"{str(exc.path)!r}); wait for it to end or choose another folder.{stale}"
        ) from None


def _sibling(out: Path, kind: str) -> Path:
    """A new empty folder ``.<name>.<kind>-<8 hex digits>`` beside ``out``.

    Made with :func:`os.mkdir`, which honours the umask, so the outputs get
    the permissions a folder made by hand would (mkdtemp's are private).
    """
    while True:
        path = out.with_name(f".{out.name}.{kind}-{secrets.token_hex(4)}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _leftovers(out: Path, kind: str) -> list[Path]:
    """Folders of ``kind`` beside ``out`` made by :func:`_sibling`."""
    literal = "".join(f"[{char}]" if char in "*?[" else char for char in out.name)
    return sorted(out.parent.glob(f".{literal}.{kind}-" + "?" * 8))


def _recover(out: Path) -> None:
    """Tidy what a killed run left beside ``out`` (called while holding the lock)."""
    aside = _leftovers(out, _ASIDE)
    if not out.exists() and len(aside) == 1:
        # Killed between its two renames: the previous outputs are complete.
        os.replace(aside.pop(), out)
    if out.exists():
        # Killed while deleting the outputs it had replaced.
        for path in aside:
            shutil.rmtree(path, ignore_errors=True)
    for path in _leftovers(out, _STAGING):
        shutil.rmtree(path, ignore_errors=True)


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {str(out)!r} exists and is not a folder.")
    if out.is_dir():
        if any(out.iterdir()) and not force:
            raise OutputFolderError(
                f"--out {str(out)!r} is not empty; choose another folder or pass --force "
                "to replace it with this run's outputs."
            )
        _check_writable(out, "--out")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM while the folders are swapped; deliver them after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it gets KeyboardInterrupt
        return
    received: list[int] = []
    # A handler rather than a signal mask: a process-wide signal goes to any thread
    # that does not block it (torch keeps worker threads), and Python still raises
    # KeyboardInterrupt in the main thread.
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda number, frame: received.append(number))
                for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if received:
            signal.raise_signal(received[0])


def _swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` onto ``out``; the previous ``out`` is removed only after."""
    aside = None
    if out.exists():
        aside = _sibling(out, _ASIDE)
        os.replace(out, aside)  # an empty folder is replaced by a folder
    try:
        os.replace(staging, out)
    except BaseException:
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: PathLike, *, force: bool = False) -> Iterator[Path]:
    """Lock ``out``, yield an empty folder beside it, and swap it in on success.

    Parameters
    ----------
    out : str or path-like
        The output folder. Its parent folders are created. An existing
        folder is replaced as a whole when the block ends without an
        exception; a non-empty one only with ``force``.
    force : bool, default=False
        Replace a non-empty ``out``.

    Yields
    ------
    staging : pathlib.Path
        The empty temporary folder to write into.

    Raises
    ------
    OutputFolderError
        Another run holds ``out``, ``out`` or its parent cannot be written,
        ``out`` is a file, or it is not empty and ``force`` is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.app.output_folder import staged_output
    >>> out = os.path.join(tempfile.mkdtemp(), "results")
    >>> with staged_output(out) as staging:
    ...     _ = (staging / "a.txt").write_text("done")
    >>> os.listdir(out)
    ['a.txt']
    >>> with staged_output(out, force=True) as staging:
    ...     raise RuntimeError("failed half-way")
    Traceback (most recent call last):
    ...
    RuntimeError: failed half-way
    >>> os.listdir(out), sorted(os.listdir(os.path.dirname(out)))
    (['a.txt'], ['results'])
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {str(out)!r} exists and is not a folder.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"--out {str(out)!r} cannot be created: {exc.strerror}.") from None
    _check_writable(out.parent, "the folder of --out")
    lock = _lock(out)
    try:
        _recover(out)
        _check_out(out, force)
        staging = _sibling(out, _STAGING)
        try:
            yield staging
            with _signals_held():
                _swap_in(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.release()

