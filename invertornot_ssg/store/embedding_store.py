"""EmbeddingStore: the class that opens a store directory, made of the store's parts by job."""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from ..errors import StoreError
from .database import DatabaseMixin
from .faiss_index import _Index, embedder_slug
from .index_sync import IndexSyncMixin
from .layout import DB_NAME, HEADS_DIR, LOCK_NAME, MANIFEST_NAME, _os_store_error
from .manifest import ManifestMixin
from .records import RecordsMixin
from .recovery import RecoveryMixin
from .vectors import VectorsMixin


class EmbeddingStore(RecordsMixin, VectorsMixin, IndexSyncMixin, DatabaseMixin, RecoveryMixin, ManifestMixin):
    """SQLite records plus one FAISS index per embedder under `root`, safe to share between processes.

    Records (records.py), vectors (vectors.py), their FAISS index (index_sync.py, faiss_index.py),
    the SQLite connection (database.py), locking and recovery (recovery.py) and store.json
    (manifest.py) are each a module of this package; this class holds their shared state.
    """

    def __init__(self, root: Path | str, logger: logging.Logger | None = None):
        self.root = Path(root)
        self.logger = logger or logging.getLogger("invertornot_ssg.store")  # the package, as logging configs name it
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

    @property
    def heads_dir(self) -> Path:
        """Directory for trained heads; created with the store."""
        return self.root / HEADS_DIR

    def index_path(self, embedder_id: str) -> Path:
        return self.root / f"index-{embedder_slug(embedder_id)}.faiss"

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
