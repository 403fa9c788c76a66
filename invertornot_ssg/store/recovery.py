"""Locking and recovery: the write lock, a replaced or corrupt store.sqlite, SQLite errors worded for people."""
from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Callable, Iterator, TypeVar

from ..errors import StoreError
from .database import _SQLITE_CANTOPEN, _SQLITE_FULL, _SQLITE_READONLY, _is_busy, _is_corrupt
from .layout import BUSY_TIMEOUT_S, DB_NAME, LOCK_TIMEOUT_S, _aside_path, _os_store_error, _timestamp

T = TypeVar("T")


class RecoveryMixin:
    """EmbeddingStore's file lock and its way back from a corrupt or replaced database."""

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
