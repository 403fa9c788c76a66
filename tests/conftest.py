"""Fixtures shared by the test files."""
import pytest

from chromium import CHROMIUM, CHROMIUM_ARGS, need_browser
from fakes import FakeEmbedder


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine gets the FakeEmbedder (tests/fakes.py) instead of loading a model."""
    monkeypatch.setattr("invertornot_ssg.engine.get_embedder", lambda *a, **k: FakeEmbedder())


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/chromium.py), one per test module."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
