"""Raster formats through Pillow: first frame, upright, 8-bit RGB(A), downscaled while decoding."""
from __future__ import annotations

import math
import warnings
from typing import BinaryIO

from .._lazy import np
from .loaded import _Reject, ExifTags, Image, ImageOps
from .sniffing import _decode_failure, _sniff_format, _unidentified, RASTER_FORMATS



def _decode_raster(
    fp: BinaryIO, size: int, head: bytes, max_side: int, max_pixels: int
) -> tuple[Image.Image, int, int, str]:
    """Decode the first frame with Pillow; the pixel count is checked from the header first."""
    with warnings.catch_warnings():
        # max_pixels is our limit; Pillow's global one only warns between 1x and 2x its value.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fp)
        except Image.UnidentifiedImageError:
            raise _unidentified(fp, size, head) from None
        except Image.DecompressionBombError:
            raise
        except Exception as exc:  # a recognised header that breaks while being read
            raise _decode_failure(fp, size, _sniff_format(head) or "image", exc) from exc
        # Closed here unless it is what we return: an image already in RGB or RGBA is returned as
        # it is, not copied (~2 ms for a large PNG). Pillow never closes our `fp`.
        try:
            converted = _upright_rgb_or_rgba(im, fp, size, max_side, max_pixels)
        except BaseException:
            im.close()
            raise
        if converted[0] is not im:
            im.close()
        return converted


def _upright_rgb_or_rgba(
    im: Image.Image, fp: BinaryIO, size: int, max_side: int, max_pixels: int
) -> tuple[Image.Image, int, int, str]:
    """The opened image decoded, upright, in RGB or RGBA, with its displayed size and format."""
    if im.format not in RASTER_FORMATS:
        known = ", ".join(sorted(RASTER_FORMATS))
        raise _Reject("unsupported", f"{im.format} files are not supported (only SVG, {known})")
    fmt = "JPEG" if im.format == "MPO" else im.format  # MPO: a camera's multi-picture JPEG
    width, height = im.size
    if width * height > max_pixels:
        raise _Reject(
            "too-large",
            f"{width}x{height} {fmt} has {width * height / 1e6:.0f} megapixels, over the"
            f" {max_pixels / 1e6:g}-megapixel limit (a decompression bomb?)",
        )
    fitted = _fitted_size(width, height, max_side)
    if fmt == "JPEG" and fitted != (width, height):
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale, the smallest still covering the fitted size
        im.draft("RGB", fitted)
    try:
        im.load()
    except Image.DecompressionBombError:
        raise
    except Exception as exc:
        raise _decode_failure(fp, size, fmt, exc) from exc
    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):  # stored a quarter turn from how it is displayed
        width, height = height, width
    upright = ImageOps.exif_transpose(im) if orientation != 1 else im
    return _to_rgb_or_rgba(upright), width, height, fmt


def _fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size of an image scaled down (never up) to fit max_side, keeping its aspect ratio."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 if absent)."""
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a damaged EXIF block should not cost the image itself
        return 1


def _to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB, or RGBA when it has transparency."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _to_8bit(im)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    target = "RGBA" if has_alpha else "RGB"
    if im.mode == target:
        return im  # not a copy: the caller owns it
    try:
        return im.convert(target)
    except ValueError as exc:
        raise _Reject("unsupported", f"colour mode {im.mode} is not supported ({exc})") from exc


def _to_8bit(im: Image.Image) -> Image.Image:
    """High-bit-depth greyscale to 8-bit by scaling (Pillow's convert would clip at 255)."""
    values = np.asarray(im).astype(np.float64)
    top = float(values.max()) if values.size else 0.0
    if im.mode.startswith("I;16"):
        top = 65535.0  # the bit depth, not the brightest pixel: a dark image stays dark
    elif im.mode == "F" and top <= 1.0:
        top = 1.0
    elif top <= 255:
        top = 255.0
    elif top <= 65535:
        top = 65535.0
    scaled = np.clip(values * (255.0 / max(top, 1e-12)), 0, 255)
    return Image.fromarray(np.round(scaled).astype(np.uint8), "L")
