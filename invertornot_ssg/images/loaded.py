"""What loading an image gives: LoadedImage or ImageError, the error kinds and the size limit."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

from .._lazy import LazyModule

# Pillow is imported on first use (see _lazy): a build whose decisions are all cached decodes nothing.
Image: Any = LazyModule("PIL.Image")
ImageColor: Any = LazyModule("PIL.ImageColor")
ImageOps: Any = LazyModule("PIL.ImageOps")
ExifTags: Any = LazyModule("PIL.ExifTags")

PathArg = Union[str, bytes, os.PathLike]
RGB = tuple[int, int, int]

ERROR_KINDS = (
    "missing", "empty", "truncated", "not-an-image", "too-large", "unsupported", "unreadable", "svg-error",
)
# About 8000x8000: far beyond any web image, and below Pillow's own bomb error (2 x 89 MP).
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image ready for the embedder: RGB, composited, at most max_side pixels long."""

    path: PathArg
    image: Image.Image
    width: int  # original size, in display orientation
    height: int
    format: str  # by content: 'PNG', 'JPEG', 'GIF', 'WEBP', 'SVG', ...
    transparency: float  # fraction of pixels not fully opaque, before compositing
    ink: tuple[float, float, float] | None = None  # the ink_* statistics of a transparent file; None if opaque
    texture: tuple[float, ...] | None = None  # the native_* statistics; None: from `image` instead
    soft_alpha: float = 0.0  # of the visible pixels, the share not fully opaque, before compositing
    dark_page: tuple[float, float, float, float] | None = None  # the dark_page_* statistics; None if opaque
    ink_palette: tuple | None = None  # ink_palette() of a transparent file (not a head feature); None if opaque


@dataclass(frozen=True)
class ImageError:
    """Why a file could not be loaded; `message` names the file."""

    path: PathArg
    kind: str  # one of ERROR_KINDS
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def detail(self) -> str:
        """The message without the leading file name, for callers that show their own name."""
        prefix = f"{_shown(self.path)}: "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message


class _Reject(Exception):
    """Internal: a specific reason to give up on a file, turned into an ImageError."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _shown(path: PathArg) -> str:
    """The path as text for messages; undecodable bytes appear as backslash escapes."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
