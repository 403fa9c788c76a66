"""What a reader sees: the built sample sites in headless Chromium, light and dark.

The stylesheet's rules are checked as text in test_css.py; here real themes decide when the page
is dark (MkDocs' own theme through its colour-mode script, Material through its palette toggle,
Pelican's default theme, from 4.12, through the system preference), and every classified image
must be inverted or dimmed exactly while the page is dark, and untouched while it is light,
including when the reader's toggle overrides the system preference.

Needs /usr/bin/chromium and Playwright for Python (tests/chromium.py), mkdocs-material and
Pelican 4.12 or later (test dependencies)."""
from __future__ import annotations

import functools
import re
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chromium import need_browser, new_page
from test_pelican_plugin import build_samples, run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Chromium's computed `filter` for the stylesheet's two filters (invertornot_ssg.css)
INVERTED = "grayscale(0.5) invert(1) brightness(0.95) hue-rotate(180deg)"
DIMMED = "brightness(0.85)"
EXPECTED_DARK = {"invert": INVERTED, "invert-auto": INVERTED, "invert-not": DIMMED, "invert-not-auto": DIMMED}

# Material's recipe for a palette that follows the system and has a toggle
MATERIAL_THEME = """theme:
  name: material
  palette:
    - media: "(prefers-color-scheme: light)"
      scheme: default
      toggle: {icon: material/brightness-4, name: Switch to dark mode}
    - media: "(prefers-color-scheme: dark)"
      scheme: slate
      toggle: {icon: material/brightness-7, name: Switch to light mode}
"""

# Every image the plugin classified (it marks them data-invertornot), with its class and filter
IMAGES = """() => [...document.querySelectorAll('img[data-invertornot]')].map(img => ({
    src: img.getAttribute('src'),
    classes: [...img.classList],
    filter: getComputedStyle(img).filter,
}))"""
BODY_BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample sites as built by test_pelican_plugin (MkDocs' theme, Pelican's default theme),
    and the MkDocs sample again with Material (its palette read from mkdocs.yml), on the same store."""
    need_browser()
    samples = build_samples(tmp_path_factory)
    config = (samples.root / "mkdocs" / "mkdocs.yml").read_text(encoding="utf-8")
    material, n = re.subn(r"(?ms)^theme:\n.*?(?=^\S)", MATERIAL_THEME, config, count=1)
    assert n == 1
    (samples.root / "mkdocs" / "material.yml").write_text(material, encoding="utf-8")
    material_site = samples.root / "material-site"
    if not (material_site / "index.html").is_file():
        run([sys.executable, "-m", "mkdocs", "build", "-f", "material.yml", "-d", str(material_site)], samples.root / "mkdocs")
    return {"mkdocs": samples.mkdocs_site, "material": material_site, "pelican": samples.out}


@pytest.fixture(scope="module")
def served(sites):
    """Each built site over HTTP (the themes' scripts and storage behave as when deployed)."""
    servers, urls = [], {}
    for name, root in sites.items():
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{server.server_address[1]}/"
    yield urls
    for server in servers:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def open_page(browser, url: str, scheme: str):
    context, page = new_page(browser, color_scheme=scheme)
    page.goto(url, wait_until="load")
    return context, page


def images_on(page) -> list[dict]:
    images = page.evaluate(IMAGES)
    assert images, f"no classified image on {page.url}"
    return images


def our_class(image: dict) -> str:
    (cls,) = [c for c in image["classes"] if c in EXPECTED_DARK]
    return cls


def settled(page) -> None:
    """Wait until no transition runs (kept images fade their filter in when the scheme changes)."""
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")


def assert_dark(page) -> list[dict]:
    """The page is dark and each classified image has its class's filter; returns the images."""
    settled(page)
    assert _luminance(page.evaluate(BODY_BACKGROUND)) < 0.2, "the page should be dark"
    images = images_on(page)
    wrong = [(i["src"], our_class(i), i["filter"]) for i in images if i["filter"] != EXPECTED_DARK[our_class(i)]]
    assert not wrong, wrong
    return images


def assert_light(page) -> list[dict]:
    """The page is light and no classified image is filtered; returns the images."""
    settled(page)
    assert _luminance(page.evaluate(BODY_BACKGROUND)) > 0.8, "the page should be light"
    images = images_on(page)
    wrong = [(i["src"], i["filter"]) for i in images if i["filter"] != "none"]
    assert not wrong, wrong
    return images


def _luminance(css_colour: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


# Pages with all four classes between them (Pelican's index hides some summaries' images)
PAGES = {
    "mkdocs": ["", "guide/authors/"],
    "material": ["", "guide/authors/"],
    "pelican": ["", "photos-and-images-the-author-decided.html", "charts-on-a-dark-page.html"],
}


@pytest.mark.parametrize("site", sorted(PAGES))
def test_images_follow_the_system_scheme(browser, served, site: str) -> None:
    seen: set[str] = set()
    for path in PAGES[site]:
        for scheme, check in (("dark", assert_dark), ("light", assert_light)):
            context, page = open_page(browser, served[site] + path, scheme)
            try:
                seen |= {our_class(i) for i in check(page)}
            finally:
                context.close()
    assert seen == set(EXPECTED_DARK)  # author and model decisions, both ways


def test_mkdocs_toggle_overrides_the_system(browser, served) -> None:
    """MkDocs' theme menu: light while the system is dark, dark while it is light."""
    for system, chosen, check in (("dark", "light", assert_light), ("light", "dark", assert_dark)):
        context, page = open_page(browser, served["mkdocs"], system)
        try:
            page.evaluate(f"() => document.querySelector('[data-bs-theme-value=\"{chosen}\"]').click()")
            assert page.evaluate("() => document.documentElement.dataset.bsTheme") == chosen
            check(page)
            page.reload(wait_until="load")  # the choice is stored: it holds on the next page
            check(page)
        finally:
            context.close()


def test_material_toggle_overrides_the_system(browser, served) -> None:
    """Material's palette toggle: light while the system is dark (the stylesheet's media query must
    step aside, since Material marks the scheme it chose on <body>), dark while it is light."""
    for system, chosen, check in (("dark", "default", assert_light), ("light", "slate", assert_dark)):
        context, page = open_page(browser, served["material"], system)
        try:
            page.locator("form[data-md-component=palette] label:visible").first.click()
            page.wait_for_function(f"() => document.body.dataset.mdColorScheme === '{chosen}'")
            check(page)
            page.reload(wait_until="load")
            assert page.evaluate("() => document.body.dataset.mdColorScheme") == chosen
            check(page)
        finally:
            context.close()


@pytest.mark.parametrize("site", sorted(PAGES))
def test_hover_shows_a_kept_image_as_it_is(browser, served, site: str) -> None:
    hovered = set()
    for path in PAGES[site]:
        context, page = open_page(browser, served[site] + path, "dark")
        try:
            for cls, on_hover in (("invert-not-auto", "none"), ("invert-auto", INVERTED)):
                visible = page.locator(f"img.{cls}:visible")
                if cls in hovered or not visible.count():
                    continue
                visible.first.hover()
                settled(page)
                assert visible.first.evaluate("img => getComputedStyle(img).filter") == on_hover, (path, cls)
                hovered.add(cls)
        finally:
            context.close()
    assert hovered == {"invert-not-auto", "invert-auto"}
