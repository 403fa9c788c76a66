"""`invertornot-ssg serve`: the real server (uvicorn) on a free loopback port, spoken to over HTTP.

Most tests use the FakeEmbedder (the model is not their point) with the server in a thread of
this process; the last one starts `invertornot-ssg serve` itself with the default embedder and
compares its answers with `invertornot-ssg classify` on the same files."""
import contextlib
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image, ImageDraw
from skimage import data

from fakes import FAKE_MODEL
from invertornot_ssg.cli import main
from invertornot_ssg.css import stylesheet
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.overrides import AutoRecord, Overrides, record_decisions
from invertornot_ssg.serve import ServeOptions, bind, create_app
from invertornot_ssg.service import NOT_FOUND
from invertornot_ssg.settings import Settings

REPO = Path(__file__).resolve().parents[1]
KEYS = ["invert", "sha1", "error", "p_invert", "confidence", "method", "version"]
TOKEN = "correct-horse-battery-staple"


# -- images -----------------------------------------------------------------------------------


def plot(seed: int = 0, background=(255, 255, 255, 255), mode: str = "RGB") -> Image.Image:
    """A line plot: dark ink on a light (or transparent) ground."""
    rng = np.random.default_rng(seed)
    image = Image.new(mode, (320, 240), background[:len(mode)])
    draw = ImageDraw.Draw(image)
    draw.line([(30, 210), (30, 10), (30, 210), (310, 210)], fill="black", width=2)
    ys = np.cumsum(rng.normal(size=28)) * 6 + 110
    draw.line([(30 + 10 * j, float(y)) for j, y in enumerate(ys)], fill=(40, 40 + 30 * seed % 200, 200), width=2)
    return image


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="120"><path d="M10 110 L60 20 L110 80 L190 10"'
       b' stroke="black" stroke-width="3" fill="none"/><text x="20" y="115" font-size="12">flow</text></svg>')


