"""Which dark mode a site has: MkDocs' config (real config loading), Pelican theme stylesheets,
built pages for `apply`; and the contrast measure behind the backdrop and the light-ink rule."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from invertornot_ssg import contrast, themes
from invertornot_ssg.css import INVERT_FILTER, KEEP_FILTER
from invertornot_ssg.images import load_image
from invertornot_ssg.themes import MEDIA_DARK, Rule


def mkdocs_theme(tmp_path: Path, theme: str) -> themes.DarkMode:
    from mkdocs.config import load_config

    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "mkdocs.yml").write_text(f"site_name: t\ntheme:\n{theme}")
    config = load_config(str(tmp_path / "mkdocs.yml"))
    return themes.mkdocs(config.theme.name, config.theme, config.theme.dirs)


@pytest.mark.parametrize(
    ("theme", "rules"),
    [
        ("  name: mkdocs\n", ()),  # color_mode defaults to light
        ("  name: mkdocs\n  color_mode: light\n", ()),
        ("  name: mkdocs\n  color_mode: dark\n", (Rule('[data-bs-theme="dark"]'),)),
        ("  name: mkdocs\n  color_mode: auto\n", (Rule('[data-bs-theme="dark"]'),)),
        ("  name: mkdocs\n  user_color_mode_toggle: true\n", (Rule('[data-bs-theme="dark"]'),)),
        ("  name: readthedocs\n", ()),
        ("  name: material\n", ()),  # no palette: the default (light) scheme only
        ("  name: material\n  palette:\n    scheme: default\n", ()),
        ("  name: material\n  palette:\n    scheme: slate\n", (Rule('[data-md-color-scheme="slate"]'),)),
        ("  name: material\n  palette:\n    - scheme: default\n      toggle: {icon: a, name: b}\n"
         "    - scheme: slate\n      toggle: {icon: c, name: d}\n", (Rule('[data-md-color-scheme="slate"]'),)),
        ("  name: material\n  palette:\n    - media: '(prefers-color-scheme: light)'\n      scheme: default\n"
         "    - media: '(prefers-color-scheme: dark)'\n      scheme: slate\n", (Rule('[data-md-color-scheme="slate"]'),)),
    ],
)
def test_mkdocs_themes(tmp_path: Path, theme: str, rules: tuple) -> None:
    pytest.importorskip("material")
    found = mkdocs_theme(tmp_path, theme)
    assert found.rules == rules
    assert found.found == bool(rules)
    if not rules:
        assert found.why  # what the warning says


def test_mkdocs_theme_colours() -> None:
    assert themes.mkdocs("material", {"palette": {"scheme": "slate"}}).background == themes.MATERIAL_SLATE
    assert themes.mkdocs("mkdocs", {"color_mode": "auto"}).background == themes.BOOTSTRAP_DARK


def test_unknown_mkdocs_theme_is_read_from_its_css(tmp_path: Path) -> None:
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "theme.css").write_text("body{color:#000}\n@media screen and (prefers-color-scheme:dark){body{color:#fff}}")
    assert themes.mkdocs("custom", {}, [str(tmp_path)]).rules == (Rule("", MEDIA_DARK),)
    (tmp_path / "css" / "theme.css").write_text("body{color:#000}")
    assert not themes.mkdocs("custom", {}, [str(tmp_path)]).found


def test_pelican_default_theme_follows_the_system() -> None:
    """Pelican 4.12's notmyidea has prefers-color-scheme rules (earlier versions none: read from CSS)."""
    import pelican

    notmyidea = Path(pelican.__file__).parent / "themes" / "notmyidea"
    found = themes.pelican(notmyidea)
    assert found.rules == (Rule("", MEDIA_DARK),)
    assert found.background == themes.NOTMYIDEA_DARK
    simple = Path(pelican.__file__).parent / "themes" / "simple"
    assert not themes.pelican(simple).found


