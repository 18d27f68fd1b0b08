"""Embed a large image collection chunk by chunk into zarr, here or on a Dask cluster.

:func:`embed_collection` maps a fitted embedder over consecutive chunks of a
Galaxy10 HDF5 file, a zarr array of images or a folder of image files, and
writes each chunk's embeddings into its own chunk of a zarr array. Memory
holds one chunk per process, whatever the size of the collection.

- **Resume.** Each finished chunk leaves a marker file (written atomically
  after its embeddings) holding the SHA-256 of what the chunk read
  (:meth:`~galaxysim.datasets.chunks.ChunkPiece.digest`), and a rerun with
  the same model (its SHA-256), ``chunk_size``, crop and size skips the
  chunks that have one. Before it does, every such chunk of the source is
  read and hashed again: a source whose content changed since is refused
  (the store would mix two collections), and a chunk whose embeddings are
  missing from the store (not finite) is embedded again. A run killed
  mid-chunk leaves that chunk without a marker, so it is embedded again.
  Where the source is (a relative or an absolute path) does not matter.
- **One run per store.** A lock file beside the store (``.<name>.lock``)
  lets one run at a time write it; a second fails at once.
- **Dask.** With a ``dask.distributed`` client, the model travels to each
  worker once (its model file's bytes, broadcast with ``client.scatter``)
  and is built there once per worker process; each task then reads its own
  rows and writes its own zarr chunk, so no pixels pass through the
  scheduler. The same call works with a ``LocalCluster``, a dask-jobqueue
  ``SLURMCluster`` or ``Client("tcp://scheduler:8786")``; the output and
  the collection must be on a file system every worker sees.
- **Worker memory.** A Dask nanny starts its workers with glibc's dynamic
  mmap threshold off (``MALLOC_TRIM_THRESHOLD_``), which made every activation
  map a fresh mapping and a worker 1.4-2.4 times slower than this process; the
  first task of a worker sets the thresholds glibc would have reached instead.
- **Bit for bit.** Chunks have the same boundaries in both modes and every
  chunk is embedded with ``n_threads`` threads (torch and BLAS), so the
  distributed result equals the sequential one exactly.

Needs the ``dask`` extra: ``pip install "galaxysim[dask]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write
from ._filelock import FileLock, LockHeldError
from ._json_input import check_schema, read_json
from ._validation import PathLike, check_positive_int, is_fitted
from .datasets.chunks import ChunkPiece, ImageChunks, image_chunks, open_zarr_array
from .persistence import load_model, save_model

__all__ = ["ChunkError", "embed_collection"]

#: Folder inside the output store holding one marker file per finished chunk.
DONE_FOLDER = ".galaxysim-done"
_ATTRIBUTE = "galaxysim_embedding"


class ChunkError(RuntimeError):
    """Embedding one chunk failed; ``chunk`` is its number, the cause is chained."""

    def __init__(self, message: str, chunk: int) -> None:
        super().__init__(message)
        self.chunk = chunk


# ----------------------------------------------------------------------------- the model


def _model_and_bytes(embedder: Any) -> tuple[Any, bytes]:
    """The bytes of the embedder's model file (the form that is shipped), and the model built
    from them.

    Every process, this one included, embeds with the model built from these bytes, so
    that all of them hold the very same arrays (a PCA's ``components_`` as rebuilt from a
    file may lie in memory differently from the fitted one, and BLAS may then round the
    last bit differently).
    """
    if isinstance(embedder, (str, os.PathLike)):
        path = Path(embedder)
        load_model(path)  # a clear error for a missing or foreign file, before anything runs
        data = path.read_bytes()
        return _model_from_bytes(data), data
    if not hasattr(embedder, "transform"):
        raise TypeError(
            "embedder must be a fitted estimator with transform, or the path of a model "
            f"file; got {type(embedder).__name__}."
        )
    if not is_fitted(embedder):
        raise ValueError(f"embedder {type(embedder).__name__} is not fitted; fit it first.")
    with tempfile.TemporaryDirectory(prefix="galaxysim_model_") as folder:
        data = save_model(embedder, Path(folder) / "embedder.safetensors").read_bytes()
    return _model_from_bytes(data), data


def _model_from_bytes(data: bytes) -> Any:
    with tempfile.TemporaryDirectory(prefix="galaxysim_model_") as folder:
        path = Path(folder) / "embedder.safetensors"
        path.write_bytes(data)
        return load_model(path)


# A worker process keeps the last model it built, keyed by the SHA-256 of its
# bytes; _WORKER_LOADS counts the builds (the tests read it with client.run).
_WORKER_LOCK = threading.Lock()
_WORKER_MODEL: dict[str, Any] = {}
_WORKER_LOADS = 0


# glibc's mallopt parameters, and the values its dynamic thresholds reach at most on 64 bits.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def _keep_freed_memory() -> bool:
    """Let glibc reuse freed memory for the next batch's tensors instead of unmapping it.

    A Dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``). Setting that variable turns off
    glibc's dynamic mmap threshold, so every allocation over 128 kB (each of the
    network's activation maps) is mapped fresh from the kernel and unmapped when
    freed: the worker spent about 40 % more CPU time per chunk than the calling
    process, most of it in page faults. This sets the thresholds that the dynamic
    rule settles on (32 MB for mmap, twice that for trimming), once per worker
    process. The arithmetic is untouched. Returns False where the C library is
    not glibc (nothing changed).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        and mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
    )


