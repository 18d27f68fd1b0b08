"""faiss index files checked before faiss reads them: every size they declare must fit in the file.

faiss reads an array by reading its length, allocating that much, then
reading the data: a 685-byte file that declares 2^29 code bytes makes it
allocate gigabytes before it notices the file is short. :func:`check_index_file`
walks the layout of the four index types galaxysim writes (``IndexFlatL2``,
``IndexHNSWFlat``, ``IndexIVFFlat`` and ``IndexIVFPQ``, as faiss's
``write_index`` lays them out: ``faiss/impl/index_write.cpp``) without
allocating anything, and refuses a file in which any declared length runs
past the bytes that are left, any count disagrees with another (vectors
stored versus vectors declared, inverted-list sizes versus their total,
centroids versus lists), or bytes are left over at the end. Anything else,
another index type or metric included, is refused as well.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["IndexFileError", "check_index_file"]

_FLAT, _HNSW, _IVF_FLAT, _IVF_PQ = b"IxF2", b"IHNf", b"IwFl", b"IwPQ"
_METRIC_L2 = 1
_DIRECT_MAP_HASHTABLE = 2
_MAX_PQ_BITS = 16
# faiss's IndexIVFPQ.precomputed_table_max_bytes: larger tables are not made.
_FAISS_TABLE_CAP = 2**31


class IndexFileError(ValueError):
    """A faiss index file declares more than it holds, or is not one galaxysim writes."""


class _Reader:
    """Reads fields off the bytes of a file, checking every length against what is left."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.position

    def skip(self, n_bytes: int, what: str) -> None:
        if n_bytes > self.left:
            raise IndexFileError(
                f"it declares {n_bytes:,} bytes of {what}, but only {self.left:,} bytes are left "
                "in the file"
            )
        self.position += n_bytes

    def unpack(self, layout: str, what: str) -> int:
        size = struct.calcsize(layout)
        start = self.position
        self.skip(size, what)
        return struct.unpack_from(layout, self.data, start)[0]

    def tag(self) -> bytes:
        start = self.position
        self.skip(4, "an index type")
        return self.data[start : self.position]

    def vector(self, item_bytes: int, what: str) -> int:
        """Skip a faiss vector (a 64-bit count, then the items); return the count."""
        count = self.unpack("<Q", f"the length of {what}")
        self.skip(count * item_bytes, what)
        return count

    def uint64s(self, what: str) -> np.ndarray:
        start = self.position + 8
        count = self.vector(8, what)
        return np.frombuffer(self.data, dtype="<u8", count=count, offset=start)


def _header(reader: _Reader) -> tuple[int, int]:
    """faiss's index header; returns (d, ntotal)."""
    d = reader.unpack("<i", "the dimension")
    ntotal = reader.unpack("<q", "the number of vectors")
    reader.skip(8 + 8 + 1, "the header")  # two unused fields and is_trained
    metric = reader.unpack("<i", "the metric")
    if d < 1 or ntotal < 0:
        raise IndexFileError(f"its header declares {d} dimensions and {ntotal} vectors")
    if metric != _METRIC_L2:
        raise IndexFileError(f"its metric is {metric}, not the euclidean metric galaxysim uses")
    return d, ntotal


def _flat(reader: _Reader) -> tuple[int, int]:
    d, ntotal = _header(reader)
    n_floats = reader.vector(4, "stored vectors")
    if n_floats != ntotal * d:
        raise IndexFileError(f"it stores {n_floats:,} numbers for {ntotal:,} vectors of {d}")
    return d, ntotal


def _nested_flat(reader: _Reader, what: str) -> tuple[int, int]:
    if reader.tag() != _FLAT:
        raise IndexFileError(f"its {what} is not a flat index")
    return _flat(reader)


def _hnsw(reader: _Reader) -> tuple[int, int]:
    d, ntotal = _header(reader)
    reader.vector(8, "level probabilities")
    reader.vector(4, "neighbours per level")
    n_levels = reader.vector(4, "levels")
    n_offsets = reader.vector(8, "offsets")
    reader.vector(4, "graph links")
    reader.skip(5 * 4, "the graph's settings")
    if (n_levels, n_offsets) != (ntotal, ntotal + 1):
        raise IndexFileError(f"its graph describes {n_levels:,} vectors, its header {ntotal:,}")
    if _nested_flat(reader, "vector storage") != (d, ntotal):
        raise IndexFileError("its vector storage disagrees with its header")
    return d, ntotal


def _product_quantizer(reader: _Reader, d: int) -> tuple[int, int]:
    """The PQ of an IVFPQ index; returns its code size in bytes and its table's bytes per list."""
    pq_d = reader.unpack("<Q", "the quantizer's dimension")
    m = reader.unpack("<Q", "the number of sub-quantizers")
    bits = reader.unpack("<Q", "the bits per code")
    if pq_d != d or not 1 <= m <= d or d % m or not 1 <= bits <= _MAX_PQ_BITS:
        raise IndexFileError(
            f"its product quantizer ({m} parts of {bits} bits, d={pq_d}) is invalid"
        )
    if reader.vector(4, "centroids") != d * 2**bits:
        raise IndexFileError("its product quantizer holds the wrong number of centroids")
    return (m * bits + 7) // 8, m * 2**bits * 4


