"""`invertornot-ssg map`: every image of a site on one picture, similar images side by side.

The layout is maplayout's gridded t-SNE. Each tile shows the image as a reader sees it in the
site's dark mode: on the dark page colour, through the stylesheet's filter (css.INVERT_FILTER
when the decision inverts, css.KEEP_FILTER when it keeps), and a kept transparent image whose
ink would vanish on the page on the light backdrop (contrast.needs_backdrop), as the stylesheet
does. A frame
says how the image was decided (maplayout.CATEGORIES); a legend under the grid counts them.
An image that cannot be read is a grey tile.
"""
from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import contrast
from ._lazy import np
from .cpus import usable_cpus
from .css import INVERT_FILTER, KEEP_FILTER, backdrop_enabled
from .errors import ConfigError
from .images import ink_palette, parse_color
from .maplayout import CATEGORIES, SiteMap, category, shows_inverted, site_map
from .reviewsite import decode_rgba
from .settings import Settings

TILE = 48  # px per cell
FRAME = 3  # px of the decision's colour around each tile
GAP = 1  # px between cells
UNREADABLE = (128, 128, 128)
# Frame colours: the review page's (review.css) where it has one.
COLOURS = {
    "invert": (96, 165, 250), "keep": (113, 113, 122), "human": (34, 197, 94),
    "unsure": (250, 204, 21), "novel": (236, 72, 153),
}
LEGEND = {
    "invert": "invert (model)", "keep": "keep (model)", "human": "a person's label",
    "unsure": "unsure (kept)", "novel": "novel (unlike the labeled images)",
}
RGB = tuple


