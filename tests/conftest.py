"""Fixtures shared by the test files."""
import pytest

from fakes import FakeEmbedder


@pytest.fixture
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every engine gets the FakeEmbedder (tests/fakes.py) instead of loading a model."""
    monkeypatch.setattr("invertornot_ssg.engine.get_embedder", lambda *a, **k: FakeEmbedder())
