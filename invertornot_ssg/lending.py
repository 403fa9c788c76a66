"""The labels a build lends: site and bootstrap labels, the labeled set, cached automatic decisions."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from . import photoregions, shipped
from ._lazy import np
from .decisions import Decision, LabeledSet, decide_auto
from .errors import ConfigError
from .head import HeadError
from .images import STAT_NAMES
from .overrides import Overrides
from .store import ImageRecord
from .results import ImageRequest


def is_current(record: ImageRecord) -> bool:
    """Whether a record has every statistic this version computes (older versions wrote fewer)."""
    return len(record.stats) == len(STAT_NAMES)


class LabelLending:
    """Engine's labeled images: site and bootstrap labels, the labeled set, cached automatic decisions."""

    def bootstrap(self) -> LabeledSet | None:
        if self._bootstrap is False:
            self._bootstrap = shipped.load_bootstrap(self.embedder_id)
        return self._bootstrap  # type: ignore[return-value]

    def _site_labels(
        self, overrides: Overrides, requests: Sequence[ImageRequest], sha1s: Sequence[str | None]
    ) -> dict[str, bool]:
        """sha1 -> label of every image a person labeled. An entry for an image of this build
        counts with the content the build found, not the sha1 an earlier build recorded (an
        entry written by hand has none): the first build must lend the same labels as the next."""
        labels: dict[str, bool] = {}
        found = {req.key: sha1 for req, sha1 in zip(requests, sha1s)}
        for path, (label, recorded) in overrides.human_labels().items():
            sha1 = found.get(path, recorded)
            if sha1:  # two entries of one image that disagree: keep wins, the safe side
                labels[sha1] = labels.get(sha1, True) and label == "invert"
        for req, sha1 in zip(requests, sha1s):
            if sha1 and req.label in ("invert", "keep") and sha1 not in labels:
                labels[sha1] = req.label == "invert"
        return labels

    def _duplicate_label(self, sha1: str | None, site_labels: dict[str, bool]) -> bool | None:
        """The label of the same bytes labeled elsewhere (this site first, then the bootstrap set)."""
        if not sha1:
            return None
        if sha1 in site_labels:
            return site_labels[sha1]
        return (self.bootstrap_labels() or {}).get(sha1)

    def bootstrap_labels(self) -> dict[str, bool] | None:
        """The bootstrap set's labels by sha1, without its vectors (all a warm build needs)."""
        if self._bootstrap_labels is False:
            self._bootstrap_labels = shipped.load_bootstrap_labels(self.embedder_id)
        return self._bootstrap_labels  # type: ignore[return-value]

    def _labels_fingerprint(self, site_labels: dict[str, bool]) -> str:
        """Changes whenever a label changes: cached automatic decisions key on it."""
        boot = b"+bootstrap" if self.bootstrap_labels() is not None else b""
        return hashlib.sha1(json.dumps(sorted(site_labels.items())).encode() + boot).hexdigest()[:12]

    def _labeled_set(self, site_labels: dict[str, bool]) -> LabeledSet:
        """Bootstrap set plus the site's own labels (which win on the same sha1)."""
        boot = self.bootstrap()
        vectors = self.store.get_vectors(self.embedder_id, list(site_labels)) if site_labels else {}
        records = self.store.get_images(list(vectors)) if vectors else {}
        sha1s, invert, rows, phashes, stats = [], [], [], [], []
        unknown = np.full(len(STAT_NAMES), np.nan, dtype=np.float32)  # an older record: never a near-duplicate
        for sha1, vec in vectors.items():
            sha1s.append(sha1)
            invert.append(site_labels[sha1])
            rows.append(vec)
            phashes.append(records[sha1].phash if sha1 in records else None)
            stats.append(records[sha1].stats if sha1 in records and is_current(records[sha1]) else unknown)
        if boot is not None:
            for j, sha1 in enumerate(boot.sha1s):
                if sha1 not in site_labels:
                    sha1s.append(sha1)
                    invert.append(bool(boot.invert[j]))
                    rows.append(boot.vectors[j])
                    phashes.append(boot.phashes[j])
                    stats.append(boot.stats[j] if boot.stats is not None else unknown)
        if not sha1s:
            return LabeledSet.empty(1)
        return LabeledSet(sha1s, np.array(invert, dtype=bool), np.vstack(rows).astype(np.float32), phashes,
                          np.vstack(stats).astype(np.float32))

    def _novelty_scores(self, matrix: np.ndarray) -> tuple[list[float | None], list[bool]]:
        """Each image's novelty score and whether it is above the cut-off (novelty.py); None and
        False throughout without a novelty model, or when it does not fit these embeddings."""
        novelty = self.novelty
        if novelty is not None:
            try:
                scores = novelty.scores(matrix)
                return [round(float(s), 4) for s in scores], [bool(n) for n in novelty.novel(scores)]
            except HeadError as exc:
                self.log.warning("%s; deciding without novelty", exc)
                self._novelty = None
        return [None] * len(matrix), [False] * len(matrix)

    def _decide_auto(self, paths: dict[str, Path], site_labels: dict[str, bool], version: str) -> dict[str, dict]:
        """near-duplicate > head > knn > default, with decisions cached per (version, labels, thresholds).
        `paths`: sha1 -> a file with that content, to describe an image again if its record is old.
        The labeled set (bootstrap vectors included) is built only when something is not cached."""
        sha1s = list(paths)
        if not sha1s:
            return {}
        photo_tiles = photoregions.weights_digest() if self.thresholds.photo_region else ""
        cache_key = hashlib.sha1(
            f"{version}|{self._labels_fingerprint(site_labels)}|{self.thresholds}|{photo_tiles}".encode()
        ).hexdigest()[:16]
        decided = self.store.get_decisions(cache_key, sha1s)
        todo = [s for s in sha1s if s not in decided]
        if todo:
            labeled = self._labeled_set(site_labels)
            vectors = self.store.get_vectors(self.embedder_id, todo)
            matrix = np.vstack([vectors[s] for s in todo]).astype(np.float32)
            records = self.current_records(todo, paths)
            head = self.head
            p_head: list[float | None] = [None] * len(todo)
            described = [j for j, s in enumerate(todo) if is_current(records[s])]  # a file gone since: no head
            if head is not None and described:
                stats = np.vstack([records[todo[j]].stats for j in described])
                try:
                    for j, p in zip(described, head.p_invert(matrix[described], stats)):
                        p_head[j] = float(p)
                except HeadError as exc:  # made for vectors of another size: as if it failed to load
                    if self.settings.head:
                        raise ConfigError(f"head: {exc}") from None
                    self.log.warning("%s; deciding without it", exc)
                    self._head = head = None
            scores, novel = self._novelty_scores(matrix)
            if len(labeled):
                sims, rows = labeled.neighbours(matrix, self.thresholds.knn_k)
            auto = {}
            for j, sha1 in enumerate(todo):
                nb = (sims[j], rows[j]) if len(labeled) else None
                stats = records[sha1].stats if is_current(records[sha1]) else None
                auto[sha1] = decide_auto(matrix[j], records[sha1].phash, p_head[j], labeled, self.thresholds, nb, stats,
                                         novelty=scores[j], novel=novel[j])
            new = {}
            for sha1, d in self._photo_regions(auto, paths, records).items():
                new[sha1] = {"invert": d.invert, "p_invert": d.p_invert, "confidence": d.confidence, "method": d.method,
                             "novelty": d.novelty, "novel": d.novel}
            # Not when a head or novelty model failed to load: tried again next build.
            if (head is not None or self.head_info is None) and (self.novelty is not None or self.novelty_info is None):
                self.store.put_decisions(cache_key, new)
            decided.update(new)
        return decided

    def _photo_regions(self, auto: dict[str, Decision], paths: dict[str, Path],
                       records: dict[str, ImageRecord]) -> dict[str, Decision]:
        """Automatic inverts (head or kNN) turned to keep where photographed tiles cover at least
        thresholds.photo_region of the image (photoregions): a negative face is unreadable. Only
        images about to be inverted whose statistics may hold a photograph are decoded again,
        side by side, once: the decisions are cached."""
        if not self.thresholds.photo_region:
            return auto
        candidates = {sha1: paths[sha1] for sha1, d in auto.items()
                      if d.invert and d.method in ("head", "knn")
                      and (not is_current(records[sha1]) or photoregions.may_hold_photo(records[sha1].stats))}
        shares = photoregions.file_shares(candidates, self.background)
        return {sha1: replace(d, invert=False, confidence=None if d.p_invert is None else 1.0 - d.p_invert,
                              method=photoregions.METHOD)
                if photoregions.keeps(shares.get(sha1), self.thresholds.photo_region) else d
                for sha1, d in auto.items()}
