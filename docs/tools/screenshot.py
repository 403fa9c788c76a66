#!/usr/bin/env python3
"""The README's before/after picture: the demo site's home page in headless Chromium, light and dark.

Usage (after `make demo`): .venv/bin/python docs/tools/screenshot.py [OUT.png]
Needs Debian's /usr/bin/chromium and Playwright for Python (never `playwright install`). The page
is the built sample_site/mkdocs/site/index.html as Chromium paints it with the system preference
light, then dark (the MkDocs theme follows it): the photograph is only dimmed, the diagram and
the plot are inverted.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "sample_site" / "mkdocs" / "site" / "index.html"
OUT = REPO / "docs" / "src" / "img" / "light-dark.png"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 900, "height": 1000}
CLIP = {"x": 0, "y": 0, "width": 900, "height": 1000}
WIDTH = 1200  # of the whole picture: two pages side by side, scaled down


def shoot(scheme: str) -> Image.Image:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme, device_scale_factor=1)
        page = context.new_page()
        page.goto(PAGE.as_uri())
        page.wait_for_load_state("networkidle")
        page.evaluate("() => document.fonts.ready")
        shot = page.screenshot(clip=CLIP)
        browser.close()
    return Image.open(io.BytesIO(shot)).convert("RGB")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    if not PAGE.is_file():
        print(f"{PAGE} is missing: run `make demo` first", file=sys.stderr)
        return 1
    light, dark = shoot("light"), shoot("dark")
    gap, label = 16, 34
    both = Image.new("RGB", (light.width * 2 + gap, light.height + label), "white")
    both.paste(light, (0, label))
    both.paste(dark, (light.width + gap, label))
    draw = ImageDraw.Draw(both)
    for x, text in ((8, "light mode"), (light.width + gap + 8, "dark mode: the diagram and the plot inverted, the photo dimmed")):
        draw.text((x, 8), text, fill=(40, 40, 40), font_size=20)
    scale = WIDTH / both.width
    small = both.resize((WIDTH, round(both.height * scale)), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
