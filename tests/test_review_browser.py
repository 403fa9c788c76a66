"""`invertornot-ssg review` in headless Chromium: label with the keyboard, save, check the YAML.

Needs /usr/bin/chromium (Debian: `apt-get install -y chromium`) and Playwright for Python;
never `playwright install`. Without Chromium these tests skip, and fail when CI=true
(tests/chromium.py)."""
from __future__ import annotations

import time

import pytest

from chromium import new_page
from invertornot_ssg.training import site_labels
from test_review import IMAGES, ORDER, UNCERTAIN, Running, build_big_site, build_site, expected_with_labels

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser):
    context, page = new_page(browser)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
    yield page
    context.close()


@pytest.fixture
def running(tmp_path):
    site = build_site(tmp_path)
    server = Running(site)
    server.built = site
    yield server
    server.close()


def tile_keys(page) -> list[str]:
    return page.eval_on_selector_all(".tile", "tiles => tiles.map(t => t.dataset.key)")


def focused_key(page) -> str | None:
    return page.evaluate("() => document.activeElement && document.activeElement.dataset.key")


def test_label_three_images_with_the_keyboard_and_save(page, running):
    site = running.built
    before = site.overrides.read_text(encoding="utf-8")
    page.goto(running.server.url)
    page.wait_for_selector(".tile")
    assert "token" not in page.url  # the token left the address bar (a cookie keeps it)
    assert tile_keys(page) == UNCERTAIN  # the default filter: most uncertain first
    assert page.inner_text("[data-filter=all] .count") == str(len(ORDER))

    # Each tile shows the image twice on the dark page: dimmed as kept, and with the site's filter.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.tile img')].every(img => img.complete && img.naturalWidth > 0)")
    assert page.eval_on_selector_all(".tile img", "imgs => imgs.length") == 2 * len(UNCERTAIN)
    inverted = page.eval_on_selector(".pane.invert img", "img => getComputedStyle(img).filter")
    kept = page.eval_on_selector(".pane.keep img", "img => getComputedStyle(img).filter")
    assert "invert(1)" in inverted and "hue-rotate(180deg)" in inverted and kept == "brightness(0.85)"
    assert page.eval_on_selector(".pane", "p => getComputedStyle(p).backgroundColor") == "rgb(24, 24, 27)"
    assert "p 0.55" in page.inner_text(".tile .decision") and "knn" in page.inner_text(".tile .decision")

    assert focused_key(page) == UNCERTAIN[0]
    page.keyboard.press("ArrowRight")
    assert focused_key(page) == UNCERTAIN[1]
    page.keyboard.press("ArrowLeft")
    assert focused_key(page) == UNCERTAIN[0]
    for key in ("i", "k", "i"):  # each labels the focused tile and moves on
        page.keyboard.press(key)
    assert page.inner_text("#save") == "Save 3 labels"
    assert page.eval_on_selector_all(".tile.edited", "tiles => tiles.length") == 3
    assert site.overrides.read_text(encoding="utf-8") == before  # nothing written before Save

    page.keyboard.press("Control+s")
    page.wait_for_selector("#status:has-text('Saved 3 labels')")
    labels = dict(zip(UNCERTAIN, ("invert", "keep", "invert")))
    assert site.overrides.read_text(encoding="utf-8") == expected_with_labels(before, labels)
    learned = site_labels([site.overrides])
    assert {key: learned[site.sha1[key]][0] for key in labels} == {k: v == "invert" for k, v in labels.items()}
    # Labeled images leave the uncertain view; the page offers to retrain.
    assert tile_keys(page) == []
    assert page.inner_text("[data-filter=human] .count") == "5"
    assert "invertornot-ssg retrain" in page.inner_text("#status")
    assert page.errors == []


def test_click_a_side_unset_with_u_and_filters(page, running):
    site = running.built
    before = site.overrides.read_text(encoding="utf-8")
    page.goto(running.server.url)
    page.wait_for_selector(".tile")
    page.click("[data-filter=all]")
    assert tile_keys(page) == ORDER
    page.click(".tile[data-key='photos/sunset.jpg'] .pane.invert")  # the click picks the inverted side
    assert "chosen" in page.get_attribute(".tile[data-key='photos/sunset.jpg'] .pane.invert", "class")
    page.keyboard.press("Space")  # flips the focused (clicked) tile: keep now
    assert "chosen" in page.get_attribute(".tile[data-key='photos/sunset.jpg'] .pane.keep", "class")
    page.keyboard.press("Space")
    page.click(".tile[data-key='photos/labeled.jpg'] .decision")  # focus the tile
    page.keyboard.press("u")  # back to automatic: the label leaves the file
    page.click("[data-filter=human]")
    assert tile_keys(page) == ["diagrams/explicit.png", "photos/labeled.jpg"]  # saved state decides the view
    page.click("#save")
    page.wait_for_selector("#status:has-text('Saved 2 labels')")
    expected = expected_with_labels(before, {"photos/sunset.jpg": "invert"}).replace(
        "  photos/labeled.jpg:\n    label: keep\n", "  photos/labeled.jpg:\n")
    assert site.overrides.read_text(encoding="utf-8") == expected
    assert tile_keys(page) == ["photos/sunset.jpg", "diagrams/explicit.png"]  # most uncertain first
    assert page.errors == []


def test_opens_on_automatic_decisions_when_none_is_uncertain(page, tmp_path):
    """A site whose head is sure of every image: the page opens where there is something to see."""
    sure = {key: value for key, value in IMAGES.items() if abs(value[2] - 0.5) >= 0.2}
    server = Running(build_site(tmp_path, sure))
    try:
        page.goto(server.server.url)
        page.wait_for_selector(".tile")
        assert page.get_attribute("[data-filter=automatic]", "aria-pressed") == "true"
        assert tile_keys(page) == ["screens/dark.png", "photos/sunset.jpg", "diagrams/flow.png"]
        assert page.errors == []
    finally:
        server.close()


def test_five_thousand_images_page_by_200_and_load_lazily(page, tmp_path):
    server = Running(build_big_site(tmp_path))
    thumbs = set()
    page.on("request", lambda request: "/thumb/" in request.url and thumbs.add(request.url))
    try:
        page.goto(server.server.url)
        page.wait_for_selector(".tile")
        page.click("[data-filter=all]")
        assert page.eval_on_selector_all(".tile", "tiles => tiles.length") == 200
        assert "page 1 of 25" in page.inner_text("#pager-top")
        start = time.perf_counter()
        thumbs.clear()
        page.keyboard.press("PageDown")
        page.wait_for_selector("#pager-top:has-text('page 2 of 25')")
        assert time.perf_counter() - start < 5
        first = page.eval_on_selector(".tile", "tile => tile.dataset.key")
        page.keyboard.press("i")
        assert page.inner_text("#save") == "Save 1 label"
        page.wait_for_timeout(1000)
        # Lazy: only tiles near the viewport fetch their image (one URL serves both panes).
        assert 0 < len(thumbs) < 150, len(thumbs)
    finally:
        server.close()
    assert first.startswith("docs/img")
