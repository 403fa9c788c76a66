"""What the store records per file and per image: file hashes, image records, cached decisions, ink."""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._lazy import np
from .database import _INK_TABLE

@dataclass(frozen=True, eq=False)
class ImageRecord:
    """What the store keeps about one image's content (keyed by the file's sha1)."""

    sha1: str
    width: int
    height: int
    format: str | None
    phash: str | None
    stats: np.ndarray  # float32, one column per images.STAT_NAMES


class RecordsMixin:
    """EmbeddingStore's tables other than vectors: files, images, decisions, ink."""

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
        self._replace_rows("files", data)

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
        self._replace_rows("images", data)

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
        self._replace_rows("decisions", data)

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
        self._replace_rows("ink", data, create=_INK_TABLE)

    def _replace_rows(self, table: str, rows: list[tuple[Any, ...]], create: str | None = None) -> None:
        """INSERT OR REPLACE `rows` into `table` in one locked transaction (`create`: its DDL, run first)."""
        if not rows:
            return
        marks = ", ".join("?" * len(rows[0]))

        def write() -> None:
            with self._locked(), self._transaction():
                if create:
                    self._db.execute(create)
                self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)

        with self._mutex:
            self._run(write)
