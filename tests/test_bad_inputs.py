"""A corpus of bad and odd inputs through a real `mkdocs build` (the real default embedder) and
through `invertornot-ssg apply` on the plain-built tree: every bad image gets its own specific
warning and keeps its tag byte for byte, the build succeeds, odd-but-valid images get classes, and
nothing outside the site is read (a file placed just outside docs_dir, reached by `../`, a
site-absolute `/../` and a symbolic link, never reaches the store).

Cases covered by other tests are referenced, not repeated: the loader's bad bytes
(tests/test_images.py), store healing (tests/test_store.py), the overrides file
(tests/test_overrides.py), HTML fuzzing (tests/test_htmlrewrite.py), remote images
(tests/test_remote.py), a full disk end to end (tests/test_full_disk.py).
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow

ENV = {"SOURCE_DATE_EPOCH": "1700000000", "TQDM_DISABLE": "1"}
OUR_CLASSES = ("invert", "invert-not", "invert-auto", "invert-not-auto")


# --- the corpus, generated here -------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG written by hand: any header (e.g. 20000x20000) with whatever data follows."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def chart(size: tuple[int, int] = (160, 120)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(10, 110), (10, 10)], fill="black", width=2)
    draw.line([(10, 110), (150, 110)], fill="black", width=2)
    draw.line([(10, 100), (60, 40), (100, 70), (150, 20)], fill="blue", width=3)
    return image


def photo(size: tuple[int, int] = (160, 120), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) * 127 / sum(size)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))


def animated_gif(frames: int = 300) -> bytes:
    images = []
    for i in range(frames):
        frame = Image.new("P", (64, 48), 0)
        ImageDraw.Draw(frame).rectangle([i % 60, 10, i % 60 + 4, 30], fill=1 + i % 200)
        images.append(frame)
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)


def rgb16_png() -> bytes:
    pixels = np.zeros((40, 60, 3), dtype=">u2")
    pixels[..., 0] = np.linspace(0, 65535, 60, dtype=np.uint16)
    pixels[10:30, 20:40] = 65535
    return raw_png(60, 40, 16, 2, zlib.compress(b"".join(b"\0" + row.tobytes() for row in pixels)))


@dataclass(frozen=True)
class Case:
    name: str  # also the alt text that finds the tag in the output
    src: str
    warning: str | None  # a phrase specific to this case; None: a good image that gets a class


def build_corpus(root: Path, port: int) -> tuple[list[Case], dict[str, object]]:
    """docs/ with one <img> per case, a file just outside it, and what the checks need to know."""
    docs, img = root / "docs", root / "docs" / "img"
    img.mkdir(parents=True)
    marker = uuid.uuid4().hex
    outside = root / "outside.png"  # unique bytes: if anything read it, its sha1 would be in the store
    outside.write_bytes(encode(photo(seed=int(marker[:8], 16)), "PNG"))
    secret = root / "secret.txt"
    secret.write_text(f"TOPSECRET-{marker}\n")
    good_png, good_jpg = encode(chart(), "PNG"), encode(photo(), "JPEG", quality=90)
    gray16 = Image.fromarray(np.linspace(0, 65535, 50 * 30).reshape(30, 50).astype(np.uint16))
    files: dict[str, bytes] = {
        "chart.png": good_png,
        "photo.jpg": good_jpg,
        # bad
        "empty.png": b"",
        "truncated.png": good_png[: len(good_png) // 2],
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "page.png": b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n",
        "document.png": b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
        "bomb.png": raw_png(20000, 20000, 1, 0, zlib.compress(b"\0" * 2501 * 10)),  # 400 MP: Pillow's own limit
        "huge.png": raw_png(9000, 9000, 1, 0, zlib.compress(b"\0" * 1126 * 10)),  # 81 MP: ours (64 MP)
        "drawing.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\n",
        "xxe.svg": (
            f'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY secret SYSTEM "file://{secret}">]>\n'
            '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><text y="20">&secret;</text></svg>\n'
        ).encode(),
        # odd but good
        "remote-href.svg": (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="50">'
            f'<image href="http://127.0.0.1:{port}/tracker.png" width="50" height="50"/>'
            f'<image xlink:href="file://{outside}" x="50" width="50" height="50"/>'
            '<rect x="10" y="10" width="30" height="30" fill="none" stroke="black"/></svg>\n'
        ).encode(),
        "huge.svg": (
            '<svg xmlns="http://www.w3.org/2000/svg" width="10000000" height="10000000" viewBox="0 0 100 100">'
            '<circle cx="50" cy="50" r="40" fill="none" stroke="black"/></svg>\n'
        ).encode(),
        "one-pixel.png": encode(Image.new("RGB", (1, 1), "white"), "PNG"),
        "wide.png": encode(Image.new("L", (30000, 10), 255), "PNG"),
        "cmyk.jpg": encode(photo(seed=3).convert("CMYK"), "JPEG"),
        "gray16.png": encode(gray16, "PNG"),
        "rgb16.png": rgb16_png(),
        "animated.gif": animated_gif(),
        "png-named.jpg": encode(chart((120, 90)), "PNG"),
    }
    for name, data in files.items():
        (img / name).write_bytes(data)
    (img / "loop.png").symlink_to("loop.png")  # a symbolic link loop
    (img / "link-out.png").symlink_to(os.path.relpath(outside, img))  # a link leading out of docs_dir
    os.mkfifo(img / "fifo.png")  # would block a reader forever
    with open(os.fsencode(img) + b"/caf\xe9.png", "wb") as f:  # a Latin-1 file name: not UTF-8
        f.write(encode(chart((64, 48)), "PNG"))

    good = ("chart.png", "photo.jpg", "remote-href.svg", "huge.svg", "one-pixel.png", "wide.png", "cmyk.jpg",
            "gray16.png", "rgb16.png", "animated.gif", "png-named.jpg")
    bad = {
        "empty.png": "empty file (0 bytes)",
        "truncated.png": "truncated PNG (file ends after",
        "truncated.jpg": "truncated JPEG (file ends after",
        "page.png": "an HTML page, not an image",
        "document.png": "a PDF document, not an image",
        "bomb.png": "refused by Pillow as a possible decompression bomb",
        "huge.png": "9000x9000 PNG has 81 megapixels, over the 64-megapixel limit",
        "drawing.eps": "EPS files are not supported",
        "xxe.svg": "invalid SVG (undefined entity &secret;",
        "loop.png": "Too many levels of symbolic links",
        "fifo.png": "not a regular file",
        "missing.png": "is missing from the site directory",
        "link-out.png": "is a link to a file outside the site root",
    }
    cases = [Case(name, f"img/{name}", None) for name in good]
    cases += [Case(name, f"img/{name}", phrase) for name, phrase in bad.items()]
    cases += [
        Case("latin1", "img/caf%E9.png", "has a file name that is not valid UTF-8"),
        Case("escape", "../outside.png", "is outside the site root"),
        Case("escape-absolute", "/../outside.png", "is outside the site root"),
        Case("escape-deep", "img/../../outside.png", "is outside the site root"),
        Case("remote-off", f"http://127.0.0.1:{port}/remote.png", None),  # not ours: untouched, no warning
    ]
    body = "".join(f'<p><img src="{c.src}" alt="{c.name}"></p>\n\n' for c in cases)
    (docs / "index.md").write_text(f"# Bad inputs\n\n{body}")
    facts = {"outside": outside, "outside_sha1": hashlib.sha1(outside.read_bytes()).hexdigest(), "marker": marker}
    return cases, facts


# --- running it -----------------------------------------------------------------------------------


class CountingServer:
    """127.0.0.1 only: counts requests (nothing may ever arrive)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(self.path)
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, env={**os.environ, **ENV}, timeout=900,
    )


