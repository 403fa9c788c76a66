"""`invertornot-ssg apply SITE_DIR`: hand-written trees shaped like Hugo and Sphinx output (fast fake
embedder), idempotence, dry runs, interrupted runs, and the same classes as the MkDocs plugin on
the MkDocs sample (real embedder)."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from invertornot_ssg import cli, sitedir
from invertornot_ssg.htmlrewrite import ClassNames, find_images
from invertornot_ssg.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes import FAKE_MODEL  # noqa: E402
from test_pelican_plugin import assert_only_ours_changed, build_samples  # noqa: E402

NAMES = ClassNames.from_settings(Settings())
OURS = (NAMES.invert, NAMES.keep, NAMES.invert_auto, NAMES.keep_auto)


pytestmark = pytest.mark.usefixtures("fake_embedder")  # conftest.py


# --- fixture images and trees --------------------------------------------------------------


def chart(path: Path, size: tuple[int, int] = (96, 64)) -> None:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(8, 56), (8, 8)], fill="black", width=2)
    draw.line([(8, 56), (90, 56)], fill="black", width=2)
    draw.line([(10, 50), (40, 20), (60, 35), (88, 10)], fill=(31, 119, 180), width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def photo(path: Path, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def animated_gif(path: Path) -> None:
    frames = []
    for shift in (0, 12):
        frame = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(frame).ellipse([8 + shift, 8, 40 + shift, 40], outline="black", width=3)
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())  # exactly these bytes (no newline translation)


HUGO_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>A Hugo site</title>
  <link rel="stylesheet" href="/docs/css/main.min.css">
</head>
<body>
<p><img src="/docs/images/chart.png" alt="Chart"></p>
<picture>
  <source srcset="/docs/images/chart.png 2x" type="image/png">
  <img src="/docs/images/chart.png" alt="Chart in a picture" loading="lazy">
</picture>
<img src="https://example.org/docs/images/photo.jpg" srcset="/docs/images/photo.jpg 1x, /docs/images/photo.jpg 2x" alt="Photo">
<img src=/docs/images/anim.gif alt=Animated>
<img src="/docs/images/My%20Diagram.PNG" alt="Upper case, with a space">
<picture>
  <source srcset="/docs/images/logo-dark.png" media="(prefers-color-scheme: dark)">
  <img src="/docs/images/logo-light.png" alt="Logo">
</picture>
<img class="shadow invert-not" src="/docs/images/kept.png" alt="The author keeps it">
<img src="https://cdn.example.com/badge.svg" alt="Remote">
<img src="/elsewhere/outside.png" alt="Outside the site">
</body>
</html>
"""

HUGO_POST = """<!doctype html><html><head><title>First post</title>\r
</head><body>\r
<img src="cover.jpg" alt="Page bundle cover">\r
<img src="../../images/chart.png" alt="Relative">\r
<img src="missing.png" alt="Missing">\r
</body></html>\r
"""


@pytest.fixture
def hugo(tmp_path: Path) -> Path:
    """`hugo --baseURL https://example.org/docs/` output: site-absolute URLs under /docs/."""
    root = tmp_path / "public"
    write(root / "index.html", HUGO_INDEX)
    write(root / "posts" / "first" / "index.html", HUGO_POST)
    write(root / "404.html", '<html><head></head><body><img src="/docs/images/photo.jpg"></body></html>')
    write(root / "css" / "main.min.css", "body{}")
    chart(root / "images" / "chart.png")
    photo(root / "images" / "photo.jpg")
    animated_gif(root / "images" / "anim.gif")
    chart(root / "images" / "My Diagram.PNG", (120, 80))
    chart(root / "images" / "logo-light.png", (30, 30))
    chart(root / "images" / "kept.png", (50, 40))
    photo(root / "images" / "logo-dark.png", 3)
    photo(root / "posts" / "first" / "cover.jpg", 1)
    write(tmp_path / "outside.png", "never read")
    write(tmp_path / "invertornot.yml", "version: 1\nimages:\n  images/chart.png: invert\n")
    return root


SPHINX_INDEX = """<!DOCTYPE html>

<html lang="en" data-content_root="./">
  <head>
    <meta charset="utf-8" /><meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Sample &#8212; docs</title>
    <link rel="stylesheet" type="text/css" href="_static/pygments.css?v=d1102ebc" />
    <link rel="stylesheet" type="text/css" href="_static/alabaster.css?v=12dfc556" />
    <script src="_static/documentation_options.js?v=5929fcd5"></script>
  </head><body>
<div class="body" role="main">
<figure class="align-default" id="id1">
<img alt="_images/plot.png" src="_images/plot.png" />
<figcaption><p><span class="caption-text">A plot</span></p></figcaption></figure>
<img alt="A photo" class="align-center" src="_images/photo.jpg" style="width: 200px;" />
</div>
  </body>
</html>"""

