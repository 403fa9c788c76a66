"""End to end through in-process MkDocs builds (fast fake embedder): a store on a full disk fails the
build with a clear StoreError naming the path, writes no page and no half file, and loses no human
label; and labels of images that later break or disappear survive a build.

The unit-level cases live beside their modules: tests/test_store.py (SQLITE_FULL, ENOSPC while
saving the index), tests/test_overrides.py (ENOSPC while writing the overrides file).
"""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from invertornot_ssg.overrides import Overrides
from invertornot_ssg.store import EmbeddingStore

pytest.importorskip("mkdocs")
from mkdocs.commands.build import build  # noqa: E402
from mkdocs.config import load_config  # noqa: E402
from mkdocs.exceptions import Abort  # noqa: E402

from fakes import FAKE_MODEL  # noqa: E402

pytestmark = pytest.mark.usefixtures("fake_embedder")





def image(kind: str, seed: int = 0) -> bytes:
    if kind == "chart":
        im = Image.new("RGB", (96, 64), "white")
        ImageDraw.Draw(im).line([(8, 56), (40, 20), (88, 30)], fill="black", width=2)
    else:
        rng = np.random.default_rng(seed)
        im = Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


LABELS = """\
version: 1
images:
  img/a.png:
    label: invert
    note: the architecture diagram, checked by hand
  img/b.png: keep
  img/gone.png: keep
"""


def site(tmp_path: Path, images: list[str]) -> Path:
    docs = tmp_path / "docs"
    (docs / "img").mkdir(parents=True, exist_ok=True)
    (docs / "index.md").write_text("# Site\n\n" + "".join(f'<img src="img/{n}" alt="{n}">\n\n' for n in images))
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: full disk\nplugins:\n  - invertornot:\n      model: '{FAKE_MODEL}'\n")
    return config


def labels(path: Path) -> dict[str, str]:
    return {key: label for key, (label, _sha1) in Overrides.load(path).human_labels().items()}


def leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.name.endswith(".tmp")]


class FullDisk:
    """`fill(folder)` makes the disk holding `folder` full: SQLite cannot grow its database
    (SQLITE_FULL) and any file written there fails at fsync with ENOSPC, as on a real full disk;
    `free()` makes room again. The store's connection may be open since an earlier build (the
    plugin and its engine live across builds in one process, as under `mkdocs serve`), so the
    database limit is applied to it at each write, which always takes the store's lock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.folder: Path | None = None
        self.files = self.database = False
        real_fsync, real_locked = os.fsync, EmbeddingStore._locked
        disk = self

        def fsync(fd: int) -> None:
            if disk.files and disk.under(Path(os.readlink(f"/proc/self/fd/{fd}"))):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        @contextlib.contextmanager
        def locked(store: EmbeddingStore):
            with real_locked(store):
                if store._conn is not None and disk.under(Path(store.db_path)):
                    limit = store._conn.execute("PRAGMA page_count").fetchone()[0] if disk.database else 2**31
                    store._conn.execute(f"PRAGMA max_page_count = {limit}")
                yield

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(EmbeddingStore, "_locked", locked)

    def under(self, path: Path) -> bool:
        return self.folder is not None and path.resolve().is_relative_to(self.folder)

    def fill(self, folder: Path, files: bool = True, database: bool = True) -> None:
        self.folder, self.files, self.database = folder.resolve(), files, database

    def free(self) -> None:
        self.files = self.database = False


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    return FullDisk(monkeypatch)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file an fd is")
@pytest.mark.parametrize(("full", "failing"), [("files", "index-"), ("database", "store.sqlite")])
def test_full_disk_fails_the_build_clearly_and_loses_no_label(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, disk: FullDisk, full: str, failing: str
) -> None:
    config = site(tmp_path, ["a.png", "b.png"])
    (tmp_path / "docs" / "img" / "a.png").write_bytes(image("chart"))
    (tmp_path / "docs" / "img" / "b.png").write_bytes(image("photo"))
    overrides = tmp_path / "invertornot.yml"
    overrides.write_text(LABELS)
    build(load_config(str(config), site_dir=str(tmp_path / "site")))
    before = overrides.read_bytes()
    store = tmp_path / ".invertornot"
    store_files = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.suffix == ".faiss"}

    # New images need their embeddings stored; the store's disk is full. (Enough of them that
    # SQLite must grow its file: a few rows would fit in its free pages.)
    new = [f"n{i}.png" for i in range(60)]
    config = site(tmp_path, ["a.png", "b.png", "c.png", *new])
    (tmp_path / "docs" / "img" / "c.png").write_bytes(image("photo", seed=7))
    for i, name in enumerate(new):
        (tmp_path / "docs" / "img" / name).write_bytes(image("photo", seed=100 + i))
    disk.fill(store, files=full == "files", database=full == "database")
    caplog.clear()
    with pytest.raises(Abort):
        build(load_config(str(config), site_dir=str(tmp_path / "site")))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("disk is full" in e and f"{store}/{failing}" in e for e in errors), errors
    assert overrides.read_bytes() == before  # every label, note and decision as it was
    assert not (tmp_path / "site" / "index.html").exists()  # no page half-classified
    assert not leftovers(store, tmp_path)
    for path, data in store_files.items():  # the index on disk is the old one, whole
        assert path.read_bytes() == data

    # Space freed: the next build works, with the labels as they were.
    disk.free()
    build(load_config(str(config), site_dir=str(tmp_path / "site")))
    assert labels(overrides) == {"img/a.png": "invert", "img/b.png": "keep", "img/gone.png": "keep"}
    assert "checked by hand" in overrides.read_text()
    html = (tmp_path / "site" / "index.html").read_text()
    assert '<img src="img/a.png" alt="a.png" class="invert"' in html
    assert '<img src="img/b.png" alt="b.png" class="invert-not"' in html
    assert 'alt="c.png" class="invert' in html  # the new image was classified this time


def test_labels_of_broken_and_vanished_images_survive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = site(tmp_path, ["a.png", "b.png"])
    (tmp_path / "docs" / "img" / "a.png").write_bytes(image("chart"))
    (tmp_path / "docs" / "img" / "b.png").write_bytes(image("photo"))
    overrides = tmp_path / "invertornot.yml"
    overrides.write_text(LABELS)
    build(load_config(str(config), site_dir=str(tmp_path / "site")))
    # a.png is truncated by a bad commit, b.png is emptied; gone.png was never there.
    data = (tmp_path / "docs" / "img" / "a.png").read_bytes()
    (tmp_path / "docs" / "img" / "a.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "docs" / "img" / "b.png").write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build(load_config(str(config), site_dir=str(tmp_path / "site")))
    assert "img/a.png: truncated PNG" in caplog.text and "img/b.png: empty file" in caplog.text
    assert labels(overrides) == {"img/a.png": "invert", "img/b.png": "keep", "img/gone.png": "keep"}
    assert "checked by hand" in overrides.read_text()
    # The author's word still holds for the page (the path's label), broken file or not.
    html = (tmp_path / "site" / "index.html").read_text()
    assert 'alt="a.png" class="invert"' in html and 'alt="b.png" class="invert-not"' in html
