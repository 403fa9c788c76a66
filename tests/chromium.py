"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright for
Python (never `playwright install`). Without them the tests skip, and fail when CI=true."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def need_browser() -> None:
    reason = None
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "Playwright for Python is missing: pip install playwright (never `playwright install`)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def new_page(browser, **options):
    """(context, page): a fresh context the size of a laptop screen (Playwright's context
    `options` on top, e.g. color_scheme), its page waiting at most 20 s for anything."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return context, page
