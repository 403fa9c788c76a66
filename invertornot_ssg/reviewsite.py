"""What the review page shows and writes: the overrides entries the store knows, labels saved, images and thumbnails by sha1."""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, features

from ._lazy import np
from .fileio import file_signature
from .images import ImageError, load_image_bytes
from .novelty import CUTOFF as NOVELTY_CUTOFF
from .overrides import LABELS, Overrides, record_decisions
from .store import EmbeddingStore

PER_PAGE = 200
THUMB_SIDE = 256
MINI_SIDE = 64  # the map view's tiles
THUMB_CACHE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # an original larger than this is not served (nor thumbnailed)
HUMAN_METHODS = ("explicit", "front-matter", "duplicate")  # a person decided, on the page or another entry
UNSURE_METHODS = ("knn", "default")  # what a novel image's decision falls to (decisions.decide_auto)
_SHA1 = re.compile(r"[0-9a-f]{40}\Z")


@dataclass(frozen=True)
class ReviewItem:
    """One overrides entry as the page shows it: its human label and the last build's decision."""

    key: str
    sha1: str
    label: str | None  # the human label in the overrides file
    invert: bool | None  # the last build's decision (`auto:`), None if it had none
    p_invert: float | None
    confidence: float | None
    method: str  # the last build's method, "" if never built
    width: int | None
    height: int | None
    novelty: float | None = None  # the last build's novelty score (novelty.py), None without one
    novel: bool = False  # above the cut-off: the head was passed over (shown first)

    @property
    def human(self) -> bool:
        """A person decided: a label here, a class on the page, or a labeled duplicate."""
        return self.label is not None or self.method in HUMAN_METHODS

    def uncertainty(self, threshold: float) -> float:
        """Distance of p_invert from the threshold (smaller: less sure); -1 when there is none."""
        return -1.0 if self.p_invert is None else abs(self.p_invert - threshold)

    def uncertain(self, threshold: float, unsure: float) -> bool:
        """The page's "uncertain" filter: no person decided, and p_invert is near the threshold or missing."""
        return not self.human and self.uncertainty(threshold) < unsure

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "sha1": self.sha1, "label": self.label, "invert": self.invert,
            "p_invert": self.p_invert, "confidence": self.confidence, "method": self.method,
            "human": self.human, "width": self.width, "height": self.height,
            "novelty": self.novelty, "novel": self.novel,
        }


