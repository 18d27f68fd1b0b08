"""Search index folders: :meth:`NeighborSearch.save` and :meth:`NeighborSearch.load`.

A saved search is a folder that never needs unpickling:

* ``search.json``: the format name and version, the algorithm (as asked and
  as chosen), the metric, the backend parameters, and the number and length
  of the stored embeddings;
* ``index.faiss`` for a faiss backend: faiss's own serialisation of the
  index (``serialize_index`` / ``deserialize_index``);
* ``embeddings.npy`` for the exact backends: the fitted embeddings (read with
  ``allow_pickle=False``), indexed again when loaded.

``search.json`` is written last, so a folder without it is incomplete. On
loading, the JSON and the stored index must agree on the number and length of
the embeddings.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .._json_input import check_schema, read_json
from .._limits import check_allocation, check_regular_file

__all__ = ["read_search", "write_search"]

FORMAT = "galaxysim.NeighborSearch"
VERSION = 1
_JSON = "search.json"
_MAX_JSON_BYTES = 1 << 20
_MAX_JOBS = 1024


def _check_folder_for_writing(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{str(folder)!r} exists and is not a folder; pass a folder path.")
    taken = [name for name in (_JSON, "index.faiss", "embeddings.npy") if (folder / name).exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{str(folder)!r} already holds a saved search ({', '.join(taken)}); "
            "pass overwrite=True to replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in taken:  # a stale file of another backend must not survive
        (folder / name).unlink()


def write_search(search: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a fitted NeighborSearch into the folder ``path``; return the folder."""
    if not isinstance(search.metric, str):
        raise TypeError("Only a search with a metric given by name can be saved, not a callable.")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "algorithm": search.algorithm,
        "algorithm_": search.algorithm_,
        "metric": search.metric,
        "params": search.backend_params,
        "n_samples": int(search.n_samples_fit_),
        "n_features": int(search.n_features_in_),
    }
    try:
        text = json.dumps(header, indent=2)
    except TypeError as error:
        raise TypeError(f"The search parameters cannot be saved as JSON: {error}") from None
    folder = Path(path)
    _check_folder_for_writing(folder, overwrite)
    backend = search.backend_
    if hasattr(backend, "to_bytes"):
        atomic_write(folder / "index.faiss", backend.to_bytes())
    else:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(backend.embeddings), allow_pickle=False)
        atomic_write(folder / "embeddings.npy", buffer.getvalue())
    atomic_write(folder / _JSON, text)
    return folder


# The types of search.json; backend parameters are single values (each backend bounds its own).
_SCHEMA = {
    "format": str,
    "version": int,
    "algorithm": str,
    "algorithm_": str,
    "metric": str,
    "params": {...: (int, float, str, bool, type(None))},
    "n_samples": int,
    "n_features": int,
}


def _read_header(folder: Path, known: set[str]) -> dict[str, Any]:
    path = folder / _JSON
    header = read_json(path, "Saved search file", max_bytes=_MAX_JSON_BYTES)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a saved galaxysim NeighborSearch.")
    check_schema(header, _SCHEMA, repr(str(path)))
    if header["version"] != VERSION:
        raise ValueError(
            f"{str(path)!r} has format version {header['version']!r}; "
            f"this galaxysim reads version {VERSION}."
        )
    if header["algorithm_"] not in known:
        raise ValueError(f"{str(path)!r} names the unknown algorithm {header['algorithm_']!r}.")
    for key in ("n_samples", "n_features"):
        if header[key] < 1:
            raise ValueError(f"{str(path)!r}: {key} must be a positive int, got {header[key]!r}.")
    if {"algorithm", "metric"} & set(header["params"]):
        raise ValueError(f"{str(path)!r}: params may not hold 'algorithm' or 'metric'.")
    n_jobs = header["params"].get("n_jobs")
    if isinstance(n_jobs, int) and abs(n_jobs) > _MAX_JOBS:  # joblib would start that many threads
        raise ValueError(
            f"{str(path)!r}: n_jobs must be at most {_MAX_JOBS} in size, got {n_jobs!r}."
        )
    return header


def _read_bytes(path: Path, what: str) -> bytes:
    path = check_regular_file(path, what)
    check_allocation(
        path.stat().st_size, f"the {what} {str(path)!r}", "Load it on a larger machine."
    )
    return path.read_bytes()


def _declared_bytes(data: bytes) -> tuple[int, int]:
    """(bytes the .npy header declares, bytes that follow it), read without allocating."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read_header(stream)
    return math.prod(shape) * dtype.itemsize, len(data) - stream.tell()


def _read_embeddings(folder: Path, n: int, d: int) -> np.ndarray:
    data = _read_bytes(folder / "embeddings.npy", "saved embeddings file")
    try:
        declared, held = _declared_bytes(data)
        if declared > held:
            raise ValueError(
                f"its header declares {declared:,} bytes of data, the file holds {held:,}"
            )
        embeddings = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise ValueError(
            f"The saved embeddings in {str(folder)!r} cannot be read: {error}"
        ) from None
    if embeddings.shape != (n, d) or embeddings.dtype.kind not in "fiu":
        raise ValueError(
            f"The saved embeddings in {str(folder)!r} have shape {embeddings.shape} and dtype "
            f"{embeddings.dtype}; search.json says ({n}, {d}) numbers."
        )
    return embeddings


def read_search(cls: type, path: str | os.PathLike, backends: dict[str, type]) -> Any:
    """Build a fitted ``cls`` (NeighborSearch) from a folder written by :func:`write_search`."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a folder holding a saved search.")
    header = _read_header(folder, set(backends))
    n, d = header["n_samples"], header["n_features"]
    try:
        search = cls(algorithm=header["algorithm"], metric=header["metric"], **header["params"])
    except TypeError:
        raise ValueError(
            f"{str(folder / _JSON)!r} names backend parameters NeighborSearch does not take: "
            f"{sorted(header['params'])}."
        ) from None
    name = header["algorithm_"]
    backend = backends[name](name, header["metric"], **header["params"])
    if hasattr(backend, "load_bytes"):
        backend.load_bytes(_read_bytes(folder / "index.faiss", "saved faiss index"))
        if (backend.n_samples, backend.n_features) != (n, d):
            raise ValueError(
                f"The faiss index in {str(folder)!r} holds {backend.n_samples} vectors of "
                f"{backend.n_features} values; search.json says {n} of {d}."
            )
    else:
        backend.fit(_read_embeddings(folder, n, d))
    search.backend_, search.algorithm_ = backend, name
    search.n_samples_fit_, search.n_features_in_ = n, d
    return search
