"""The embedding store: SQLite records plus one FAISS index per embedder, shared by sites and builds.

One module per job (the directory layout is described in layout.py):

    embedding_store.py  EmbeddingStore, the class callers open; composed of the parts below
    records.py          files, images, cached decisions, ink (ImageRecord)
    vectors.py          embedding vectors in SQLite; add, read, search
    faiss_index.py      which FAISS index a store gets, building, tuning and searching it
    index_sync.py       keeping each index in step with SQLite: load, check, rebuild, save
    database.py         the SQLite connection, schema, transactions
    recovery.py         the write lock; a corrupt or replaced database; errors worded for people
    manifest.py         store.json
    layout.py           file names, schema version, limits, file helpers
"""
from __future__ import annotations

from .embedding_store import EmbeddingStore
from .faiss_index import _index_kind, _index_plan, embedder_slug
from .layout import DB_NAME, HEADS_DIR, LOCK_NAME, MANIFEST_NAME, SCHEMA_VERSION
from .records import ImageRecord

__all__ = [
    "DB_NAME",
    "HEADS_DIR",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "EmbeddingStore",
    "ImageRecord",
    "_index_kind",
    "_index_plan",
    "embedder_slug",
]
