"""The last build's results, reused whole when nothing they depend on has changed.

A warm build of a large site otherwise spends most of its time confirming that nothing changed:
a SQLite lookup per image, the overrides file, the cached decisions. The memo keeps, per site,
the last build's requests (key, file, the author's label, and the file's size and mtime when it
was hashed) and their results, under a fingerprint of everything else a decision depends on: the
package, the model and head version, the settings, and the overrides file's bytes. The next build
reuses them only for the very same requests on unchanged files; anything else takes the full
path, which writes a new memo. It is only a cache: a missing or damaged memo means the full path.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .fileio import read_cache, write_cache

_FORMAT = 1


def fingerprint(*parts: object) -> str:
    """A digest of what the decisions depend on besides the requests themselves."""
    return hashlib.sha1(json.dumps([_FORMAT, __version__, *(str(p) for p in parts)]).encode()).hexdigest()


def file_digest(path: Path | None) -> str | None:
    """SHA-1 of a file's bytes; None when there is no such file."""
    if path is None:
        return None
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError:
        return "unreadable"  # matches no memo: the full path reports the problem properly


REQUEST_COLUMNS = ("key", "path", "label", "source")
RESULT_COLUMNS = ("sha1", "invert", "p_invert", "confidence", "method", "cached", "error", "ink", "novelty", "novel")


def request_columns(requests: Sequence[Any]) -> dict[str, list]:
    """The requests (engine.ImageRequest) as the memo compares them: a list per field."""
    return {
        "key": [r.key for r in requests],
        "path": [os.fsdecode(r.path) for r in requests],
        "label": [r.label for r in requests],
        "source": [r.label_source for r in requests],
    }


# Kept as a list per field rather than a row per image: a build's process holds the site
# generator's objects, and the cyclic GC it runs while thousands of small lists are parsed cost
# more (~50 ms for 1,000 images) than reading the file.


def load(path: Path, expected: str, requests: dict[str, list]) -> tuple[dict[str, list], list[str]] | None:
    """(results by column, warnings) of the last build if it had this fingerprint and exactly
    these requests, each file still of the size and mtime it had when hashed; None otherwise."""
    memo = read_cache(path)
    try:
        if memo["fingerprint"] != expected or any(memo[name] != requests[name] for name in REQUEST_COLUMNS):
            return None
        if not _unchanged(requests["path"], memo["size"], memo["mtime"]):
            return None
        results = {name: memo[name] for name in RESULT_COLUMNS}
        if any(len(column) != len(requests["path"]) for column in results.values()):
            return None
        return results, memo["warnings"]
    except (TypeError, KeyError):
        return None  # none yet, damaged, or of another format: the full path


def save(path: Path, expected: str, requests: dict[str, list], signatures: Sequence[tuple[int, int] | None],
         results: dict[str, list], warnings: Sequence[str]) -> None:
    """Write the memo; `signatures`: each file's (size, mtime_ns) from before it was hashed.
    A failure to write only costs the next build its shortcut."""
    document = {
        "fingerprint": expected, **{name: requests[name] for name in REQUEST_COLUMNS},
        "size": [s[0] if s else None for s in signatures],
        "mtime": [s[1] if s else None for s in signatures],
        **{name: results[name] for name in RESULT_COLUMNS}, "warnings": list(warnings),
    }
    write_cache(path, json.dumps(document).encode())


def _unchanged(paths: Sequence[str], sizes: Sequence[int | None], mtimes: Sequence[int | None]) -> bool:
    """Whether every file has the size and mtime it had (a file missing then must be missing now)."""
    if not len(paths) == len(sizes) == len(mtimes):
        return False
    for path, size, mtime in zip(paths, sizes, mtimes):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            if size is not None:
                return False
            continue
        if st.st_size != size or st.st_mtime_ns != mtime:
            return False
    return True
