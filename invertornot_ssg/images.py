"""Open any image file safely: composite on the page background; sha1, phash, cheap statistics."""
from __future__ import annotations

import base64
import errno
import hashlib
import io
import math
import os
import re
import stat
import struct
import threading
import warnings
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

from ._lazy import LazyModule, np
from .errors import ConfigError, shorten

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
MAX_SVG_BYTES = 32 * 1024 * 1024  # an SVG (or decompressed SVGZ) is parsed whole in memory
# resvg recurses in native code, ~32 KB of stack per level of nesting, counting each reference
# (<use>, mask, clip-path, pattern, marker, filter) as a level: 250 levels overflow a thread's
# default 8 MiB stack and kill the process (SIGSEGV). Files nested deeper than MAX_SVG_DEPTH are
# refused; the rest render in a thread with SVG_STACK_BYTES of stack (reserved, touched only as used).
MAX_SVG_DEPTH = 256
MAX_SVG_ELEMENTS = 200_000  # after expanding references: a <use> fan-out multiplies elements
SVG_STACK_BYTES = 64 * 1024 * 1024
STATS_SIDE = 128  # image_stats works on a copy this small: 2 to 3 ms
NATIVE_CROP = 256  # the native_* statistics look at a centre crop this large, before any downscale

STAT_NAMES: tuple[str, ...] = (
    *(f"lum_hist_{i}" for i in range(8)),  # luminance histogram, fractions of pixels
    "near_white",  # luminance > 0.9
    "near_black",  # luminance < 0.1
    "mean_luminance",
    "mean_saturation",  # HSL saturation
    "transparency",  # fraction of pixels not fully opaque in the file
    "log_colors",  # log2(distinct colours at 4 bits per channel) / 12, in [0, 1]
    "edge_density",  # fraction of pixels with a luminance gradient above 0.1
    # What the file itself draws, weighted by opacity, before any page shows through: dark
    # strokes on a transparent background vanish on a dark page (invert), light ones do not (keep).
    # The same as the composited figures for an opaque image.
    "ink_luminance",  # mean luminance of the drawn pixels
    "ink_dark",  # fraction of opaque pixels with luminance < 0.4
    "ink_light",  # fraction of opaque pixels with luminance > 0.7
    # Drawn or photographed: figures are flat areas of few colours with sharp steps between them;
    # photographs and paintings change a little everywhere (shading, texture, sensor noise).
    "flat",  # fraction of neighbouring pixels with the same colour
    "near_flat",  # ... differing by at most 2 levels in every channel
    "soft_steps",  # ... differing by 3 to 24 levels at most
    "hard_steps",  # ... differing by more than 64 levels somewhere
    "top_color",  # fraction of pixels in the commonest colour (4 bits per channel): the background
    "top8_colors",  # ... in the 8 commonest
    "top32_colors",  # ... in the 32 commonest
    "border_luminance",  # mean luminance of the outer twentieth: the page a figure sits on
    "border_spread",  # its standard deviation
    "colorfulness",  # Hasler and Suesstrunk's measure, on [0, 1] channels
    *(f"sat_hist_{i}" for i in range(4)),  # HSL saturation histogram, fractions of pixels
    "lum_spread",  # standard deviation of luminance
    "lum_entropy",  # entropy of a 64-bin luminance histogram / 6 bits, in [0, 1]
    # What the file is: cameras write JPEG; SVG is always drawn; photographs tend to be large.
    "is_jpeg",
    "is_svg",
    "log_pixels",  # log2(width * height) / 24 of the file
    "log_aspect",  # log2(width / height)
    # The neighbour steps again, on a centre crop at the resolution the file was decoded (JPEGs at
    # 1/2 to 1/8 scale), before the downscale that averages a camera's noise away and blurs a
    # drawing's sharp edges.
    "native_flat",
    "native_near_flat",
    "native_soft_steps",
    "native_hard_steps",
    "native_fine_steps",  # ... differing by 1 to 3 levels: sensor or compression noise
    # Of the pixels a transparent file draws, the share only partly opaque, at its own resolution:
    # anti-aliased edges of line art and symbolic icons are a thin rim; the soft shadows and glows
    # of shaded icons and clipart (keep) are wide.
    "soft_alpha",
    # How a transparent file changes when the page behind it turns from white to dark (#18181b),
    # kept as it is: black line art fades into a dark page (invert), light strokes and glows stand
    # out on it (keep). Zero for an opaque file, which looks the same on any page.
    "dark_page_edges",  # change in the fraction of pixels with a luminance gradient above 0.1
    "dark_page_luminance",  # change in mean luminance
    "dark_page_light",  # change in the fraction of pixels with luminance above 0.7
    "dark_page_contrast",  # change in the mean luminance gradient
)
INK_DARK, INK_LIGHT = 0.4, 0.7
EDGE_GRADIENT = 0.1  # a luminance step this large between neighbours is an edge
DARK_PAGE = (24, 24, 27)  # #18181b, the dark page of the labeling rule (docs/src/labeling.md)
SOFT_ALPHA = (13, 242)  # visible from 5% opacity; soft up to 95%