def test_pelican_theme_with_a_toggle(tmp_path: Path) -> None:
    (tmp_path / "static" / "css").mkdir(parents=True)
    (tmp_path / "static" / "css" / "main.css").write_text(
        '[data-theme="dark"] body{background:#000}\n@media (prefers-color-scheme: dark){:root:not([data-theme]) body{background:#000}}')
    assert themes.pelican(tmp_path).rules == themes.DATA_THEME_RULES


def page(root: Path, name: str, html: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path


@pytest.mark.parametrize(
    ("html", "theme", "rules"),
    [
        ('<html><body data-md-color-scheme="default"><form><input data-md-color-scheme="slate"></form>', "material",
         (Rule('[data-md-color-scheme="slate"]'),)),
        ('<html><body data-md-color-scheme="default">', "material", ()),
        ('<html data-bs-theme="auto"><body>', "bootstrap", (Rule('[data-bs-theme="dark"]'),)),
        ('<html data-bs-theme="light"><body>', "bootstrap", ()),
        ('<html data-bs-theme="light"><body><script src="js/darkmode.js"></script>', "bootstrap", (Rule('[data-bs-theme="dark"]'),)),
        ('<html><head><link rel="stylesheet" href="_static/styles/furo.css"></head><body data-theme="auto">', "furo",
         themes.DATA_THEME_RULES),
        ('<html data-theme="light"><head><meta name="docusaurus_locale" content="en">', "docusaurus",
         themes.DATA_THEME_RULES),
        ("<html><head><style>@media (prefers-color-scheme: dark) { body { background: #000 } }</style>", "site",
         (Rule("", MEDIA_DARK),)),
        ("<html><head><title>plain</title></head><body>", "site", ()),
    ],
)
def test_built_site(tmp_path: Path, html: str, theme: str, rules: tuple) -> None:
    found = themes.built_site(tmp_path, [page(tmp_path, "index.html", html)])
    assert (found.theme, found.rules) == (theme, rules)


def test_built_site_css_file(tmp_path: Path) -> None:
    pages = [page(tmp_path, "index.html", '<html><head><link rel="stylesheet" href="s.css"></head>')]
    (tmp_path / "s.css").write_text("@media (prefers-color-scheme: dark) { body { background: #000 } }")
    assert themes.built_site(tmp_path, pages).rules == (Rule("", MEDIA_DARK),)


def test_built_site_ignores_the_stylesheet_an_earlier_apply_wrote(tmp_path: Path) -> None:
    """A site without a dark mode stays without one after `apply --dark-selector '@media …'`
    wrote invertornot.css: the next run without the option reads the site's CSS, not ours."""
    pages = [page(tmp_path, "index.html", '<html><head><link rel="stylesheet" href="invertornot.css"></head>')]
    (tmp_path / "invertornot.css").write_text("@media (prefers-color-scheme: dark) { img.invert { filter: invert(1) } }")
    assert themes.built_site(tmp_path, pages).rules == ()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "invertornot.css").write_text("@media (prefers-color-scheme: dark) { body { background: #000 } }")
    assert themes.built_site(tmp_path, pages).rules == (Rule("", MEDIA_DARK),)  # only our own file is left out


def test_user_selectors_always_win() -> None:
    detected = themes.mkdocs("mkdocs", {"color_mode": "auto"})
    assert themes.choose(["auto"], detected) is detected
    assert themes.choose(["html.dark"], detected).rules == (Rule("html.dark"),)
    assert themes.choose([], detected).rules == ()  # explicitly none
    assert themes.choose(["html.dark"], detected).background == detected.background


def test_apply_warns_once_without_a_dark_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture, fake_embedder) -> None:
    from fakes import FAKE_MODEL
    from invertornot_ssg import cli

    site = tmp_path / "site"
    page(site, "index.html", '<html><head></head><body><img src="a.png"></body></html>')
    page(site, "b.html", '<html><head></head><body><img src="a.png"></body></html>')
    Image.new("RGB", (32, 32), "white").save(site / "a.png")
    with caplog.at_level(logging.WARNING):
        assert cli.main(["apply", str(site), "--store", str(tmp_path / "store"), "--model", FAKE_MODEL]) == 0
    warnings = [r.getMessage() for r in caplog.records if "no dark mode found" in r.getMessage()]
    assert len(warnings) == 1 and "dark_selectors" in warnings[0]
    css = (site / "invertornot.css").read_text()
    assert "{" not in css  # a header, no rule
    assert "invert-not-auto" in (site / "index.html").read_text()  # classes are still written


