"""What the reader sees, theme by theme: small sites built with and without the plugin and looked at
in headless Chromium, every assertion computed from screenshot pixels.

- light mode, and any theme without a dark mode whatever the system says: each image's pixels are
  identical to the build without the plugin;
- dark mode: the inverted diagram comes out dark, the photograph is never inverted, the kept
  black line art on transparency reaches 3:1 against what is behind it, and no frame around the
  inverted image is lighter than the page around it.

The images carry their author's classes (explicit labels) and the embedder is the fake one: this
is about the stylesheet each theme gets, not about the model (tests/test_dark_mode_browser.py and
the sample sites cover decisions). Needs /usr/bin/chromium and Playwright (tests/chromium.py),
mkdocs-material, Pelican 4.12 or later, Sphinx and Furo (test dependencies)."""
from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from chromium import need_browser, new_page
from fakes import FAKE_MODEL, FakeEmbedder
from invertornot_ssg.contrast import MIN_CONTRAST, contrast_ratio
from test_dark_mode_browser import MATERIAL_THEME

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Each image by its alt text, with the author's class
DIAGRAM, PHOTO, LINES = "diagram", "photo", "lines"
CLASSES = {DIAGRAM: "invert", PHOTO: "invert-not", LINES: "invert-not"}


# -- the images ---------------------------------------------------------------------------------


def make_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    diagram = Image.new("RGB", (240, 160), "white")  # a plot: axes, a blue line, on white
    draw = ImageDraw.Draw(diagram)
    draw.line([(20, 140), (20, 10)], fill="black", width=3)
    draw.line([(20, 140), (230, 140)], fill="black", width=3)
    draw.line([(25, 130), (80, 60), (140, 95), (225, 20)], fill=(31, 119, 180), width=4)
    diagram.save(folder / "diagram.png")
    y, x = np.mgrid[0:160, 0:240] / 40.0  # smooth colour fields with sensor-like noise: a photograph
    noise = np.random.default_rng(0).normal(0, 6, (160, 240, 3))
    rgb = np.stack([120 + 90 * np.sin(x), 110 + 80 * np.cos(y), 90 + 60 * np.sin(x + y)], axis=-1) + noise
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / "photo.png")
    lines = Image.new("RGBA", (240, 160), (0, 0, 0, 0))  # black line art on transparency
    draw = ImageDraw.Draw(lines)
    for x0 in range(10, 240, 30):
        draw.line([(x0, 10), (x0 + 20, 150)], fill="black", width=4)
    draw.rectangle([60, 60, 180, 100], outline="black", width=4)
    lines.save(folder / "lines.png")


def img_tags(prefix: str) -> str:
    return "\n\n".join(f'<img alt="{name}" class="{cls}" src="{prefix}{name}.png">' for name, cls in CLASSES.items())


# -- the sites ----------------------------------------------------------------------------------

MKDOCS_THEMES = {
    "mkdocs-light": "  name: mkdocs\n  color_mode: light\n",
    "mkdocs-dark": "  name: mkdocs\n  color_mode: dark\n",
    "mkdocs-auto": "  name: mkdocs\n  color_mode: auto\n  user_color_mode_toggle: true\n",
    "material-light": "  name: material\n",
    "material-slate": "  name: material\n  palette:\n    scheme: slate\n",
    "material-toggle": MATERIAL_THEME.removeprefix("theme:\n"),  # follows the system, with a toggle
    "readthedocs": "  name: readthedocs\n",
}


def build_mkdocs(root: Path, theme: str, enabled: bool, extra: str = "") -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    make_images(root / "docs" / "img")
    (root / "docs" / "index.md").write_text("# Images\n\n" + img_tags("img/") + "\n")
    (root / "mkdocs.yml").write_text(
        f"site_name: matrix\ntheme:\n{theme}plugins:\n  - invertornot:\n      enabled: {str(enabled).lower()}\n"
        f"      model: '{FAKE_MODEL}'\n      store: ../store\n{extra}")
    build(load_config(str(root / "mkdocs.yml"), site_dir=str(root / "site")))
    return root / "site"


def build_pelican(root: Path, theme: str, enabled: bool) -> Path:
    from pelican import Pelican
    from pelican.settings import read_settings
    from test_pelican_plugin import plugin_settings

    make_images(root / "content" / "images")
    (root / "content" / "post.md").write_text("Title: Images\nDate: 2024-01-01\nSlug: post\n\n" + img_tags("{static}/images/") + "\n")
    (root / "pelicanconf.py").write_text(
        "SITENAME = 'matrix'\nPATH = 'content'\nSTATIC_PATHS = ['images']\nRELATIVE_URLS = True\nTIMEZONE = 'UTC'\n"
        "FEED_ALL_ATOM = None\nCATEGORY_FEED_ATOM = None\nAUTHOR_FEED_ATOM = None\nAUTHOR_FEED_RSS = None\n")
    settings = {**plugin_settings(), "OUTPUT_PATH": str(root / "output"), "CACHE_CONTENT": False, "THEME": theme,
                "INVERTORNOT": {"enabled": enabled, "model": FAKE_MODEL, "store": str(root.parent / "store"),
                                "overrides": str(root / "invertornot.yml")}}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        Pelican(read_settings(str(root / "pelicanconf.py"), override=settings)).run()
    finally:
        os.chdir(cwd)
    return root / "output"


