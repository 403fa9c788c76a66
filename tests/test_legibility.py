"""Legible when kept, and not inverted into the page: transparent images through the real engine
(fake embedder), `apply`, warm builds and a store from before the ink table."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from invertornot_ssg import cli
from invertornot_ssg.contrast import METHOD
from invertornot_ssg.htmlrewrite import ClassNames, find_images
from invertornot_ssg.settings import Settings

from fakes import FAKE_MODEL

pytestmark = pytest.mark.usefixtures("fake_embedder")  # conftest.py
NAMES = ClassNames.from_settings(Settings())
PAGE = """<!doctype html><html><head><title>t</title>
<style>@media (prefers-color-scheme: dark) { body { background: #111; color: #eee } }</style></head>
<body><img src="paper.png"><img src="white-logo.png"><img src="black-lines.png">
<img class="invert-not" src="black-lines-kept.png"><img src="photo.png"></body></html>"""


def strokes(path: Path, ink: str) -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for x in range(6, 64, 14):
        draw.line([(x, 4), (x, 60)], fill=ink, width=2)
    image.save(path)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    Image.new("RGB", (64, 64), "white").save(root / "paper.png")
    strokes(root / "white-logo.png", "white")  # on a white page, the same as paper.png
    strokes(root / "black-lines.png", "black")
    strokes(root / "black-lines-kept.png", "#101010")
    Image.effect_noise((64, 64), 60).convert("RGB").save(root / "photo.png")
    sha1 = hashlib.sha1((root / "paper.png").read_bytes()).hexdigest()
    (tmp_path / "invertornot.yml").write_text(f"version: 1\nimages:\n  paper.png:\n    label: invert\n    sha1: {sha1}\n")
    return root


def apply(site: Path, *args: str) -> None:
    store, overrides = site.parent / "store", site.parent / "invertornot.yml"
    assert cli.main(["apply", str(site), "--store", str(store), "--model", FAKE_MODEL, "--overrides", str(overrides), *args]) == 0


def tags(site: Path) -> dict[str, dict[str, str]]:
    html = (site / "index.html").read_text()
    found = {}
    for tag in find_images(html, NAMES):
        found[tag.src] = {a.name: tag.parsed.value(a.name) for a in tag.parsed.attrs}
    return found


def test_legibility_through_apply(site: Path) -> None:
    apply(site)
    found = tags(site)
    # the white logo is a near-duplicate of paper.png, labeled invert, but inverted its strokes turn dark
    assert found["white-logo.png"]["class"] == "invert-not-auto"
    assert "data-invertornot-backdrop" not in found["white-logo.png"]
    overrides = (site.parent / "invertornot.yml").read_text()
    assert f"method: {METHOD}" in overrides
    # black strokes kept (the unsure default, and the author's keep) get the backdrop
    assert found["black-lines.png"]["class"] == "invert-not-auto"
    assert found["black-lines.png"]["data-invertornot-backdrop"] == "dark-ink"
    assert found["black-lines-kept.png"]["data-invertornot-backdrop"] == "dark-ink"
    assert found["black-lines-kept.png"]["class"] == "invert-not"  # the author's class as written
    # opaque images: no backdrop
    assert "data-invertornot-backdrop" not in found["paper.png"] and "data-invertornot-backdrop" not in found["photo.png"]
    css = (site / "invertornot.css").read_text()
    assert "img.invert-not-auto[data-invertornot-backdrop]" in css and "prefers-color-scheme: dark" in css

    # a warm run (the build memo) gives the same page, and so does a store from before the ink table
    first = (site / "index.html").read_text()
    apply(site)
    assert (site / "index.html").read_text() == first
    with sqlite3.connect(site.parent / "store" / "store.sqlite") as db:
        db.execute("DROP TABLE ink")
    for memo in (site.parent / "store" / "cache").glob("build-*.json"):
        memo.unlink()
    apply(site)
    assert (site / "index.html").read_text() == first
    with sqlite3.connect(site.parent / "store" / "store.sqlite") as db:
        assert db.execute("SELECT count(*) FROM ink").fetchone()[0] == 5  # described again


def test_relabeled_images_lose_the_backdrop(site: Path) -> None:
    apply(site)
    assert "data-invertornot-backdrop" in tags(site)["black-lines.png"]
    apply(site, "--dark-selector", "html.dark")  # the same pages, applied again: nothing stale
    assert "data-invertornot-backdrop" in tags(site)["black-lines.png"]
    overrides = site.parent / "invertornot.yml"
    overrides.write_text(overrides.read_text().replace("  black-lines.png:\n", "  black-lines.png:\n    label: invert\n"))
    apply(site)
    found = tags(site)["black-lines.png"]
    assert found["class"] == "invert" and "data-invertornot-backdrop" not in found


def test_an_authors_kept_image_loses_a_stale_backdrop(site: Path) -> None:
    apply(site)
    assert "data-invertornot-backdrop" in tags(site)["black-lines-kept.png"]
    Image.new("RGB", (64, 64), "white").save(site / "black-lines-kept.png")  # now opaque: nothing vanishes
    apply(site)
    found = tags(site)["black-lines-kept.png"]
    assert found == {"class": "invert-not", "src": "black-lines-kept.png"}  # as the author wrote it
