"""Will an image's ink be seen on the dark page? WCAG contrast of what the file draws, as the
stylesheet renders it, against the theme's dark page colour.

A transparent image shows the page between its strokes, so its ink must stand out from the page:
black line art kept as it is vanishes on a dark page (it gets a light backdrop), a white logo
made for dark pages vanishes once inverted (it is not inverted). The measure:

- the ink: the image's colours (images.ink_palette: the commonest, weighted by opacity), on a
  file whose page shows through at least PAGE_SHOWS of its area;
- each colour rendered as the stylesheet renders the image (css.KEEP_FILTER or css.INVERT_FILTER,
  computed as the Filter Effects spec defines those functions, in sRGB);
- its WCAG 2.1 contrast ratio against the page colour; below MIN_CONTRAST (3:1, WCAG's minimum
  for graphics, success criterion 1.4.11) that colour is lost;
- the ink vanishes when at least VANISHES of its weight is lost.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

DEFAULT_DARK_PAGE = "#18181b"  # the labeling rule's dark page (docs/src/labeling.md), for themes whose colour is unknown
METHOD = "light-ink"  # an automatic invert turned to keep: inverted, the image's ink would vanish
MIN_CONTRAST = 3.0
PAGE_SHOWS = 0.10  # share of the image's area the page shows through (mostly transparent pixels)
VANISHES = 0.5

Ink = tuple  # (page share, ((r, g, b, weight), ...)): images.ink_palette's result
_FUNCTION = re.compile(r"([a-z-]+)\(\s*([-+\d.]+)(%|deg)?\s*\)")


def parse_filter(text: str) -> list[tuple[str, float]]:
    """'grayscale(50%) invert(100%) ...' -> [('grayscale', 0.5), ('invert', 1.0), ...] (degrees as given)."""
    return [(name, float(value) / 100 if unit == "%" else float(value)) for name, value, unit in _FUNCTION.findall(text)]


def apply_filter(rgb: Sequence[float], functions: Sequence[tuple[str, float]]) -> tuple[float, float, float]:
    """One colour (sRGB, 0..1) through CSS filter functions, as the Filter Effects spec defines them."""
    return _filtered(*rgb, functions, lambda c: min(max(c, 0.0), 1.0))


def filter_pixels(rgb, functions: Sequence[tuple[str, float]]):
    """apply_filter for a numpy array of colours (last axis: sRGB, 0..1), e.g. an image's pixels."""
    from ._lazy import np

    rgb = np.asarray(rgb, dtype=np.float64)
    channels = _filtered(rgb[..., 0], rgb[..., 1], rgb[..., 2], functions, lambda c: np.clip(c, 0.0, 1.0))
    return np.stack(channels, axis=-1)


def _filtered(r, g, b, functions: Sequence[tuple[str, float]], clamp) -> tuple:
    """The filter functions in order, each result clamped to 0..1; channels are floats or arrays."""
    for name, amount in functions:
        if name == "invert":
            r, g, b = (amount * (1 - c) + (1 - amount) * c for c in (r, g, b))
        elif name == "brightness":
            r, g, b = (c * amount for c in (r, g, b))
        elif name in ("grayscale", "hue-rotate"):
            matrix = _grayscale(amount) if name == "grayscale" else _hue_rotate(amount)
            r, g, b = (row[0] * r + row[1] * g + row[2] * b for row in matrix)
        else:
            raise ValueError(f"filter function {name!r} is not modelled")
        r, g, b = (clamp(c) for c in (r, g, b))
    return r, g, b


def _grayscale(amount: float) -> tuple[tuple[float, float, float], ...]:
    k = 1 - min(max(amount, 0.0), 1.0)
    return ((0.2126 + 0.7874 * k, 0.7152 - 0.7152 * k, 0.0722 - 0.0722 * k),
            (0.2126 - 0.2126 * k, 0.7152 + 0.2848 * k, 0.0722 - 0.0722 * k),
            (0.2126 - 0.2126 * k, 0.7152 - 0.7152 * k, 0.0722 + 0.9278 * k))


def _hue_rotate(degrees: float) -> tuple[tuple[float, float, float], ...]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return ((0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928),
            (0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283),
            (0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072))


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour (0..1 channels)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """WCAG contrast ratio of two sRGB colours, 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def hex_rgb(colour: str) -> tuple[float, float, float]:
    from .images import parse_color

    return tuple(c / 255 for c in parse_color(colour))  # type: ignore[return-value]


def lost_share(ink: Ink | None, page: str, css_filter: str) -> float:
    """The share of the ink (by weight) below MIN_CONTRAST against `page` once `css_filter` applies;
    0 for an image the page does not show through."""
    if not ink or ink[0] < PAGE_SHOWS or not ink[1]:
        return 0.0
    functions, background = parse_filter(css_filter), hex_rgb(page)
    total = sum(w for *_, w in ink[1])
    lost = sum(w for r, g, b, w in ink[1]
               if contrast_ratio(apply_filter((r / 255, g / 255, b / 255), functions), background) < MIN_CONTRAST)
    return lost / total if total > 0 else 0.0


def needs_backdrop(ink: Ink | None, page: str) -> bool:
    """Kept as it is (dimmed), would the image's ink vanish on the dark `page`?"""
    from .css import KEEP_FILTER

    return lost_share(ink, page, KEEP_FILTER) >= VANISHES


def inversion_vanishes(ink: Ink | None, page: str) -> bool:
    """Would the image's ink vanish once inverted, while kept it would not (a white logo)?"""
    from .css import INVERT_FILTER

    return lost_share(ink, page, INVERT_FILTER) >= VANISHES and not needs_backdrop(ink, page)
