"""Open any image file safely: sniff the content, decode (raster or SVG), composite on the page background."""
from __future__ import annotations

import errno
import io
import os
import stat
from typing import BinaryIO

from .compositing import _flatten
from .loaded import _Reject, _shown, DEFAULT_MAX_PIXELS, Image, ImageError, LoadedImage, PathArg, RGB
from .raster import _decode_raster
from .svg import _GZIP_MAGIC, _render_svg, _starts_with_markup



def load_image(
    path: PathArg,
    background: RGB = (255, 255, 255),
    max_side: int = 512,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage | ImageError:
    """Load an image file; any problem with the file is returned as an ImageError, never raised."""
    shown = _shown(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return ImageError(path, "missing", f"{shown}: broken symbolic link (its target does not exist)")
        return ImageError(path, "missing", f"{shown}: no such file")
    except (OSError, ValueError) as exc:
        return ImageError(path, *_stat_failure(shown, exc))
    if stat.S_ISDIR(info.st_mode):
        return ImageError(path, "unreadable", f"{shown}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        return ImageError(path, "unreadable", f"{shown}: not a regular file")
    try:
        fp = open(path, "rb")
    except OSError as exc:
        return ImageError(path, "unreadable", f"{shown}: cannot open ({exc.strerror or exc})")
    with fp:
        return _load(fp, info.st_size, path, shown, background, max_side, max_pixels)


def load_image_bytes(
    data: bytes,
    name: str,
    background: RGB = (255, 255, 255),
    max_side: int = 512,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage | ImageError:
    """Load an image from bytes (e.g. a downloaded file); `name` stands for the path in messages."""
    return _load(io.BytesIO(data), len(data), name, _shown(name), background, max_side, max_pixels)


def _stat_failure(shown: str, exc: Exception) -> tuple[str, str]:
    """Kind and message for a path that cannot even be stat'ed."""
    code = getattr(exc, "errno", None)
    if code == errno.ELOOP:
        return "unreadable", f"{shown}: symbolic link loop"
    if code == errno.ENOTDIR:
        return "missing", f"{shown}: no such file (a parent is not a directory)"
    if isinstance(exc, PermissionError):
        return "unreadable", f"{shown}: permission denied"
    return "unreadable", f"{shown}: cannot read ({getattr(exc, 'strerror', None) or exc})"


def _load(
    fp: BinaryIO, size: int, path: PathArg, shown: str, background: RGB, max_side: int, max_pixels: int
) -> LoadedImage | ImageError:
    """Shared by load_image and load_image_bytes: sniff the content, decode, composite."""
    if size == 0:
        return ImageError(path, "empty", f"{shown}: empty file (0 bytes)")
    try:
        head = fp.read(4096)
        fp.seek(0)
        if head.startswith(_GZIP_MAGIC) or _starts_with_markup(head):
            fmt = "SVG"
            image, width, height = _render_svg(fp, max_side, max_pixels)
        else:
            image, width, height, fmt = _decode_raster(fp, size, head, max_side, max_pixels)
        image, measured = _flatten(image, background, max_side)
    except _Reject as reject:
        return ImageError(path, reject.kind, f"{shown}: {reject.detail}")
    except Image.DecompressionBombError as exc:
        return ImageError(path, "too-large", f"{shown}: refused by Pillow as a possible decompression bomb ({exc})")
    except Exception as exc:  # a bad file must never stop a build
        return ImageError(path, "unreadable", f"{shown}: cannot decode ({type(exc).__name__}: {exc})")
    return LoadedImage(path, image, width, height, fmt, **measured)