def image_files(folder: Path) -> dict[str, bytes]:
    """Every kind the build path reads: photos, plots, transparency, SVG, GIF, WebP, a broken file."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [plot(1), plot(2)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    files = {
        "astronaut.jpg": encoded(Image.fromarray(data.astronaut()), "JPEG", quality=90),
        "coffee.png": encoded(Image.fromarray(data.coffee()), "PNG"),
        "chelsea.webp": encoded(Image.fromarray(data.chelsea()), "WEBP", quality=85),
        "plot0.png": encoded(plot(0), "PNG"),
        "plot0-again.jpg": encoded(plot(0), "JPEG", quality=95),  # a near-duplicate of a labeled plot
        "plot3.png": encoded(plot(3), "PNG"),
        "transparent.png": encoded(plot(4, background=(0, 0, 0, 0), mode="RGBA"), "PNG"),
        "animated.gif": gif.getvalue(),
        "flow.svg": SVG,
        "broken.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def sha1(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()


# -- servers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def running(settings: Settings, base_dir: Path, **options):
    """The app under uvicorn in a thread of this process (so the FakeEmbedder applies): its URL and app."""
    app = create_app(settings, base_dir, ServeOptions(**options))
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def fake_settings(tmp_path: Path, **kw) -> Settings:
    kw.setdefault("store", str(tmp_path / "store"))
    kw.setdefault("overrides", str(tmp_path / "invertornot.yml"))
    return Settings(model=FAKE_MODEL, write_overrides=False, **kw)


def upload(url: str, files: list[tuple[str, bytes]], **kw) -> httpx.Response:
    kw.setdefault("timeout", 60)
    return httpx.post(f"{url}/api/file", files=[("files", (name, content)) for name, content in files], **kw)


class ImageHost:
    """A plain HTTP server on loopback serving images by name (what /api/url fetches)."""

    def __init__(self, files: dict[str, bytes]):
        self.requests: list[str] = []
        self.files = files
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host.requests.append(self.path)
                body = files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                kind = {"html": "text/html", "css": "text/css"}.get(self.path.rpartition(".")[2], "image/png")
                self.send_header("Content-Type", kind if body is not None else "text/plain")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def image_host():
    host = ImageHost({"plot.png": encoded(plot(7), "PNG"), "page.html": b"<html></html>"})
    yield host
    host.close()


# -- compatibility ----------------------------------------------------------------------------


def test_file_answers_in_order_in_invertornot_shape(tmp_path, fake_embedder):
    files = image_files(tmp_path / "img")
    sent = [(n, files[n]) for n in ("plot0.png", "astronaut.jpg", "broken.png", "flow.svg", "plot0.png")]
    sent.append(("empty.png", b""))
    with running(fake_settings(tmp_path), tmp_path) as (url, _):
        answers = upload(url, sent).json()
        assert [list(a) for a in answers] == [KEYS] * 6
        assert [a["sha1"] for a in answers[:5]] == [sha1(content) for _, content in sent[:5]]
        for a in answers[:2] + answers[3:5]:
            assert a["invert"] in (0, 1) and a["error"] == "" and a["version"].startswith("clip:")
            assert a["method"] in ("knn", "default", "near-duplicate")
        assert answers[0] == answers[4]
        broken, empty = answers[2], answers[5]
        assert broken["invert"] == -1 and broken["method"] == "error" and "cannot decode" in broken["error"] \
            or "truncated" in broken["error"] or "not" in broken["error"]
        assert str(tmp_path) not in broken["error"]  # the server's disk is nobody's business
        assert empty == {"invert": -1, "sha1": "", "error": "No image provided", "p_invert": None,
                         "confidence": None, "method": "error", "version": answers[0]["version"]}
        # Uploads are kept under their sha1 in the store, where the build path reads them.
        assert (tmp_path / "store" / "served" / sha1(files["plot0.png"])).read_bytes() == files["plot0.png"]

        # The sha1s answer from then on, in request order; unknown and malformed ones are errors.
        asked = [sha1(files["astronaut.jpg"]), "0" * 40, sha1(files["plot0.png"]).upper(), "nope"]
        again = httpx.post(f"{url}/api/sha1", json=asked).json()
        assert [list(a) for a in again] == [KEYS] * 4
        assert again[0] == answers[1] and again[2] == answers[0]
        assert again[1]["invert"] == -1 and again[1]["error"] == NOT_FOUND and again[1]["sha1"] == "0" * 40
        assert again[3]["invert"] == -1 and "SHA-1" in again[3]["error"]
        assert httpx.get(url).json()["version"] == answers[0]["version"]


def test_urls_are_fetched_through_the_guard_and_answered_with_their_url(tmp_path, fake_embedder, image_host):
    asked = [f"{image_host.url}/plot.png", f"{image_host.url}/missing.png", "ftp://example.org/a.png",
             f"{image_host.url}/page.html", f"{image_host.url}/plot.png"]
    # Trusted like a public address only in this test: loopback is refused by default (below).
    with running(fake_settings(tmp_path), tmp_path, trusted_networks=("127.0.0.1/32",)) as (url, _):
        answers = httpx.post(f"{url}/api/url", json=asked, timeout=60).json()
    assert [a["url"] for a in answers] == asked
    assert [list(a) for a in answers] == [["invert", "sha1", "error", "url", *KEYS[3:]]] * 5
    assert answers[0]["invert"] in (0, 1) and answers[0]["sha1"] == sha1(encoded(plot(7), "PNG"))
    assert answers[4] == answers[0]
    assert answers[1]["invert"] == -1 and "HTTP 404" in answers[1]["error"]
    assert answers[2]["invert"] == -1 and "http(s)" in answers[2]["error"]
    assert answers[3]["invert"] == -1 and "not an image" in answers[3]["error"]
    assert image_host.requests.count("/plot.png") == 1  # fetched once, then from the store's cache


def test_loopback_and_private_urls_are_refused_by_default(tmp_path, fake_embedder, image_host):
    with running(fake_settings(tmp_path), tmp_path) as (url, _):
        [answer] = httpx.post(f"{url}/api/url", json=[f"{image_host.url}/plot.png"], timeout=60).json()
    assert answer["invert"] == -1 and "refused" in answer["error"] and "loopback" in answer["error"]
    assert image_host.requests == []


def test_same_decisions_as_a_build(tmp_path, fake_embedder):
    """Every kind of image, a labeled one and its near-duplicate: the server (its own store) decides
    as a build's Engine.classify does (another store), and /api/sha1 repeats those decisions."""
    files = image_files(tmp_path / "img")
    names = list(files)
    overrides = tmp_path / "invertornot.yml"
    labels = {"img/plot0.png": "invert", "img/coffee.png": "keep"}
    record_decisions(overrides, {k: AutoRecord(sha1(files[k[4:]]), None, None, None, "default", "x") for k in labels},
                     labels=labels)
    build = Engine(fake_settings(tmp_path, store=str(tmp_path / "build-store")), tmp_path)
    built = build.classify([ImageRequest(tmp_path / "img" / n, f"img/{n}") for n in names])
    by_build = {n: r for n, r in zip(names, built)}
    assert by_build["plot0-again.jpg"].method == "near-duplicate" and by_build["plot0-again.jpg"].invert
    assert by_build["plot0.png"].method == "override" and by_build["coffee.png"].method == "override"

    with running(fake_settings(tmp_path), tmp_path) as (url, _):
        served = upload(url, [(n, files[n]) for n in names]).json()
        looked_up = httpx.post(f"{url}/api/sha1", json=[a["sha1"] for a in served[:-1]]).json()
    for name, answer in zip(names, served):
        r = by_build[name]
        expected = {"invert": -1 if r.invert is None else int(r.invert), "sha1": r.sha1 or answer["sha1"],
                    "p_invert": None if r.p_invert is None else round(r.p_invert, 4),
                    "confidence": None if r.confidence is None else round(r.confidence, 4),
                    "method": r.method, "version": r.version}
        assert {k: answer[k] for k in expected} == expected, name
    assert looked_up == served[:-1]


