"""store.json: the schema version and what built each index, read at open and rewritten under the lock."""
from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..errors import StoreError
from .layout import SCHEMA_VERSION, _atomic_write, _os_store_error


class ManifestMixin:
    """EmbeddingStore's store.json."""

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
