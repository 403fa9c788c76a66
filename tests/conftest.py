"""Fixtures shared by the test files."""
import filecmp
import importlib.util
from pathlib import Path

import pytest

from chromium import CHROMIUM, CHROMIUM_ARGS, need_browser
from fakes import FakeEmbedder

REPO = Path(__file__).resolve().parents[1]


def _package_dir(name: str) -> Path:
    """Where the import system finds a top-level package, without importing it (importing Pelican
    here would set up its logging before pytest's and hide warnings from caplog)."""
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else REPO / "not-installed"


def stale_install() -> str | None:
    """The first checkout file whose installed copy differs, or None.

    pytest imports the installed package, while the tests that start `python -c` or `-m` from the
    repository root import the checkout: after an edit without `make setup` the two disagree (a
    retrained head, say), and a test fails far from the cause."""
    from invertornot_ssg.shipped import models_dir

    pairs = [  # what `make setup` installs: pyproject's packages and the models mapped into the package
        (REPO / "invertornot_ssg", _package_dir("invertornot_ssg")),
        (REPO / "plugins" / "invertornot_mkdocs", _package_dir("invertornot_mkdocs")),
        (REPO / "plugins" / "pelican" / "plugins" / "invertornot", _package_dir("pelican") / "plugins" / "invertornot"),
        (REPO / "models", models_dir()),
    ]
    for source, installed in pairs:
        if not installed.is_dir() or installed.resolve() == source.resolve():
            continue  # an editable install: the checkout itself is imported
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                copy = installed / path.relative_to(source)
                if not copy.is_file() or not filecmp.cmp(path, copy, shallow=False):
                    return str(path.relative_to(REPO))
    return None


def pytest_configure(config: pytest.Config) -> None:
    changed = stale_install()
    if changed:
        raise pytest.UsageError(f"the installed invertornot-ssg is older than this checkout ({changed} differs); "
                                "run `make setup` (or `make test`, which runs it) before pytest")


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