def _inverted_lists(reader: _Reader, nlist: int, code_size: int, ntotal: int) -> None:
    if reader.tag() != b"ilar":
        raise IndexFileError("its inverted lists are not stored in the file")
    if (reader.unpack("<Q", "nlist"), reader.unpack("<Q", "code size")) != (nlist, code_size):
        raise IndexFileError("its inverted lists disagree with the index")
    kind = reader.tag()
    if kind == b"full":
        sizes = reader.uint64s("list sizes")
        if len(sizes) != nlist:
            raise IndexFileError(f"it lists {len(sizes):,} sizes for {nlist:,} lists")
    elif kind == b"sprs":
        pairs = reader.uint64s("list sizes")
        if len(pairs) % 2 or (len(pairs) and int(pairs[::2].max()) >= nlist):
            raise IndexFileError("its sparse list sizes name lists that do not exist")
        sizes = pairs[1::2]
    else:
        raise IndexFileError(f"its inverted lists have the unknown layout {kind!r}")
    total = sum(int(size) for size in sizes)  # Python ints: no overflow
    if total != ntotal:
        raise IndexFileError(f"its lists hold {total:,} vectors, its header {ntotal:,}")
    reader.skip(total * (code_size + 8), "list codes and ids")


def _ivf(reader: _Reader, product: bool) -> tuple[int, int, int]:
    d, ntotal = _header(reader)
    nlist = reader.unpack("<Q", "nlist")
    reader.skip(8, "nprobe")
    if _nested_flat(reader, "coarse quantizer") != (d, nlist):
        raise IndexFileError(f"its coarse quantizer does not hold {nlist:,} centroids of {d}")
    direct_map = reader.unpack("<B", "the direct map type")
    reader.vector(8, "the direct map")
    if direct_map == _DIRECT_MAP_HASHTABLE:
        reader.vector(16, "the direct map's table")
    code_size, table = 4 * d, 0
    if product:
        by_residual = reader.unpack("<B", "by_residual")
        code_size = reader.unpack("<Q", "the code size")
        pq_code_size, table_per_list = _product_quantizer(reader, d)
        if pq_code_size != code_size:
            raise IndexFileError("its code size disagrees with its product quantizer")
        # faiss precomputes a table per list when searching residuals, up to its own cap.
        table = nlist * table_per_list if by_residual else 0
        table = table if table <= _FAISS_TABLE_CAP else 0
    _inverted_lists(reader, nlist, code_size, ntotal)
    return d, ntotal, table


_READERS = {
    _FLAT: lambda reader: (*_flat(reader), 0),
    _HNSW: lambda reader: (*_hnsw(reader), 0),
    _IVF_FLAT: lambda reader: _ivf(reader, product=False),
    _IVF_PQ: lambda reader: _ivf(reader, product=True),
}
_KINDS = {"faiss-flat": (_FLAT,), "faiss-hnsw": (_HNSW,), "faiss-ivf": (_IVF_FLAT, _IVF_PQ)}


def check_index_file(data: bytes, algorithm: str) -> tuple[int, int, int]:
    """Check the bytes of a faiss index file before faiss reads them.

    Parameters
    ----------
    data : bytes
        The whole file.
    algorithm : {"faiss-flat", "faiss-hnsw", "faiss-ivf"}
        The backend that wrote it, which fixes the index types allowed.

    Returns
    -------
    d, ntotal : int
        The dimension and the number of vectors it holds.
    extra_bytes : int
        Memory faiss allocates beyond the file's own size when it reads it
        (the precomputed tables of an ``IndexIVFPQ``).

    Raises
    ------
    IndexFileError
        A declared length runs past the end of the file, counts disagree,
        bytes are left over, or the index is of another type or metric.

    Examples
    --------
    >>> import faiss, numpy as np
    >>> from galaxysim.ranking._faiss_file import check_index_file
    >>> index = faiss.IndexFlatL2(4)
    >>> index.add(np.zeros((3, 4), dtype="float32"))
    >>> data = faiss.serialize_index(index).tobytes()
    >>> check_index_file(data, "faiss-flat")
    (4, 3, 0)
    >>> bad = data[:37] + (2**29).to_bytes(8, "little") + data[45:]
    >>> check_index_file(bad, "faiss-flat")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    galaxysim.ranking._faiss_file.IndexFileError: it declares 2,147,483,648 bytes of ...
    """
    reader = _Reader(data)
    tag = reader.tag()
    if tag not in _KINDS[algorithm]:
        raise IndexFileError(f"it holds a {tag!r} index, not one that {algorithm!r} writes")
    d, ntotal, extra_bytes = _READERS[tag](reader)
    if reader.left:
        raise IndexFileError(f"{reader.left:,} bytes follow the end of the index")
    return d, ntotal, extra_bytes
