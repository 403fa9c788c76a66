#!/usr/bin/env python3
"""Print markdown count tables of the manifest (per label, category, source, decided_by) for the README."""
from __future__ import annotations

import argparse
import collections
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", type=Path, default=REPO / "models" / "bootstrap" / "manifest.csv")
    a = ap.parse_args(argv)
    rows = list(csv.DictReader(a.manifest.open()))
    n = len(rows)
    lab = collections.Counter(r["label"] for r in rows)
    print(f"Total {n} images: invert {lab['invert']} ({lab['invert'] / n:.0%}), keep {lab['keep']} ({lab['keep'] / n:.0%}); "
          f"debatable {sum(r['debatable'] == '1' for r in rows)}.\n")
    for key in ("category", "source"):
        c = collections.Counter((r[key], r["label"]) for r in rows)
        print(f"| {key} | invert | keep | debatable |\n|---|---:|---:|---:|")
        for k in sorted({r[key] for r in rows}):
            d = sum(r[key] == k and r["debatable"] == "1" for r in rows)
            print(f"| {k} | {c[(k, 'invert')]} | {c[(k, 'keep')]} | {d} |")
        print()
    dec = collections.Counter(r["decided_by"].split(":")[0] if not r["decided_by"].startswith("viewed")
                              else r["decided_by"] for r in rows)
    print("| decided_by | images |\n|---|---:|")
    for k, v in sorted(dec.items()):
        print(f"| {k} | {v} |")
    print()
    vers = sorted({r["origin"].split(":/")[0] for r in rows if r["source"].startswith("deb:")}
                  | {r["origin"].split(":")[0] for r in rows if r["source"].startswith("pypi:") and "==" in r["origin"]})
    print("Package versions: " + ", ".join(f"`{v}`" for v in vers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
