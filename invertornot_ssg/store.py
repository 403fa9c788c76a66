"""The embedding store: SQLite records plus one FAISS index per embedder, shared by sites and builds.

Layout of a store directory::

    store.sqlite              the source of truth (WAL mode): files, images, vectors, decisions, meta
    index-<slug>.faiss        one per embedder, derived from `vectors`; rebuilt whenever it is missing,
                              unreadable or out of step with SQLite (the model is never needed for that)
    store.json                schema version and what built each index
    lock                      file lock taken by every write
    heads/                    trained heads (written by head.py)

Every write takes the file lock, then a SQLite transaction; after adding vectors the writer brings
the FAISS index up to date from SQLite and replaces the file atomically, still under the lock (a
large index only every 1/16 of growth and at flush()/close(): see _save_due).
Readers never wait for the lock: SQLite's WAL lets them read during a write, and a reader whose
index is behind SQLite appends the missing rows in memory. Everything here is regenerable, so a
corrupt file is moved aside (`*.corrupt-<timestamp>`) with a warning and rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from ._lazy import np

from . import __version__
from .errors import StoreError
from .fileio import atomic_write, write_error_detail

SCHEMA_VERSION = 1
DB_NAME = "store.sqlite"
MANIFEST_NAME = "store.json"
LOCK_NAME = "lock"
HEADS_DIR = "heads"
LOCK_TIMEOUT_S = 300.0  # a write waits this long for another build's write before giving up
BUSY_TIMEOUT_S = 60.0  # SQLite busy_timeout: readers and writers meeting inside SQLite
PAGE_SIZE = 8192  # SQLite page size of a new store
_IN_CHUNK = 500  # keys per `IN (...)` query
_FETCH_ROWS = 4096  # vector rows decoded at a time when (re)building an index
# Index choice (see _index_plan and benchmarks/README.md): measured on 512-d vectors.
FLAT_MAX = 16_384  # up to this many vectors: exact search
IVF_NLIST_MIN = 256  # lists of the first approximate index (16k-64k vectors); x4 per 4x growth
IVF_NLIST_MAX = 8192  # above 1M vectors (training 8192 lists takes minutes on 2 cores)
IVF_NPROBE_MIN = 8  # lists visited per query: nlist / 512, at least this (recall@10 0.98 at 1M)
IVF_TRAIN_PER_LIST = 50  # k-means training sample: this many vectors per list
IVF_TRAIN_ITERATIONS = 10
SEARCH_THREADS = 1  # FAISS threads for a small search: 2 OpenMP threads were slower per query
INDEX_SAVE_EVERY = 16  # above FLAT_MAX, add_vectors rewrites the index file when 1/16 is new

_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_SQLITE_READONLY, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 13, 14
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    return (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED) if isinstance(code, int) else "locked" in str(exc)


_INK_TABLE = "CREATE TABLE IF NOT EXISTS ink (sha1 TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha1 TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS files_sha1 ON files (sha1)",
    """CREATE TABLE IF NOT EXISTS images (
        sha1 TEXT PRIMARY KEY, width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT,
        phash TEXT, stats BLOB NOT NULL)""",
    # AUTOINCREMENT: ids only ever grow, so an index holding ids <= m holds every row <= m.
    """CREATE TABLE IF NOT EXISTS vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT, embedder TEXT NOT NULL, sha1 TEXT NOT NULL,
        vector BLOB NOT NULL, UNIQUE (embedder, sha1))""",
    "CREATE INDEX IF NOT EXISTS vectors_embedder_id ON vectors (embedder, id)",
    """CREATE TABLE IF NOT EXISTS decisions (
        version TEXT NOT NULL, sha1 TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (version, sha1)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    _INK_TABLE,
)

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """What the store keeps about one image's content (keyed by the file's sha1)."""

    sha1: str
    width: int
    height: int
    format: str | None
    phash: str | None
    stats: np.ndarray  # float32, one column per images.STAT_NAMES


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


