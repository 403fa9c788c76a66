#!/usr/bin/env python3
"""Contact sheets for reviewing the manifest's labels, one or more per source group.

Usage: python scripts/bootstrap/review.py [--groups deb:scipy-doc,...] [--fraction 1.0] [--per-sheet 60]
Each cell shows the image on a dark page as-is and inverted (the CSS filter of invert_preview.py), captioned
with its index on the sheet and current label (green K = keep, orange I = invert, * = debatable).
Sheets and a sheets.tsv index (sheet, index, file, sha1, label) go to <cache>/sheets/. Once a sheet is
looked at, `--mark-viewed SHEET...` appends its files to reviewed.txt.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from invert_preview import PAGE, on_page  # noqa: E402


def sheet(out: Path, rows, cache: Path, cols=6, cell=160):
    n = len(rows)
    sh = Image.new("RGB", (cols * (2 * cell + 12), math.ceil(n / cols) * (cell + 18)), PAGE)
    d = ImageDraw.Draw(sh)
    for i, r in enumerate(rows):
        x0, y0 = (i % cols) * (2 * cell + 12), (i // cols) * (cell + 18)
        im = Image.open(cache / r["file"])
        im.thumbnail((cell, cell))
        for j, inv in enumerate((False, True)):
            sh.paste(on_page(im, inv), (x0 + j * cell + (cell - im.width) // 2, y0 + (cell - im.height) // 2))
        keep = r["label"] == "keep"
        cap = f"{i} {'K' if keep else 'I'}{'*' if str(r['debatable']) == '1' else ''} {r['category'][:10]}"
        d.text((x0 + 4, y0 + cell + 3), cap, fill=(120, 220, 120) if keep else (255, 170, 60))
    sh.save(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "bootstrap")
    ap.add_argument("--manifest", type=Path, default=REPO / "models" / "bootstrap" / "manifest.csv")
    ap.add_argument("--groups", default="")
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--per-sheet", type=int, default=60)
    ap.add_argument("--mark-viewed", nargs="*")
    ap.add_argument("--prefix", default="sheet")
    a = ap.parse_args(argv)
    out = a.cache / "sheets"
    out.mkdir(parents=True, exist_ok=True)
    index = out / "sheets.tsv"
    if a.mark_viewed is not None:
        files = [f"{ln.split(chr(9))[3]} {ln.split(chr(9))[2]}" for ln in index.read_text().splitlines()
                 if ln.split("\t")[0] in set(a.mark_viewed)]
        with (HERE / "reviewed.txt").open("a") as f:
            f.writelines(x + "\n" for x in files)
        print(f"{len(files)} files marked viewed")
        return 0
    rows = list(csv.DictReader(a.manifest.open()))
    groups = sorted({r["source"] for r in rows}) if not a.groups else a.groups.split(",")
    picked = []
    for g in groups:
        gr = [r for r in rows if r["source"] == g]
        k = max(1, math.ceil(len(gr) * a.fraction))
        gr = sorted(gr, key=lambda r: hashlib.sha1(r["file"].encode()).hexdigest())[:k]
        picked += sorted(gr, key=lambda r: (r["label"], r["file"]))
    lines = []
    for s in range(0, len(picked), a.per_sheet):
        name = f"{a.prefix}-{s // a.per_sheet:02d}.png"
        part = picked[s:s + a.per_sheet]
        sheet(out / name, part, a.cache)
        lines += [f"{name}\t{i}\t{r['file']}\t{r['sha1']}\t{r['label']}\t{r['source']}\n" for i, r in enumerate(part)]
        print(out / name, len(part), " ".join(sorted({r["source"] for r in part})))
    with index.open("a") as f:
        f.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
