"""Images that installed PyPI packages ship: scikit-image data, scikit-learn sample images, matplotlib sample_data."""
from __future__ import annotations

import functools
import importlib
from importlib import metadata
from pathlib import Path

from common import Candidate, load_raster, log

# file -> (category, label); None = per-image heuristic, then viewed
SKIMAGE = {
    "astronaut.png": ("person", "keep"), "camera.png": ("person", "keep"), "brick.png": ("texture", "keep"),
    "grass.png": ("texture", "keep"), "gravel.png": ("texture", "keep"), "chelsea.png": ("photo", "keep"),
    "coffee.png": ("photo", "keep"), "coins.png": ("photo", "keep"), "rocket.jpg": ("photo", "keep"),
    "moon.png": ("photo", "keep"), "motorcycle_left.png": ("photo", "keep"), "clock_motion.png": ("photo", "keep"),
    "hubble_deep_field.jpg": ("dark", "keep"), "retina.jpg": ("dark", "keep"), "ihc.png": ("photo", "keep"),
    "cell.png": ("photo", "keep"), "microaneurysms.png": ("photo", "keep"), "phantom.png": ("dark", "keep"),
    "color.png": ("photo", "keep"), "logo.png": ("icon", "keep"), "text.png": ("photo", "keep"),
    "page.png": ("text", "invert"), "horse.png": ("lineart", "invert"),
}
SKLEARN = {"china.jpg": ("photo", "keep"), "flower.jpg": ("photo", "keep")}
MPL = {"grace_hopper.jpg": ("person", "keep"), "logo2.png": ("icon", "keep"),
       "Minduka_Present_Blue_Pack.png": ("icon", "keep")}


def _pkg_dir(mod: str, sub: str) -> Path | None:
    try:
        m = importlib.import_module(mod)
    except ImportError:
        return None
    return Path(m.__file__).parent / sub


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def candidates() -> list[Candidate]:
    out = []
    for mod, sub, dist, table, source, licence in [
        ("skimage", "data", "scikit-image", SKIMAGE, "pypi:skimage",
         "per image, see skimage/data/README.txt (mostly CC0 / public domain)"),
        ("sklearn.datasets", "images", "scikit-learn", SKLEARN, "pypi:sklearn", "CC-BY-2.0 (Flickr, see README.txt)"),
        ("matplotlib", "mpl-data/sample_data", "matplotlib", MPL, "pypi:matplotlib",
         "public domain (Grace Hopper, US Navy) / matplotlib licence"),
    ]:
        d = _pkg_dir(mod, sub)
        if d is None or not d.is_dir():
            log.warning("%s not installed: %s images skipped (pip install %s)", dist, source, dist)
            continue
        ver = _version(dist)
        for name, (cat, label) in sorted(table.items()):
            p = d / name
            if not p.exists():
                continue
            out.append(Candidate(source=source, origin=f"{dist}=={ver}:{sub}/{name}", licence=licence,
                                 loader=functools.partial(load_raster, p), label=label, category=cat,
                                 rule=f"rule:{cat}", extra={"jpeg": label == "keep"}))
    return out