# -- under load -------------------------------------------------------------------------------


def test_concurrent_requests_share_engine_passes(tmp_path, fake_embedder):
    files = [encoded(plot(seed), "PNG") for seed in range(10, 16)]
    with running(fake_settings(tmp_path), tmp_path, batch_window=0.5) as (url, app):
        decider = app.state.decider
        with httpx.Client(timeout=60) as client:
            client.post(f"{url}/api/sha1", json=[])  # connections warm
            results: list = [None] * len(files)

            def ask(i):
                results[i] = upload(url, [(f"{i}.png", files[i])]).json()

            threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(files))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert [r[0]["sha1"] for r in results] == [sha1(f) for f in files]
        assert decider.images == len(files) and decider.passes < len(files)
        passes = decider.passes
        # Answered again from memory: no engine pass.
        again = httpx.post(f"{url}/api/sha1", json=[sha1(f) for f in files]).json()
        assert [a["sha1"] for a in again] == [sha1(f) for f in files] and decider.passes == passes


# -- limits -----------------------------------------------------------------------------------


def test_request_and_image_caps(tmp_path, fake_embedder):
    big = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)), "PNG")
    with running(fake_settings(tmp_path), tmp_path, max_images=3, max_request_bytes=200_000) as (url, app):
        too_many = httpx.post(f"{url}/api/sha1", json=["0" * 40] * 4)
        assert too_many.status_code == 413 and "at most 3" in too_many.json()["detail"]
        assert httpx.post(f"{url}/api/url", json=["https://example.org/a.png"] * 4).status_code == 413
        assert upload(url, [(f"{i}.png", b"x") for i in range(4)]).status_code == 413
        assert upload(url, [("big.png", big)]).status_code == 413  # declared length over the cap

        def chunks():  # no Content-Length: the cap applies while reading
            for _ in range(30):
                yield b"[" + b'"0000000000000000000000000000000000000000",' * 200 + b'"x"]'

        streamed = httpx.post(f"{url}/api/sha1", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and "limit" in streamed.json()["detail"]
        assert httpx.post(f"{url}/api/sha1", content=b"[not json").status_code == 400
        assert httpx.post(f"{url}/api/sha1", json={"sha1": "0" * 40}).status_code == 422
        assert httpx.post(f"{url}/api/url", json=[1, 2]).status_code == 422
        assert app.state.decider.passes == 0


# -- corrections, CORS ------------------------------------------------------------------------


def test_corrections_need_the_token_and_retrain_learns_from_them(tmp_path, fake_embedder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plots = [encoded(plot(seed), "PNG") for seed in range(20, 24)]
    photos = [encoded(Image.fromarray(a), "PNG") for a in (data.astronaut(), data.coffee(), data.chelsea(),
                                                              data.rocket())]
    settings = fake_settings(tmp_path)
    overrides = tmp_path / "invertornot.yml"
    with running(settings, tmp_path) as (url, _):
        assert httpx.post(f"{url}/api/correction", json={"sha1": "0" * 40, "invert": 1}).status_code == 403
    with running(settings, tmp_path, token=TOKEN) as (url, _):
        answers = upload(url, [(f"{i}.png", c) for i, c in enumerate(plots + photos)]).json()
        before = answers[0]["version"]

        def correct(body, token=TOKEN):
            return httpx.post(f"{url}/api/correction", json=body, headers={"Authorization": f"Bearer {token}"},
                              timeout=60)

        assert correct({"sha1": answers[0]["sha1"], "invert": 1}, token="wrong").status_code == 401
        assert httpx.post(f"{url}/api/correction", json={"sha1": answers[0]["sha1"], "invert": 1}).status_code == 401
        assert not overrides.exists()
        assert correct({"sha1": "0" * 40, "invert": 1}).status_code == 404
        assert correct({"sha1": answers[0]["sha1"], "invert": "yes"}).status_code == 422
        for i, answer in enumerate(answers):
            corrected = correct({"sha1": answer["sha1"], "invert": int(i < len(plots))})
            assert corrected.status_code == 200
            assert corrected.json()["method"] == "override" and corrected.json()["invert"] == int(i < len(plots))
        entries = Overrides.load(overrides).entries
        assert {e.sha1: e.label for e in entries.values()} == {
            a["sha1"]: "invert" if i < len(plots) else "keep" for i, a in enumerate(answers)}
        assert set(entries) == {f"served/{a['sha1']}" for a in answers}

        # retrain learns from the corrections (the uploads are files in the store); answers follow
        # the new head at once, not the decisions cached under the old version.
        assert main(["retrain", "--store", settings.store, "--model", FAKE_MODEL, "--overrides", str(overrides),
                     "--no-bootstrap"]) == 0
        unseen = encoded(plot(30), "PNG")
        after = httpx.post(f"{url}/api/sha1", json=[answers[0]["sha1"]]).json()[0]
        assert after["version"] != before and "+rf-" in after["version"] and after["method"] == "override"
        [fresh] = upload(url, [("new.png", unseen)]).json()
        assert fresh["version"] == after["version"] and fresh["method"] in ("head", "near-duplicate", "knn", "default")


def test_cors_is_off_unless_origins_are_given(tmp_path, fake_embedder):
    origin = {"Origin": "https://example.org"}
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with running(fake_settings(tmp_path), tmp_path) as (url, _):
        assert "access-control-allow-origin" not in httpx.post(f"{url}/api/sha1", json=[], headers=origin).headers
        assert "access-control-allow-origin" not in httpx.options(f"{url}/api/sha1", headers=preflight).headers
    with running(fake_settings(tmp_path), tmp_path, cors=("https://example.org",)) as (url, _):
        allowed = httpx.post(f"{url}/api/sha1", json=[], headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"
        assert httpx.options(f"{url}/api/sha1", headers=preflight).status_code == 200
        other = httpx.post(f"{url}/api/sha1", json=[], headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cli_refuses_a_short_token(tmp_path, capsys):
    (tmp_path / "token").write_text("short\n")
    assert main(["serve", "--store", str(tmp_path / "s"), "--token-file", str(tmp_path / "token")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_cli_warns_when_bound_off_loopback(tmp_path, capsys):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes, then the bind fails.
    assert main(["serve", "--store", str(tmp_path / "s"), "--host", "192.0.2.1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "192.0.2.1, not a loopback address" in err and "cannot listen on 192.0.2.1:0" in err


def test_cli_fails_when_the_head_cannot_load(tmp_path, capsys, fake_embedder):
    (tmp_path / "bad.skops").write_bytes(b"not a head")
    assert main(["serve", "--store", str(tmp_path / "s"), "--model", FAKE_MODEL, "--port", "0",
                 "--head", str(tmp_path / "bad.skops")]) == 2
    err = capsys.readouterr().err
    assert "error: head:" in err and "Traceback" not in err


def test_cli_names_the_extra_when_it_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed: importing it fails
    assert main(["serve", "--store", str(tmp_path / "s")]) == 2
    assert "pip install 'invertornot-ssg[serve]'" in capsys.readouterr().err


# -- the docs' snippet, in a browser -----------------------------------------------------------


@pytest.mark.browser
def test_the_docs_snippet_adds_the_build_classes_in_chromium(tmp_path, fake_embedder, browser):
    """The snippet in docs/src/serve.md, as written, on a page of another origin: images the build did
    not decide (also one added later) get the build's classes, and the site's stylesheet styles them."""
    snippet = re.search(r"```html\n(.*?)```", (REPO / "docs" / "src" / "serve.md").read_text(), re.S).group(1)
    labeled, photo, later = encoded(plot(40), "PNG"), encoded(Image.fromarray(data.coffee()), "PNG"), \
        encoded(Image.fromarray(data.astronaut()), "PNG")
    overrides = tmp_path / "invertornot.yml"
    record_decisions(overrides, {"img/plot.png": AutoRecord(sha1(labeled), None, None, None, "default", "x")},
                     labels={"img/plot.png": "invert"})
    host = ImageHost({"plot.png": labeled, "photo.png": photo, "later.png": later, "built.png": encoded(plot(41), "PNG"),
                      "invertornot.css": stylesheet(Settings(dark_selectors=("@media (prefers-color-scheme: dark)",))).encode()})
    try:
        with running(fake_settings(tmp_path), tmp_path, cors=(host.url,), trusted_networks=("127.0.0.1/32",)) as (api, _):
            assert api != host.url  # another origin: the browser checks CORS
            page_html = f"""<!doctype html><html><head><link rel="stylesheet" href="/invertornot.css"></head><body>
<img id="labeled" src="/plot.png"> <img id="photo" src="/photo.png">
<img id="built" class="invert-auto" src="/built.png">
<script>setTimeout(() => {{ const i = new Image(); i.id = "later"; i.src = "/later.png";
  const p = document.createElement("p"); p.append(i); document.body.append(p); }}, 200);</script>
{snippet.replace('"http://127.0.0.1:8765"', json.dumps(api))}</body></html>"""
            host.files["page.html"] = page_html.encode()
            page = browser.new_page(color_scheme="dark")
            try:
                page.goto(f"{host.url}/page.html")
                page.wait_for_function("['labeled', 'photo', 'later'].every("
                                       "(id) => document.getElementById(id)?.className)", timeout=30_000)
                classes = page.evaluate("Object.fromEntries([...document.images].map((i) => [i.id, i.className]))")
                filters = page.evaluate("Object.fromEntries([...document.images].map((i) => [i.id, getComputedStyle(i).filter]))")
                confidence = page.evaluate("document.getElementById('photo').dataset.invertornot")
            finally:
                page.close()
    finally:
        host.close()
    assert classes == {"labeled": "invert", "photo": "invert-not-auto", "later": "invert-not-auto", "built": "invert-auto"}
    assert "invert(1)" in filters["labeled"] and "invert(1)" in filters["built"]
    assert filters["photo"].startswith("brightness(") and filters["later"].startswith("brightness(")  # (fading in)
    assert confidence == "keep"
    # The browser loaded every image; the server fetched only those the build had not decided.
    assert host.requests.count("/plot.png") == 2 and host.requests.count("/built.png") == 1


# -- end to end, real embedder ----------------------------------------------------------------


@pytest.mark.slow
def test_the_serve_command_decides_as_classify_does(tmp_path):
    """`invertornot-ssg serve` with the default embedder and shipped head, against `classify --json`
    of the same files (with a store of its own)."""
    files = image_files(tmp_path / "img")
    names = [n for n in files if n != "broken.png"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "invertornot_ssg.cli", "serve", "--store", str(tmp_path / "serve-store"),
         "--port", "0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        seen = []  # the model loads first (warnings may come), then the address is printed
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", seen[-1] if seen else "")):
            seen.append(server.stdout.readline())
            assert seen[-1] or server.poll() is None, "".join(seen)
        url = f"http://127.0.0.1:{found.group(1)}"
        deadline = time.monotonic() + 180
        while True:  # the socket listens at once; the model loads before the first answer
            try:
                httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        served = upload(url, [(n, files[n]) for n in names], timeout=300).json()
    finally:
        server.terminate()
        server.wait(30)
    out = subprocess.run([sys.executable, "-m", "invertornot_ssg.cli", "classify", "--json", "--store",
                          str(tmp_path / "build-store"), *[f"img/{n}" for n in names]],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    built = [json.loads(line) for line in out.splitlines()]
    assert len(built) == len(served) == len(names)
    for name, answer, row in zip(names, served, built):
        assert answer["error"] == "" and row["error"] is None, name
        assert (answer["sha1"], answer["invert"], answer["method"], answer["version"]) == \
            (row["sha1"], int(row["invert"]), row["method"], row["version"]), name
        assert answer["p_invert"] == pytest.approx(row["p_invert"], abs=1e-3), name
    assert "head" in {a["method"] for a in served}
    photos = [a for n, a in zip(names, served) if n in ("astronaut.jpg", "coffee.png", "chelsea.webp")]
    assert [a["invert"] for a in photos] == [0, 0, 0]
