"""faiss search backends for :class:`~galaxysim.ranking.search.NeighborSearch`.

Three backends, registered in ``search._BACKENDS`` by name:

* ``"faiss-flat"``: ``IndexFlatL2``, exact (the same neighbours as
  ``"exact"`` except among exact ties; distances to float32 precision);
* ``"faiss-hnsw"``: ``IndexHNSWFlat``, a graph, approximate;
* ``"faiss-ivf"``: ``IndexIVFFlat`` (or ``IndexIVFPQ`` with ``pq=m``, ``m``
  bytes per vector), inverted lists around k-means centroids, approximate.

faiss works in float32 and squared L2; distances are returned as true
euclidean distances (square roots) in float64, so they compare with the exact
backend's. Only ``metric="euclidean"`` is supported. faiss is an optional
dependency (the ``galaxysim[faiss]`` extra), imported when a backend is built.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._limits import check_allocation
from ._faiss_file import IndexFileError, check_index_file

__all__ = ["FAISS_ALGORITHMS", "MAXIMA", "faiss_available", "import_faiss"]

FAISS_ALGORITHMS = ("faiss-flat", "faiss-hnsw", "faiss-ivf")
#: The largest value of each backend parameter. A saved search (``search.json``)
#: is held to them too, so that a file cannot make faiss allocate for a
#: candidate list of two billion entries (``ef_search``) or overflow its ints.
MAXIMA: dict[str, int] = {
    "M": 512,
    "ef_construction": 65_536,
    "ef_search": 65_536,
    "nlist": 1 << 20,
    "nprobe": 1 << 20,
    "pq": 4096,
    "train_size": 2**31 - 1,
}
# Rows reconstructed or searched at a time when the fitted set is queried.
_CHUNK = 8192


def import_faiss() -> Any:
    """Return the faiss module, or raise an ImportError that names the extra."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            'The faiss search backends need faiss: pip install "galaxysim[faiss]" '
            "(or pip install faiss-cpu)."
        ) from None
    return faiss


def faiss_available() -> bool:
    """Whether faiss can be imported."""
    try:
        import_faiss()
    except ImportError:
        return False
    return True


