"""Format sniffing from the first bytes, and why a file failed: wrong format, text, or truncated."""
from __future__ import annotations

import struct
from typing import BinaryIO

from .loaded import _Reject, Image

# What Pillow may decode: web formats. Others (EPS would run Ghostscript) are 'unsupported'.
RASTER_FORMATS = frozenset({"PNG", "JPEG", "MPO", "GIF", "WEBP", "AVIF", "BMP", "ICO", "TIFF"})
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
_ISO_BMFF_BRANDS = {  # ISO-BMFF brands (bytes 8..12): of these, Pillow reads AVIF (from 11.2)
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}


def _sniff_format(head: bytes) -> str | None:
    """The raster format named by the file's magic bytes, if one we know."""
    for magic, fmt in _SIGNATURES:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _unidentified(fp: BinaryIO, size: int, head: bytes) -> _Reject:
    """Why Pillow found no image: a broken header, a format it cannot read, or no image at all."""
    fmt = _sniff_format(head)
    if fmt:
        return _truncation(fp, size, fmt) or _Reject("unreadable", f"corrupt {fmt} header")
    if head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS:
        fmt = _ISO_BMFF_BRANDS[head[8:12]]
        if fmt in RASTER_FORMATS and _pillow_opens(fmt):  # a file Pillow would read, were it whole
            return _Reject("unreadable", f"corrupt or truncated {fmt} file (no decodable image in it)")
        return _Reject("unsupported", f"{fmt} images are not supported")
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
        return _Reject("unsupported", "JPEG XL images are not supported")
    if head.startswith(b"%PDF"):
        return _Reject("not-an-image", "a PDF document, not an image")
    if _is_text(head):
        return _Reject("not-an-image", f"text, not an image (starts {head[:24].decode('utf-8', 'replace')!r})")
    return _Reject("not-an-image", f"not a recognised image format (starts with bytes {head[:8].hex(' ')})")


def _pillow_opens(fmt: str) -> bool:
    """Whether this Pillow has a plugin that opens `fmt` (AVIF needs Pillow 11.2 with libavif)."""
    Image.init()
    return fmt in Image.OPEN


def _is_text(head: bytes) -> bool:
    """True when the bytes look like UTF-8 text (a character cut at the end is allowed)."""
    text = head[:512].decode("utf-8", "replace").rstrip("\ufffd")
    return bool(text) and "\ufffd" not in text and all(c.isprintable() or c in "\t\r\n\f" for c in text)


def _decode_failure(fp: BinaryIO, size: int, fmt: str, exc: Exception) -> _Reject:
    """Classify a decoder error: a file that ends early, or corrupt data."""
    truncated = _truncation(fp, size, fmt)
    if truncated:
        return truncated
    if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
        return _Reject("truncated", f"truncated {fmt} (image data ends early: {exc})")
    return _Reject("unreadable", f"corrupt {fmt} data ({type(exc).__name__}: {exc})")


def _truncation(fp: BinaryIO, size: int, fmt: str) -> _Reject | None:
    """A 'truncated' rejection when the file lacks the end its format requires, else None."""
    if fmt == "PNG":
        return _png_truncation(fp, size)
    fp.seek(max(0, size - 32))
    tail = fp.read()
    fp.seek(0)
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return _Reject("truncated", f"truncated JPEG (file ends after {size} bytes, with no end-of-image marker)")
    if fmt == "GIF" and not tail.rstrip(b"\0").endswith(b";"):
        return _Reject("truncated", f"truncated GIF (file ends after {size} bytes, without the trailer)")
    if fmt == "WEBP":
        declared = int.from_bytes(fp.read(8)[4:8], "little") + 8
        fp.seek(0)
        if declared > size:
            return _Reject("truncated", f"truncated WebP (file ends after {size} of {declared} bytes)")
    return None


def _png_truncation(fp: BinaryIO, size: int) -> _Reject | None:
    """Walk the PNG chunk headers: truncated if one runs past the end or IEND never comes."""
    pos = 8
    while pos + 8 <= size:
        fp.seek(pos)
        length, kind = struct.unpack(">I4s", fp.read(8))
        if kind == b"IEND":
            return None
        end = pos + 12 + length
        if end > size:
            name = kind.decode("ascii", "replace")
            detail = f"file ends after {size} of at least {end} bytes, inside the {name} chunk"
            return _Reject("truncated", f"truncated PNG ({detail})")
        pos = end
    return _Reject("truncated", f"truncated PNG (file ends after {size} bytes, before the IEND chunk)")
