"""Generate a reproducible benchmark site: N images of a realistic mix, Markdown pages, two mkdocs.yml.

    python benchmarks/sitegen.py --images 1000 --out benchmarks/.data/site-1000

The mix (by count): 40% JPEG photos of 1920x1280 to 4000x3000 (most 3000x2000, with grain, as a
camera writes them), 25% PNG screenshots (1280x800 to 2560x1440), 20% PNG plots (some on a
transparent background), 15% SVG diagrams. Every file has distinct bytes, so every image is
embedded once. Pages hold 20 images each. `mkdocs.yml` enables the plugin with its store in
`.invertornot/` beside it; `mkdocs-plain.yml` is the same site without the plugin.

A site is generated once: a `site.json` beside the files records (images, seed, version) and a
second call with the same arguments returns at once.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VERSION = 1  # bump when the images change, so cached sites are regenerated
MIX = (("photo", 0.40), ("screenshot", 0.25), ("plot", 0.20), ("svg", 0.15))
PHOTO_SIZES = ((3000, 2000),) * 6 + ((4000, 3000), (2400, 1600), (1920, 1280), (2000, 3000))
SCREEN_SIZES = ((1920, 1080), (1440, 900), (2560, 1440), (1280, 800))
PER_PAGE = 20


def kinds(n: int) -> list[str]:
    """The kind of each of n images, in a fixed interleaved order."""
    out: list[str] = []
    counts = {k: 0 for k, _ in MIX}
    for i in range(n):
        # the kind furthest behind its share goes next: an even interleave at every prefix
        kind = max(MIX, key=lambda km: km[1] * (i + 1) - counts[km[0]])[0]
        counts[kind] += 1
        out.append(kind)
    return out


def _photo_sources() -> list[np.ndarray]:
    import skimage.data as data

    return [
        np.asarray(Image.fromarray(a).convert("RGB"))
        for a in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
                  data.hubble_deep_field(), data.immunohistochemistry(), data.camera())
    ]


def photo(rng: random.Random, sources: list[np.ndarray], grain: np.ndarray) -> Image.Image:
    src = sources[rng.randrange(len(sources))]
    h, w = src.shape[:2]
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    width, height = rng.choice(PHOTO_SIZES)
    image = Image.fromarray(src[y:y + ch, x:x + cw]).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)
    gain = np.array([rng.uniform(0.85, 1.15) for _ in range(3)], dtype=np.float32)
    gy, gx = rng.randrange(grain.shape[0] - height), rng.randrange(grain.shape[1] - width)
    noisy = pixels * gain + grain[gy:gy + height, gx:gx + width, None]  # camera grain: real entropy
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def screenshot(rng: random.Random) -> Image.Image:
    width, height = rng.choice(SCREEN_SIZES)
    dark = rng.random() < 0.2
    bg = (30, 30, 36) if dark else (250, 250, 252)
    ink = (220, 220, 220) if dark else (33, 37, 41)
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    accent = tuple(rng.randrange(40, 220) for _ in range(3))
    draw.rectangle([0, 0, width, 56], fill=accent)
    draw.rectangle([0, 56, 260, height], fill=(40, 40, 48) if dark else (236, 238, 242))
    font = ImageFont.load_default(size=15)
    for i in range(rng.randrange(12, 30)):
        draw.text((20, 80 + i * 28), f"Menu item {rng.randrange(1000)}", fill=ink, font=font)
    y = 90
    while y < height - 60:
        if rng.random() < 0.25:  # a card or a code block
            h = rng.randrange(80, 260)
            draw.rounded_rectangle([300, y, width - 40, y + h], radius=8,
                                   fill=(45, 45, 55) if dark else (255, 255, 255), outline=accent)
            for j in range(h // 24 - 1):
                draw.text((320, y + 12 + j * 24), "x = f(%d)  # %s" % (rng.randrange(99), "lorem" * rng.randrange(1, 6)),
                          fill=ink, font=font)
            y += h + 20
        else:
            words = " ".join(rng.choice(("the", "build", "image", "dark", "mode", "plugin", "store", "index"))
                             for _ in range(rng.randrange(6, 22)))
            draw.text((300, y), words, fill=ink, font=font)
            y += 26
    return image


def plot(rng: random.Random) -> Image.Image:
    width, height = rng.choice(((800, 600), (1200, 800), (1600, 1000), (640, 480)))
    transparent = rng.random() < 0.3
    image = Image.new("RGBA" if transparent else "RGB", (width, height), (0, 0, 0, 0) if transparent else "white")
    draw = ImageDraw.Draw(image)
    ink = (33, 37, 41, 255)
    left, top, right, bottom = 70, 40, width - 30, height - 60
    font = ImageFont.load_default(size=16)
    for i in range(6):
        x = left + i * (right - left) / 5
        y = bottom - i * (bottom - top) / 5
        draw.line([(x, top), (x, bottom)], fill=(222, 226, 230, 255))
        draw.line([(left, y), (right, y)], fill=(222, 226, 230, 255))
        draw.text((x, bottom + 8), str(i * rng.randrange(1, 20)), fill=ink, font=font, anchor="mt")
        draw.text((left - 8, y), f"{i * rng.uniform(0.1, 3):.1f}", fill=ink, font=font, anchor="rm")
    draw.line([(left, bottom), (right, bottom)], fill=ink, width=2)
    draw.line([(left, top), (left, bottom)], fill=ink, width=2)
    style = rng.choice(("line", "bar", "scatter"))
    for series in range(rng.randrange(1, 4)):
        colour = (*(rng.randrange(0, 230) for _ in range(3)), 255)
        if style == "bar":
            n = rng.randrange(4, 12)
            step = (right - left) / n
            for i in range(n):
                v = rng.uniform(0.1, 0.95)
                x0 = left + i * step + step * (0.15 + 0.2 * series)
                draw.rectangle([x0, bottom - v * (bottom - top), x0 + step * 0.2, bottom - 1], fill=colour)
        elif style == "scatter":
            for _ in range(rng.randrange(50, 400)):
                x, y = rng.uniform(left, right), rng.gauss((top + bottom) / 2, (bottom - top) / 6)
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        else:
            phase, freq = rng.uniform(0, 6), rng.uniform(1, 6)
            pts = [(left + t * (right - left), (top + bottom) / 2 - math.sin(t * freq * math.pi + phase)
                    * (bottom - top) * 0.4 * math.exp(-t * series)) for t in (i / 299 for i in range(300))]
            draw.line(pts, fill=colour, width=3)
    draw.text((width / 2, 18), f"Figure {rng.randrange(10000)}", fill=ink, font=font, anchor="mm")
    return image


def svg(rng: random.Random) -> str:
    width, height = rng.choice(((640, 360), (900, 400), (480, 480), (1200, 500)))
    boxes = []
    n = rng.randrange(3, 9)
    for i in range(n):
        x = 20 + i * (width - 40) / n
        y = rng.uniform(20, height - 80)
        boxes.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{(width - 40) / n - 20:.0f}" height="60" rx="8" '
            f'fill="#f8f9fa" stroke="#212529" stroke-width="2"/>'
            f'<text x="{x + 10:.0f}" y="{y + 35:.0f}" font-size="14" fill="#212529">step {rng.randrange(100)}</text>'
        )
        if i:
            boxes.append(f'<line x1="{x - 20:.0f}" y1="{height / 2:.0f}" x2="{x:.0f}" y2="{y + 30:.0f}" '
                         f'stroke="#212529" stroke-width="2"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">{"".join(boxes)}</svg>\n')


def make_site(out: Path, n: int, seed: int = 0, quiet: bool = False) -> list[Path]:
    """Generate (or reuse) the site; returns the image paths in page order."""
    out = Path(out)
    marker = out / "site.json"
    want = {"images": n, "seed": seed, "version": VERSION}
    img_dir = out / "docs" / "img"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return sorted(img_dir.iterdir())
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.iterdir():
        old.unlink()
    rng = random.Random(seed)
    sources = _photo_sources()
    grain = np.random.default_rng(seed).normal(0, 6, (4200, 4200)).astype(np.float32)
    paths: list[Path] = []
    start = time.perf_counter()
    for i, kind in enumerate(kinds(n)):
        if kind == "photo":
            path = img_dir / f"{i:05d}-photo.jpg"
            photo(rng, sources, grain).save(path, quality=rng.choice((85, 88, 92)))
        elif kind == "screenshot":
            path = img_dir / f"{i:05d}-screenshot.png"
            screenshot(rng).save(path, compress_level=6)
        elif kind == "plot":
            path = img_dir / f"{i:05d}-plot.png"
            plot(rng).save(path, compress_level=6)
        else:
            path = img_dir / f"{i:05d}-diagram.svg"
            path.write_text(svg(rng))
        paths.append(path)
        if not quiet and (i + 1) % 100 == 0:
            print(f"  generated {i + 1}/{n} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    _write_pages(out, paths)
    marker.write_text(json.dumps(want) + "\n")
    return paths


def _write_pages(out: Path, paths: list[Path]) -> None:
    docs = out / "docs"
    for old in docs.glob("page-*.md"):
        old.unlink()
    nav = []
    for p, start in enumerate(range(0, len(paths), PER_PAGE)):
        name = f"page-{p:03d}.md"
        body = [f"# Page {p}\n"]
        for path in paths[start:start + PER_PAGE]:
            body.append(f"Some text about {path.stem}.\n\n![{path.stem}](img/{path.name})\n")
        (docs / name).write_text("\n".join(body))
        nav.append(name)
    (docs / "index.md").write_text("# Benchmark site\n\n" + "\n".join(f"- [{n}]({n})" for n in nav) + "\n")
    common = "site_name: invertornot benchmark\ndocs_dir: docs\nsite_dir: site\ntheme:\n  name: mkdocs\n"
    (out / "mkdocs-plain.yml").write_text(common)
    (out / "mkdocs.yml").write_text(
        common + "plugins:\n  - invertornot:\n      store: .invertornot\n      overrides: invertornot.yml\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = make_site(args.out, args.images, args.seed)
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} images, {size / 2**20:.0f} MiB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