def build_sphinx_furo(root: Path, enabled: bool) -> Path:
    """Sphinx with Furo, then `invertornot-ssg apply` on the built HTML."""
    pytest.importorskip("furo")
    from invertornot_ssg import cli

    source = root / "src"
    make_images(source / "img")
    (source / "conf.py").write_text("project = 'matrix'\nhtml_theme = 'furo'\n")
    rst = "".join(f".. image:: img/{name}.png\n   :alt: {name}\n   :class: {cls}\n\n" for name, cls in CLASSES.items())
    (source / "index.rst").write_text("Images\n======\n\n" + rst)
    out = root / "html"
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(out)], check=True)
    if enabled:
        assert cli.main(["apply", str(out), "--store", str(root.parent / "store"), "--model", FAKE_MODEL,
                         "--overrides", str(root / "invertornot.yml")]) == 0
    return out


BUILDERS: dict[str, Callable[[Path, bool], Path]] = {
    **{name: functools.partial(lambda theme, root, on: build_mkdocs(root, theme, on), theme)
       for name, theme in MKDOCS_THEMES.items()},
    "mkdocs-dark-no-backdrop": lambda root, on: build_mkdocs(root, MKDOCS_THEMES["mkdocs-dark"], on, "      backdrop: none\n"),
    "pelican-notmyidea": lambda root, on: build_pelican(root, "notmyidea", on),
    "pelican-simple": lambda root, on: build_pelican(root, "simple", on),  # no CSS at all: no dark mode
    "sphinx-furo": build_sphinx_furo,
}
PAGE = {"pelican-notmyidea": "post.html", "pelican-simple": "post.html"}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory):
    """url(case, plugin on?) -> the page with the images; sites are built on first use, all served
    from one folder over HTTP (the themes' scripts and storage behave as when deployed)."""
    need_browser()
    pytest.importorskip("material")
    root = tmp_path_factory.mktemp("matrix")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    built: dict[tuple[str, bool], str] = {}

    def url(case: str, on: bool) -> str:
        if (case, on) not in built:
            folder = root / f"{case}-{'on' if on else 'off'}"
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr("invertornot_ssg.engine.get_embedder", lambda *a, **k: FakeEmbedder())
                out = BUILDERS[case](folder, on)
            built[case, on] = f"http://127.0.0.1:{server.server_address[1]}/{out.relative_to(root).as_posix()}/{PAGE.get(case, '')}"
        return built[case, on]

    yield url
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# -- looking at a page --------------------------------------------------------------------------


