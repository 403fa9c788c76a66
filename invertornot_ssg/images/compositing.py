"""Compositing on the page background, measuring the transparent file first; ink palette; colour parsing."""
from __future__ import annotations

import re

from .._lazy import np
from ..errors import ConfigError
from .loaded import Image, ImageColor, RGB
from .statistics import _centre_crop, _dark_page_shift, _ink_stats, _native_texture, NATIVE_CROP, STATS_SIDE

SOFT_ALPHA = (13, 242)  # visible from 5% opacity; soft up to 95%


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
