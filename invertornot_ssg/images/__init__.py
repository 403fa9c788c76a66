"""Images: open any file safely, composite it on the page background, and describe it (sha1, phash, statistics).

One module per job:

    decoding.py     load_image / load_image_bytes: the entry point; sniff, decode, composite
    loaded.py       LoadedImage, ImageError, error kinds, the pixel limit
    sniffing.py     format by content; why a file failed (wrong format, text, truncated)
    raster.py       Pillow: first frame, upright, 8-bit, downscaled while decoding
    svg.py          resvg: structure checks against hostile files, no external references, rendering
    compositing.py  transparency measured, then composited on the background; ink palette; colours
    statistics.py   STAT_NAMES and image_stats, the head's cheap features
    identity.py     file sha1, perceptual hash
"""
from __future__ import annotations

from .compositing import INK_COLOURS, SOFT_ALPHA, ink_palette, parse_color
from .decoding import load_image, load_image_bytes
from .identity import file_sha1, perceptual_hash, phash_distance
from .loaded import DEFAULT_MAX_PIXELS, ERROR_KINDS, RGB, ImageError, LoadedImage, PathArg
from .sniffing import RASTER_FORMATS
from .statistics import (
    DARK_PAGE,
    EDGE_GRADIENT,
    INK_DARK,
    INK_LIGHT,
    NATIVE_CROP,
    STAT_NAMES,
    STATS_SIDE,
    image_stats,
    mean_hsl_saturation,
)
from .svg import MAX_SVG_BYTES, MAX_SVG_DEPTH, MAX_SVG_ELEMENTS, SVG_STACK_BYTES

__all__ = [
    "DARK_PAGE",
    "DEFAULT_MAX_PIXELS",
    "EDGE_GRADIENT",
    "ERROR_KINDS",
    "INK_COLOURS",
    "INK_DARK",
    "INK_LIGHT",
    "MAX_SVG_BYTES",
    "MAX_SVG_DEPTH",
    "MAX_SVG_ELEMENTS",
    "NATIVE_CROP",
    "RASTER_FORMATS",
    "RGB",
    "SOFT_ALPHA",
    "STATS_SIDE",
    "STAT_NAMES",
    "SVG_STACK_BYTES",
    "ImageError",
    "LoadedImage",
    "PathArg",
    "file_sha1",
    "image_stats",
    "ink_palette",
    "load_image",
    "load_image_bytes",
    "mean_hsl_saturation",
    "parse_color",
    "perceptual_hash",
    "phash_distance",
]