def look(browser, url: str, scheme: str, toggle: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Each image on the page: its pixels (border box), the 12-pixel ring of page around it, and
    the page's background colour, as Chromium renders them with the system in `scheme`."""
    # Tall enough that no image needs scrolling to: one layout, whole pixels, no fixed header over it
    context, page = new_page(browser, color_scheme=scheme, viewport={"width": 1280, "height": 1600})
    try:
        page.goto(url, wait_until="load")
        if toggle:  # Material's palette toggle: to the other scheme
            page.locator("form[data-md-component=palette] label:visible").first.click()
            page.wait_for_function("() => document.body.dataset.mdColorScheme === 'slate'")
        # every image decoded and the web fonts in place, then two frames painted
        page.evaluate("""async () => {
            await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
            await document.fonts.ready;
            await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        }""")
        page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
        page.mouse.move(0, 0)  # no image hovered
        found = {}
        for name in CLASSES:
            image = page.locator(f'img[alt="{name}"]')
            box = image.bounding_box()
            assert box["y"] + box["height"] < 1600 - 24, "the page should fit the window"
            margin = 12
            x, y = int(box["x"]) - margin, int(box["y"]) - margin
            clip = {"x": x, "y": y, "width": int(box["x"] + box["width"]) + 1 + margin - x,
                    "height": int(box["y"] + box["height"]) + 1 + margin - y}
            around = _pixels(page.screenshot(clip=clip, animations="disabled"))
            inner = around[margin:-margin, margin:-margin]
            ring = np.concatenate([around[:margin // 2].reshape(-1, 3), around[-(margin // 2):].reshape(-1, 3)])
            found[name] = {"pixels": inner, "around": ring}
        return found
    finally:
        context.close()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def assert_as_without_plugin(browser, sites, case: str, scheme: str, attempts: int = 3) -> None:
    """Every image's pixels identical to the build without the plugin. Chromium's anti-aliasing of
    a rounded frame's corners varies by a level or two between two loads of the very same page
    (MkDocs' theme), so the two builds are looked at again, a few times, until they agree; an
    applied filter never does."""
    for _ in range(attempts):
        with_plugin, without = look(browser, sites(case, True), scheme), look(browser, sites(case, False), scheme)
        different = [name for name in CLASSES
                     if with_plugin[name]["pixels"].shape != without[name]["pixels"].shape
                     or not np.array_equal(with_plugin[name]["pixels"], without[name]["pixels"])]
        if not different:
            return
    worst = {n: float(np.abs(with_plugin[n]["pixels"] - without[n]["pixels"]).max())
             if with_plugin[n]["pixels"].shape == without[n]["pixels"].shape else "size" for n in different}
    pytest.fail(f"{case}, system {scheme}: images differ from the build without the plugin: {worst}")


def assert_dark(seen: dict, light: dict, case: str) -> None:
    """Inverted diagram dark and frameless, photograph not inverted, kept line art legible."""
    page = np.median(seen[DIAGRAM]["around"], axis=0)
    assert luminance(page) < 0.2, f"{case}: the page should be dark"

    diagram = seen[DIAGRAM]["pixels"]
    assert luminance(diagram).mean() < 0.3, f"{case}: the inverted diagram should be dark"
    frame = np.concatenate([diagram[:6].reshape(-1, 3), diagram[-6:].reshape(-1, 3),
                            diagram[:, :6].reshape(-1, 3), diagram[:, -6:].reshape(-1, 3)])
    assert luminance(frame).mean() <= luminance(page) + 0.03, f"{case}: a frame lighter than the page"

    # inside the theme's frame, if any (a frame's colour follows the scheme)
    dark, bright = (luminance(shot[PHOTO]["pixels"][8:-8, 8:-8]).ravel() for shot in (seen, light))
    assert dark.shape == bright.shape
    assert np.corrcoef(dark, bright)[0, 1] > 0.9, f"{case}: the photograph looks inverted"

    ratio = line_art_contrast(seen, light)
    print(f"{case}: page {luminance(page):.3f}, inverted diagram {luminance(diagram).mean():.3f}, frame"
          f" {luminance(frame).mean():.3f} (luminance); kept line art {ratio:.1f}:1")  # pytest -rP shows it
    assert ratio >= MIN_CONTRAST, f"{case}: kept line art vanishes"


def line_art_contrast(seen: dict, light: dict) -> float:
    """WCAG contrast of the kept line art's strokes against what is behind them, in dark mode:
    where the light page shows black strokes, and where it shows the page between them."""
    on_light, on_dark = light[LINES]["pixels"], seen[LINES]["pixels"]
    assert on_light.shape == on_dark.shape
    lum = luminance(on_light)
    ink, behind = lum < 0.2, lum > 0.8
    inner = np.zeros_like(ink)
    inner[8:-8, 8:-8] = True  # inside the theme's frame, if any
    return contrast_ratio(np.median(on_dark[ink & inner], axis=0), np.median(on_dark[behind & inner], axis=0))


# -- the matrix ---------------------------------------------------------------------------------

NO_DARK_MODE = ["mkdocs-light", "material-light", "readthedocs", "pelican-simple"]
FOLLOWS_SYSTEM = ["mkdocs-auto", "material-toggle", "pelican-notmyidea", "sphinx-furo"]
ALWAYS_DARK = ["mkdocs-dark", "material-slate"]


@pytest.mark.parametrize("case", NO_DARK_MODE)
def test_no_dark_mode_looks_as_without_the_plugin(browser, sites, case: str) -> None:
    for scheme in ("dark", "light"):
        assert_as_without_plugin(browser, sites, case, scheme)


@pytest.mark.parametrize("case", FOLLOWS_SYSTEM)
def test_follows_the_system(browser, sites, case: str) -> None:
    assert_as_without_plugin(browser, sites, case, "light")
    assert_dark(look(browser, sites(case, True), "dark"), look(browser, sites(case, True), "light"), case)


@pytest.mark.parametrize("case", ALWAYS_DARK)
def test_always_dark(browser, sites, case: str) -> None:
    """A dark-only theme: compared with the light rendering of the build without the plugin."""
    light = look(browser, sites("mkdocs-light" if case.startswith("mkdocs") else "material-light", False), "light")
    assert_dark(look(browser, sites(case, True), "dark"), light, case)
    assert_dark(look(browser, sites(case, True), "light"), light, case)  # whatever the system says


def test_material_toggle_to_dark(browser, sites) -> None:
    light = look(browser, sites("material-toggle", True), "light")
    assert_dark(look(browser, sites("material-toggle", True), "light", toggle=True), light, "material-toggle")


def test_without_backdrop_kept_line_art_vanishes(browser, sites) -> None:
    """What the backdrop is for: the same page with `backdrop: none` fails the 3:1 measure."""
    light = look(browser, sites("mkdocs-light", False), "light")
    ratio = line_art_contrast(look(browser, sites("mkdocs-dark-no-backdrop", True), "dark"), light)
    print(f"mkdocs-dark, backdrop: none: kept line art {ratio:.2f}:1")
    assert ratio < MIN_CONTRAST
