#!/usr/bin/env python3
"""Contact sheet for labeling: each image twice on a dark page, as it is and inverted.

Usage: python scripts/bootstrap/invert_preview.py OUT.png IMAGE... [--cols 4] [--cell 220]
The inverted copy applies the CSS filter `invert(1) hue-rotate(180deg)` (sRGB matrices of the
Filter Effects spec), so what you see is close to what a reader of the site would see.
Open OUT.png with your file viewer; the caption under each pair is the file name.
"""
import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PAGE = (24, 24, 27)


def hue_rotate_matrix(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([
        [0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928],
        [0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283],
        [0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072],
    ])


def on_page(im, invert):
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
    rgb, a = rgba[..., :3], rgba[..., 3:]
    if invert:
        rgb = np.clip((1.0 - rgb) @ hue_rotate_matrix(180).T, 0, 1)
    page = np.array(PAGE, dtype=np.float64) / 255.0
    out = rgb * a + page * (1 - a)
    return Image.fromarray((out * 255).round().astype(np.uint8))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--cell", type=int, default=220)
    a = ap.parse_args()
    cell, cols = a.cell, a.cols
    rows = math.ceil(len(a.images) / cols)
    sheet = Image.new("RGB", (cols * (2 * cell + 20), rows * (cell + 24)), PAGE)
    draw = ImageDraw.Draw(sheet)
    for i, path in enumerate(a.images):
        x0, y0 = (i % cols) * (2 * cell + 20), (i // cols) * (cell + 24)
        try:
            im = Image.open(path)
            im.thumbnail((cell, cell))
            for j, inv in enumerate((False, True)):
                sheet.paste(on_page(im, inv), (x0 + j * cell + (cell - im.width) // 2, y0 + (cell - im.height) // 2))
        except Exception as e:  # a preview tool: show the failure in place of the image
            draw.text((x0 + 4, y0 + 4), f"cannot open: {e}"[:60], fill=(255, 120, 120))
        draw.text((x0 + 4, y0 + cell + 4), Path(path).name[:2 * cell // 7], fill=(200, 200, 200))
    sheet.save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
