"""Shared pieces of the bootstrap set builder: candidates, image loading, normalisation, stats."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageSequence

log = logging.getLogger("bootstrap")

MAX_SIDE = 1024          # cached copies are downscaled to this longest side
MIN_SIDE = 32            # skip images smaller than this (either side)
MAX_BYTES = 20 * 1024 * 1024
RASTER_EXT = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class Candidate:
    """One image to put in the set, before it is loaded."""

    source: str                      # group name, e.g. deb:gnome-backgrounds
    origin: str                      # path inside the package, or generator id
    licence: str
    loader: Callable[[], Image.Image]  # returns a PIL image (RGB or RGBA)
    label: Optional[str] = None      # fixed label from the source category, or None = heuristic
    category: Optional[str] = None
    rule: str = ""                   # rule:<category> name when label is fixed
    heuristic: Optional[str] = None  # name of the figure category used by the heuristic
    photo_like: Optional[str] = None  # category given when the heuristic says keep
    src_bytes_sha1: str = ""
    extra: dict = field(default_factory=dict)


def sha1_bytes(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def sha1_file(path: Path) -> str:
    return sha1_bytes(Path(path).read_bytes())


def path_key(s: str) -> str:
    """Stable sampling key for a path (independent of filesystem order)."""
    return hashlib.sha1(s.encode()).hexdigest()


def sample(paths, n, key=lambda p: str(p)):
    """Deterministic sample: the n items with the smallest hash of their key."""
    items = sorted(paths, key=lambda p: path_key(key(p)))
    return items[:n] if n is not None else items


# ---------------------------------------------------------------- loaders

def load_raster(path: Path) -> Image.Image:
    im = Image.open(path)
    if getattr(im, "is_animated", False):
        im = next(iter(ImageSequence.Iterator(im)))
    im.load()
    return to_rgb_or_rgba(im)


def load_svg(path: Path, width: int = 512) -> Image.Image:
    import resvg_py

    data = resvg_py.svg_to_bytes(svg_path=str(path), width=width, resources_dir=str(Path(path).parent))
    return to_rgb_or_rgba(Image.open(io.BytesIO(bytes(data))))


def load_svg_string(svg: str, width: int = 512) -> Image.Image:
    import resvg_py

    data = resvg_py.svg_to_bytes(svg_string=svg, width=width)
    return to_rgb_or_rgba(Image.open(io.BytesIO(bytes(data))))


def load_pdf_page(path: Path, page: int, dpi: int = 60) -> Image.Image:
    out = subprocess.run(
        ["pdftoppm", "-f", str(page), "-l", str(page), "-r", str(dpi), "-png", str(path)],
        check=True, capture_output=True, timeout=120,
    ).stdout
    return to_rgb_or_rgba(Image.open(io.BytesIO(out)))


def pdf_pages(path: Path) -> int:
    try:
        out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    m = re.search(r"^Pages:\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    """RGBA when the image has any transparency, RGB otherwise."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info) or (
        "transparency" in im.info
    ):
        im = im.convert("RGBA")
        if im.getextrema()[3][0] == 255:
            return im.convert("RGB")
        return im
    if im.mode == "I;16" or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / (hi - lo or 1) * 255
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def normalise(im: Image.Image) -> Image.Image:
    im = to_rgb_or_rgba(im)
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return im


def save(im: Image.Image, dest_stem: Path, prefer_jpeg: bool) -> Path:
    """Save deterministically: JPEG for opaque photo-like sources, PNG otherwise."""
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    if prefer_jpeg and im.mode == "RGB":
        dest = dest_stem.with_suffix(".jpg")
        im.save(dest, "JPEG", quality=90, optimize=True)
    else:
        dest = dest_stem.with_suffix(".png")
        im.save(dest, "PNG", optimize=False, compress_level=6)
    return dest


# ---------------------------------------------------------------- statistics + heuristic

def stats(im: Image.Image) -> dict:
    """Cheap statistics of an image, on a 128 px thumbnail."""
    t = im.copy()
    t.thumbnail((128, 128))
    rgba = np.asarray(t.convert("RGBA"), dtype=np.float64) / 255.0
    a = rgba[..., 3]
    opaque = a > 0.5
    transparent = 1.0 - opaque.mean()
    px = rgba[..., :3][opaque] if opaque.any() else np.zeros((1, 3))
    lum = px @ np.array([0.2126, 0.7152, 0.0722])
    sat = px.max(1) - px.min(1)
    q = (px * 15).round().astype(int)
    ncol = len(np.unique(q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]))
    # share of pixels equal to the most common colour (flat backgrounds)
    _, counts = np.unique(q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2], return_counts=True)
    return {
        "transparent": float(transparent),
        "light": float((lum > 0.86).mean()),
        "dark": float((lum < 0.2).mean()),
        "lum": float(lum.mean()),
        "sat": float(sat.mean()),
        "sat_hi": float((sat > 0.35).mean()),
        "ncol": int(ncol),
        "mode_share": float(counts.max() / counts.sum()),
    }


FIGURES = {"plot", "diagram", "text", "screenshot", "music"}


def guess(st: dict, figure_category: str, photo_category: str = "photo") -> tuple[str, str]:
    """Per-image heuristic for mixed sources -> (category, label). Always verified by eye."""
    if st["transparent"] > 0.25:
        # figures of doc packages saved with a transparent background keep their figure category
        line_cat = figure_category if figure_category in FIGURES else "lineart"
        if st["sat"] < 0.12 and st["lum"] < 0.55:
            return line_cat, "invert"
        if st["light"] > 0.6 and st["sat"] < 0.12:
            return line_cat, "invert"      # white-filled clipart with outlines
        return ("heatmap" if figure_category == "plot" else photo_category if photo_category != "photo" else "icon"), "keep"
    if st["lum"] < 0.3 or st["dark"] > 0.55:
        return "dark", "keep"
    if st["light"] > 0.5 and st["mode_share"] > 0.4 and st["sat_hi"] < 0.3:
        return figure_category, "invert"
    if st["light"] > 0.6 and st["sat"] < 0.15:
        return figure_category, "invert"
    return photo_category, "keep"
