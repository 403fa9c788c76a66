"""Embedding vectors in SQLite (float16 rows per embedder): add, read, and search through the index."""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from .._lazy import np
from ..errors import StoreError
from .faiss_index import _save_due, search_index
from .layout import _FETCH_ROWS


class VectorsMixin:
    """EmbeddingStore's vectors table; the FAISS index over it comes from IndexSyncMixin."""

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
            return search_index(entry, matrix, k)

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