SPHINX_API = """<!DOCTYPE html>
<html lang="en" data-content_root="../">
  <head><title>API</title>
    <link rel="stylesheet" type="text/css" href="../_static/pygments.css?v=d1102ebc" />
  </head><body>
<img alt="../_images/plot.png" src="../_images/plot.png" />
<a class="reference internal image-reference" href="../_images/photo.jpg"><img alt="../_images/photo.jpg" src="../_images/photo.jpg" /></a>
</body>
</html>"""


@pytest.fixture
def sphinx(tmp_path: Path) -> Path:
    """`sphinx-build -b html docs build/html` output: relative URLs, images collected in _images/."""
    root = tmp_path / "build" / "html"
    write(root / "index.html", SPHINX_INDEX)
    write(root / "api" / "module.html", SPHINX_API)
    write(root / "_static" / "pygments.css", "")
    chart(root / "_images" / "plot.png")
    photo(root / "_images" / "photo.jpg")
    return root


def apply(site: Path, *args: str) -> int:
    store = site.parent / "store"
    return cli.main(["apply", str(site), "--store", str(store), "--model", FAKE_MODEL, *args])


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def digests(root: Path) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in tree(root).items()}


def tags(html: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for tag in find_images(html, NAMES):
        found.setdefault(tag.src, []).append(tag)
    return found


def ours(tag) -> str | None:
    return next((c for c in OURS if c in tag.classes), None)


# --- Hugo-shaped --------------------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["https://example.org/docs/", "https://example.org/docs", "/docs/"])
def test_hugo_tree(hugo: Path, base_url: str, caplog: pytest.LogCaptureFixture, capsys) -> None:
    overrides = hugo.parent / "invertornot.yml"
    before = tree(hugo)
    with caplog.at_level(logging.WARNING, logger="invertornot_ssg"):
        assert apply(hugo, "--base-url", base_url, "--overrides", str(overrides)) == 0
    after = tree(hugo)

    index = after["index.html"].decode()
    found = tags(index)
    (explicit,) = found["/docs/images/kept.png"]
    assert index[explicit.start : explicit.end] == (
        '<img class="shadow invert-not" src="/docs/images/kept.png" alt="The author keeps it">'
    )
    assert [ours(t) for t in found["/docs/images/chart.png"]] == ["invert", "invert"]  # the overrides file
    assert 'alt="Chart" class="invert" data-invertornot="invert"' in index
    assert ours(found["/docs/images/anim.gif"][0]) in (NAMES.invert_auto, NAMES.keep_auto)
    assert ours(found["/docs/images/My%20Diagram.PNG"][0]) in (NAMES.invert_auto, NAMES.keep_auto)
    photo_class = ours(found["https://example.org/docs/images/photo.jpg"][0])
    if base_url.startswith("https://"):
        assert photo_class in (NAMES.invert_auto, NAMES.keep_auto)
    else:
        assert photo_class is None  # no host given: a full URL is someone else's server
    for src in ("/docs/images/logo-light.png", "https://cdn.example.com/badge.svg", "/elsewhere/outside.png"):
        assert ours(found[src][0]) is None, src
    assert_only_ours_changed(before["index.html"].decode(), index, "/docs/invertornot.css")

    post = after["posts/first/index.html"].decode()
    assert ours(tags(post)["cover.jpg"][0]) is not None
    assert ours(tags(post)["../../images/chart.png"][0]) == "invert"
    assert ours(tags(post)["missing.png"][0]) is None
    assert_only_ours_changed(before["posts/first/index.html"].decode(), post, "/docs/invertornot.css")
    assert "\r\n" in post  # line endings as they were

    assert '<link rel="stylesheet" href="/docs/invertornot.css">' in after["404.html"].decode()
    assert b"invert-auto" in after["invertornot.css"]
    assert {k: v for k, v in after.items() if not k.endswith((".html", "invertornot.css"))} == {
        k: v for k, v in before.items() if not k.endswith(".html")
    }  # images and other files untouched

    warnings = caplog.text
    assert "'/elsewhere/outside.png' is outside the site root" in warnings
    assert "'missing.png' is missing from the site directory" in warnings
    assert "cdn.example.com" not in warnings
    assert "images/chart.png" in overrides.read_text() and "auto:" in overrides.read_text()
    assert "changed 3;" in capsys.readouterr().out


def test_second_apply_changes_nothing(hugo: Path, capsys) -> None:
    args = ("--base-url", "https://example.org/docs/", "--overrides", str(hugo.parent / "invertornot.yml"))
    assert apply(hugo, *args) == 0
    first = digests(hugo)
    mtimes = {p: p.stat().st_mtime_ns for p in hugo.rglob("*")}
    capsys.readouterr()
    assert apply(hugo, *args) == 0
    assert digests(hugo) == first
    assert {p: p.stat().st_mtime_ns for p in hugo.rglob("*")} == mtimes  # not even rewritten
    assert "changed 0 (nothing to do" in capsys.readouterr().out


def count_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every page the tokenizer parses from now on (htmlrewrite._scan is the only parse)."""
    from invertornot_ssg import htmlrewrite

    parsed: list[str] = []
    real = htmlrewrite._scan

    def scan(html: str):
        parsed.append(html)
        return real(html)

    monkeypatch.setattr(htmlrewrite, "_scan", scan)
    return parsed


def fsynced_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the files fsync'd from now on."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fsync'd paths from /proc")
def test_each_page_parsed_once_and_only_changed_pages_written(hugo: Path, monkeypatch, capsys) -> None:
    """A first run parses each page once; then an unchanged page is neither parsed nor written
    (inode and mtime kept) and a changed one gets what a first run would write; no page is fsync'd."""
    pages = sorted(hugo.rglob("*.html"))
    args = ("--base-url", "/docs/", "--overrides", str(hugo.parent / "invertornot.yml"))
    fresh = hugo.parent / "fresh"
    shutil.copytree(hugo, fresh)
    parsed, synced = count_scans(monkeypatch), fsynced_files(monkeypatch)
    assert apply(hugo, *args) == 0
    assert len(parsed) == len(pages) == len(set(parsed))
    assert not [p for p in synced if p.endswith(".html") or ".html." in p]
    assert any(p.endswith("invertornot.yml") or ".invertornot.yml." in p for p in synced)  # labels: durable
    stats = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pages}

    edited = hugo / "404.html"  # a build regenerates one page, with a new image
    text = '<html><head></head><body><img src="/docs/images/photo.jpg"><img src="/docs/images/chart.png"></body></html>'
    edited.write_text(text)
    (fresh / "404.html").write_text(text)
    stats[edited] = (edited.stat().st_ino, edited.stat().st_mtime_ns)
    parsed.clear()
    capsys.readouterr()
    assert apply(hugo, *args) == 0
    assert parsed == [text]  # only the page that changed
    assert "changed 1;" in capsys.readouterr().out
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pages if p != edited} == {
        p: v for p, v in stats.items() if p != edited
    }
    assert edited.stat().st_ino != stats[edited][0]  # replaced, atomically
    assert apply(fresh, *args) == 0  # a first run on the same pages: the same bytes
    assert tree(hugo) == tree(fresh)

    parsed.clear()
    capsys.readouterr()
    assert apply(hugo, *args) == 0  # applied twice: a no-op, and it says so
    assert parsed == []
    assert "changed 0 (nothing to do: every page is already as apply leaves it);" in capsys.readouterr().out
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pages if p != edited} == {
        p: v for p, v in stats.items() if p != edited
    }