# -- the contrast measure -----------------------------------------------------------------------


def test_wcag_contrast() -> None:
    assert contrast.contrast_ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21.0)
    assert contrast.contrast_ratio((1, 1, 1), (1, 1, 1)) == pytest.approx(1.0)
    # future-architect's figure for black ink on a #1b1b1f page: 1.22
    assert contrast.contrast_ratio((0, 0, 0), contrast.hex_rgb("#1b1b1f")) == pytest.approx(1.22, abs=0.01)


def test_filters_as_css_computes_them() -> None:
    inverted = contrast.parse_filter(INVERT_FILTER)
    assert inverted == [("grayscale", 0.5), ("invert", 1.0), ("brightness", 0.95), ("hue-rotate", 180.0)]
    assert contrast.apply_filter((1, 1, 1), inverted) == pytest.approx((0, 0, 0), abs=1e-6)
    assert contrast.apply_filter((0, 0, 0), inverted) == pytest.approx((0.95, 0.95, 0.95), abs=1e-3)
    red = contrast.apply_filter((1, 0, 0), inverted)
    assert red[0] > red[1] and red[0] > red[2]  # the hue rotation keeps red reddish
    assert contrast.apply_filter((1, 1, 1), contrast.parse_filter(KEEP_FILTER)) == pytest.approx((0.85,) * 3)


def transparent(path: Path, ink: str, size: int = 200) -> Path:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for x in range(10, size, 40):
        draw.line([(x, 10), (x, size - 10)], fill=ink, width=3)
    draw.text((20, size // 2), "Label", fill=ink)
    image.save(path)
    return path


@pytest.mark.parametrize(
    ("ink", "backdrop", "no_invert"),
    [("black", True, False), ("#000080", True, False), ("white", False, True), ("#ffd000", False, True),
     ("#808080", False, False)],
)
def test_transparent_ink(tmp_path: Path, ink: str, backdrop: bool, no_invert: bool) -> None:
    loaded = load_image(transparent(tmp_path / "a.png", ink))
    palette = loaded.ink_palette
    assert palette[0] > 0.8  # the page shows through most of it
    for page_colour in ("#18181b", themes.MATERIAL_SLATE, themes.NOTMYIDEA_DARK, themes.FURO_DARK):
        assert contrast.needs_backdrop(palette, page_colour) is backdrop
        assert contrast.inversion_vanishes(palette, page_colour) is no_invert


def test_opaque_and_nearly_opaque_images_are_left_alone(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), "black").save(tmp_path / "black.png")
    assert load_image(tmp_path / "black.png").ink_palette is None
    rounded = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    rounded.putpixel((0, 0), (0, 0, 0, 0))  # a transparent corner: the page barely shows
    rounded.save(tmp_path / "rounded.png")
    palette = load_image(tmp_path / "rounded.png").ink_palette
    assert palette[0] < contrast.PAGE_SHOWS and not contrast.needs_backdrop(palette, "#18181b")


def test_ink_palette_keeps_thin_lines_colour(tmp_path: Path) -> None:
    """Downscaled, a one-pixel line loses opacity, not colour (Pillow resamples premultiplied)."""
    image = Image.new("RGBA", (2000, 2000), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(1000, 0), (1000, 1999)], fill=(200, 0, 0, 255), width=1)
    image.save(tmp_path / "thin.png")
    _, colours = load_image(tmp_path / "thin.png").ink_palette
    r, g, b, weight = colours[0]
    assert (r, g, b) == pytest.approx((200, 0, 0), abs=16) and weight > 0.5  # bicubic overshoots a little
    assert np.isclose(sum(c[3] for c in colours), 1.0, atol=0.01)