def write_config(root: Path, name: str, plugins: str) -> Path:
    config = root / name
    config.write_text(
        "site_name: bad inputs\n"
        "theme:\n  name: mkdocs\n  color_mode: auto\n"  # a theme with a dark mode: no warning about that
        "exclude_docs: |\n  img/loop.png\n  img/fifo.png\n"  # MkDocs itself fails on a loop and blocks on a FIFO
        f"plugins:{plugins}\n"
    )
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("bad-inputs")
    server = CountingServer()
    try:
        cases, facts = build_corpus(root, server.port)
        store = root / "store"
        plain = mkdocs_build(write_config(root, "plain.yml", " []"), root / "plain")
        assert plain.returncode == 0, plain.stderr
        built = mkdocs_build(
            write_config(root, "mkdocs.yml", f"\n  - invertornot:\n      store: {store}\n"), root / "site"
        )
        # The same corpus through `apply`, on a copy of the plain build: MkDocs copied the link's
        # target and skipped the loop and the FIFO, so they are made again in the built tree.
        tree = root / "applied"
        shutil.copytree(root / "plain", tree)
        (tree / "img" / "loop.png").symlink_to("loop.png")
        (tree / "img" / "link-out.png").unlink()
        (tree / "img" / "link-out.png").symlink_to(os.path.relpath(facts["outside"], tree / "img"))
        os.mkfifo(tree / "img" / "fifo.png")
        applied = subprocess.run(
            [sys.executable, "-m", "invertornot_ssg.cli", "apply", str(tree), "--store", str(store),
             "--overrides", str(root / "apply.yml")],
            capture_output=True, text=True, env={**os.environ, **ENV}, timeout=900, cwd=root,
        )
        yield {"root": root, "cases": cases, "store": store, "plain": plain, "built": built, "applied": applied,
               "hits": list(server.hits), **facts}
    finally:
        server.close()