def test_dry_run_writes_nothing(hugo: Path, capsys) -> None:
    overrides = hugo.parent / "invertornot.yml"
    before, labels = digests(hugo), overrides.read_bytes()
    assert apply(hugo, "--base-url", "/docs/", "--overrides", str(overrides), "--dry-run") == 0
    assert digests(hugo) == before and overrides.read_bytes() == labels
    out = capsys.readouterr().out
    assert "would change index.html: 4 images (2 invert, " in out  # the full-URL photo is not ours under /docs/
    assert "stylesheet linked" in out
    assert "would change posts/first/index.html: 2 images" in out
    assert "would change 3;" in out


def test_interrupted_run_leaves_whole_pages(hugo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the first page: each page is either as it was or as a full run writes it."""
    complete = hugo.parent / "complete"
    shutil.copytree(hugo, complete)
    assert apply(complete, "--base-url", "/docs/") == 0
    original, finished = tree(hugo), tree(complete)

    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        if str(dst).endswith(".html"):  # the pages; the store's caches are written the same way
            if calls:
                raise KeyboardInterrupt
            calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(sitedir.os, "replace", replace_then_die)
    assert apply(hugo, "--base-url", "/docs/") == 130
    now = tree(hugo)
    assert set(now) == set(original)  # no temp files left behind
    changed = [k for k in now if now[k] != original[k]]
    assert len(changed) == 1 and now[changed[0]] == finished[changed[0]]


def test_no_css(hugo: Path) -> None:
    assert apply(hugo, "--base-url", "/docs/", "--no-css") == 0
    index = (hugo / "index.html").read_text()
    assert "data-invertornot" in index and "invertornot.css" not in index
    assert not (hugo / "invertornot.css").exists()


def test_dark_selector(sphinx: Path) -> None:
    assert apply(sphinx, "--dark-selector", 'html[data-theme="dark"]', "--dark-selector", "@media (prefers-color-scheme: dark)") == 0
    css = (sphinx / "invertornot.css").read_text()
    assert 'html[data-theme="dark"] img.invert-auto' in css and "@media (prefers-color-scheme: dark)" in css
    assert "data-md-color-scheme" not in css


def test_not_a_directory(tmp_path: Path, capsys) -> None:
    assert apply(tmp_path / "nope") == 2
    assert "SITE_DIR" in capsys.readouterr().err


# --- Sphinx-shaped ------------------------------------------------------------------------


def test_sphinx_tree(sphinx: Path) -> None:
    before = tree(sphinx)
    assert apply(sphinx) == 0
    index, api = (sphinx / "index.html").read_text(), (sphinx / "api" / "module.html").read_text()
    assert_only_ours_changed(before["index.html"].decode(), index, "invertornot.css")
    assert_only_ours_changed(before["api/module.html"].decode(), api, "../invertornot.css")
    assert index.index('<link rel="stylesheet" href="invertornot.css">') < index.index("</head>")
    for html, prefix in ((index, ""), (api, "../")):
        for name in ("plot.png", "photo.jpg"):
            (tag,) = tags(html)[f"{prefix}_images/{name}"]
            assert ours(tag) in (NAMES.invert_auto, NAMES.keep_auto)
    photo_tag = tags(index)["_images/photo.jpg"][0]
    assert photo_tag.classes[0] == "align-center"  # the author's class first, ours appended
    assert (sphinx / "invertornot.css").is_file()
    # One image, one decision: the same class on every page that shows it.
    assert {ours(tags(index)["_images/plot.png"][0])} == {ours(tags(api)["../_images/plot.png"][0])}


# --- the MkDocs sample: apply on a plain build == the plugin's build ----------------------


def image_classes(site: Path) -> dict[tuple[str, str], str | None]:
    """(page, src) -> our class, for every image the plugin or apply may classify."""
    found = {}
    for page in sorted(site.rglob("*.html")):
        for tag in find_images(page.read_text(encoding="utf-8"), NAMES):
            found[(page.relative_to(site).as_posix(), tag.src)] = ours(tag)
    return found


@pytest.mark.slow
def test_apply_matches_the_mkdocs_plugin(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    monkeypatch.undo()  # the real embedder (its embeddings are in the store already)
    samples = build_samples(tmp_path_factory)
    plain = samples.root / "plain-site"
    if not plain.exists():
        env = {**os.environ, "INVERTORNOT_ENABLED": "false"}
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "-f", "mkdocs.yml", "-d", str(plain)],
            cwd=samples.root / "mkdocs", env=env, check=True, capture_output=True,
        )
    assert "data-invertornot" not in (plain / "index.html").read_text()
    overrides = samples.root / "apply-overrides.yml"
    shutil.copy(samples.root / "mkdocs" / "invertornot.yml", overrides)  # the site's human labels
    args = ["apply", str(plain), "--store", str(samples.store), "--overrides", str(overrides)]
    assert cli.main(args) == 0

    by_plugin, by_apply = image_classes(samples.mkdocs_site), image_classes(plain)
    assert by_plugin.keys() == by_apply.keys()
    # Front matter lives in the Markdown, which apply never sees: those two images may differ.
    front_matter = {"guide/authors/index.html"}
    compared = {k: v for k, v in by_plugin.items() if k[0] not in front_matter}
    assert compared == {k: by_apply[k] for k in compared}
    assert sum(v is not None for v in compared.values()) >= 10

    first = digests(plain)
    assert cli.main(args) == 0
    assert digests(plain) == first  # a second run is a no-op
