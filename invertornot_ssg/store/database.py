"""The SQLite side of the store: schema, connection (WAL), transactions, snapshots, chunked queries."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Any, Iterable, Iterator

from .. import __version__
from ..errors import StoreError
from .layout import BUSY_TIMEOUT_S, PAGE_SIZE, SCHEMA_VERSION, _IN_CHUNK


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


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


class DatabaseMixin:
    """EmbeddingStore's connection to store.sqlite (the locking comes from RecoveryMixin)."""

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
            self._rollback(conn)
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
            self._rollback(conn)
            raise
        if conn.in_transaction:
            conn.execute("COMMIT")

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """Roll back after an error, if a transaction is still open; the original error says more."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_exc:
                self.logger.debug("rollback of %s failed: %s", self.db_path, rollback_exc)

    def _select_in(self, sql: str, params: tuple[Any, ...], keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (one `IN ({})` placeholder) for all `keys`, queried in chunks."""
        unique = list(dict.fromkeys(keys))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows.extend(self._db.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk)))
        return rows
