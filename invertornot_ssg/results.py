"""What the engine is asked and answers: ImageRequest (a file, its key and an author's label) and ImageResult."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SITE_LABEL_METHODS = ("explicit", "front-matter", "override")  # what a person said of this site's image


@dataclass(frozen=True)
class ImageRequest:
    path: Path  # absolute path of the image file
    key: str  # site-relative posix path: overrides-file key and display name
    label: str | None = None  # 'invert' | 'keep' said by the author
    label_source: str | None = None  # 'explicit' (class on the tag) | 'front-matter'


@dataclass(frozen=True)
class ImageResult:
    request: ImageRequest
    sha1: str | None
    invert: bool | None  # None on error with no human label
    p_invert: float | None
    confidence: float | None
    method: str
    version: str
    cached: bool
    error: str | None
    ink: tuple | list | None = None  # images.ink_palette of a transparent image (contrast.py); None if opaque
    # How unlike the labeled set the image is (novelty.py), and whether that passed the head over
    # (above the cut-off); None / False for human decisions and without a novelty model.
    novelty: float | None = None
    novel: bool = False

    @property
    def human(self) -> bool:
        return self.method in ("explicit", "front-matter", "override", "duplicate")

    def as_json(self, path_as_given: str | None = None) -> dict:
        return {
            "path": path_as_given if path_as_given is not None else self.request.key,
            "sha1": self.sha1,
            "invert": self.invert,
            "p_invert": None if self.p_invert is None else round(self.p_invert, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "method": self.method,
            "version": self.version,
            "cached": self.cached,
            "error": self.error,
            "novelty": None if self.novelty is None else round(self.novelty, 4),
            "novel": self.novel,
        }
