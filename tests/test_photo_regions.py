"""The photo-region step (photoregions.py) on real images: a light page rendered and captured by
real Chromium, the same screenshot with a real photograph of a face in a third of it, and a real
product photograph on a light backdrop (Debian's kalzium-data), decided by the real default
embedder and shipped head, and in a real MkDocs build."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from chromium import new_page
from invertornot_ssg import photoregions
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.settings import Settings

PAGE = """<!doctype html><html><head><style>
body { font: 15px sans-serif; margin: 0; background: #fff; color: #222; }
header { background: #f3f4f6; border-bottom: 1px solid #ccc; padding: 10px 20px; font-weight: bold; }
nav { float: left; width: 180px; padding: 16px; border-right: 1px solid #ddd; height: 560px; }
nav a { display: block; color: #1a55a8; margin: 6px 0; }
main { margin-left: 230px; padding: 16px 24px; }
label { display: block; margin-top: 12px; } input, select { width: 260px; padding: 4px; }
button { margin-top: 16px; padding: 6px 14px; background: #e8eaee; border: 1px solid #aaa; border-radius: 4px; }
table { border-collapse: collapse; margin-top: 18px; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
</style></head><body>
<header>Project settings</header>
<nav><a>General</a><a>Appearance</a><a>Accounts</a><a>Notifications</a><a>Privacy</a><a>Storage</a><a>About</a></nav>
<main><h2>Account</h2>
<p>Choose how your name appears to other people and which address receives notifications.</p>
<label>Display name <input value="Ada Lovelace"></label>
<label>E-mail <input value="ada@example.org"></label>
<label>Language <select><option>English (United Kingdom)</option></select></label>
<label><input type="checkbox" checked style="width:auto"> Send me a weekly summary</label>
<button>Save changes</button> <button>Cancel</button>
<table><tr><th>Device</th><th>Last seen</th><th>Location</th></tr>
<tr><td>Laptop</td><td>today</td><td>London</td></tr><tr><td>Phone</td><td>yesterday</td><td>Paris</td></tr>
<tr><td>Tablet</td><td>last week</td><td>Berlin</td></tr></table>
<p>Sessions older than thirty days are signed out. Remove a device to sign it out now.</p></main>
</body></html>"""
TOOLPICS = "usr/share/kalzium/data/toolpics"


@pytest.fixture(scope="module")
def images(browser, tmp_path_factory) -> dict[str, Path]:
    """screenshot.png (the page), face.png (it with the astronaut's face over 30%), small.png (with
    a photograph over ~5%)."""
    folder = tmp_path_factory.mktemp("photo-regions")
    context, page = new_page(browser, viewport={"width": 1000, "height": 620})
    page.set_content(PAGE)
    page.screenshot(path=str(folder / "screenshot.png"))
    context.close()
    screen = Image.open(folder / "screenshot.png").convert("RGB")
    face = Image.fromarray(data.astronaut()).crop((120, 20, 360, 260))  # her head and shoulders
    paths = {"screenshot": folder / "screenshot.png"}
    for name, area, where in (("face", 0.30, (560, 150)), ("small", 0.05, (800, 380))):
        side = int((area * screen.width * screen.height) ** 0.5)
        composite = screen.copy()
        composite.paste(face.resize((side, side), Image.LANCZOS), (min(where[0], screen.width - side), min(where[1], screen.height - side)))
        composite.save(folder / f"{name}.png")
        paths[name] = folder / f"{name}.png"
    return paths


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    """A product photograph on a light backdrop: kalzium-data's spatulas on white, from the system
    or downloaded from Debian (apt-get download, as scripts/bootstrap/build_set.py does)."""
    installed = Path("/") / TOOLPICS / "spatel.jpg"
    if installed.is_file():
        return installed
    folder = tmp_path_factory.mktemp("kalzium")
    try:
        subprocess.run(["apt-get", "download", "kalzium-data"], cwd=folder, check=True, capture_output=True, timeout=300)
        deb = glob.glob(str(folder / "kalzium-data_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, str(folder / "x")], check=True, capture_output=True, timeout=300)
    except (OSError, IndexError, subprocess.SubprocessError) as exc:
        pytest.skip(f"kalzium-data could not be fetched from Debian: {exc}")
    return folder / "x" / TOOLPICS / "spatel.jpg"


def decide(tmp_path: Path, paths: dict[str, Path], **settings) -> dict:
    engine = Engine(Settings(store=str(tmp_path / "store"), overrides="", **settings), tmp_path)
    results = engine.classify([ImageRequest(path, name) for name, path in paths.items()])
    return {r.request.key: r for r in results}


def test_tiles_of_a_photograph_and_of_a_page(images: dict[str, Path]) -> None:
    """The tile classifier tells a photograph's tiles from a rendered page's."""
    astronaut = Image.fromarray(data.astronaut())
    page = Image.open(images["screenshot"]).convert("RGB")
    assert photoregions.photo_share(astronaut) > 0.6
    assert photoregions.photo_share(page) < 0.05
    assert photoregions.file_share(images["face"]) >= Settings().photo_region > photoregions.file_share(images["small"])
    assert photoregions.photo_share(Image.new("RGB", (224, 224), "white")) == 0.0  # blank tiles count as drawn


def test_a_face_in_a_light_screenshot_is_kept_and_the_screenshot_still_inverts(tmp_path: Path, images: dict[str, Path]) -> None:
    decided = decide(tmp_path, images)
    assert decided["screenshot"].invert and decided["screenshot"].method == "head"
    assert decided["small"].invert, "a photograph over 5% of a screenshot does not stop it inverting"
    face = decided["face"]
    assert not face.invert and face.method == photoregions.METHOD
    assert face.p_invert >= 0.7  # the head would have inverted it: the step is what keeps it
    assert face.confidence == pytest.approx(1 - face.p_invert)

    off = decide(tmp_path / "off", {"face": images["face"]}, photo_region=0.0)
    assert off["face"].invert and off["face"].method == "head"


def test_a_product_photograph_on_white_is_kept(tmp_path: Path, product: Path) -> None:
    decided = decide(tmp_path, {"spatulas": product})["spatulas"]
    assert not decided.invert
    # The head keeps it already; were it inverted, the step would keep it: its photographed tiles
    # cover far more than the share that turns an invert to keep.
    assert photoregions.file_share(product) >= 2 * Settings().photo_region


def test_the_share_is_measured_again_for_an_image_embedded_by_an_earlier_build(tmp_path: Path, images: dict[str, Path]) -> None:
    """A store filled with the step off holds no share: the decision decodes the image again."""
    decide(tmp_path, {"face": images["face"]}, photo_region=0.0)
    again = decide(tmp_path, {"face": images["face"]})["face"]
    assert not again.invert and again.method == photoregions.METHOD and again.cached


def test_mkdocs_build_keeps_the_face_and_inverts_the_screenshot(tmp_path: Path, images: dict[str, Path]) -> None:
    docs = tmp_path / "docs"
    (docs / "img").mkdir(parents=True)
    for name in ("screenshot", "face"):
        shutil.copy(images[name], docs / "img" / f"{name}.png")
    (docs / "index.md").write_text("# Settings\n\n![the page](img/screenshot.png)\n\n![with a photo](img/face.png)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: photos\nplugins:\n  - invertornot\n")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(tmp_path / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    assert run.returncode == 0, run.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    tags = {name: next(line for line in html.split("<img")[1:] if f"img/{name}.png" in line) for name in ("screenshot", "face")}
    assert "invert-auto" in tags["screenshot"] and "invert-not-auto" not in tags["screenshot"]
    assert "invert-not-auto" in tags["face"]
    assert photoregions.METHOD in (tmp_path / "invertornot.yml").read_text()