def reader_view(image: Any, invert: bool, page: RGB, backdrop: RGB | None, side: int) -> Any:
    """`image` (RGBA or RGB, at most `side` px) as the dark page shows it, centred on a `side`-px
    square of the page colour; None (unreadable) gives a grey square."""
    from PIL import Image

    canvas = Image.new("RGB", (side, side), page)
    if image is None:
        canvas.paste(UNREADABLE, (0, 0, side, side))
        return canvas
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
    colour, alpha = rgba[..., :3], rgba[..., 3:]
    page_colour = np.array(page, dtype=np.float64) / 255.0
    if invert:  # the filter changes the image's colours; the page shows through, unfiltered
        shown = contrast.filter_pixels(colour, contrast.parse_filter(INVERT_FILTER)) * alpha + page_colour * (1 - alpha)
    elif backdrop is not None:  # the backdrop is the element's background: filtered with the image
        behind = np.array(backdrop, dtype=np.float64) / 255.0
        shown = contrast.filter_pixels(colour * alpha + behind * (1 - alpha), contrast.parse_filter(KEEP_FILTER))
    else:
        shown = contrast.filter_pixels(colour, contrast.parse_filter(KEEP_FILTER)) * alpha + page_colour * (1 - alpha)
    tile = Image.fromarray(np.round(shown * 255).astype(np.uint8), "RGB")
    canvas.paste(tile, ((side - tile.width) // 2, (side - tile.height) // 2))
    return canvas


def decode_tiles(site: Any, items: Sequence[Any], side: int, threads: int | None = None) -> list[Any]:
    """Each item's image at most `side` px, transparency kept (reviewsite.decode_rgba); None where
    the file is gone, changed since the build, or cannot be decoded."""
    def one(item: Any) -> Any:
        data = site.image_bytes(item.sha1)
        return None if data is None else decode_rgba(data, item.key, side)

    workers = threads or max(1, min(4, usable_cpus()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


def needs_backdrop(image: Any, ink: Any, page: str) -> bool:
    """contrast.needs_backdrop with the store's ink palette, or one measured on the tile's pixels."""
    if ink is None and image is not None and image.mode == "RGBA":
        ink = ink_palette(np.asarray(image, dtype=np.float32) / 255.0)
    return contrast.needs_backdrop(ink, page)


def render(smap: SiteMap, images: Sequence[Any], inks: dict[str, Any], threshold: float, unsure: float,
           page: str = contrast.DEFAULT_DARK_PAGE, backdrop: str = "none", tile: int = TILE) -> Any:
    """The map as a PIL image: smap.items[i] drawn from images[i] at its cell, framed, with a legend."""
    from PIL import Image, ImageDraw

    page_rgb, cell = parse_color(page), tile + GAP
    backdrop_rgb = parse_color(backdrop) if backdrop_enabled(backdrop) else None
    inner = tile - 2 * FRAME
    counts = dict.fromkeys(CATEGORIES, 0)
    grid = Image.new("RGB", (smap.layout.cols * cell + GAP, smap.layout.rows * cell + GAP), page_rgb)
    draw = ImageDraw.Draw(grid)
    for item, image, (col, row) in zip(smap.items, images, smap.layout.cells):
        kind = category(item, threshold, unsure)
        counts[kind] += 1
        invert = shows_inverted(item)
        behind = backdrop_rgb if (not invert and backdrop_rgb and image is not None
                                  and needs_backdrop(image, inks.get(item.sha1), page)) else None
        x, y = GAP + int(col) * cell, GAP + int(row) * cell
        draw.rectangle([x, y, x + tile - 1, y + tile - 1], fill=COLOURS[kind])
        grid.paste(reader_view(image, invert, page_rgb, behind, inner), (x + FRAME, y + FRAME))
    known_novelty = any(getattr(item, "novelty", None) is not None for item in smap.items)
    shown = [k for k in CATEGORIES if k != "novel" or known_novelty or counts[k]]
    return _with_legend(grid, [(COLOURS[k], f"{LEGEND[k]}: {counts[k]}") for k in shown], page_rgb)


def _with_legend(grid: Any, entries: list[tuple[RGB, str]], page: RGB) -> Any:
    """The grid with a legend below it: a swatch and a line of text per entry, wrapped to its width."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    swatch, pad, line = 12, 8, 20
    widths = [swatch + 6 + int(measure.textlength(text, font=font)) for _, text in entries]
    width = max(grid.width, max(widths) + 2 * pad)
    placed, x, y = [], pad, pad
    for (colour, text), w in zip(entries, widths):
        if x > pad and x + w > width - pad:
            x, y = pad, y + line
        placed.append((x, y, colour, text))
        x += w + 2 * pad
    out = Image.new("RGB", (width, grid.height + y + line + pad), page)
    out.paste(grid, ((width - grid.width) // 2, 0))
    draw = ImageDraw.Draw(out)
    for x, y, colour, text in placed:
        top = grid.height + y
        draw.rectangle([x, top + 3, x + swatch - 1, top + 3 + swatch - 1], fill=colour)
        draw.text((x + swatch + 6, top), text, fill=(228, 228, 231), font=font)
    return out


def run(settings: Settings, base_dir: Path, output: Path, dark_page: str = contrast.DEFAULT_DARK_PAGE,
        tile: int = TILE, logger: logging.Logger | None = None, out: TextIO | None = None) -> int:
    """`invertornot-ssg map`: write the map of the site's images to `output` (PNG)."""
    from .review import open_site

    log = logger or logging.getLogger("invertornot_ssg")
    out = out or sys.stdout
    if not 2 * FRAME + 8 <= tile <= 512:
        raise ConfigError(f"--tile: expected {2 * FRAME + 8}..512 px, got {tile}")
    parse_color(dark_page)  # a bad colour fails before any work
    engine, site = open_site(settings, base_dir, log)
    items = site.items()
    if not items:
        print(f"invertornot-ssg: no images to map: {site.overrides_path} lists none the store at "
              f"{engine.store_dir} knows; build the site first", file=sys.stderr)
        return 1
    sha1s = {item.sha1 for item in items}
    vectors = engine.store.get_vectors(engine.embedder_id, sha1s)
    # Decoding (threads) runs while the layout (one thread) is computed: together they share the cores.
    with ThreadPoolExecutor(max_workers=1) as background:
        decoding = background.submit(decode_tiles, site, items, tile - 2 * FRAME)
        smap = site_map(items, vectors, logger=log)
        decoded = dict(zip((item.key for item in items), decoding.result()))
    images = [decoded[item.key] for item in smap.items]
    for item, image in zip(smap.items, images):
        if image is None:
            log.warning("map: %s: cannot read the image (gone, changed since the build, or undecodable): a grey tile", item.key)
    picture = render(smap, images, engine.store.get_ink(sha1s), settings.threshold, settings.unsure,
                     page=dark_page, backdrop=settings.backdrop, tile=tile)
    try:
        picture.save(output, "PNG", optimize=True)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {output}: {exc.strerror or exc}") from None
    print(f"map of {len(items)} images ({smap.layout.cols}x{smap.layout.rows}) written to {output}", file=out)
    return 0