# What Pillow may decode: web formats. Others (EPS would run Ghostscript) are 'unsupported'.
RASTER_FORMATS = frozenset({"PNG", "JPEG", "MPO", "GIF", "WEBP", "AVIF", "BMP", "ICO", "TIFF"})
_SVG_NS = "{http://www.w3.org/2000/svg}"
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")
_SAFE_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|gif|webp)(;[^,]*)?,", re.IGNORECASE)
_SVG_UNITS = {  # CSS pixels per unit at 96 dpi; em and ex at resvg's default 16 px font
    "": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0,
    "em": 16.0, "ex": 8.0,
}
_URL_REFERENCE = re.compile(r"url\(\s*['\"]?#([^)'\"\s]+)")
# Elements a reference to which renders nothing nested (a gradient's children are its stops).
_FLAT_TARGETS = frozenset({"linearGradient", "radialGradient", "stop"})
_LINKS = frozenset({"a", "animate", "animateMotion", "animateTransform", "set", "script", "discard", "view"})
_SVG_LENGTH = re.compile(r"\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex|%)?\s*")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_GZIP_MAGIC = b"\x1f\x8b"
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L"
_DARK_PAGE_LUMINANCE = sum(w * c for w, c in zip(_LUMA, DARK_PAGE)) / 255.0


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


def _shown(path: PathArg) -> str:
    """The path as text for messages; undecodable bytes appear as backslash escapes."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- raster formats (Pillow) ---------------------------------------------------------------


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


def _flatten(im: Image.Image, background: RGB, max_side: int) -> tuple[Image.Image, dict]:
    """Measure transparency and the native texture, downscale, describe the ink, composite on the
    background: what a reader sees. Returns it with the measurements of the file (LoadedImage's
    fields from `transparency` on)."""
    measured = {"transparency": 0.0,
                "texture": _native_texture(_composited(_centre_crop(im, NATIVE_CROP), background))}
    if im.mode == "RGBA":
        alpha = np.asarray(im.getchannel("A"))
        measured["transparency"] = float(np.count_nonzero(alpha < 255)) / alpha.size
        visible = alpha >= SOFT_ALPHA[0]
        soft = np.count_nonzero(visible & (alpha <= SOFT_ALPHA[1]))
        measured["soft_alpha"] = float(soft) / max(int(np.count_nonzero(visible)), 1)
    im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    if im.mode == "RGBA":
        small = im.copy()
        small.thumbnail((STATS_SIDE, STATS_SIDE), Image.Resampling.BOX)  # Pillow resamples RGBA premultiplied
        pixels = np.asarray(small, dtype=np.float32) / 255.0
        measured["ink"] = _ink_stats(pixels)
        measured["dark_page"] = _dark_page_shift(pixels)
        measured["ink_palette"] = ink_palette(pixels)
        im = _composited(im, background)
    return im, measured


INK_COLOURS = 12  # ink_palette keeps this many colours


def ink_palette(pixels: np.ndarray) -> tuple:
    """What a transparent file draws, for the legibility measure (contrast.py), not the head:
    (share of pixels the page shows through, ((r, g, b, weight), ...)) with the commonest colours
    at 4 bits per channel, each the opacity-weighted mean of its pixels (0..255), weight its share
    of all opacity. RGBA `pixels` in [0, 1], un-composited (Pillow resamples RGBA premultiplied,
    so a thin line keeps its colour and loses opacity)."""
    alpha = pixels[..., 3].ravel()
    rgb = pixels[..., :3].reshape(-1, 3)
    page = float(np.count_nonzero(alpha < 0.5)) / max(alpha.size, 1)
    total = float(alpha.sum())
    if total < 1e-6:
        return round(page, 4), ()
    codes = (np.minimum(rgb * 16, 15).astype(np.int32) @ np.array([256, 16, 1], dtype=np.int32))
    weight = np.bincount(codes, weights=alpha, minlength=4096)
    colours = []
    for code in np.argsort(weight)[::-1][:INK_COLOURS]:
        if weight[code] <= 0:
            break
        mask = codes == code
        mean = (rgb[mask] * alpha[mask, None]).sum(axis=0) / weight[code]
        colours.append((*(int(round(c * 255)) for c in mean), round(float(weight[code]) / total, 4)))
    return round(page, 4), tuple(colours)


def _composited(im: Image.Image, background: RGB) -> Image.Image:
    """An RGBA image on the page colour, as RGB; an RGB image as it is."""
    if im.mode != "RGBA":
        return im
    page = Image.new("RGBA", im.size, (*background, 255))
    return Image.alpha_composite(page, im).convert("RGB")


def _centre_crop(im: Image.Image, side: int) -> Image.Image:
    width, height = im.size
    if width <= side and height <= side:
        return im
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    return im.crop((left, top, left + min(side, width), top + min(side, height)))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel luminance of an (..., 3) float array in [0, 1]."""
    return rgb @ np.asarray(_LUMA, dtype=np.float32)