class EmbeddingStore:
    """SQLite records plus one FAISS index per embedder under `root`, safe to share between processes."""

    def __init__(self, root: Path | str, logger: logging.Logger | None = None):
        self.root = Path(root)
        self.logger = logger or logging.getLogger(__name__)
        self.db_path = self.root / DB_NAME
        self.manifest_path = self.root / MANIFEST_NAME
        self.lock_path = self.root / LOCK_NAME
        self._mutex = threading.RLock()  # one connection, possibly used from a serve thread
        from filelock import FileLock  # ~15 ms to import: a build the build memo serves never opens the store

        self._lock = FileLock(str(self.lock_path))
        self._conn: sqlite3.Connection | None = None
        self._db_ino: int | None = None
        self._indexes: dict[str, _Index] = {}
        try:
            self.heads_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_store_error(exc, self.heads_dir, "create the embedding store directory") from exc
        manifest = self._read_manifest()
        with self._mutex:
            self._run(self._open_db)
            if manifest is None:
                self._run(self._write_manifest)

    # -- paths ---------------------------------------------------------------------------------

    @property
    def heads_dir(self) -> Path:
        """Directory for trained heads; created with the store."""
        return self.root / HEADS_DIR

    def index_path(self, embedder_id: str) -> Path:
        return self.root / f"index-{embedder_slug(embedder_id)}.faiss"

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._mutex:
            try:
                self.flush()
            except StoreError as exc:  # the next reader catches the index up from SQLite
                self.logger.warning("%s", exc)
            self._close_db()
            self._indexes.clear()

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- files: the warm path never re-hashes a file it has seen -------------------------------

    def known_sha1(self, path: Path | str, size: int, mtime_ns: int) -> str | None:
        """The sha1 remembered for `path` if its size and mtime are unchanged, else None."""

        def query() -> str | None:
            row = self._db.execute(
                "SELECT size, mtime_ns, sha1 FROM files WHERE path = ?", (str(path),)
            ).fetchone()
            if row is None or row[0] != size or row[1] != mtime_ns:
                return None
            return row[2]

        with self._mutex:
            return self._run(query)

    def known_sha1s(self, entries: Iterable[tuple[Path | str, int, int]]) -> dict[str, str]:
        """known_sha1 for many (path, size, mtime_ns) at once: {path: sha1} of the unchanged ones."""
        wanted = {str(p): (size, mtime) for p, size, mtime in entries}

        def query() -> dict[str, str]:
            rows = self._select_in(
                "SELECT path, size, mtime_ns, sha1 FROM files WHERE path IN ({})", (), wanted
            )
            return {path: sha1 for path, size, mtime, sha1 in rows if wanted[path] == (size, mtime)}

        with self._mutex:
            return self._run(query)

    def remember_files(self, rows: Iterable[tuple[Path | str, int, int, str]]) -> None:
        """Record (path, size, mtime_ns, sha1) for each file, replacing what was known."""
        data = [(str(p), int(size), int(mtime), sha1) for p, size, mtime, sha1 in rows]
        if not data:
            return

        def write() -> None:
            with self._locked(), self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", data)

        with self._mutex:
            self._run(write)

    def paths_for(self, sha1s: Iterable[str]) -> dict[str, str]:
        """One remembered path per sha1 whose file still exists ({sha1: path}); others are left out."""

        def query() -> list[tuple[Any, ...]]:
            return self._select_in(
                "SELECT sha1, path FROM files WHERE sha1 IN ({}) ORDER BY path", (), sha1s
            )

        with self._mutex:
            rows = self._run(query)
        found: dict[str, str] = {}
        for sha1, path in rows:
            if sha1 not in found and os.path.isfile(path):
                found[sha1] = path
        return found

    # -- images --------------------------------------------------------------------------------

    def get_images(self, sha1s: Iterable[str]) -> dict[str, ImageRecord]:
        def query() -> dict[str, ImageRecord]:
            return {
                row[0]: ImageRecord(
                    sha1=row[0], width=row[1], height=row[2], format=row[3], phash=row[4],
                    stats=np.frombuffer(row[5], dtype="<f4").astype(np.float32),
                )
                for row in self._select_in(
                    "SELECT sha1, width, height, format, phash, stats FROM images WHERE sha1 IN ({})",
                    (), sha1s,
                )
            }

        with self._mutex:
            return self._run(query)

    def put_images(self, records: Iterable[ImageRecord]) -> None:
        data = [
            (r.sha1, int(r.width), int(r.height), r.format, r.phash,
             np.asarray(r.stats, dtype="<f4").tobytes())
            for r in records
        ]
        if not data:
            return

        def write() -> None:
            with self._locked(), self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)", data)

        with self._mutex:
            self._run(write)

    # -- vectors -------------------------------------------------------------------------------

    def embedder_dim(self, embedder_id: str) -> int | None:
        """The dimension of the embedder's stored vectors, None before its first vector."""
        with self._mutex:
            return self._run(lambda: self._dim(embedder_id))

    def vector_count(self, embedder_id: str) -> int:
        with self._mutex:
            return self._run(lambda: self._extent(embedder_id)[0])

    def get_vectors(self, embedder_id: str, sha1s: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors (float32, as saved in float16) of those `sha1s` the embedder has seen."""

        def query() -> dict[str, np.ndarray]:
            return {
                sha1: np.frombuffer(blob, dtype="<f2").astype(np.float32)
                for sha1, blob in self._select_in(
                    "SELECT sha1, vector FROM vectors WHERE embedder = ? AND sha1 IN ({})",
                    (embedder_id,), sha1s,
                )
            }

        with self._mutex:
            return self._run(query)

    def embedded(self, embedder_id: str, sha1s: Iterable[str]) -> set[str]:
        """Those of `sha1s` the embedder has a vector for (without reading the vectors)."""

        def query() -> set[str]:
            return {row[0] for row in self._select_in(
                "SELECT sha1 FROM vectors WHERE embedder = ? AND sha1 IN ({})", (embedder_id,), sha1s)}

        with self._mutex:
            return self._run(query)

    def vectors_matrix(self, embedder_id: str) -> tuple[list[str], np.ndarray]:
        """Every vector of the embedder, oldest first: (sha1s, float32 array of shape (n, dim))."""

        def query() -> tuple[list[str], np.ndarray]:
            dim = self._dim(embedder_id) or 0
            sha1s: list[str] = []
            parts: list[np.ndarray] = []
            for _ids, chunk_sha1s, matrix in self._vector_rows(embedder_id, dim, after_id=0):
                sha1s.extend(chunk_sha1s)
                parts.append(matrix)
            matrix = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
            return sha1s, matrix

        with self._mutex:
            return self._run(query)

    def add_vectors(self, embedder_id: str, sha1s: Sequence[str], vectors: np.ndarray) -> int:
        """Store one vector per sha1 (rows L2-normalised by the embedder); returns how many were new.

        sha1s the embedder already has are skipped. Vectors are kept as float16; the FAISS index
        in memory is brought up to date before this returns, and so is its file, except that a
        large index (above FLAT_MAX) is rewritten only once 1/16 of it is new, and at flush()
        and close().
        """
        sha1s = list(sha1s)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(sha1s):
            raise StoreError(
                f"add_vectors({embedder_id!r}): {len(sha1s)} sha1s but vectors of shape {matrix.shape}"
            )
        half = matrix.astype("<f2")
        if not np.isfinite(half).all():
            raise StoreError(
                f"add_vectors({embedder_id!r}): vectors hold NaN, inf or values beyond float16 range"
                " (are the rows L2-normalised?)"
            )
        if not sha1s:
            return 0
        with self._mutex:
            return self._run(lambda: self._add_vectors(embedder_id, sha1s, half))

    def search(
        self, embedder_id: str, queries: np.ndarray, k: int
    ) -> list[list[tuple[str, float]]]:
        """The k stored vectors nearest each query row: (sha1, inner product), best first.

        Rows are L2-normalised, so the score is the cosine. An embedder with no vectors gives
        empty lists.
        """
        matrix = np.asarray(queries, dtype=np.float32)
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2:
            raise StoreError(f"search({embedder_id!r}): queries must be 2-D, got shape {matrix.shape}")
        with self._mutex:
            entry = self._run(lambda: self._synced_index(embedder_id, writer=False))
            if entry is None or k <= 0 or entry.ntotal == 0:
                return [[] for _ in range(matrix.shape[0])]
            if matrix.shape[1] != entry.dim:
                raise StoreError(
                    f"search({embedder_id!r}): queries have dimension {matrix.shape[1]},"
                    f" the store's vectors {entry.dim}"
                )
            with _faiss_threads(SEARCH_THREADS if matrix.shape[0] < 64 else None):
                scores, ids = entry.index.search(np.ascontiguousarray(matrix), min(k, entry.ntotal))
            return [
                [(entry.sha1_by_id[int(i)], float(s)) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)
            ]

    # -- cached automatic decisions ------------------------------------------------------------

    def get_decisions(self, version: str, sha1s: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Decisions cached under `version` (embedder id + head version); others simply miss."""

        def query() -> dict[str, dict[str, Any]]:
            return {
                sha1: json.loads(data)
                for sha1, data in self._select_in(
                    "SELECT sha1, data FROM decisions WHERE version = ? AND sha1 IN ({})",
                    (version,), sha1s,
                )
            }

        with self._mutex:
            return self._run(query)

    def put_decisions(self, version: str, mapping: Mapping[str, Mapping[str, Any]]) -> None:
        data = [(version, sha1, json.dumps(dict(d), sort_keys=True)) for sha1, d in mapping.items()]
        if not data:
            return

        def write() -> None:
            with self._locked(), self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?)", data)

        with self._mutex:
            self._run(write)

    # -- ink: what a transparent image draws (images.ink_palette), for the legibility measure ----
    # A table of its own, created on first write, so stores of earlier versions (which lack it)
    # keep working in both directions; an image without a row is described again when needed.

    def get_ink(self, sha1s: Iterable[str]) -> dict[str, Any]:
        """sha1 -> ink_palette as stored (JSON: a list, or None for an opaque image)."""

        def query() -> dict[str, Any]:
            try:
                rows = self._select_in("SELECT sha1, data FROM ink WHERE sha1 IN ({})", (), sha1s)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return {}  # a store written by an earlier version
                raise
            return {sha1: json.loads(data) for sha1, data in rows}

        with self._mutex:
            return self._run(query)

    def put_ink(self, mapping: Mapping[str, Any]) -> None:
        data = [(sha1, json.dumps(ink)) for sha1, ink in mapping.items()]
        if not data:
            return

        def write() -> None:
            with self._locked(), self._transaction():
                self._db.execute(_INK_TABLE)
                self._db.executemany("INSERT OR REPLACE INTO ink VALUES (?, ?)", data)

        with self._mutex:
            self._run(write)

    # -- SQLite ----------------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._open_db()
        assert self._conn is not None
        return self._conn

    def _open_db(self) -> None:
        """Connect, check the file is a database of a schema we know, create the schema if new."""
        self._close_db()
        try:
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._sql_error(exc, "open") from exc
        self._conn = conn
        try:
            self._db_ino = os.stat(self.db_path).st_ino
        except OSError:
            self._db_ino = None
        # Reading the schema fails at once on a file that is not a database.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._close_db()
            raise StoreError(
                f"embedding store {self.db_path} has schema version {version}; this invertornot-ssg"
                f" ({__version__}) understands version {SCHEMA_VERSION}: upgrade invertornot-ssg or"
                " point `store` at another directory"
            )
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._enable_wal(conn, new=version == 0)
        # WAL + NORMAL: a power cut may lose the last commit, never corrupts the file
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            self._create_schema()

    def _enable_wal(self, conn: sqlite3.Connection, new: bool) -> None:
        """Switch a new store to WAL. Two processes opening the same new store at once both try it,
        and SQLite then answers one of them "database is locked" at once, without waiting (the two
        lock upgrades would deadlock): switch under the store's lock, and try again while busy."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        with self._locked():
            while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":  # or another process did it
                try:
                    if new:  # before the first write: 8 KiB pages hold three 1280-d float16 rows
                        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                    conn.execute("PRAGMA journal_mode = WAL").fetchone()
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.05)

    def _create_schema(self) -> None:
        with self._locked():
            with self._transaction():
                found = self._db.execute("PRAGMA user_version").fetchone()[0]
                if found == SCHEMA_VERSION:  # another process created it meanwhile
                    return
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # A new database: index files left from an older one describe rows that are gone.
            for stale in sorted(self.root.glob("index-*.faiss")):
                self.logger.debug("embedding store %s is new; removing stale index %s", self.db_path, stale)
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
            self._indexes.clear()

    def _close_db(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_exc:  # the original error says more
                    self.logger.debug("rollback of %s failed: %s", self.db_path, rollback_exc)
            raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read transaction, so that several queries see one state of the database."""
        conn = self._db
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_exc:  # the original error says more
                    self.logger.debug("rollback of %s failed: %s", self.db_path, rollback_exc)
            raise
        if conn.in_transaction:
            conn.execute("COMMIT")

    def _select_in(self, sql: str, params: tuple[Any, ...], keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (one `IN ({})` placeholder) for all `keys`, queried in chunks."""
        unique = list(dict.fromkeys(keys))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows.extend(self._db.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk)))
        return rows

    def _dim(self, embedder_id: str) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"dim:{embedder_id}",)).fetchone()
        return int(row[0]) if row else None

    def _extent(self, embedder_id: str) -> tuple[int, int]:
        """(number of vectors, largest id) of the embedder in SQLite."""
        count, max_id = self._db.execute(
            "SELECT count(*), coalesce(max(id), 0) FROM vectors WHERE embedder = ?", (embedder_id,)
        ).fetchone()
        return int(count), int(max_id)

    def _vector_rows(
        self, embedder_id: str, dim: int, after_id: int
    ) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
        """(ids, sha1s, float32 matrix) chunks of the embedder's rows with id > after_id, by id."""
        cursor = self._db.execute(
            "SELECT id, sha1, vector FROM vectors WHERE embedder = ? AND id > ? ORDER BY id",
            (embedder_id, after_id),
        )
        while rows := cursor.fetchmany(_FETCH_ROWS):
            blob = b"".join(r[2] for r in rows)
            if len(blob) != 2 * dim * len(rows):
                raise StoreError(
                    f"embedding store {self.db_path}: vectors of {embedder_id!r} do not all have"
                    f" dimension {dim}; delete the store directory to rebuild it"
                )
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(blob, dtype="<f2").reshape(len(rows), dim).astype(np.float32)
            yield ids, [r[1] for r in rows], matrix

    def _add_vectors(self, embedder_id: str, sha1s: list[str], half: np.ndarray) -> int:
        dim = int(half.shape[1])
        with self._locked():
            new_embedder = False
            with self._transaction():
                stored = self._dim(embedder_id)
                if stored is None:
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (f"dim:{embedder_id}", str(dim)))
                    new_embedder = True
                elif stored != dim:
                    raise StoreError(
                        f"add_vectors({embedder_id!r}): vectors have dimension {dim}, but the store"
                        f" {self.db_path} holds {embedder_id!r} vectors of dimension {stored}"
                    )
                present = {
                    row[0]
                    for row in self._select_in(
                        "SELECT sha1 FROM vectors WHERE embedder = ? AND sha1 IN ({})",
                        (embedder_id,), sha1s,
                    )
                }
                rows = []
                for sha1, vector in zip(sha1s, half):
                    if sha1 not in present:
                        present.add(sha1)
                        rows.append((embedder_id, sha1, vector.tobytes()))
                self._db.executemany(
                    "INSERT INTO vectors (embedder, sha1, vector) VALUES (?, ?, ?)", rows
                )
            if new_embedder:
                self._write_manifest()
            if rows:
                entry = self._synced_index(embedder_id, writer=True)
                if entry is not None:
                    if _save_due(entry):
                        self._save_index(embedder_id, entry)
                    else:
                        entry.deferred = True
        return len(rows)

    def flush(self) -> None:
        """Write the index files that add_vectors left behind SQLite (large stores: see _save_due)."""
        with self._mutex:
            if not any(entry.deferred for entry in self._indexes.values()):
                return

            def write() -> None:
                with self._locked():
                    for embedder_id in [e for e, entry in self._indexes.items() if entry.deferred]:
                        entry = self._synced_index(embedder_id, writer=True)
                        if entry is not None:
                            self._save_index(embedder_id, entry)

            self._run(write)

    # -- FAISS -----------------------------------------------------------------------------------

    def _synced_index(self, embedder_id: str, writer: bool) -> _Index | None:
        """The embedder's index in memory, holding exactly SQLite's rows (None if it has none).

        Loaded from its file on first use; rows added since (by any process) are appended;
        a file that is unreadable, of another dimension or not a prefix of SQLite's rows is
        replaced by an index rebuilt from SQLite (written back when the lock is free).
        """
        state = self._db_state()
        entry = self._indexes.get(embedder_id)
        if entry is not None and not writer and entry.synced_at == state:
            return entry  # nothing committed since: skip the queries (count(*) grows with the store)
        # Read the file before SQLite's snapshot starts: writers commit before they save, so
        # a file read first never holds rows the snapshot lacks.
        on_disk = None if entry is not None else self._read_index_file(embedder_id)
        # Only this connection wrote since the last sync (it never deletes vectors): no need to
        # count the rows to see whether some vanished.
        only_ours = entry is not None and entry.synced_at is not None and entry.synced_at[:2] == state[:2]
        with self._snapshot():
            entry = self._synced_index_in_snapshot(embedder_id, writer, on_disk, only_ours)
        if entry is not None:
            entry.synced_at = state
        return entry

    def _db_state(self) -> tuple[int, int, int]:
        """Changes whenever anything commits: another connection (data_version) or this one."""
        conn = self._db
        return (id(conn), conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)

    def _synced_index_in_snapshot(
        self, embedder_id: str, writer: bool, on_disk: _IndexFile | None, only_ours: bool = False
    ) -> _Index | None:
        dim = self._dim(embedder_id)
        entry = self._indexes.get(embedder_id)
        if only_ours and entry is not None and entry.dim == dim:
            (max_id,) = self._db.execute(  # an index seek, where count(*) reads every row
                "SELECT coalesce(max(id), 0) FROM vectors WHERE embedder = ?", (embedder_id,)
            ).fetchone()
            if entry.max_id < max_id:
                self._append_rows(entry, embedder_id)
            count, max_id = entry.ntotal, max(max_id, entry.max_id)
        else:
            count, max_id = self._extent(embedder_id)
        if dim is None or count == 0:
            self._indexes.pop(embedder_id, None)
            return None
        entry = self._indexes.get(embedder_id)
        rebuilt = False
        if entry is not None and (entry.dim != dim or entry.max_id > max_id or entry.ntotal > count):
            entry = None  # the database changed under us: start over from SQLite
        if entry is None:
            if on_disk is None:
                entry, rebuilt = self._build_index(embedder_id, dim), True
            else:
                entry, rebuilt = self._adopt_index_file(embedder_id, dim, on_disk)
        if entry.max_id < max_id:
            self._append_rows(entry, embedder_id)
        if (entry.ntotal, entry.max_id) != (count, max_id):  # rows vanished below max_id
            self.logger.warning(
                "index %s does not match %s; rebuilding it", self.index_path(embedder_id), self.db_path
            )
            entry, rebuilt = self._build_index(embedder_id, dim), True
        plan = _index_plan(entry.ntotal)
        if _index_kind(entry.index) != plan:  # the store grew past a step of _index_plan: once per step
            self.logger.info(
                "embedding store %s: %d %r vectors; rebuilding the index as %s", self.root, entry.ntotal,
                embedder_id, "exact (flat)" if plan[0] == "flat" else f"IVF with {plan[1]} lists, 8-bit vectors",
            )
            entry, rebuilt = self._build_index(embedder_id, dim), True
        self._indexes[embedder_id] = entry
        if rebuilt and not writer:  # a writer saves anyway; a reader saves if nobody is writing
            with self._try_locked() as locked:
                if locked:
                    self._save_index(embedder_id, entry)
        return entry

    def _read_index_file(self, embedder_id: str) -> _IndexFile:
        """The index file as found: deserialised, missing, or unreadable (with the error)."""
        import faiss

        path = self.index_path(embedder_id)
        try:
            with open(path, "rb") as f:
                signature = _signature(os.fstat(f.fileno()))
                try:  # streamed from the file: no second copy of a large index in memory
                    index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
                    if not isinstance(index, faiss.IndexIDMap2):
                        raise ValueError(f"{type(index).__name__} is not an IndexIDMap2")
                except (RuntimeError, ValueError, MemoryError) as exc:
                    return _IndexFile(path, None, signature, exc)
        except FileNotFoundError:
            return _IndexFile(path, None, None, None)
        except OSError as exc:
            raise _os_store_error(exc, path, "read") from exc
        _tune(index)
        return _IndexFile(path, index, signature, None)

    def _adopt_index_file(self, embedder_id: str, dim: int, on_disk: _IndexFile) -> tuple[_Index, bool]:
        """(the file's index if it is a prefix of SQLite's rows, else one rebuilt; rebuilt?)."""
        import faiss

        path, index = on_disk.path, on_disk.index
        if index is None:
            if on_disk.error is None:
                self.logger.debug("index %s is missing; building it from %s", path, self.db_path)
            else:
                assert on_disk.signature is not None
                self._move_corrupt_index(path, on_disk.signature, on_disk.error)
            return self._build_index(embedder_id, dim), True
        if index.d != dim:
            self.logger.warning(
                "index %s has dimension %d but the store holds %r vectors of dimension %d; rebuilding it",
                path, index.d, embedder_id, dim,
            )
            return self._build_index(embedder_id, dim), True
        file_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        rows = self._db.execute(
            "SELECT id, sha1 FROM vectors WHERE embedder = ? AND id <= ? ORDER BY id",
            (embedder_id, int(file_ids.max()) if len(file_ids) else 0),
        ).fetchall()
        sql_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not np.array_equal(file_ids, sql_ids) or not self._spot_check(index, embedder_id, file_ids):
            self.logger.warning(
                "index %s holds rows that %s does not have; rebuilding it", path, self.db_path
            )
            return self._build_index(embedder_id, dim), True
        entry = _Index(index, dim, int(sql_ids[-1]) if len(sql_ids) else 0, {r[0]: r[1] for r in rows})
        entry.saved = entry.ntotal
        return entry, False

    def _spot_check(self, index: Any, embedder_id: str, file_ids: np.ndarray) -> bool:
        """Whether the index's newest vector equals SQLite's row of that id (catches a reused id).

        An approximate index keeps 8-bit vectors: the same row then has a cosine of about 0.9999.
        """
        if len(file_ids) == 0:
            return True
        last = int(file_ids[-1])
        row = self._db.execute("SELECT vector FROM vectors WHERE id = ?", (last,)).fetchone()
        stored = np.frombuffer(row[0], dtype="<f2").astype(np.float32)
        if stored.shape != (index.d,):
            return False
        found = index.reconstruct(last)
        if _index_kind(index)[0] == "flat":
            return np.array_equal(found, stored)
        norms = float(np.linalg.norm(found) * np.linalg.norm(stored))
        return norms > 0 and float(found @ stored) >= 0.99 * norms

    def _build_index(self, embedder_id: str, dim: int) -> _Index:
        count, _ = self._extent(embedder_id)
        entry = _Index(_new_index(dim, count), dim, 0, {})
        if not entry.index.is_trained:
            entry.index.train(self._training_sample(embedder_id, dim, entry.index))
        self._append_rows(entry, embedder_id)
        return entry

    def _training_sample(self, embedder_id: str, dim: int, index: Any) -> np.ndarray:
        """A fixed-seed random sample of the embedder's vectors, as many as the index trains on."""
        import faiss

        ivf = faiss.extract_index_ivf(index)
        size = int(ivf.nlist) * int(ivf.cp.max_points_per_centroid)
        ids = np.fromiter(
            (r[0] for r in self._db.execute("SELECT id FROM vectors WHERE embedder = ?", (embedder_id,))),
            dtype=np.int64,
        )
        if len(ids) > size:
            ids = np.sort(np.random.default_rng(0).choice(ids, size, replace=False))
        blobs = [
            row[0]
            for start in range(0, len(ids), _IN_CHUNK)
            for row in self._db.execute(
                "SELECT vector FROM vectors WHERE id IN ({}) ORDER BY id".format(
                    ",".join("?" * len(ids[start:start + _IN_CHUNK]))
                ),
                ids[start:start + _IN_CHUNK].tolist(),
            )
        ]
        return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(blobs), dim).astype(np.float32)

    def _append_rows(self, entry: _Index, embedder_id: str) -> None:
        for ids, sha1s, matrix in self._vector_rows(embedder_id, entry.dim, after_id=entry.max_id):
            entry.index.add_with_ids(matrix, ids)
            entry.sha1_by_id.update(zip(ids.tolist(), sha1s))
            entry.max_id = int(ids[-1])

    def _save_index(self, embedder_id: str, entry: _Index) -> None:
        """Replace the index file atomically (caller holds the lock), streamed: no copy in memory."""
        import faiss

        def write(f: Any) -> None:
            failed: list[OSError] = []

            def sink(chunk: bytes) -> None:
                try:
                    f.write(chunk)
                except OSError as exc:  # FAISS would report it as a bare RuntimeError
                    failed.append(exc)
                    raise

            try:
                faiss.write_index(entry.index, faiss.PyCallbackIOWriter(sink))
            except RuntimeError:
                if failed:
                    raise failed[0] from None
                raise

        _atomic_write(self.index_path(embedder_id), write)
        entry.saved, entry.deferred = entry.ntotal, False

    def _move_corrupt_index(self, path: Path, signature: tuple[int, ...], exc: BaseException) -> None:
        """Move an unreadable index file aside, unless a writer replaced it meanwhile."""
        with self._try_locked() as locked:
            if not locked:
                self.logger.warning(
                    "index %s is unreadable (%s); rebuilt it in memory from %s (another build holds"
                    " the lock and will replace the file)", path, _first_line(exc), self.db_path,
                )
                return
            try:
                current = _signature(os.stat(path))
            except FileNotFoundError:
                return
            if current != signature:
                return
            aside = _aside_path(path)
            try:
                os.replace(path, aside)
            except OSError as os_exc:
                raise _os_store_error(os_exc, path, "move aside the unreadable index") from os_exc
            self.logger.warning(
                "index %s is unreadable (%s); moved it aside to %s and rebuilt it from %s",
                path, _first_line(exc), aside.name, self.db_path,
            )

    # -- locking, recovery, errors ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout as exc:
            raise StoreError(
                f"waited {LOCK_TIMEOUT_S:.0f} s for the embedding store lock {self.lock_path}:"
                " another build is writing the store"
            ) from exc
        except OSError as exc:
            raise _os_store_error(exc, self.lock_path, "lock") from exc
        try:
            if self._lock.lock_counter == 1:
                self._follow_replaced_db()
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _try_locked(self) -> Iterator[bool]:
        """Take the lock if it is free; yields whether it was taken."""
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except (Timeout, OSError):
            yield False
            return
        try:
            yield True
        finally:
            self._lock.release()

    def _follow_replaced_db(self) -> None:
        """Reconnect if another process replaced store.sqlite (after moving a corrupt one aside)."""
        try:
            ino = os.stat(self.db_path).st_ino
        except FileNotFoundError:
            ino = None
        if self._conn is not None and ino != self._db_ino:
            self.logger.debug("embedding store %s was replaced; reconnecting", self.db_path)
            self._indexes.clear()
            self._open_db()

    def _run(self, operation: Callable[[], T]) -> T:
        """Run a database operation; a corrupt database is moved aside, recreated, and tried once more."""
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise self._sql_error(exc, "access") from exc
            self._recover(exc)
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            raise self._sql_error(exc, "access (after rebuilding it)") from exc

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        seen_ino = self._db_ino
        self._close_db()
        self._indexes.clear()
        with self._locked():
            try:
                current_ino: int | None = os.stat(self.db_path).st_ino
            except FileNotFoundError:
                current_ino = None
            if current_ino == seen_ino and current_ino is not None:  # still the file we found corrupt
                stamp = _timestamp()
                aside = self.db_path
                try:
                    for suffix in ("-wal", "-shm", ""):
                        source = self.db_path.with_name(DB_NAME + suffix)
                        if source.exists():
                            aside = _aside_path(source, stamp)
                            os.replace(source, aside)
                except OSError as os_exc:
                    raise _os_store_error(os_exc, self.db_path, "move aside the corrupt") from os_exc
                self.logger.warning(
                    "embedding store %s is corrupt (%s); moved it aside to %s and started a fresh one"
                    " (embeddings will be computed again)", self.db_path, exc, aside.name,
                )
            try:
                self._open_db()
            except sqlite3.DatabaseError as open_exc:
                raise self._sql_error(open_exc, "recreate") from open_exc

    def _sql_error(self, exc: sqlite3.Error, action: str) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        if primary == _SQLITE_FULL or "disk is full" in text:
            detail = "the disk is full; free some space or point `store` elsewhere"
        elif primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN) or "readonly" in text:
            detail = "it or its directory is not writable; check permissions or point `store` elsewhere"
        elif _is_busy(exc):
            detail = f"another process kept it busy for more than {BUSY_TIMEOUT_S:.0f} s"
        else:
            detail = "delete the store directory to rebuild it"
        return StoreError(f"cannot {action} the embedding store {self.db_path} ({text}): {detail}")

    # -- store.json ----------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any] | None:
        """The parsed store.json, None if absent or unreadable (it is then rewritten)."""
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_store_error(exc, self.manifest_path, "read") from exc
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            self.logger.warning("%s is not valid JSON (%s); rewriting it", self.manifest_path, exc)
            return None
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        if version == SCHEMA_VERSION:
            return manifest
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise StoreError(
                f"embedding store {self.root} has schema version {version} ({self.manifest_path});"
                f" this invertornot-ssg ({__version__}) understands version {SCHEMA_VERSION}:"
                " upgrade invertornot-ssg or point `store` at another directory"
            )
        raise StoreError(
            f"{self.manifest_path}: unknown schema_version {version!r} (expected {SCHEMA_VERSION});"
            " is `store` pointing at a directory that is not an invertornot-ssg store?"
        )

    def _write_manifest(self) -> None:
        """Rewrite store.json from the database, under the lock."""
        with self._locked():
            dims = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dim:%'").fetchall()
            embedders = {
                key[len("dim:"):]: {
                    "dim": int(value),
                    "index": self.index_path(key[len("dim:"):]).name,
                    "vector_dtype": "float16",
                    "normalised": "l2",
                    "metric": "inner_product",
                }
                for key, value in dims
            }
            manifest = {
                "schema_version": SCHEMA_VERSION,
                "written_by": f"invertornot-ssg {__version__}",
                "embedders": embedders,
            }
            text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            _atomic_write(self.manifest_path, text.encode("utf-8"))


# -- helpers ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: Any) -> None:
    """fileio.atomic_write, with an OSError turned into a StoreError naming the path."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise _os_store_error(exc, path, "write") from exc


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


def _os_store_error(exc: OSError, path: Path, action: str) -> StoreError:
    return StoreError(f"cannot {action} {path}: {write_error_detail(exc)} ({exc})")


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def _aside_path(path: Path, stamp: str | None = None) -> Path:
    """`<name>.corrupt-<timestamp>`, with a counter if that exists already."""
    base = path.with_name(f"{path.name}.corrupt-{stamp or _timestamp()}")
    candidate, n = base, 1
    while candidate.exists():
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][-200:] if lines else type(exc).__name__
