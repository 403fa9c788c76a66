"""Keeping each embedder's FAISS index in step with SQLite: load, check, rebuild, append, save."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._lazy import np
from .faiss_index import _Index, _IndexFile, _index_kind, _index_plan, _new_index, _tune
from .layout import _IN_CHUNK, _aside_path, _atomic_write, _first_line, _os_store_error, _signature


class IndexSyncMixin:
    """EmbeddingStore's in-memory indexes (`self._indexes`) and their files."""

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