def _worker_model(token: str, data: bytes) -> Any:
    global _WORKER_LOADS
    with _WORKER_LOCK:
        if token not in _WORKER_MODEL:
            if _WORKER_LOADS == 0:
                _keep_freed_memory()
            _WORKER_MODEL.clear()
            _WORKER_MODEL[token] = _model_from_bytes(data)
            _WORKER_LOADS += 1
        return _WORKER_MODEL[token]


def _worker_model_loads() -> int:
    """How many models this process has built from shipped bytes."""
    return _WORKER_LOADS


# ----------------------------------------------------------------------------- one chunk


@contextmanager
def _threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch and BLAS threads (None: as they are)."""
    if n_threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _embed(model: Any, images: np.ndarray, n_threads: int | None) -> np.ndarray:
    with _threads(n_threads):
        embedding = np.asarray(model.transform(images))
    if embedding.ndim != 2 or embedding.shape[0] != images.shape[0]:
        raise ValueError(
            f"embedder.transform returned shape {embedding.shape} for {images.shape[0]} "
            "images; expected (n_images, n_features)."
        )
    return embedding.astype(np.float64, copy=False)


def _marker(out: Path, chunk: int) -> Path:
    return out / DONE_FOLDER / f"{chunk}"


def _write_piece(chunk: int, piece: ChunkPiece, model: Any, out: str, n_threads: int | None) -> int:
    """Embed one piece, write it into its zarr chunk, then mark the chunk done."""
    images, digest = piece.read_with_digest()
    embedding = _embed(model, images, n_threads)
    array = open_zarr_array(out, mode="r+", what="out")
    if embedding.shape[1] != array.shape[1]:
        raise ValueError(
            f"embedder.transform returned {embedding.shape[1]} features; the output has "
            f"{array.shape[1]}."
        )
    array[piece.start : piece.stop] = embedding
    marker = {"rows": [piece.start, piece.stop], "sha256": digest}
    atomic_write(_marker(Path(out), chunk), json.dumps(marker))
    return piece.stop - piece.start


def _embed_task(
    chunk: int, piece: ChunkPiece, out: str, token: str, data: bytes, n_threads: int | None
) -> int:
    """A Dask task: the worker's copy of the model embeds one piece."""
    return _write_piece(chunk, piece, _worker_model(token, data), out, n_threads)