def _ink_stats(pixels: np.ndarray) -> tuple[float, float, float]:
    """ink_luminance, ink_dark, ink_light of RGBA pixels in [0, 1]: weighted by opacity."""
    alpha = pixels[..., 3]
    weight = float(alpha.sum())
    if weight < 1e-6:  # draws nothing: only the page shows, as with a light figure
        return 1.0, 0.0, 0.0
    luminance = _luminance(pixels[..., :3])
    opaque = alpha >= 0.5
    count = max(int(np.count_nonzero(opaque)), 1)
    return (
        float((luminance * alpha).sum() / weight),
        float(np.count_nonzero(opaque & (luminance < INK_DARK)) / count),
        float(np.count_nonzero(opaque & (luminance > INK_LIGHT)) / count),
    )


def _dark_page_shift(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """The dark_page_* statistics of RGBA pixels in [0, 1]: each measure on a dark page less the
    same on a white one, with the transparent parts showing the page."""
    alpha, luminance = pixels[..., 3], _luminance(pixels[..., :3])
    on_white, on_dark = (_page_measures(alpha * luminance + (1.0 - alpha) * page)
                         for page in (1.0, _DARK_PAGE_LUMINANCE))
    return tuple(d - w for w, d in zip(on_white, on_dark))


def _page_measures(shown: np.ndarray) -> tuple[float, float, float, float]:
    """Edge share (as edge_density), mean luminance, light share (as ink_light) and mean gradient
    of a luminance image."""
    gradient = _gradient(shown)
    edges, contrast = 0.0, 0.0  # a row or a column of pixels has no neighbours to step to
    if gradient.size:
        edges, contrast = float((gradient > EDGE_GRADIENT).mean()), float(gradient.mean())
    return edges, float(shown.mean()), float((shown > INK_LIGHT).mean()), contrast


def _gradient(luminance: np.ndarray) -> np.ndarray:
    """Magnitude of the step to the right and lower neighbours, one pixel short on each axis."""
    return np.hypot(np.diff(luminance, axis=1)[:-1, :], np.diff(luminance, axis=0)[:, :-1])


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


# --- SVG (resvg) ---------------------------------------------------------------------------


def _starts_with_markup(head: bytes) -> bool:
    """True when the content starts like XML or HTML (after a byte-order mark and whitespace)."""
    return _as_text(head).lstrip("\ufeff \t\r\n").startswith("<")


def _as_text(data: bytes) -> str:
    """Bytes to text for sniffing only (the XML parser decodes for real)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "ignore")
    return data.decode("utf-8", "ignore")


def _render_svg(fp: BinaryIO, max_side: int, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Rasterize an SVG or SVGZ with resvg, fitted within max_side, with no external resources."""
    try:
        import resvg_py  # imported on first SVG: many builds have none
    except ImportError:
        raise _Reject("unsupported", "SVG needs the resvg-py package (pip install resvg-py)") from None
    data = fp.read(MAX_SVG_BYTES + 1)
    if len(data) > MAX_SVG_BYTES:
        raise _Reject("too-large", f"SVG larger than {MAX_SVG_BYTES // 2**20} MiB")
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    root_tag = _root_tag(data)
    if root_tag is None:
        raise _Reject("not-an-image", "markup without any element, not an image")
    if root_tag.lower() == "html":
        raise _Reject("not-an-image", "an HTML page, not an image")
    if root_tag.rpartition(":")[2].lower() != "svg":
        raise _Reject("not-an-image", f"markup with root <{root_tag}>, not an SVG image")
    try:
        # expat never fetches external entities or DTDs and caps entity expansion.
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _Reject("svg-error", f"invalid SVG ({exc})") from None
    if root.tag not in (f"{_SVG_NS}svg", "svg"):
        raise _Reject("not-an-image", f"XML with root <{root.tag}>, not an SVG")
    _drop_external_references(root, max_pixels)
    _check_structure(root)
    declared = _svg_size(root)
    if declared:
        scale = min(1.0, max_side / max(declared))
        box = (max(1, round(declared[0] * scale)), max(1, round(declared[1] * scale)))
    else:
        box = (max_side, max_side)  # no usable size: resvg fits its default into this box
    # Always pass a box: without one resvg allocates the declared size and aborts the process.
    png = _rasterize(resvg_py, ET.tostring(root, encoding="unicode"), box)
    image = Image.open(io.BytesIO(png))
    image.load()
    width, height = (max(1, round(declared[0])), max(1, round(declared[1]))) if declared else image.size
    return image.convert("RGBA"), width, height


def _rasterize(resvg_py: Any, svg: str, box: tuple[int, int]) -> bytes:
    """resvg's PNG of `svg`, rendered in a thread with a large stack (see MAX_SVG_DEPTH)."""
    outcome: list = []

    def render() -> None:
        try:
            outcome.append(resvg_py.svg_to_bytes(svg_string=svg, width=box[0], height=box[1], dpi=96.0))
        except BaseException as exc:  # pyo3 turns a Rust panic into PanicException, a BaseException
            outcome.append(exc)

    with _STACK_SIZE_LOCK:  # the stack size is process-wide: set it only for this thread's start
        previous = threading.stack_size(SVG_STACK_BYTES)
        try:
            worker = threading.Thread(target=render, name="invertornot-svg", daemon=True)
            worker.start()
        finally:
            threading.stack_size(previous)
    worker.join()
    result = outcome[0]
    if isinstance(result, ValueError):
        raise _Reject("svg-error", f"SVG cannot be rendered ({shorten(str(result))})")
    if isinstance(result, BaseException):
        raise _Reject("svg-error", f"SVG renderer failed ({type(result).__name__}: {shorten(str(result))})")
    return result


_STACK_SIZE_LOCK = threading.Lock()


def _check_structure(root: ET.Element) -> None:
    """Refuse an SVG nested deeper than MAX_SVG_DEPTH or larger than MAX_SVG_ELEMENTS once its
    references are followed, and one whose references form a loop: what would overflow resvg's
    stack or run it out of time. Iterative: Python's own recursion limit is ~1,000."""
    by_id: dict[str, ET.Element] = {}
    stylesheet_targets: list[str] = []
    count = 0
    for element in root.iter():
        count += 1
        if count > MAX_SVG_ELEMENTS:
            raise _Reject("svg-error", f"SVG with more than {MAX_SVG_ELEMENTS:,} elements")
        element_id = element.get("id")
        if element_id is not None:
            by_id.setdefault(element_id, element)
        if _local_name(element.tag) == "style" and element.text:
            stylesheet_targets += _URL_REFERENCE.findall(element.text)

    def children(element: ET.Element) -> list[ET.Element]:
        """The element's children, then what it references (each reference is a level in resvg)."""
        found = list(element)
        for name, value in element.attrib.items():
            if name in _HREFS and _local_name(element.tag) in _LINKS:
                continue  # a hyperlink or an animation's target: nothing is drawn through it
            if name in _HREFS:
                targets = [value.strip()[1:]] if value.strip().startswith("#") else []
            else:
                targets = _URL_REFERENCE.findall(value) if "url(" in value else []
            found += [by_id[t] for t in targets if t in by_id]
        return found

    # Depth-first, post-order: depth[e] and size[e] count e and everything it draws.
    depth: dict[ET.Element, int] = {}
    size: dict[ET.Element, int] = {}
    on_path: set[ET.Element] = set()
    stack: list[tuple[ET.Element, list[ET.Element] | None]] = [(root, None)]
    while stack:
        element, kids = stack.pop()
        if kids is None:  # first visit: come back once its children are done
            if element in depth:
                continue
            kids = children(element)
            on_path.add(element)
            stack.append((element, kids))
            for kid in kids:
                if kid in on_path:
                    raise _Reject("svg-error", f"SVG whose references form a loop (through <{_local_name(kid.tag)}>)")
                if kid not in depth:
                    stack.append((kid, None))
            continue
        on_path.discard(element)
        depth[element] = 1 + max((depth[k] for k in kids), default=0)
        size[element] = min(1 + sum(size[k] for k in kids), MAX_SVG_ELEMENTS + 1)
        if depth[element] > MAX_SVG_DEPTH:
            raise _Reject("svg-error", f"SVG nested more than {MAX_SVG_DEPTH} levels deep (counting references)")
        if size[element] > MAX_SVG_ELEMENTS:
            raise _Reject("svg-error", f"SVG with more than {MAX_SVG_ELEMENTS:,} elements once references are followed")
    # A stylesheet's url(#id) may apply to any element: a bound, each target counted once.
    nested = [by_id[t] for t in dict.fromkeys(stylesheet_targets) if t in by_id]
    extra = sum(depth.get(t, 0) for t in nested if _local_name(t.tag) not in _FLAT_TARGETS)
    if depth[root] + extra > MAX_SVG_DEPTH:
        raise _Reject("svg-error", f"SVG nested more than {MAX_SVG_DEPTH} levels deep (counting references)")


def _local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _gunzip(data: bytes) -> bytes:
    """Decompress SVGZ, refusing more than MAX_SVG_BYTES of output (a gzip bomb)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_SVG_BYTES + 1)
    except zlib.error as exc:
        raise _Reject("not-an-image", f"corrupt gzip data, not an SVGZ image ({exc})") from None
    if len(out) > MAX_SVG_BYTES:
        raise _Reject("too-large", f"SVGZ expands to more than {MAX_SVG_BYTES // 2**20} MiB")
    if not inflater.eof:
        raise _Reject("truncated", f"truncated SVGZ (gzip stream ends early after {len(data)} bytes)")
    if not _starts_with_markup(out[:4096]):
        raise _Reject("not-an-image", "gzip-compressed data, not an SVGZ image")
    return out


def _root_tag(data: bytes) -> str | None:
    """The name of the first element, skipping the XML declaration, comments and DOCTYPE."""
    match = _ELEMENT.search(_COMMENT.sub("", _as_text(data[:65536])))
    return match.group(1) if match else None


def _drop_external_references(root: ET.Element, max_pixels: int) -> None:
    """Remove every href except same-document '#id' and embedded raster images of sane size."""
    for element in root.iter():
        for attr in _HREFS:
            value = element.get(attr)
            if value is not None and not _safe_href(value.strip(), max_pixels):
                del element.attrib[attr]


def _safe_href(value: str, max_pixels: int) -> bool:
    """True for '#id' and for a base64 data: PNG/JPEG/GIF/WebP whose header fits max_pixels."""
    if value.startswith("#"):
        return True
    match = _SAFE_DATA_URI.match(value)
    if not match or "base64" not in (match.group(2) or "").lower():
        return False  # files, URLs, nested SVG (it could reference files), percent-encoded data
    try:
        raw = base64.b64decode(value[match.end():])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as embedded:
                width, height = embedded.size
    except Exception:  # undecodable or not an image: resvg would skip it anyway
        return False
    return width * height <= max_pixels  # resvg would decode it at full size


def _svg_size(root: ET.Element) -> tuple[float, float] | None:
    """The SVG's declared size in CSS pixels from width, height and viewBox; None if unusable."""
    view_box = _view_box(root.get("viewBox"))
    if not view_box:
        width, height = _svg_length(root.get("width"), None), _svg_length(root.get("height"), None)
        return (width, height) if width and height else None
    width, height = _svg_length(root.get("width"), view_box[0]), _svg_length(root.get("height"), view_box[1])
    aspect = view_box[0] / view_box[1]
    if width and not height:  # one dimension given: the other follows the viewBox, as in browsers
        height = width / aspect
    elif height and not width:
        width = height * aspect
    elif not width and not height:
        width, height = view_box
    return (width, height) if np.isfinite(width) and np.isfinite(height) else None


def _view_box(text: str | None) -> tuple[float, float] | None:
    """Width and height of a 'min-x min-y width height' viewBox, if valid."""
    try:
        parts = [float(p) for p in re.split(r"[\s,]+", (text or "").strip())]
    except ValueError:
        return None
    if len(parts) != 4 or not all(np.isfinite(parts)) or parts[2] <= 0 or parts[3] <= 0:
        return None
    return parts[2], parts[3]


def _svg_length(text: str | None, reference: float | None) -> float | None:
    """An SVG length in CSS pixels (96 dpi), None if absent or invalid; percentages need a viewBox."""
    match = _SVG_LENGTH.fullmatch(text or "")
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or ""
    if unit == "%":
        value = number / 100 * reference if reference else None
    else:
        value = number * _SVG_UNITS[unit]
    return value if value is not None and 0 < value < float("inf") else None


# --- identity and statistics ---------------------------------------------------------------


def file_sha1(path: PathArg) -> str:
    """SHA-1 hex digest of the file's bytes, read in chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """imagehash's DCT perceptual hash, as hex (16 characters)."""
    import imagehash  # imported when an image is described, not by every build

    return str(imagehash.phash(image))


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two perceptual hashes in hex."""
    if len(a) != len(b):
        raise ValueError(f"perceptual hashes differ in length: {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()


_HEX_COLOR = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_color(text: str) -> RGB:
    """'#fff', '#ffffff' or a colour name like 'white' to an (r, g, b) tuple; ConfigError if invalid."""
    text = str(text).strip()
    # Every engine parses its background: hex colours (the default among them) without Pillow.
    hex_color = _HEX_COLOR.fullmatch(text)
    if hex_color:
        digits = hex_color.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    try:
        red, green, blue = ImageColor.getcolor(text, "RGB")
    except ValueError:
        raise ConfigError(f"invalid colour {text!r}: expected '#rgb', '#rrggbb' or a name like 'white'") from None
    return red, green, blue


def mean_hsl_saturation(rgb_image: Image.Image) -> float:
    """Mean HSL saturation of an image's pixels, in [0, 1]."""
    rgb = np.asarray(rgb_image.convert("RGB"), dtype=np.float32) / 255.0
    return float(_hsl_saturation(rgb).mean()) if rgb.size else 0.0


def _hsl_saturation(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel HSL saturation of an (..., 3) float array in [0, 1]."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = _largest_channel(rgb)
    low = np.minimum(np.minimum(red, green), blue)
    spread = high - low
    denominator = 1.0 - np.abs(high + low - 1.0)  # 1 - |2L - 1|
    return np.divide(spread, denominator, out=np.zeros_like(spread), where=spread > 1e-6)


def image_stats(loaded: LoadedImage) -> np.ndarray:
    """Cheap statistics (see STAT_NAMES) computed on a small copy of the composited image."""
    image = loaded.image.convert("RGB")
    factor = -(-max(image.size) // STATS_SIDE)  # ceiling division
    pixels = np.asarray(image.reduce(factor) if factor > 1 else image)  # box average: fast, no aliasing
    rgb = pixels.astype(np.float32) / 255.0
    luminance = _luminance(rgb)
    fine_histogram = _histogram(luminance, 64)
    histogram = fine_histogram.reshape(8, 8).sum(axis=1)
    quantised = pixels >> 4  # 4 bits per channel, so noise does not count as colours
    codes = quantised.astype(np.int32) @ np.array([256, 16, 1], dtype=np.int32)
    color_counts = np.bincount(codes.ravel(), minlength=4096)
    colors = np.count_nonzero(color_counts)
    gradient = _gradient(luminance)
    edges = float((gradient > EDGE_GRADIENT).mean()) if gradient.size else 0.0
    saturation = _hsl_saturation(rgb)
    commonest = np.sort(color_counts)[::-1] / codes.size
    occupied = fine_histogram[fine_histogram > 0]
    width, height = max(loaded.width, 1), max(loaded.height, 1)
    values = [
        *histogram,
        (luminance > 0.9).mean(),
        (luminance < 0.1).mean(),
        luminance.mean(),
        saturation.mean(),
        loaded.transparency,
        np.log2(colors) / 12.0,
        edges,
        *(loaded.ink or (luminance.mean(), (luminance < INK_DARK).mean(), (luminance > INK_LIGHT).mean())),
        *_neighbour_steps(pixels),
        commonest[0], commonest[:8].sum(), commonest[:32].sum(),
        *_border(luminance),
        _colorfulness(rgb),
        *_histogram(saturation, 4),
        luminance.std(),
        -(occupied * np.log2(occupied)).sum() / 6.0,
        loaded.format == "JPEG",  # a camera's MPO is read as JPEG
        loaded.format == "SVG",
        np.log2(width * height) / 24.0,
        np.log2(width / height),
        *(loaded.texture or _native_texture(_centre_crop(image, NATIVE_CROP))),
        loaded.soft_alpha,
        *(loaded.dark_page or (0.0, 0.0, 0.0, 0.0)),
    ]
    return np.asarray(values, dtype=np.float32)


def _histogram(values: np.ndarray, bins: int) -> np.ndarray:
    """Fractions of `values` (in [0, 1]) in equal bins; 1.0 falls in the last. np.histogram, faster."""
    index = np.minimum((values * bins).astype(np.intp), bins - 1)
    return np.bincount(index.ravel(), minlength=bins) / max(values.size, 1)


def _neighbour_steps(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """flat, near_flat, soft_steps, hard_steps: how much a pixel differs from its right and lower
    neighbours (the largest difference over the channels, in 8-bit levels)."""
    return _step_shares(_channel_steps(pixels))[:4]


def _native_texture(image: Image.Image) -> tuple[float, float, float, float, float]:
    """The native_* statistics of an RGB image (a crop at the decoded resolution)."""
    return _step_shares(_channel_steps(np.asarray(image.convert("RGB"))))


def _channel_steps(pixels: np.ndarray) -> np.ndarray:
    signed = pixels.astype(np.int16)
    return np.concatenate([_largest_channel(np.abs(np.diff(signed, axis=1))).ravel(),
                           _largest_channel(np.abs(np.diff(signed, axis=0))).ravel()])


def _step_shares(steps: np.ndarray) -> tuple[float, float, float, float, float]:
    """Shares of steps: none, at most 2, 3 to 24, over 64, and 1 to 3 levels."""
    if not steps.size:  # one pixel: nothing changes
        return 1.0, 1.0, 0.0, 0.0, 0.0
    return (float((steps == 0).mean()), float((steps <= 2).mean()),
            float(((steps > 2) & (steps <= 24)).mean()), float((steps > 64).mean()),
            float(((steps >= 1) & (steps <= 3)).mean()))


def _largest_channel(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(values[..., 0], values[..., 1]), values[..., 2])  # faster than max(axis=-1)


def _border(luminance: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the luminance of the outer twentieth of each side."""
    side = max(1, min(luminance.shape) // 20)
    ring = np.concatenate([luminance[:side].ravel(), luminance[-side:].ravel(),
                           luminance[:, :side].ravel(), luminance[:, -side:].ravel()])
    return float(ring.mean()), float(ring.std())


def _colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003): spread and mean of two opponent colour axes."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red_green, yellow_blue = red - green, 0.5 * (red + green) - blue
    return float(np.hypot(red_green.std(), yellow_blue.std()) + 0.3 * np.hypot(red_green.mean(), yellow_blue.mean()))