class ReviewSite:
    """The site's images: overrides entries with a sha1 whose file the store knows, most uncertain first.

    Thread-safe. Re-reads the overrides file when it changes on disk (a build may run meanwhile);
    writes only labels, through `record_decisions`, which merges under the file's lock."""

    def __init__(
        self,
        overrides_path: Path,
        store: EmbeddingStore,
        threshold: float = 0.5,
        unsure: float = 0.2,
        logger: logging.Logger | None = None,
        novelty_cutoff: float = NOVELTY_CUTOFF,
    ) -> None:
        self.overrides_path = Path(overrides_path)
        self.store = store
        self.threshold = threshold
        self.unsure = unsure  # the page's "uncertain" filter: |p_invert - threshold| below this
        self.novelty_cutoff = novelty_cutoff  # a recorded novelty above this: novel, first in the list
        self.log = logger or logging.getLogger("invertornot_ssg")
        self._lock = threading.RLock()
        self._signature: tuple[int, ...] | None = None
        self._items: list[ReviewItem] = []
        self._by_key: dict[str, ReviewItem] = {}
        self._sha1s: frozenset[str] = frozenset()
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._thumb_bytes = 0
        self._thumb_lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))

    # -- reading ---------------------------------------------------------------------------------

    def items(self) -> list[ReviewItem]:
        """Every reviewable image, most uncertain first (p_invert nearest the threshold; none first)."""
        with self._lock:
            self._refresh()
            return list(self._items)

    def keys(self) -> Mapping[str, ReviewItem]:
        with self._lock:
            self._refresh()
            return dict(self._by_key)

    def knows(self, sha1: str) -> bool:
        """Whether `sha1` is one of this site's reviewable images (the only images served)."""
        with self._lock:
            self._refresh()
            return sha1 in self._sha1s

    def _refresh(self) -> None:
        signature = file_signature(self.overrides_path)
        if signature is not None and signature == self._signature:
            return
        overrides = Overrides.load(self.overrides_path)
        entries = {key: e for key, e in overrides.entries.items() if e.sha1 and _SHA1.match(e.sha1)}
        paths = self.store.paths_for({e.sha1 for e in entries.values()})
        records = self.store.get_images(list(paths))
        items = []
        for key, entry in entries.items():
            if entry.sha1 not in paths:
                continue
            auto = entry.auto if isinstance(entry.auto, dict) else {}
            record = records.get(entry.sha1)
            invert = auto.get("invert")
            method = auto.get("method")
            novelty = auto.get("novelty")
            novelty = float(novelty) if isinstance(novelty, (int, float)) and not isinstance(novelty, bool) else None
            items.append(ReviewItem(
                key=key, sha1=entry.sha1, label=entry.label,
                invert=invert if isinstance(invert, bool) else None,
                p_invert=_unit_number(auto.get("p_invert")),
                confidence=_unit_number(auto.get("confidence")),
                method=method if isinstance(method, str) else "",
                width=record.width if record else None, height=record.height if record else None,
                novelty=novelty, novel=novelty is not None and novelty > self.novelty_cutoff and method in UNSURE_METHODS,
            ))
        # Novel images first (most novel first): the decisions least backed by any label.
        items.sort(key=lambda item: (not item.novel, -(item.novelty or 0) if item.novel else 0,
                                     item.uncertainty(self.threshold), item.key))
        self._items = items
        self._by_key = {item.key: item for item in items}
        self._sha1s = frozenset(item.sha1 for item in items)
        self._signature = signature

    # -- writing ---------------------------------------------------------------------------------

    def save(self, labels: Mapping[str, str | None]) -> list[str]:
        """Write human labels ('invert', 'keep', or None to clear) for known keys; returns the keys
        whose label changed. Raises ValueError naming unknown keys or bad labels (nothing written)."""
        with self._lock:
            known = self.keys()
            unknown = sorted(k for k in labels if k not in known)
            if unknown:
                raise ValueError(f"not images of this site: {_some(unknown)}")
            bad = sorted(k for k, v in labels.items() if v is not None and v not in LABELS)
            if bad:
                raise ValueError(f"labels must be 'invert', 'keep' or null: {_some(bad)}")
            changed = sorted(k for k, v in labels.items() if known[k].label != v)
            if changed:
                record_decisions(self.overrides_path, {}, labels={k: labels[k] for k in changed})
                self._signature = None  # re-read on next access
            return changed

    # -- images ----------------------------------------------------------------------------------

    def image_bytes(self, sha1: str) -> bytes | None:
        """The file of one of this site's images, if its content still has that sha1."""
        if not self.knows(sha1):
            return None
        path = self.store.paths_for([sha1]).get(sha1)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            self.log.debug("review: cannot read %s: %s", path, exc)
            return None
        if len(data) > MAX_IMAGE_BYTES or hashlib.sha1(data).hexdigest() != sha1:
            return None  # too large to serve, or changed since the store saw it
        return data

    def thumbnail(self, sha1: str, side: int = THUMB_SIDE) -> bytes | None:
        """A WebP (PNG without WebP support) of at most `side` px, transparency kept; cached."""
        key = (sha1, side)
        with self._thumb_lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        data = self.image_bytes(sha1)
        if data is None:
            return None
        with self._decoding:
            thumb = _thumbnail(data, sha1, side)
        if thumb is None:
            return None
        with self._thumb_lock:
            if key not in self._thumbs:
                self._thumbs[key] = thumb
                self._thumb_bytes += len(thumb)
            while self._thumb_bytes > THUMB_CACHE_BYTES and len(self._thumbs) > 1:
                _, dropped = self._thumbs.popitem(last=False)
                self._thumb_bytes -= len(dropped)
        return thumb


def decode_rgba(data: bytes, name: str, side: int = THUMB_SIDE) -> Image.Image | None:
    """The image at most `side` px, its transparency kept (RGBA; RGB when opaque); None if it
    cannot be decoded. With the core's safe loader (SVG, bomb limits).

    The loader composites on a background; compositing is linear (c = a*f + (1-a)*bg), so two
    decodes, on black and on white, give back alpha and colour exactly (up to rounding)."""
    dark = load_image_bytes(data, name, background=(0, 0, 0), max_side=side)
    if isinstance(dark, ImageError):
        return None
    image = dark.image
    if dark.transparency > 0:
        light = load_image_bytes(data, name, background=(255, 255, 255), max_side=side)
        if not isinstance(light, ImageError) and light.image.size == image.size:
            d = np.asarray(image, dtype=np.float32)
            w = np.asarray(light.image, dtype=np.float32)
            alpha = np.clip(255.0 - (w - d).mean(axis=2), 0.0, 255.0)
            colour = np.clip(d * 255.0 / np.maximum(alpha, 1.0)[..., None], 0.0, 255.0)
            rgba = np.dstack([colour, alpha]).round().astype(np.uint8)
            image = Image.fromarray(rgba, "RGBA")
    return image


def _thumbnail(data: bytes, name: str, side: int = THUMB_SIDE) -> bytes | None:
    """A WebP (PNG without WebP support) of decode_rgba's image."""
    image = decode_rgba(data, name, side)
    if image is None:
        return None
    out = io.BytesIO()
    if features.check("webp"):
        image.save(out, "WEBP", quality=82, method=4)
    else:
        image.save(out, "PNG", optimize=False)
    return out.getvalue()


def _thumb_type(data: bytes) -> str:
    return "image/webp" if data[:4] == b"RIFF" else "image/png"


def _image_type(data: bytes) -> str:
    """Content type of an original by its bytes; unknown bytes are offered as a download."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        return "image/svg+xml"
    return "application/octet-stream"


def _unit_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _some(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")
