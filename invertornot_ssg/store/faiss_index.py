"""FAISS indexes: which kind a store of n vectors gets, how it is built, tuned and searched."""
from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .._lazy import np

# Index choice (see _index_plan and benchmarks/README.md): measured on 512-d vectors.
FLAT_MAX = 16_384  # up to this many vectors: exact search
IVF_NLIST_MIN = 256  # lists of the first approximate index (16k-64k vectors); x4 per 4x growth
IVF_NLIST_MAX = 8192  # above 1M vectors (training 8192 lists takes minutes on 2 cores)
IVF_NPROBE_MIN = 8  # lists visited per query: nlist / 512, at least this (recall@10 0.98 at 1M)
IVF_TRAIN_PER_LIST = 50  # k-means training sample: this many vectors per list
IVF_TRAIN_ITERATIONS = 10
SEARCH_THREADS = 1  # FAISS threads for a small search: 2 OpenMP threads were slower per query
INDEX_SAVE_EVERY = 16  # above FLAT_MAX, add_vectors rewrites the index file when 1/16 is new


@dataclass
class _Index:
    """An embedder's FAISS index in memory and the SQLite rows it holds."""

    index: Any  # faiss.IndexIDMap2
    dim: int
    max_id: int  # largest vectors.id in the index (0 when empty)
    sha1_by_id: dict[int, str]
    synced_at: tuple[int, int, int] | None = None  # _db_state() when last brought up to date
    saved: int = -1  # vectors in the index file as this process last wrote or read it (-1: unknown)
    deferred: bool = False  # add_vectors left the file behind (see _save_due); flush() writes it

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)


@dataclass
class _IndexFile:
    """An index file as read: `index` None when missing (`error` None) or unreadable."""

    path: Path
    index: Any
    signature: tuple[int, ...] | None  # (inode, size, mtime_ns) of what was read
    error: BaseException | None


def embedder_slug(embedder_id: str) -> str:
    """A filesystem-safe name for an embedder id: readable part plus a short hash of the id.

    >>> embedder_slug("clip:ViT-B-32/laion2b")[:22]
    'clip-ViT-B-32-laion2b-'
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", embedder_id).strip("-.")[:48] or "embedder"
    return f"{readable}-{hashlib.sha1(embedder_id.encode('utf-8')).hexdigest()[:8]}"


def _index_plan(n: int) -> tuple[str, int]:
    """The index for a store of `n` vectors: ('flat', 0) or ('ivf', number of lists).

    Exact search up to FLAT_MAX vectors (a flat scan is then a few milliseconds); above, an
    inverted file with 8-bit scalar-quantised vectors (4x smaller than float32; recall@10 about
    0.98 against exact search, see benchmarks/README.md). The number of lists grows 4x each time
    the store does (64 to 256 vectors a list) up to IVF_NLIST_MAX; the plan changes only at those
    steps (16k, 64k, 256k, 1M vectors), which is when the index is rebuilt and retrained from
    SQLite, once per step.
    """
    if n <= FLAT_MAX:
        return ("flat", 0)
    nlist, bound = IVF_NLIST_MIN, 4 * FLAT_MAX
    while n > bound and nlist < IVF_NLIST_MAX:
        nlist, bound = 4 * nlist, 4 * bound
    return ("ivf", min(nlist, IVF_NLIST_MAX))


def _index_kind(index: Any) -> tuple[str, int]:
    """What `_index_plan` would call this index (IndexIDMap2 around a flat or IVF index)."""
    import faiss

    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexFlat):
        return ("flat", 0)
    if isinstance(inner, faiss.IndexIVF):
        return ("ivf", int(inner.nlist))
    return (type(inner).__name__, 0)


def _new_index(dim: int, n: int) -> Any:
    """An empty index for `n` vectors of `dim` (inner product; ids are vectors.id).

    The one place that picks the index type (see `_index_plan`). An IVF index comes back
    untrained: `_build_index` trains it on a sample of the store's vectors.
    """
    import faiss

    kind, nlist = _index_plan(n)
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)  # a view: `index` owns the object and must stay referenced
    ivf.cp.niter = IVF_TRAIN_ITERATIONS
    ivf.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    ivf.make_direct_map()  # reconstruct(id), used by the spot check of an index file
    _tune(ivf)
    return faiss.IndexIDMap2(index)  # keeps a reference to `index`


def _save_due(entry: _Index) -> bool:
    """Whether add_vectors should rewrite the index file now.

    Always for an exact index (at most FLAT_MAX vectors: a few tens of MB); for a larger one when
    1/INDEX_SAVE_EVERY of its vectors are not in the file yet. Rewriting a 1M-vector index for every
    batch of 32 images would cost a second or more each time; a file that lags is harmless (readers
    append SQLite's newer rows in memory) and flush() or close() writes it at the end of a build.
    """
    if entry.saved < 0 or entry.ntotal <= FLAT_MAX:
        return True
    return (entry.ntotal - entry.saved) * INDEX_SAVE_EVERY >= entry.ntotal


def _tune(index: Any) -> None:
    """Search parameters, set after building and after reading a file (they are not the store's data)."""
    import faiss

    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexIVF):
        inner.nprobe = min(int(inner.nlist), max(IVF_NPROBE_MIN, int(inner.nlist) // 512))


@contextlib.contextmanager
def _faiss_threads(n: int | None) -> Iterator[None]:
    """FAISS's OpenMP thread count set to `n` for the block (None: left alone)."""
    import faiss

    before = faiss.omp_get_max_threads()
    if n is None or n == before:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search_index(entry: _Index, matrix: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """The k vectors of `entry` nearest each row of `matrix`: (sha1, inner product), best first."""
    with _faiss_threads(SEARCH_THREADS if matrix.shape[0] < 64 else None):
        scores, ids = entry.index.search(np.ascontiguousarray(matrix), min(k, entry.ntotal))
    return [
        [(entry.sha1_by_id[int(i)], float(s)) for s, i in zip(row_s, row_i) if i >= 0]
        for row_s, row_i in zip(scores, ids)
    ]
