"""The build memo (buildmemo.py) through the engine: a repeated site build reuses the last
build's results only while nothing they depend on changed, and an image that failed is tried again."""
from pathlib import Path

import pytest
from fakes import FAKE_MODEL
from PIL import Image, ImageDraw

from invertornot_ssg import engine as engine_module
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.images import ImageError
from invertornot_ssg.overrides import Overrides
from invertornot_ssg.settings import Settings

pytestmark = pytest.mark.usefixtures("fake_embedder")


@pytest.fixture
def site(tmp_path: Path) -> list[ImageRequest]:
    figure = Image.new("RGB", (200, 120), "white")
    ImageDraw.Draw(figure).line((10, 100, 190, 20), fill="black", width=3)
    figure.save(tmp_path / "figure.png")
    Image.effect_noise((200, 120), 60).convert("RGB").save(tmp_path / "noise.jpg")
    return [ImageRequest(tmp_path / name, name) for name in ("figure.png", "noise.jpg")]


def build(tmp_path: Path, requests: list[ImageRequest], memo: bool = True) -> Engine:
    """One build as a plugin runs it, in a fresh engine (a new process)."""
    engine = Engine(Settings(model=FAKE_MODEL, store="store"), tmp_path)
    engine.last = engine.classify(requests, memo=memo)
    engine.record(engine.last)
    return engine


def decisions(engine: Engine) -> list[tuple]:
    return [(r.sha1, r.invert, r.p_invert, r.method, r.error) for r in engine.last]


def test_reused_only_while_nothing_changed(tmp_path: Path, site: list[ImageRequest]) -> None:
    first = build(tmp_path, site)  # writes its decisions: leaves no memo
    second = build(tmp_path, site)  # finds them recorded: leaves one
    overrides = tmp_path / "invertornot.yml"
    written = overrides.stat().st_mtime_ns
    third = build(tmp_path, site)
    assert (first.memo_hit, second.memo_hit, third.memo_hit) == (False, False, True)
    assert decisions(third) == decisions(second) == decisions(first)
    assert all(r.cached for r in third.last) and third.embedded == 0
    assert overrides.stat().st_mtime_ns == written  # nothing to write
    assert "nothing changed since the last build" in third.summary(third.last)

    assert not build(tmp_path, site[:1]).memo_hit  # other requests
    build(tmp_path, site)
    assert build(tmp_path, site).memo_hit
    labeled = [site[0], ImageRequest(site[1].path, site[1].key, "invert", "explicit")]
    assert build(tmp_path, labeled).last[1].method == "explicit"  # the author's class
    build(tmp_path, site)
    assert build(tmp_path, site).memo_hit
    Overrides.load(overrides)  # still valid YAML; a human label there:
    overrides.write_text(overrides.read_text().replace("  noise.jpg:\n", "  noise.jpg:\n    label: invert\n", 1))
    relabeled = build(tmp_path, site)
    assert not relabeled.memo_hit and relabeled.last[1].method == "override" and relabeled.last[1].invert


def test_memo_off_leaves_none(tmp_path: Path, site: list[ImageRequest]) -> None:
    for _ in range(3):
        assert not build(tmp_path, site, memo=False).memo_hit
    assert not list((tmp_path / "store").glob("cache/build-*.json"))


def test_an_image_that_failed_is_tried_again(tmp_path: Path, site: list[ImageRequest], monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = engine_module.load_image

    def failing(path, *args, **kwargs):  # an I/O error that passes without the file changing
        if Path(path).name == "noise.jpg":
            return ImageError(path, "unreadable", f"{path}: cannot read (Input/output error)")
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(engine_module, "load_image", failing)
    build(tmp_path, site)
    failed = build(tmp_path, site)  # leaves a memo that holds the error
    assert failed.last[1].error and list((tmp_path / "store").glob("cache/build-*.json"))
    assert build(tmp_path, site).memo_hit

    monkeypatch.setattr(engine_module, "load_image", real_load)
    fixed = build(tmp_path, site)
    assert fixed.last[1].error is None and fixed.last[1].invert is not None and not fixed.memo_hit
    assert Overrides.load(tmp_path / "invertornot.yml").entries["noise.jpg"].auto  # its decision recorded


def test_an_unreadable_overrides_file_is_reported_as_without_the_memo(tmp_path: Path, site: list[ImageRequest]) -> None:
    from invertornot_ssg.errors import OverridesError

    build(tmp_path, site)
    assert not build(tmp_path, site).memo_hit
    overrides = tmp_path / "invertornot.yml"
    overrides.unlink()
    overrides.mkdir()  # reading it fails, as a permission problem would for another user
    with pytest.raises(OverridesError, match="cannot read the overrides file"):
        build(tmp_path, site)