def _chunk_error(chunk: int, piece: ChunkPiece, exc: BaseException) -> ChunkError:
    error = ChunkError(
        f"Embedding chunk {chunk} (rows {piece.start}:{piece.stop} of "
        f"{piece.location!r}) failed: {type(exc).__name__}: {exc}",
        chunk,
    )
    error.__cause__ = exc
    return error


# ----------------------------------------------------------------------------- the output


def _fingerprint(chunks: ImageChunks, chunk_size: int, dim: int, data: bytes) -> dict:
    return {
        "source": str(Path(chunks.location).resolve()),
        "kind": chunks.kind,
        "n_images": chunks.n_images,
        "crop": list(chunks.crop) if chunks.crop else None,
        "image_size": list(chunks.image_size) if chunks.image_size else None,
        "chunk_size": chunk_size,
        "n_features": dim,
        "model_sha256": hashlib.sha256(data).hexdigest(),
    }


# What must agree for a store to be resumed; where the source lies may change
# (the content of every chunk is compared instead).
_SAME_JOB = ("kind", "n_images", "crop", "image_size", "chunk_size", "n_features", "model_sha256")


def _is_zarr_store(path: Path) -> bool:
    return any((path / name).is_file() for name in ("zarr.json", ".zarray", ".zgroup"))


def _check_same_job(out: Path, array: Any, fingerprint: dict) -> None:
    found = array.attrs.get(_ATTRIBUTE)
    if not isinstance(found, dict):
        raise ValueError(f"out {str(out)!r} is a zarr array, but not one galaxysim embed wrote.")
    differences = [
        f"{key} {found.get(key)!r} there, {fingerprint[key]!r} now"
        for key in _SAME_JOB
        if found.get(key) != fingerprint[key]
    ]
    if (
        not differences
        and array.shape == (fingerprint["n_images"], fingerprint["n_features"])
        and array.chunks[0] == fingerprint["chunk_size"]
    ):
        return
    differences = differences or [f"its array has shape {array.shape}, chunks {array.chunks}"]
    raise ValueError(
        f"out {str(out)!r} holds embeddings of another job ({'; '.join(differences)}); pass "
        "overwrite=True to replace it, or choose another out."
    )


def _open_output(out: Path, fingerprint: dict, overwrite: bool) -> Any:
    """The output array: resumed when it is this very job, created when absent."""
    import zarr

    if out.exists() and overwrite:
        if not (out.is_dir() and _is_zarr_store(out)):
            raise ValueError(f"out {str(out)!r} exists and is not a zarr store; not deleting it.")
        shutil.rmtree(out)
    if out.exists():
        if not (out.is_dir() and _is_zarr_store(out)):
            raise ValueError(f"out {str(out)!r} exists and is not a zarr store.")
        array = open_zarr_array(out, mode="r+", what="out")
        _check_same_job(out, array, fingerprint)
        return array
    if not out.parent.is_dir():
        raise FileNotFoundError(f"The folder of out {str(out)!r} does not exist.")
    shape = (fingerprint["n_images"], fingerprint["n_features"])
    array = zarr.open_array(
        str(out),
        mode="w",
        shape=shape,
        dtype="float64",
        chunks=(fingerprint["chunk_size"], shape[1]),
        fill_value=np.nan,
    )
    array.attrs[_ATTRIBUTE] = fingerprint
    (out / DONE_FOLDER).mkdir()
    return array


# ----------------------------------------------------------------------------- resuming

_MARKER = {"rows": [int], "sha256": str}


def _marked_digest(out: Path, chunk: int, piece: ChunkPiece) -> str | None:
    """The digest a chunk's marker records for these rows; None without a valid marker."""
    path = _marker(out, chunk)
    if not path.is_file():
        return None
    try:
        record = read_json(path, "a chunk marker", max_bytes=4096)
        check_schema(record, _MARKER, "a chunk marker")
    except (OSError, ValueError):
        return None  # damaged, or written by an older galaxysim: embedded again
    return record["sha256"] if record["rows"] == [piece.start, piece.stop] else None


