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

Replacing a folder deletes what was in it, so some folders are never
replaced (:func:`check_out_folder`): the root folder, the home folder and
the folders holding it, the current folder and its parents, and (with
``force``) a folder holding files that are not an earlier run's outputs,
recognised by the ``summary.json`` with its ``provenance`` record that
every run writes. :func:`check_not_an_input` adds the inputs of the run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from .._filelock import FileLock, LockHeldError
from .._json_input import check_schema, read_json
from .._validation import PathLike

__all__ = ["OutputFolderError", "check_not_an_input", "check_out_folder", "staged_output"]

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


def check_not_an_input(
    out: PathLike,
    *,
    data: PathLike | None = None,
    query: PathLike | None = None,
    model: PathLike | None = None,
    index: PathLike | None = None,
    embeddings: PathLike | None = None,
) -> None:
    """Refuse an output folder that is, holds, or lies inside what the run reads.

    Replacing ``out`` removes everything in it, so it must not be an input,
    hold one (the ``query`` image, the ``model`` file, the ``data``...), or
    lie inside an input folder (symlinks resolved). Each input is named in
    the error by its command-line option (``--data``, ``--query``,
    ``--model``, ``--index``, ``--embeddings``).

    Parameters
    ----------
    out : str or path-like
        The output folder.
    data, query, model, index, embeddings : str or path-like, optional
        The inputs of the run; None for those it does not have.

    Raises
    ------
    OutputFolderError

    Examples
    --------
    >>> from galaxysim.app.output_folder import check_not_an_input
    >>> check_not_an_input("results", data="cutouts", query="q.png")
    >>> check_not_an_input("cutouts", data="cutouts/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.app.output_folder.OutputFolderError: --out 'cutouts' is the --data; ...
    >>> check_not_an_input("Q", query="Q/q.png")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.app.output_folder.OutputFolderError: --out 'Q' holds the --query 'Q/q.png'; ...
    """
    target = Path(out).resolve()
    inputs = {
        "data": data,
        "query": query,
        "model": model,
        "index": index,
        "embeddings": embeddings,
    }
    for name, given in inputs.items():
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target:
            relation = f"is the --{name}"
        elif _is_within(source, target):
            relation = f"holds the --{name} {str(given)!r}"
        elif _is_within(target, source):
            relation = f"lies inside the --{name} folder {str(given)!r}"
        else:
            continue
        raise OutputFolderError(
            f"--out {str(out)!r} {relation}; a run replaces --out as a whole, so choose an "
            "output folder apart from every input."
        )


def _homes() -> set[Path]:
    """The user's home folder: $HOME, and the one the password database gives."""
    homes = {Path(os.path.expanduser("~")).resolve()}
    try:
        import pwd

        homes.add(Path(pwd.getpwuid(os.getuid()).pw_dir).resolve())
    except (ImportError, KeyError, OSError):  # no pwd (Windows), or no entry for this uid
        pass
    return homes


def _protected(out: Path) -> str | None:
    """Why the resolved folder ``out`` must never be replaced, or None."""
    if out.parent == out:
        return "the root folder"
    for home in sorted(_homes()):
        if out == home:
            return "your home folder"
        if out in home.parents:
            return f"a folder that holds your home folder {str(home)!r}"
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current folder was deleted
        return None
    if out == here:
        return "the current folder"
    if out in here.parents:
        return "a folder that holds the current folder"
    return None


# What every run writes into summary.json: a recognisable earlier output.
_PROVENANCE = {"provenance": {"argv": [str], "versions": {"galaxysim": str}}}


def _is_earlier_output(out: Path) -> bool:
    """Whether ``out`` holds a galaxysim run's summary.json with its provenance record."""
    try:
        summary = read_json(out / "summary.json", "summary.json", max_bytes=16 * 2**20)
        check_schema(summary, _PROVENANCE, "summary.json")
    except (OSError, ValueError):
        return False
    return summary["provenance"]["argv"][:1] == ["galaxysim"]


def check_out_folder(out: PathLike, *, force: bool = False) -> None:
    """Refuse an output folder that a run must not replace; nothing is touched.

    Refused with or without ``force``: the root folder, the home folder and
    any folder holding it, the current folder and any folder holding it, a
    dangling symbolic link and an existing file. An existing folder that is
    not empty is refused without ``force``, and with ``force`` too unless
    it holds an earlier run's outputs (its ``summary.json`` with the
    ``provenance`` record), so that ``--force`` never deletes files
    galaxysim did not write into a folder of its own.

    Parameters
    ----------
    out : str or path-like
        The output folder.
    force : bool, default=False
        Whether the run may replace a folder of earlier outputs.

    Raises
    ------
    OutputFolderError
        Saying why, in one line.

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.app.output_folder import check_out_folder
    >>> check_out_folder(os.path.join(tempfile.mkdtemp(), "results"))
    >>> check_out_folder(os.getcwd(), force=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.app.output_folder.OutputFolderError: --out '...' is the current folder; ...
    """
    given = Path(out)
    if given.is_symlink() and not given.exists():
        raise OutputFolderError(
            f"--out {str(out)!r} is a symbolic link to {os.readlink(given)!r}, which does not "
            "exist; remove the link or choose another folder."
        )
    target = given.resolve()
    reason = _protected(target)
    if reason is not None:
        raise OutputFolderError(
            f"--out {str(out)!r} is {reason}; a run replaces --out as a whole, deleting what "
            "is in it, so it is refused even with --force. Choose a new folder."
        )
    _check_contents(target, force, out)


def _check_contents(out: Path, force: bool, given: PathLike) -> None:
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {str(given)!r} exists and is not a folder.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise OutputFolderError(
            f"--out {str(given)!r} is not empty; choose another folder or pass --force "
            "to replace it with this run's outputs."
        )
    if not _is_earlier_output(out):
        raise OutputFolderError(
            f"--out {str(given)!r} holds files that are not the outputs of an earlier galaxysim "
            "run (it has no summary.json with a provenance record); --force replaces only such "
            "outputs, so choose another folder or empty this one yourself."
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
    if out.is_dir():
        _check_writable(out, "--out")
    _check_contents(out, force, out)


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
    previous = {
        number: signal.signal(number, lambda number, frame: received.append(number))
        for number in held
    }
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
        exception; a non-empty one only with ``force``, and only when it
        holds an earlier run's outputs.
    force : bool, default=False
        Replace a non-empty ``out`` of earlier outputs.

    Yields
    ------
    staging : pathlib.Path
        The empty temporary folder to write into.

    Raises
    ------
    OutputFolderError
        Another run holds ``out``, ``out`` or its parent cannot be written,
        ``out`` is a file, or it is refused by :func:`check_out_folder`
        (a folder that must never be replaced, a non-empty one without
        ``force``, one holding other files than an earlier run's).

    Examples
    --------
    >>> import os, tempfile
    >>> from galaxysim.app.output_folder import staged_output
    >>> out = os.path.join(tempfile.mkdtemp(), "results")
    >>> with staged_output(out) as staging:
    ...     _ = (staging / "a.txt").write_text("done")
    >>> os.listdir(out)
    ['a.txt']
    >>> with staged_output(os.path.join(os.path.dirname(out), "other")) as staging:
    ...     raise RuntimeError("failed half-way")
    Traceback (most recent call last):
    ...
    RuntimeError: failed half-way
    >>> sorted(os.listdir(os.path.dirname(out)))
    ['results']
    """
    check_out_folder(out, force=force)  # before anything is created or locked
    out = Path(out).resolve()
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