def tag(html: str, name: str) -> str:
    found = re.findall(rf'<img\b[^>]*\balt="{re.escape(name)}"[^>]*>', html)
    assert len(found) == 1, (name, found)
    return found[0]


def classes(img_tag: str) -> list[str]:
    m = re.search(r'\bclass="([^"]*)"', img_tag)
    return m.group(1).split() if m else []


def about(line: str, case: Case) -> bool:
    """Whether a warning names the case: the src as on the page, or the image's key before its message."""
    return f"'{case.src}'" in line or f" {case.src}: " in line


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("WARNING")]


def page(site: Path) -> str:
    return (site / "index.html").read_text(encoding="utf-8", errors="surrogateescape")


# --- MkDocs ---------------------------------------------------------------------------------------


def test_mkdocs_build_succeeds(run: dict) -> None:
    built = run["built"]
    assert built.returncode == 0, built.stderr
    assert re.search(r"invertornot_mkdocs: \d+ images: ", built.stderr), built.stderr


def test_each_bad_case_has_its_own_warning(run: dict) -> None:
    warnings = [w for w in warning_lines(run["built"].stderr) if "invertornot" in w]
    expected = [c for c in run["cases"] if c.warning]
    for case in expected:
        # The line names the image (as its key, or as the src on the page) and says what is wrong.
        mine = [w for w in warnings if case.warning in w and about(w, case)]
        assert len(mine) == 1, (case, warnings)
    assert len(warnings) == len(expected), warnings  # and nothing else warned


def test_bad_tags_are_byte_identical_to_the_plain_build(run: dict) -> None:
    plain, built = page(run["root"] / "plain"), page(run["root"] / "site")
    for case in run["cases"]:
        if case.warning or case.name == "remote-off":
            assert tag(built, case.name) == tag(plain, case.name), case


def test_odd_but_valid_images_get_classes(run: dict) -> None:
    built = page(run["root"] / "site")
    for case in run["cases"]:
        if case.warning is None and case.name != "remote-off":
            got = [c for c in classes(tag(built, case.name)) if c in OUR_CLASSES]
            assert len(got) == 1, (case, tag(built, case.name))
            assert 'data-invertornot="' in tag(built, case.name)


def test_nothing_outside_the_site_was_read(run: dict) -> None:
    with sqlite3.connect(run["store"] / "store.sqlite") as db:
        images = {row[0] for row in db.execute("SELECT sha1 FROM images")}
        files = db.execute("SELECT path, sha1 FROM files").fetchall()
    assert run["outside_sha1"] not in images
    assert all(sha1 != run["outside_sha1"] for _, sha1 in files)
    docs = str(run["root"] / "docs") + os.sep
    tree = str(run["root"] / "applied") + os.sep
    assert all(path.startswith((docs, tree)) for path, _ in files), files
    # No warning about decoding it either: it was refused, not opened.
    for output in (run["built"].stderr, run["applied"].stderr):
        assert not [w for w in warning_lines(output) if "outside.png:" in w]
    # The XXE target was never expanded into the output; the SVG's links were never followed.
    for path in (run["root"] / "site").rglob("*"):
        if path.is_file():
            assert run["marker"].encode() not in path.read_bytes(), path
    assert run["hits"] == []


def test_overrides_record_only_site_images(run: dict) -> None:
    text = (run["root"] / "invertornot.yml").read_text()
    assert "outside" not in text and "TOPSECRET" not in text
    for case in run["cases"]:
        if case.warning is None and case.name != "remote-off":
            assert case.src in text, case


# --- apply on the plain-built tree (the sitedir resolver) -----------------------------------------


def test_apply_succeeds_with_the_same_outcome(run: dict) -> None:
    applied = run["applied"]
    assert applied.returncode == 0, applied.stderr
    plain, done = page(run["root"] / "plain"), page(run["root"] / "applied")
    warnings = warning_lines(applied.stderr)
    for case in run["cases"]:
        if case.warning:
            assert tag(done, case.name) == tag(plain, case.name), case
            assert len([w for w in warnings if case.warning in w and about(w, case)]) == 1, (case, warnings)
        elif case.name != "remote-off":
            assert len([c for c in classes(tag(done, case.name)) if c in OUR_CLASSES]) == 1, case
    assert len(warnings) == len([c for c in run["cases"] if c.warning]), warnings