def _piece_digest(piece: ChunkPiece) -> str:
    return piece.digest()


def _done_chunks(out: Path, array: Any, pieces: list[ChunkPiece], client: Any) -> set[int]:
    """The chunks embedded from the very images the source holds now (a changed one is refused)."""
    marked = {}
    for chunk, piece in enumerate(pieces):
        digest = _marked_digest(out, chunk, piece)
        # A chunk whose rows are not all written (its zarr chunk lost after the marker) is redone.
        if digest is not None and np.isfinite(array[piece.start : piece.stop]).all():
            marked[chunk] = digest
    checked = [pieces[chunk] for chunk in marked]
    if client is None:
        digests = [piece.digest() for piece in checked]
    else:
        digests = client.gather(client.map(_piece_digest, checked, pure=False))
    for (chunk, expected), digest in zip(marked.items(), digests):
        if digest != expected:
            piece = pieces[chunk]
            raise ValueError(
                f"out {str(out)!r} holds the embeddings of other images: rows {piece.start}:"
                f"{piece.stop} of the source changed since they were embedded (chunk {chunk}); "
                "pass overwrite=True to embed the source anew, or choose another out."
            )
    return set(marked)


def _lock_store(out: Path) -> FileLock:
    if not out.parent.is_dir():
        raise FileNotFoundError(f"The folder of out {str(out)!r} does not exist.")
    try:
        return FileLock(out.with_name(f".{out.name}.lock")).acquire()
    except LockHeldError as exc:
        raise ValueError(
            f"another run is writing into out {str(out)!r} (it holds {str(exc.path)!r}); wait "
            "for it to end, or choose another out."
        ) from None


# ----------------------------------------------------------------------------- running


def _progress(total: int, done: int, verbose: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="img", desc="Embedding", disable=not verbose)


def _run_here(
    todo: list[tuple[int, ChunkPiece]], model: Any, out: str, n_threads: int | None, bar: Any
) -> None:
    for chunk, piece in todo:
        try:
            bar.update(_write_piece(chunk, piece, model, out, n_threads))
        except Exception as exc:
            raise _chunk_error(chunk, piece, exc) from exc


def _run_on_dask(
    todo: list[tuple[int, ChunkPiece]],
    client: Any,
    data: bytes,
    out: str,
    n_threads: int | None,
    bar: Any,
) -> None:
    """One task per chunk, a few per worker thread in flight; the model shipped once."""
    from distributed import as_completed

    token = hashlib.sha256(data).hexdigest()
    shipped = client.scatter(data, broadcast=True, hash=False)
    in_flight = max(2 * sum(client.nthreads().values()), 2)
    pending = iter(todo)
    pieces: dict[Any, tuple[int, ChunkPiece]] = {}

    def submit(chunk: int, piece: ChunkPiece) -> Any:
        future = client.submit(
            _embed_task,
            chunk,
            piece,
            out,
            token,
            shipped,
            n_threads,
            key=f"galaxysim-embed-{uuid.uuid4().hex}-{chunk}",
        )
        pieces[future] = (chunk, piece)
        return future

    running = as_completed([submit(*item) for _, item in zip(range(in_flight), pending)])
    try:
        for future in running:
            chunk, piece = pieces.pop(future)
            try:
                bar.update(future.result())
            except Exception as exc:
                raise _chunk_error(chunk, piece, exc) from exc
            following = next(pending, None)
            if following is not None:
                running.add(submit(*following))
    finally:
        client.cancel([*list(pieces), shipped])


