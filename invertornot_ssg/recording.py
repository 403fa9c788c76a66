"""After the build: the decisions written into the overrides file, and the one-line summary."""
from __future__ import annotations

import collections
import os
from typing import Sequence

from .fileio import file_signature
from .overrides import AutoRecord, Overrides, load_cached, record_decisions
from .results import ImageResult


class Recording:
    """Engine's after-build work: record() into the overrides file, summary()."""

    def load_overrides(self) -> Overrides:
        if self.overrides_path is None:
            return Overrides(os.devnull)  # no overrides file: nobody labeled anything
        signature = file_signature(self.overrides_path)  # before reading: a later change shows
        overrides = load_cached(self.overrides_path, self.cache_dir)
        self._loaded_overrides = (signature, overrides)
        return overrides

    def record(self, results: Sequence[ImageResult]) -> None:
        """Write this build's decisions into the overrides YAML (human labels are never touched)."""
        if self.overrides_path is None or not self.settings.write_overrides:
            return
        decisions = _decisions(results)
        if not decisions:
            return
        if self.memo_hit and self._memo_signature == file_signature(self.overrides_path):
            return  # the memo's results: only a build that found these decisions recorded leaves one
        if not self._recorded_already(decisions):
            record_decisions(self.overrides_path, decisions)

    def _would_record(self, results: Sequence[ImageResult], overrides: Overrides) -> bool:
        """Whether record(results) would write the overrides file as read for this build."""
        if self.overrides_path is None or not self.settings.write_overrides:
            return False
        decisions = _decisions(results)
        return bool(decisions) and not _holds(overrides, decisions)

    def _recorded_already(self, decisions: dict[str, AutoRecord]) -> bool:
        """Whether the overrides file, unchanged since this engine read it, holds exactly these
        decisions: a warm build then skips the lock, the second parse and the dump."""
        signature, overrides = self._loaded_overrides or (None, None)
        if overrides is None or signature is None or signature != file_signature(self.overrides_path):
            return False
        return _holds(overrides, decisions)

    def summary(self, results: Sequence[ImageResult]) -> str:
        """The one line a build logs."""
        methods = collections.Counter(r.method for r in results)
        errors = sum(1 for r in results if r.error)
        unsure = methods.get("default", 0)  # kNN decides only when its vote is sure (decisions.knn_vote)
        # How many images were unlike the labeled set, so the head was passed over (novelty.py).
        novel = sum(1 for r in results if r.novel)
        novel = f" ({novel} novel)" if novel else ""
        inverted = sum(1 for r in results if r.invert)
        cached = sum(1 for r in results if r.cached)
        per_method = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        return (
            f"{len(results)} images: {inverted} inverted, {self.embedded} embedded, {cached} cached, "
            f"{errors} errors, {unsure} unsure{novel}; by method: {per_method or 'none'}"
            + ("; nothing changed since the last build" if self.memo_hit else "")
        )


def _decisions(results: Sequence[ImageResult]) -> dict[str, AutoRecord]:
    """What record() writes: each decided image's automatic part, by key."""
    return {
        r.request.key: AutoRecord(
            sha1=r.sha1, invert=r.invert, p_invert=r.p_invert, confidence=r.confidence,
            method=r.method, version=r.version, novelty=r.novelty,
        )
        for r in results
        if r.sha1 and r.invert is not None
    }


def _holds(overrides: Overrides, decisions: dict[str, AutoRecord]) -> bool:
    """Whether the overrides file holds exactly these decisions already."""
    entries = overrides.entries
    for key, record in decisions.items():
        entry = entries.get(key)
        if entry is None or not record.recorded_in(entry.auto) or entry.sha1 != (record.sha1 or "").lower():
            return False
    return True
