#!/usr/bin/env python3
"""Rebuild the bootstrap labeled image set (invert | keep) into a cache dir and write its manifest.

Usage: python scripts/bootstrap/build_set.py [--cache .cache/bootstrap] [--manifest models/bootstrap/manifest.csv]

Sources: Debian packages (apt-get download + dpkg -x into the cache, no system install), images shipped by
PyPI packages (scikit-image, scikit-learn, matplotlib), and generated figures (matplotlib, Pillow, graphviz,
SVG). Labels come from the category rule of each source group or, for mixed groups, from a per-image
heuristic; both were checked on contact sheets and corrected through label_corrections.csv.

Needs: pip install -e ".[bootstrap]" (matplotlib, scikit-image, scikit-learn) and apt-get install graphviz
poppler-utils; it stops when one is missing (--allow-missing builds a smaller set).
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import MIN_SIDE, Candidate, guess, log, normalise, save, sha1_file, stats  # noqa: E402

REPO = HERE.parents[1]
FIELDS = ["file", "sha1", "label", "source", "origin", "licence", "decided_by", "debatable", "category"]
CORRECTIONS = HERE / "label_corrections.csv"
REVIEWED = HERE / "reviewed.txt"


def _dest_stem(cache: Path, c: Candidate) -> Path:
    """images/<source>/<name>: stable across package versions (the version is not part of the name)."""
    import hashlib

    key = re.sub(r"=(\d+:)?[^:]*:", ":", c.origin, count=1)  # drop "=[epoch:]version"
    base = c.origin.split(":", 1)[-1]
    if "#page=" in base:
        base, page = base.split("#page=")
        name = f"{Path(base).stem}-p{page}"
    else:
        name = Path(base.replace("#", "-")).stem
    tail = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48]  # no dots: with_suffix() must not eat the hash
    h = hashlib.sha1(key.encode()).hexdigest()[:8]
    return cache / "images" / re.sub(r"[^A-Za-z0-9._-]+", "_", c.source) / f"{tail}__{h}"


def process(c: Candidate, cache: Path) -> dict | None:
    """Load, normalise, label (rule or heuristic) and store one candidate; None when skipped."""
    try:
        im = c.loader()
    except Exception as e:  # a broken file in a package must not stop the build
        log.warning("skip %s: %s", c.origin, e)
        return None
    if min(im.size) < MIN_SIDE:
        return None
    im = normalise(im)
    st = stats(im)
    if c.label:
        category, label, decided = c.category, c.label, c.rule
    else:
        category, label = guess(st, c.heuristic, c.photo_like or "photo")
        decided = f"heuristic:{category}"
    path = save(im, _dest_stem(cache, c), prefer_jpeg=bool(c.extra.get("jpeg")) and label == "keep")
    return {
        "file": path.relative_to(cache).as_posix(), "sha1": sha1_file(path), "label": label, "source": c.source,
        "origin": c.origin, "licence": c.licence, "decided_by": decided, "debatable": 0, "category": category,
    }


def _process_star(args):
    return process(*args)


def load_corrections(path: Path = CORRECTIONS) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if not (r.get("file") or "").startswith("#")]


def load_reviewed(path: Path = REVIEWED) -> set[str]:
    if not path.exists():
        return set()
    return {tok for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#") for tok in ln.split()}


def apply_review(rows: list[dict], corrections: list[dict], reviewed: set[str]) -> tuple[int, int]:
    """Viewed rows become decided_by=viewed; corrections (matched by file or sha1) set label/category/debatable."""
    by_file = {r["file"]: r for r in rows}
    by_sha = {r["sha1"]: r for r in rows}
    n_viewed = n_corr = 0
    for r in rows:
        if r["file"] in reviewed or r["sha1"] in reviewed:
            r["decided_by"] = "viewed"
            n_viewed += 1
    for c in corrections:
        r = by_file.get(c.get("file", "")) or by_sha.get(c.get("sha1", ""))
        if r is None:
            log.debug("correction matches no image: %s", c)
            continue
        changed = False
        if c.get("label") and c["label"] != r["label"]:
            r["label"], changed = c["label"], True
        if c.get("category") and c["category"] != r["category"]:
            r["category"], changed = c["category"], True
        if c.get("debatable") not in (None, ""):
            r["debatable"] = int(c["debatable"])
        if c.get("drop") == "1":
            r["_drop"] = True
        r["decided_by"] = "viewed:corrected" if changed else "viewed"
        n_corr += changed
    return n_viewed, n_corr


def collect(args) -> list[Candidate]:
    import debian
    import gen_misc
    import gen_plots
    import pypi_images

    cands = []
    if not args.no_deb:
        cands += debian.candidates(args.cache)
    cands += pypi_images.candidates()
    cands += gen_plots.candidates(args.scale)
    cands += gen_misc.candidates(args.scale)
    return cands


def missing_tools(no_deb: bool) -> list[str]:
    """What the sources need and this machine lacks. Without them the set silently shrinks (no
    generated plots without matplotlib, no graph diagrams without graphviz's dot), and the manifest
    written would drop images that the shipped head and embeddings were built from."""
    import importlib.util
    import shutil

    tools = [("dot", "graphviz")]
    if not no_deb:
        tools += [("apt-get", "apt"), ("dpkg", "dpkg"), ("pdftoppm", "poppler-utils"), ("pdfinfo", "poppler-utils")]
    missing = [f"{mod} (pip install '.[bootstrap]')" for mod in ("matplotlib", "skimage", "sklearn")
               if importlib.util.find_spec(mod) is None]
    return missing + [f"{tool} (apt-get install {pkg})" for tool, pkg in tools if shutil.which(tool) is None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "bootstrap")
    ap.add_argument("--manifest", type=Path, default=REPO / "models" / "bootstrap" / "manifest.csv")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplier on generated counts")
    ap.add_argument("--no-deb", action="store_true", help="skip Debian packages (for a quick try)")
    ap.add_argument("--allow-missing", action="store_true",
                    help="build without the sources whose tools are missing (a smaller set)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    args.cache = args.cache.resolve()
    t0 = time.time()
    missing = missing_tools(args.no_deb)
    if missing and not args.allow_missing:
        log.error("missing: %s. Install them, or pass --allow-missing for a smaller set.", "; ".join(missing))
        return 2

    cands = collect(args)
    log.info("%d candidates collected in %.0fs", len(cands), time.time() - t0)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = list(ex.map(_process_star, [(c, args.cache) for c in cands], chunksize=8))

    rows, seen = [], set()
    for r in results:
        if r is None:
            continue
        if r["sha1"] in seen:         # duplicate content (same image in two places): first one wins
            (args.cache / r["file"]).unlink(missing_ok=True)
            continue
        seen.add(r["sha1"])
        rows.append(r)
    n_viewed, n_corr = apply_review(rows, load_corrections(), load_reviewed())
    for r in [r for r in rows if r.get("_drop")]:
        (args.cache / r["file"]).unlink(missing_ok=True)
    rows = sorted((r for r in rows if not r.get("_drop")), key=lambda r: r["file"])

    keep_files = {r["file"] for r in rows}
    for p in (args.cache / "images").rglob("*"):
        if p.is_file() and p.relative_to(args.cache).as_posix() not in keep_files:
            p.unlink()

    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, args.manifest)
    n_inv = sum(r["label"] == "invert" for r in rows)
    log.info("%d images (%d invert, %d keep), %d viewed, %d corrected, in %.0fs -> %s", len(rows), n_inv,
             len(rows) - n_inv, n_viewed, n_corr, time.time() - t0, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
