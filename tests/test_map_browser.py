"""The review page's map view in headless Chromium: zoom, drag a rectangle, click a cluster, label the
selection, and read the overrides YAML. The site is test_map's real `apply` build (default embedder).

Needs /usr/bin/chromium and Playwright for Python (tests/chromium.py); skips without them."""
from __future__ import annotations

import dataclasses
import math
import shutil

import pytest

from chromium import new_page
from invertornot_ssg.overrides import Overrides, record_decisions
from test_map import EMBEDDER, built  # noqa: F401 (the session's built site)
from test_review import Running

pytestmark = pytest.mark.browser


@pytest.fixture
def running(built, tmp_path):  # noqa: F811
    overrides = tmp_path / "invertornot.yml"
    shutil.copy(built.overrides, overrides)
    server = Running(dataclasses.replace(built, overrides=overrides), embedder=EMBEDDER)
    server.overrides = overrides
    yield server
    server.close()


@pytest.fixture
def page(browser):
    context, page = new_page(browser)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def open_map(page, running) -> dict:
    """The page in its map view, every tile drawn; returns the server's layout (key -> cell)."""
    page.goto(running.server.url)
    page.wait_for_selector(".tile, .empty")
    page.click("[data-view=map]")
    page.wait_for_function(f"() => document.querySelectorAll('.mtile').length === {len(running.site.items())}")
    return running.server.site_map.get().as_json(0.5, 0.2)


def labels(path) -> dict:
    return {key: entry.label for key, entry in Overrides.load(path).entries.items()}


def centre(page, key: str) -> tuple[float, float]:
    box = page.locator(f'.mtile[data-key="{key}"]').bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def selected(page) -> set[str]:
    return set(page.eval_on_selector_all(".mtile.sel", "tiles => tiles.map(t => t.dataset.key)"))


def test_drag_a_rectangle_and_label_it_invert(page, running):
    # A person labeled one image in the rectangle keep: the selection must leave that label alone.
    layout = open_map(page, running)
    cells = layout["cells"]
    at = {(c["col"], c["row"]): k for k, c in cells.items()}
    # A 3x2 rectangle of cells whose opposite corners hold images (the grid has a few empty cells).
    col, row = next((c, r) for r in range(layout["rows"] - 1) for c in range(layout["cols"] - 2)
                    if (c, r) in at and (c + 2, r + 1) in at)
    top_left, bottom_right = at[(col, row)], at[(col + 2, row + 1)]
    in_rectangle = sorted(k for (c, r), k in at.items() if col <= c <= col + 2 and row <= r <= row + 1)
    human = in_rectangle[0]
    record_decisions(running.overrides, {}, labels={human: "keep"})
    before = labels(running.overrides)
    page.reload()
    open_map(page, running)
    (x0, y0), (x1, y1) = centre(page, top_left), centre(page, bottom_right)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()
    assert selected(page) == set(in_rectangle)
    assert page.inner_text("#selcount") == f"{len(in_rectangle)} selected"

    page.click("#sel-invert")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Labeled')")
    status = page.inner_text("#status")
    assert f"Labeled {len(in_rectangle) - 1} images invert" in status and "1 a person had labeled kept" in status
    after = labels(running.overrides)
    expected = dict(before, **{k: "invert" for k in in_rectangle if k != human})
    assert after == expected  # exactly those labels, the person's keep untouched
    assert selected(page) == set()
    # The labeled tiles are now framed as a person's decision, and shown inverted.
    for key in in_rectangle:
        classes = page.get_attribute(f'.mtile[data-key="{key}"]', "class")
        assert "cat-human" in classes and ("inverted" in classes) == (key != human), (key, classes)
    assert page.errors == []


def test_click_a_cluster_shift_click_adds_and_label_keep(page, running):
    layout = open_map(page, running)
    cells = layout["cells"]
    page.eval_on_selector("#radius", "r => { r.value = '10'; }")  # 0.10 of the map's extent
    first = sorted(cells)[0]

    def cluster(key):
        c = cells[key]
        return {k for k, o in cells.items() if math.hypot(o["x"] - c["x"], o["y"] - c["y"]) <= 0.10}

    page.mouse.click(*centre(page, first))
    assert selected(page) == cluster(first)
    other = next(k for k in sorted(cells) if k not in cluster(first))
    page.keyboard.down("Shift")
    page.mouse.click(*centre(page, other))
    page.keyboard.up("Shift")
    chosen = cluster(first) | cluster(other)
    assert selected(page) == chosen
    before = labels(running.overrides)
    page.click("#sel-keep")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Labeled')")
    assert labels(running.overrides) == dict(before, **{k: "keep" for k in chosen})
    # Esc clears a selection; a click on the map's empty corner too.
    page.mouse.click(*centre(page, first))
    assert selected(page)
    page.keyboard.press("Escape")
    assert selected(page) == set()
    assert page.errors == []


def test_zoom_with_buttons_and_wheel_and_the_unsure_stand_out(page, running):
    open_map(page, running)
    scale = lambda: page.eval_on_selector("#map", "m => m.style.transform")  # noqa: E731
    fitted = scale()
    page.click("#zoom-in")
    assert scale() != fitted
    zoomed = float(scale()[len("scale("):-1])
    page.mouse.move(*centre(page, sorted(running.site.keys())[0]))
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"() => parseFloat(document.getElementById('map').style.transform.slice(6)) > {zoomed}")
    page.click("#zoom-fit")
    assert scale() == fitted
    # Unsure tiles get a thick amber frame; "Fade the sure ones" fades every other tile.
    unsure = page.eval_on_selector_all(".mtile.cat-unsure", "ts => ts.map(t => getComputedStyle(t).borderTopWidth)")
    assert all(width == "3px" for width in unsure)
    page.check("#spot")
    opacities = page.eval_on_selector_all(
        ".mtile:not(.cat-unsure):not(.cat-novel)", "ts => ts.map(t => getComputedStyle(t).opacity)")
    assert opacities and set(opacities) == {"0.25"}
    assert page.errors == []