def _drop_self(
    distances: np.ndarray, indices: np.ndarray, rows: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove row ``r``'s own index ``rows[r]`` from its list; keep ``n_neighbors``.

    Rows whose own index was not found lose their last (farthest) candidate.
    """
    is_self = indices == rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :n_neighbors]
    return np.take_along_axis(distances, keep, axis=1), np.take_along_axis(indices, keep, axis=1)


def _by_distance_then_index(
    distances: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((indices, distances), axis=1)
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(indices, order, axis=1)


class _FaissBackend:
    """What the three faiss backends share: float32 input, sqrt distances, self exclusion."""

    #: Backend parameters and their defaults (subclasses fill this in).
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, algorithm: str, metric: Any, **params: Any) -> None:
        self.faiss = import_faiss()
        if metric != "euclidean":
            raise ValueError(
                f"algorithm={algorithm!r} supports metric='euclidean' only, got {metric!r}; "
                "use algorithm='exact' for other metrics."
            )
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"algorithm={algorithm!r} takes the parameters {sorted(self.defaults)}, "
                f"got unknown {unknown}."
            )
        self.algorithm = algorithm
        # None stands for the default (which is itself None for some IVF parameters).
        self.params = {**self.defaults, **{k: v for k, v in params.items() if v is not None}}
        self._check_params()
        self.index = None

    def _check_params(self) -> None:
        for name, value in self.params.items():
            largest = MAXIMA[name]
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 1 <= value <= largest
            ):
                raise ValueError(
                    f"{name} must be a positive int of at most {largest:,}, or None; got {value!r}."
                )

    def _build(self, d: int, n: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, embeddings: np.ndarray) -> _FaissBackend:
        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.index = self._build(data.shape[1], len(data))
        if not self.index.is_trained:
            self.index.train(self._training_sample(data))
        self.index.add(data)
        self._after_add()
        return self

    def _training_sample(self, data: np.ndarray) -> np.ndarray:
        return data

    def _after_add(self) -> None:
        """Set search-time parameters on a built or loaded index."""

    @property
    def n_samples(self) -> int:
        return int(self.index.ntotal)

    @property
    def n_features(self) -> int:
        return int(self.index.d)

    def kneighbors(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """(euclidean distances, indices) of the ``n_neighbors`` nearest of each query."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        squared, indices = self.index.search(queries, n_neighbors)
        missing = (indices < 0).any(axis=1)
        if missing.any():  # an approximate search ran short of candidates: search wider
            squared[missing], indices[missing] = self._search_wider(queries[missing], n_neighbors)
        distances = np.sqrt(np.maximum(squared, 0.0)).astype(np.float64)
        return _by_distance_then_index(distances, indices.astype(np.intp))

    def _search_wider(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        flat = self.faiss.IndexFlatL2(self.n_features)
        flat.add(self.reconstruct(0, self.n_samples))
        return flat.search(queries, n_neighbors)

    def reconstruct(self, start: int, stop: int) -> np.ndarray:
        """The stored vectors ``start .. stop - 1`` (decoded, for compressed indices)."""
        return self.index.reconstruct_n(int(start), int(stop - start))

    def kneighbors_fitted(self, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of every fitted vector, each left out of its own list."""
        k_search = min(n_neighbors + 1, self.n_samples)
        parts = []
        for start in range(0, self.n_samples, _CHUNK):
            stop = min(start + _CHUNK, self.n_samples)
            distances, indices = self.kneighbors(self.reconstruct(start, stop), k_search)
            parts.append(_drop_self(distances, indices, np.arange(start, stop), n_neighbors))
        return (
            np.concatenate([d for d, _ in parts]),
            np.concatenate([i for _, i in parts]),
        )

    def to_bytes(self) -> bytes:
        return self.faiss.serialize_index(self.index).tobytes()

    def load_bytes(self, data: bytes) -> _FaissBackend:
        """Read an index written by :meth:`to_bytes` (faiss's own format, not a pickle).

        The sizes the file declares are checked against its length first
        (:func:`~galaxysim.ranking._faiss_file.check_index_file`), so that
        faiss never allocates for data the file does not hold.
        """
        try:
            *_, extra_bytes = check_index_file(data, self.algorithm)
        except IndexFileError as error:
            raise ValueError(f"the faiss index file is refused: {error}.") from None
        check_allocation(
            len(data) + extra_bytes, "reading the faiss index", "Load it on a larger machine."
        )
        try:
            index = self.faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except Exception as error:  # faiss raises RuntimeError on a bad file
            raise ValueError(
                f"the faiss index cannot be read: {str(error).splitlines()[0]}"
            ) from None
        expected = {"faiss-flat": "IndexFlat", "faiss-hnsw": "IndexHNSW", "faiss-ivf": "IndexIVF"}
        if not type(index).__name__.startswith(expected[self.algorithm]):
            raise ValueError(
                f"the faiss index is a {type(index).__name__}, not the index of {self.algorithm!r}."
            )
        self.index = index
        self._after_add()
        return self


class FlatBackend(_FaissBackend):
    """Exhaustive search in float32 (``IndexFlatL2``): exact, no parameters."""

    defaults: ClassVar[dict[str, Any]] = {}

    def _build(self, d: int, n: int) -> Any:
        return self.faiss.IndexFlatL2(d)

    def _search_wider(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, n_neighbors)


class HNSWBackend(_FaissBackend):
    """A hierarchical navigable small-world graph (``IndexHNSWFlat``).

    ``M``: links per vector (memory ``~ 2 * M * 4`` bytes per vector beside
    the ``4 * d`` of the vector itself); ``ef_construction``: candidates kept
    while building (slower build, better graph); ``ef_search``: candidates
    kept per query (at least ``n_neighbors``; slower, higher recall). At
    most ``M=512`` and ``ef_construction = ef_search = 65,536`` (:data:`MAXIMA`).
    """

    defaults: ClassVar[dict[str, Any]] = {"M": 32, "ef_construction": 80, "ef_search": 64}

    def _build(self, d: int, n: int) -> Any:
        index = self.faiss.IndexHNSWFlat(d, int(self.params["M"]))
        index.hnsw.efConstruction = int(self.params["ef_construction"])
        return index

    def _after_add(self) -> None:
        self.index.hnsw.efSearch = int(self.params["ef_search"])

    def kneighbors(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        self.index.hnsw.efSearch = max(int(self.params["ef_search"]), n_neighbors)
        return super().kneighbors(queries, n_neighbors)


class IVFBackend(_FaissBackend):
    """Inverted lists around k-means centroids (``IndexIVFFlat``, or ``IndexIVFPQ``).

    ``nlist``: number of lists (None: ``4 * sqrt(n)`` rounded, between 1 and
    65,536, at most ``n / 39`` so that k-means has data); ``nprobe``: lists
    searched per query; ``pq``: None stores vectors whole, an int ``m``
    compresses each to ``m`` bytes (product quantisation, 8 bits per
    sub-vector; ``m`` must divide the dimension) for collections of 10^7
    and more; ``train_size``: vectors k-means trains on (None: ``64 * nlist``,
    a random sample seeded by ``random_state``). At most ``nlist = nprobe =
    2**20``, ``pq=4096`` and ``train_size = 2**31 - 1`` (:data:`MAXIMA`).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "nlist": None,
        "nprobe": 32,
        "pq": None,
        "train_size": None,
        "random_state": 0,
    }

    def _check_params(self) -> None:
        random_state = self.params.pop("random_state")
        super()._check_params()
        self.params["random_state"] = random_state

    def _nlist(self, n: int) -> int:
        if self.params["nlist"] is not None:
            return min(int(self.params["nlist"]), n)
        return int(max(1, min(65_536, round(4 * np.sqrt(n)), n // 39)))

    def _build(self, d: int, n: int) -> Any:
        nlist, m = self._nlist(n), self.params["pq"]
        quantizer = self.faiss.IndexFlatL2(d)
        if m is None:
            return self.faiss.IndexIVFFlat(quantizer, d, nlist)
        if d % int(m):
            raise ValueError(f"pq={m} must divide the embedding dimension {d}.")
        return self.faiss.IndexIVFPQ(quantizer, d, nlist, int(m), 8)

    def _training_sample(self, data: np.ndarray) -> np.ndarray:
        nlist = int(self.index.nlist)
        size = self.params["train_size"] or 64 * nlist
        if self.params["pq"] is not None:
            size = max(size, 256 * 39)  # each sub-quantiser learns 256 centroids
        if size >= len(data):
            return data
        rng = np.random.default_rng(self.params["random_state"])
        return data[np.sort(rng.choice(len(data), size=size, replace=False))]

    def _after_add(self) -> None:
        self._set_nprobe()
        self.index.make_direct_map()  # so that stored vectors can be reconstructed

    def _set_nprobe(self) -> None:
        self.index.nprobe = min(int(self.params["nprobe"]), int(self.index.nlist))

    def _search_wider(self, queries: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        self.index.nprobe = int(self.index.nlist)  # every list: as many candidates as exist
        try:
            return self.index.search(queries, n_neighbors)
        finally:
            self._set_nprobe()


#: The backends by the name NeighborSearch(algorithm=...) takes.
FAISS_BACKENDS: dict[str, type] = {
    "faiss-flat": FlatBackend,
    "faiss-hnsw": HNSWBackend,
    "faiss-ivf": IVFBackend,
}
