"""Where a store keeps its files (the layout below), its schema version, and the small file helpers.

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

import os
import time
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..fileio import atomic_write, write_error_detail

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


def _atomic_write(path: Path, data: Any) -> None:
    """fileio.atomic_write, with an OSError turned into a StoreError naming the path."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise _os_store_error(exc, path, "write") from exc


def _os_store_error(exc: OSError, path: Path, action: str) -> StoreError:
    return StoreError(f"cannot {action} {path}: {write_error_detail(exc)} ({exc})")


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