def embed_collection(
    source: PathLike,
    embedder: Any,
    out: PathLike,
    *,
    chunk_size: int = 1024,
    client: Any = None,
    crop: int | Sequence[int] | None = 64,
    image_size: int | Sequence[int] | None = None,
    n_threads: int | None = 1,
    overwrite: bool = False,
    verbose: bool = False,
) -> Any:
    """Embed every image of a collection into a zarr array, one chunk at a time.

    Parameters
    ----------
    source : str or path-like
        A Galaxy10-layout HDF5 file, a zarr array of images (n, H, W, C),
        uint8 or float in [0, 1], or a folder of image files (sorted by name).
    embedder : estimator or str or path-like
        A fitted estimator with ``transform`` that :func:`~galaxysim.save_model`
        can store (an ``AutoencoderEmbedder``, a ``Pipeline`` with a ``PCA``,
        ...), or the path of such a model file.
    out : str or path-like
        The zarr array to write, shape (n_images, n_features), float64, one
        zarr chunk per input chunk. An existing one written by the same job
        (same number of images, crop, image_size, chunk_size and model file
        bytes) is resumed, once every chunk it holds is found to come from
        the images the source holds now. A lock file beside it
        (``.<name>.lock``) keeps a second run out while one runs.
    chunk_size : int, default=1024
        Images per chunk: per task, per zarr chunk, and per process in memory.
    client : dask.distributed.Client, optional
        Run one task per chunk on this client's workers. Without it the
        chunks are embedded one after the other in this process.
    crop : int or (height, width) or None, default=64
        Centre crop at native scale while reading (Galaxy10's 256-pixel
        cutouts to 64, as the models are trained).
    image_size : int or (height, width), optional
        Resize after the crop.
    n_threads : int or None, default=1
        Torch and BLAS threads for each chunk, in both modes, so that the
        results do not depend on where a chunk ran. None leaves the thread
        settings as they are (faster here, no longer bit-identical to Dask).
    overwrite : bool, default=False
        Replace an ``out`` written by another job instead of refusing it.
    verbose : bool, default=False
        Show a progress bar (images).

    Returns
    -------
    embeddings : zarr.Array
        ``out``, opened read-only.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        Bad ``source``, ``embedder``, ``out`` or ``chunk_size``; ``out``
        written by another job, from other images, or being written by
        another run.
    ChunkError
        Reading or embedding a chunk failed; the message names the chunk and
        its rows. The chunks finished until then stay done.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, zarr
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from galaxysim import ImagePreprocessor
    >>> from galaxysim.scale import embed_collection
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    >>> zarr.open_array(os.path.join(folder, "images.zarr"), mode="w", shape=images.shape,
    ...                 dtype="uint8")[:] = images
    >>> pca = make_pipeline(ImagePreprocessor(crop=None, flatten=True), PCA(2)).fit(images)
    >>> emb = embed_collection(os.path.join(folder, "images.zarr"), pca,
    ...                        os.path.join(folder, "emb.zarr"), chunk_size=4, crop=None)
    >>> emb.shape, bool(np.allclose(emb[:], pca.transform(images)))
    ((10, 2), True)
    """
    _require_zarr()
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if n_threads is not None:
        n_threads = check_positive_int(n_threads, "n_threads")
    chunks = image_chunks(source, crop=crop, image_size=image_size)
    model, data = _model_and_bytes(embedder)
    dim = _embed(model, chunks.piece(0, 1).read(), n_threads).shape[1]
    out = Path(out).expanduser().absolute()
    pieces = chunks.pieces(chunk_size)
    lock = _lock_store(out)
    try:
        array = _open_output(out, _fingerprint(chunks, chunk_size, dim, data), overwrite)
        done = _done_chunks(out, array, pieces, client)
        todo = [(i, p) for i, p in enumerate(pieces) if i not in done]
        n_done = chunks.n_images - sum(p.stop - p.start for _, p in todo)
        with _progress(chunks.n_images, n_done, verbose) as bar:
            if client is None:
                _run_here(todo, model, str(out), n_threads, bar)
            else:
                _run_on_dask(todo, client, data, str(out), n_threads, bar)
    finally:
        lock.release()
    return open_zarr_array(out, what="out")


def _require_zarr() -> None:
    """Raise an ImportError that names the extra when zarr is missing."""
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise ImportError(
            "embed_collection needs zarr (and dask.distributed for client=): "
            'pip install "galaxysim[dask]"'
        ) from None
