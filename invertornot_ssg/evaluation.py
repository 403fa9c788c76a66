"""`eval`: our decisions against known labels, side by side with the saturation baseline."""
from __future__ import annotations

import collections
import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ._lazy import np

from .engine import Engine, ImageRequest
from .errors import InvertOrNotError
from .images import ImageError, load_image, mean_hsl_saturation
from .settings import Settings

# Gwern.net's heuristic: a figure with little colour is probably a white-heavy diagram.
SATURATION_BASELINE = 0.09
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Truth:
    path: Path
    invert: bool


def read_truth(path: Path) -> list[Truth]:
    """A folder with invert/ and keep/ subfolders, or a CSV with columns file,invert (true/false/1/0/invert/keep)."""
    if path.is_dir():
        found = []
        for label in ("invert", "keep"):
            folder = path / label
            if not folder.is_dir():
                raise InvertOrNotError(f"{path}: expected subfolders invert/ and keep/ (missing {label}/)")
            for root, dirs, files in os.walk(folder):
                dirs.sort()
                found += [Truth(Path(root, f), label == "invert") for f in sorted(files)
                          if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        return found
    if not path.is_file():
        raise InvertOrNotError(f"{path}: no such folder or CSV file")
    found = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            value = (row.get("invert") or "").strip().lower()
            if value not in ("true", "false", "1", "0", "invert", "keep") or not row.get("file"):
                raise InvertOrNotError(f"{path}:{line}: expected columns file,invert with invert true/false")
            found.append(Truth((path.parent / row["file"]).resolve(), value in ("true", "1", "invert")))
    return found


def confusion(y: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, precision and recall per class, and the confusion matrix (rows: truth)."""
    y, predicted = np.asarray(y, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, tn = int((y & predicted).sum()), int((~y & ~predicted).sum())
    fp, fn = int((~y & predicted).sum()), int((y & ~predicted).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "n": int(len(y)), "accuracy": ratio(tp + tn, len(y)),
        "precision_invert": ratio(tp, tp + fp), "recall_invert": ratio(tp, tp + fn),
        "precision_keep": ratio(tn, tn + fn), "recall_keep": ratio(tn, tn + fp),
        "matrix": [[tp, fn], [fp, tn]],  # truth invert: [pred invert, pred keep]; truth keep: same
    }


def evaluate(settings: Settings, base_dir: Path, truth: list[Truth], log: logging.Logger) -> dict:
    engine = Engine(settings, base_dir, logger=log)
    results = engine.classify([ImageRequest(t.path.absolute(), str(t.path)) for t in truth])
    rows = []
    for t, r in zip(truth, results):
        loaded = load_image(t.path, engine.background, max_side=engine.work_side)
        saturation = None if isinstance(loaded, ImageError) else mean_hsl_saturation(loaded.image)
        rows.append((t, r, saturation))
    usable = [(t, r, s) for t, r, s in rows if r.invert is not None and s is not None]
    y = np.array([t.invert for t, _, _ in usable], dtype=bool)
    ours = np.array([bool(r.invert) for _, r, _ in usable], dtype=bool)
    baseline = np.array([s <= SATURATION_BASELINE for _, _, s in usable], dtype=bool)
    return {
        "version": engine.version,
        "ours": confusion(y, ours),
        "baseline": confusion(y, baseline),
        "errors": [str(t.path) for t, r, s in rows if r.invert is None or s is None],
        "misclassified": [
            (str(t.path), "invert" if t.invert else "keep", r.method, r.p_invert)
            for t, r, _ in usable if bool(r.invert) != t.invert
        ],
        "methods": dict(collections.Counter(r.method for _, r, _ in usable)),
    }


def format_report(report: dict) -> str:
    ours, base = report["ours"], report["baseline"]
    lines = [f"{ours['n']} images, model {report['version']}", "",
             f"{'':<18}{'ours':>8}{'saturation<=0.09':>18}"]
    for key in ("accuracy", "precision_invert", "recall_invert", "precision_keep", "recall_keep"):
        lines.append(f"{key:<18}{ours[key]:>8.1%}{base[key]:>18.1%}")
    for name, m in (("ours", ours), ("baseline", base)):
        (tp, fn), (fp, tn) = m["matrix"]
        lines.append(f"confusion ({name}): truth invert -> {tp} invert, {fn} keep; truth keep -> {fp} invert, {tn} keep")
    lines.append("decided by: " + ", ".join(f"{k} {v}" for k, v in sorted(report["methods"].items())))
    if report["misclassified"]:
        lines.append("misclassified (ours):")
        for path, truth, method, p in report["misclassified"]:
            lines.append(f"  {path}  truth {truth}, method {method}, p_invert {'-' if p is None else f'{p:.2f}'}")
    if report["errors"]:
        lines.append("unreadable, left out: " + ", ".join(report["errors"]))
    return "\n".join(lines)

