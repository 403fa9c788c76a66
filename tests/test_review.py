"""`invertornot-ssg review`: every HTTP endpoint against a real server on a free port.

The site is built with the core API alone (store records + overrides entries for a few
generated images): no model, so these tests stay fast."""
from __future__ import annotations

import _thread
import hashlib
import http.client
import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data as skdata

from invertornot_ssg import cli, review
from invertornot_ssg.css import INVERT_FILTER, KEEP_FILTER
from invertornot_ssg.embedders import embedder_id
from invertornot_ssg.engine import Engine
from invertornot_ssg.images import STAT_NAMES
from invertornot_ssg.overrides import AutoRecord, Overrides, record_decisions
from invertornot_ssg.review import MAX_BODY_BYTES, ReviewServer, ReviewSite, retrain_in_process
from invertornot_ssg.settings import Settings
from invertornot_ssg.store import EmbeddingStore, ImageRecord
from invertornot_ssg.training import site_labels

VERSION = "efficientnet-lite0+rf-test"
# key -> (drawing, automatic decision: invert, p_invert, method); None: a human label decided it.
IMAGES = {
    "plots/line.png": ("plot", True, 0.55, "knn"),
    "photos/portrait.jpg": ("portrait", False, 0.43, "knn"),
    "icons/lineart.png": ("lineart", True, 0.62, "head"),
    "screens/dark.png": ("dark", False, 0.25, "head"),
    "photos/sunset.jpg": ("sunset", False, 0.08, "head"),
    "diagrams/flow.png": ("diagram", True, 0.93, "head"),
    "diagrams/explicit.png": ("diagram2", True, 1.0, "explicit"),
    "photos/labeled.jpg": ("sunset2", False, 0.0, "override"),
}
# Most uncertain first: |p_invert - 0.5|, then by path.
ORDER = [
    "plots/line.png", "photos/portrait.jpg", "icons/lineart.png", "screens/dark.png",
    "photos/sunset.jpg", "diagrams/flow.png", "diagrams/explicit.png", "photos/labeled.jpg",
]
UNCERTAIN = ORDER[:3]  # |p - 0.5| < 0.2, no human decision


def draw(kind: str) -> Image.Image:
    """Small images of each kind the labeling rule names."""
    if kind == "plot":
        im = Image.new("RGB", (240, 160), "white")
        d = ImageDraw.Draw(im)
        d.line([(20, 140), (20, 10)], fill="black", width=2)
        d.line([(20, 140), (230, 140)], fill="black", width=2)
        d.line([(20 + 7 * i, 140 - 4 * i) for i in range(30)], fill=(30, 60, 200), width=2)
        return im
    if kind.startswith("diagram"):
        im = Image.new("RGB", (220, 140), "white")
        d = ImageDraw.Draw(im)
        d.rectangle([10, 50, 80, 90], outline="black", width=2)
        d.rectangle([140, 50, 210, 90], outline="black", width=2)
        d.line([(80, 70), (140, 70)], fill="black", width=2)
        d.polygon([(140, 70), (130, 64), (130, 76)], fill="black")
        d.text((20, 62), "input" if kind == "diagram" else "class", fill="black")
        return im
    if kind == "portrait":
        return Image.fromarray(skdata.astronaut()).resize((160, 160))
    if kind.startswith("sunset"):
        y, x = np.mgrid[0:120, 0:180]
        rng = np.random.default_rng(len(kind))
        rgb = np.dstack([200 + 50 * np.sin(x / 30), 80 + y, 120 + 0.5 * x]) + rng.normal(0, 12, (120, 180, 3))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if kind == "lineart":  # black strokes on transparency: invisible on a dark page unless inverted
        im = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        d.ellipse([16, 16, 112, 112], outline=(0, 0, 0, 255), width=6)
        d.line([(40, 64), (88, 64)], fill=(0, 0, 0, 255), width=6)
        return im
    if kind == "dark":
        im = Image.new("RGB", (200, 120), (24, 24, 27))
        d = ImageDraw.Draw(im)
        for i in range(6):
            d.text((10, 10 + 16 * i), f"$ make test  # {i}", fill=(200, 220, 200))
        return im
    raise ValueError(kind)


@dataclass
class Site:
    root: Path
    store_dir: Path
    overrides: Path
    sha1: dict[str, str]  # key -> sha1
    other_sha1: str  # a file the store knows, of another site

    def path(self, key: str) -> Path:
        return self.root / "docs" / key


def remember(store: EmbeddingStore, path: Path, image: Image.Image | None = None) -> str:
    """What a build records about a file: its identity, and the image's size and statistics."""
    raw = path.read_bytes()
    sha1 = hashlib.sha1(raw).hexdigest()
    st = path.stat()
    store.remember_files([(str(path.resolve()), st.st_size, st.st_mtime_ns, sha1)])
    if image is not None:
        store.put_images([ImageRecord(sha1, image.width, image.height, "PNG", None,
                                      np.zeros(len(STAT_NAMES), np.float32))])
    return sha1


def build_site(root: Path, images: dict = IMAGES) -> Site:
    """A site as a build leaves it: image files, store records, an overrides file written by
    record_decisions (plus an entry whose file the store never saw, and another site's file)."""
    store_dir = root / ".invertornot"
    overrides = root / "invertornot.yml"
    sha1s: dict[str, str] = {}
    decisions = {}
    with EmbeddingStore(store_dir) as store:
        for key, (kind, invert, p, method) in images.items():
            path = root / "docs" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            image = draw(kind)
            image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
            sha1s[key] = remember(store, path, image)
            decisions[key] = AutoRecord(sha1s[key], invert, p, abs(p - 0.5) * 2, method, VERSION)
        decisions["gone.png"] = AutoRecord("0" * 40, True, 0.5, 0.0, "head", VERSION)
        other = root / "elsewhere" / "other.png"
        other.parent.mkdir()
        Image.new("RGB", (32, 32), (200, 30, 30)).save(other)
        other_sha1 = remember(store, other)
    record_decisions(overrides, decisions, labels={"photos/labeled.jpg": "keep"})
    return Site(root, store_dir, overrides, sha1s, other_sha1)


class Running:
    """A ReviewServer serving in a thread."""

    def __init__(self, site: Site, retrain=None, threshold: float = 0.5, embedder: str | None = None):
        from invertornot_ssg.maplayout import SiteMapCache

        self.store = EmbeddingStore(site.store_dir)
        self.site = ReviewSite(site.overrides, self.store, threshold, 0.2)
        site_map = SiteMapCache(self.site, embedder) if embedder else None  # the map view (test_map*.py)
        self.server = ReviewServer(self.site, 0, retrain=retrain, retrain_command="invertornot-ssg retrain",
                                   site_map=site_map)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.port, self.token = self.server.port, self.server.token
        self.host = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.store.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                token: bool = True, host: str | None = "default", timeout: float = 30) -> http.client.HTTPResponse:
        """A raw request (path sent as is, any Host); the token header unless token=False."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", self.host if host == "default" else host)
        all_headers = {"X-Review-Token": self.token} if token else {}
        all_headers.update(headers or {})
        if body is not None and "Content-Length" not in all_headers:
            all_headers["Content-Length"] = str(len(body))
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def json(self, method: str, path: str, payload=None, **kw):
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers.update(kw.pop("headers", {}))
        response = self.request(method, path, body, headers, **kw)
        return response.status, json.loads(response.body)

    def urlopen(self, path: str, headers: dict | None = None, data: bytes | None = None):
        """urllib, as a script would use it."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return build_site(tmp_path)


@pytest.fixture
def running(site: Site):
    server = Running(site)
    yield server
    server.close()


# Tests that must leave the site unchanged share one site and server (and check that they do).


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Site:
    return build_site(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def server(built: Site):
    server = Running(built)
    yield server
    server.close()


def expected_with_labels(text: str, labels: dict[str, str]) -> str:
    """The overrides text with `label:` lines added to these entries, nothing else changed."""
    for key, label in labels.items():
        head = f"  {key}:\n"
        assert text.count(head) == 1
        text = text.replace(head, f"{head}    label: {label}\n")
    return text


# --- reading ------------------------------------------------------------------------------


def test_items_most_uncertain_first_and_only_images_the_store_knows(server, built):
    status, payload = server.json("GET", "/api/items")
    assert status == 200
    items = payload["items"]
    assert [item["key"] for item in items] == ORDER  # gone.png: no file the store knows
    line = items[0]
    assert line == {
        "key": "plots/line.png", "sha1": built.sha1["plots/line.png"], "label": None, "invert": True,
        "p_invert": 0.55, "confidence": 0.1, "method": "knn", "human": False, "width": 240, "height": 160, "novelty": None, "novel": False,
    }
    by_key = {item["key"]: item for item in items}
    assert by_key["photos/labeled.jpg"]["label"] == "keep" and by_key["photos/labeled.jpg"]["human"]
    assert by_key["diagrams/explicit.png"]["human"] and by_key["diagrams/explicit.png"]["label"] is None


def test_threshold_orders_by_distance_from_it(built):
    server = Running(built, threshold=0.9)
    try:
        _, payload = server.json("GET", "/api/items")
    finally:
        server.close()
    assert [item["key"] for item in payload["items"]][:2] == ["diagrams/flow.png", "diagrams/explicit.png"]


def test_page_needs_the_token_then_sets_a_strict_cookie(server):
    for path in ("/", "/?token=", "/?token=wrong", f"/?token={server.token}x"):
        response = server.request("GET", path, token=False)
        assert response.status == 403, path
        assert server.token.encode() not in response.body
    response = server.request("GET", f"/?token={server.token}", token=False)
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    csp = response.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    cookie = response.getheader("Set-Cookie")
    assert cookie == f"invertornot_review_{server.port}={server.token}; Path=/; HttpOnly; SameSite=Strict"
    page = response.body.decode()
    config = json.loads(page.split('<script type="application/json" id="config">')[1].split("</script>")[0])
    assert config["token"] == server.token
    assert config["invert_filter"] == INVERT_FILTER and config["keep_filter"] == KEEP_FILTER
    assert config["page_background"] == "#18181b" and config["per_page"] == 200
    assert config["threshold"] == 0.5 and config["unsure"] == 0.2 and config["can_retrain"] is False
    # The cookie alone opens the page again (a reload after the token left the address bar).
    again = server.request("GET", "/", token=False, headers={"Cookie": cookie.split(";")[0]})
    assert again.status == 200


def test_static_assets_by_fixed_name_only(server):
    js = server.request("GET", "/static/review.js", token=False)
    css = server.request("GET", "/static/review.css", token=False)
    assert js.status == 200 and js.getheader("Content-Type").startswith("text/javascript")
    assert css.status == 200 and css.getheader("Content-Type").startswith("text/css")
    assert js.body == (Path(review.__file__).parent / "review_assets" / "review.js").read_bytes()
    for path in ("/static/index.html", "/static/../review.py", "/static/..%2freview.py", "/static/",
                 "/review_assets/review.js", "/static/review.js/", "/favicon.ico"):
        assert server.request("GET", path).status == 404, path


def test_reads_need_the_token_in_the_header_or_the_cookie(server, built):
    sha1 = built.sha1["plots/line.png"]
    for path in ("/api/items", f"/thumb/{sha1}", f"/image/{sha1}"):
        assert server.request("GET", path, token=False).status == 403, path
        assert server.request("GET", path, token=False, headers={"X-Review-Token": "nope"}).status == 403
        assert server.request("GET", path, token=False, headers={"Cookie": f"invertornot_review_{server.port}=nope"}).status == 403
        # another review server's cookie (cookies ignore ports) does not count either
        assert server.request("GET", path, token=False, headers={"Cookie": f"invertornot_review_1={server.token}"}).status == 403
        assert server.request("GET", path, token=False, headers={"Cookie": "bad\x7fcookie;;="}).status == 403
        assert server.request("GET", path).status == 200, path
        cookie = {"Cookie": f"other=1; invertornot_review_{server.port}={server.token}"}
        assert server.request("GET", path, token=False, headers=cookie).status == 200, path


def test_originals_are_the_files_bytes_served_inert(server, built):
    for key, content_type in (("plots/line.png", "image/png"), ("photos/portrait.jpg", "image/jpeg")):
        status, headers, body = server.urlopen(f"/image/{built.sha1[key]}", {"X-Review-Token": server.token})
        assert status == 200 and body == built.path(key).read_bytes()
        assert headers["Content-Type"] == content_type
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
    upper = server.request("GET", f"/image/{built.sha1['plots/line.png'].upper()}")
    assert upper.status == 200 and upper.body == built.path("plots/line.png").read_bytes()


def test_thumbnails_are_small_and_keep_transparency(server, built):
    response = server.request("GET", f"/thumb/{built.sha1['photos/portrait.jpg']}")
    assert response.status == 200 and response.getheader("Content-Type") == "image/webp"
    thumb = Image.open(io.BytesIO(response.body))
    assert max(thumb.size) <= 256
    response = server.request("GET", f"/thumb/{built.sha1['icons/lineart.png']}")
    thumb = Image.open(io.BytesIO(response.body)).convert("RGBA")
    original = np.asarray(draw("lineart"))
    alpha = np.asarray(thumb)[..., 3].astype(int)
    assert thumb.size == (128, 128)
    assert np.abs(alpha - original[..., 3]).mean() < 8  # transparent where the file is (lossy WebP)
    opaque = original[..., 3] == 255
    assert np.asarray(thumb)[opaque][:, :3].mean() < 40  # the strokes stay black
    # Cached: the same bytes again.
    again = server.request("GET", f"/thumb/{built.sha1['icons/lineart.png']}")
    assert again.body == response.body


@pytest.mark.parametrize("path", [
    "/image/../../etc/passwd",
    "/image/..%2f..%2fetc%2fpasswd",
    "/image/%2e%2e/%2e%2e/etc/passwd",
    "/image/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/image/..%252f..%252fetc%252fpasswd",
    "/image/..\\..\\etc\\passwd",
    "/thumb/../../../../etc/passwd",
    "/image//etc/passwd",
    "//etc/passwd",
    "/image/%00",
    "/image/" + "a" * 39,
    "/image/" + "a" * 41,
    "/image/" + "g" * 40,
    "/image/" + "0" * 40,  # an entry of the overrides file, but no file the store knows
    "/image/LINE/../etc/passwd",
    "/image/LINE/",
    "/image/LINE/x",
    "/image/LINE%2f..%2f..%2fetc%2fpasswd",
    "/thumb/OTHER",  # a file the store knows, of another site
    "/image/OTHER",
    "/image/OTHER?path=/etc/passwd",
])
def test_path_traversal_and_unknown_images_are_not_found(server, built, path):
    path = path.replace("LINE", built.sha1["plots/line.png"]).replace("OTHER", built.other_sha1)
    response = server.request("GET", path)
    assert response.status == 404, response.body
    assert b"root:" not in response.body and b"\x89PNG" not in response.body


def test_svg_originals_cannot_run_script_and_thumbnails_are_rasters(running, site):
    svg = site.root / "docs" / "diagrams" / "arrow.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><script>alert(1)</script>'
        '<path d="M10 30 H100" stroke="black" stroke-width="4"/></svg>', encoding="utf-8")
    with EmbeddingStore(site.store_dir) as store:
        sha1 = remember(store, svg)
    record_decisions(site.overrides, {"diagrams/arrow.svg": AutoRecord(sha1, True, 0.7, 0.4, "head", VERSION)})
    original = running.request("GET", f"/image/{sha1}")
    assert original.status == 200 and original.body == svg.read_bytes()
    assert original.getheader("Content-Type") == "image/svg+xml"
    assert original.getheader("Content-Security-Policy") == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    thumb = running.request("GET", f"/thumb/{sha1}")
    assert thumb.status == 200 and Image.open(io.BytesIO(thumb.body)).size == (120, 60)


def test_a_file_changed_since_the_build_is_not_served(running, site):
    sha1 = site.sha1["photos/sunset.jpg"]
    site.path("photos/sunset.jpg").write_bytes(b"not the image the store knows")
    assert running.request("GET", f"/image/{sha1}").status == 404
    assert running.request("GET", f"/thumb/{sha1}").status == 404


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:PORT", "127.0.0.1", "127.0.0.1:1", "localhost", "localhost:1",
    "127.0.0.2:PORT", "[::1]:PORT", "0.0.0.0:PORT", "127.0.0.1:PORT.evil.example", "", None,
])
def test_other_host_headers_are_rejected(server, host):
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends its own Host."""
    host = None if host is None else host.replace("PORT", str(server.port))
    for method, path, body in (
        ("GET", f"/?token={server.token}", None),
        ("GET", "/api/items", None),
        ("POST", "/api/labels", b'{"labels": {}}'),
    ):
        response = server.request(method, path, body, {"Content-Type": "application/json"}, host=host)
        assert response.status == 403, (host, path)
        assert server.token.encode() not in response.body


def test_localhost_is_accepted(server):
    assert server.request("GET", "/api/items", host=f"localhost:{server.port}").status == 200
    assert server.request("GET", "/api/items", host=f"LOCALHOST:{server.port}").status == 200


def test_binds_to_loopback_only(server):
    assert server.server.server_address[0] == "127.0.0.1"
    assert server.server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"


# --- writing ------------------------------------------------------------------------------


LABEL_BODY = json.dumps({"labels": {"plots/line.png": "invert"}}).encode()


@pytest.mark.parametrize("headers", [
    {},
    {"X-Review-Token": "wrong"},
    {"X-Review-Token": ""},
    {"Cookie": "invertornot_review_PORT=TOKEN"},  # a cookie is what a forged request carries
    {"X-Review-Token": "TOKEN", "Origin": "http://evil.example"},
    {"X-Review-Token": "TOKEN", "Origin": "http://127.0.0.1:1"},
    {"X-Review-Token": "TOKEN", "Origin": "null"},
    {"X-Review-Token": "TOKEN", "Sec-Fetch-Site": "cross-site"},
])
def test_writes_need_the_token_header_from_this_origin(server, built, headers):
    before = built.overrides.read_bytes()
    headers = {k: v.replace("TOKEN", server.token).replace("PORT", str(server.port)) for k, v in headers.items()}
    for path in ("/api/labels", "/api/retrain"):
        response = server.request("POST", path, LABEL_BODY, {"Content-Type": "application/json", **headers}, token=False)
        assert response.status == 403, (path, response.body)
    assert built.overrides.read_bytes() == before


def test_oversized_bodies_are_refused_unread(server, built):
    before = built.overrides.read_bytes()
    big = b'{"labels": {"plots/line.png": "invert"}, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = server.request("POST", "/api/labels", big, {"Content-Type": "application/json"})
    assert response.status == 413 and response.getheader("Connection") == "close"
    # A huge declared length is refused before anything is read.
    response = server.request("POST", "/api/labels", b"{}", {"Content-Type": "application/json",
                                                                "Content-Length": str(10 ** 12)})
    assert response.status == 413
    assert built.overrides.read_bytes() == before


@pytest.mark.parametrize("body, status", [
    (b"{", 400),
    (b"", 400),
    (b"\xff\xfe{}", 400),
    (b"[]", 400),
    (b"null", 400),
    (b'"labels"', 400),
    (b"{}", 400),
    (b'{"labels": []}', 400),
    (b'{"labels": "invert"}', 400),
    (b'{"labels": {}, "extra": 1}', 400),
    (b'{"labels": {"nope.png": "invert"}}', 400),
    (b'{"labels": {"gone.png": "invert"}}', 400),  # in the file, but no image the store knows
    (b'{"labels": {"../../etc/passwd": "keep"}}', 400),
    (b'{"labels": {"plots/line.png": "maybe"}}', 400),
    (b'{"labels": {"plots/line.png": "INVERT"}}', 400),
    (b'{"labels": {"plots/line.png": true}}', 400),
    (b'{"labels": {"plots/line.png": 1}}', 400),
    (b'{"labels": {"plots/line.png": ["invert"]}}', 400),
    (b'{"labels": {"plots/line.png": {"label": "invert"}}}', 400),
    (b'{"labels": {"plots/line.png": NaN}}', 400),
    (b'{"labels": {"plots/line.png": "invert", "photos/portrait.jpg": "nope"}}', 400),
    (b"[" * 100000 + b"]" * 100000, 400),
])
def test_malformed_bodies_change_nothing(server, built, body, status):
    before = built.overrides.read_bytes()
    response = server.request("POST", "/api/labels", body, {"Content-Type": "application/json"})
    assert response.status == status, response.body
    assert "error" in json.loads(response.body)
    assert built.overrides.read_bytes() == before


def test_bodies_must_be_json_with_a_length(server, built):
    before = built.overrides.read_bytes()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = server.request("POST", "/api/labels", LABEL_BODY, {"Content-Type": content_type})
        assert response.status == 415, content_type
    response = server.request("POST", "/api/labels", None, {"Content-Type": "application/json"})
    assert response.status == 411
    response = server.request("POST", "/api/labels", b"2\r\n{}\r\n0\r\n\r\n",
                               {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert response.status == 411
    response = server.request("POST", "/api/labels", b"{}", {"Content-Type": "application/json", "Content-Length": "-1"})
    assert response.status == 400
    assert built.overrides.read_bytes() == before


@pytest.mark.parametrize("method, path", [
    ("PUT", "/api/labels"), ("DELETE", "/api/labels"), ("GET", "/api/labels"), ("GET", "/api/retrain"),
    ("POST", "/api/items"), ("POST", "/"), ("HEAD", "/"), ("OPTIONS", "/api/labels"), ("PATCH", "/api/labels"),
])
def test_other_methods_are_not_allowed(server, method, path):
    response = server.request(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None,
                               {"Content-Type": "application/json"})
    assert response.status == 405
    assert response.getheader("Access-Control-Allow-Origin") is None


def test_save_changes_exactly_those_entries_and_retrain_sees_them(running, site):
    before = site.overrides.read_text(encoding="utf-8")
    labels = {"plots/line.png": "invert", "photos/portrait.jpg": "keep", "icons/lineart.png": "invert"}
    status, payload = running.json("POST", "/api/labels", {"labels": labels})
    assert status == 200
    assert payload["changed"] == sorted(labels)
    assert {item["key"]: item["label"] for item in payload["items"]} == {
        **{key: None for key in ORDER}, "photos/labeled.jpg": "keep", **labels}
    assert site.overrides.read_text(encoding="utf-8") == expected_with_labels(before, labels)
    learned = site_labels([site.overrides])
    for key, label in labels.items():
        assert learned[site.sha1[key]] == (label == "invert", str(site.overrides))

    # The same labels again: nothing to write.
    saved = site.overrides.read_bytes()
    status, payload = running.json("POST", "/api/labels", {"labels": labels})
    assert status == 200 and payload["changed"] == [] and site.overrides.read_bytes() == saved

    # null takes a label back (automatic again), the entry and every other byte stay.
    status, payload = running.json("POST", "/api/labels", {"labels": {"plots/line.png": None, "photos/labeled.jpg": None}})
    assert status == 200 and payload["changed"] == ["photos/labeled.jpg", "plots/line.png"]
    after = site.overrides.read_text(encoding="utf-8")
    assert after == expected_with_labels(before, {k: v for k, v in labels.items() if k != "plots/line.png"}).replace(
        "  photos/labeled.jpg:\n    label: keep\n", "  photos/labeled.jpg:\n")
    assert site.sha1["plots/line.png"] not in site_labels([site.overrides])


def test_a_build_writing_meanwhile_is_merged_not_overwritten(running, site):
    running.json("GET", "/api/items")  # the server has read the file
    record_decisions(site.overrides, {"new/page.png": AutoRecord("f" * 40, True, 0.9, 0.8, "head", VERSION)})
    status, _ = running.json("POST", "/api/labels", {"labels": {"plots/line.png": "keep"}})
    assert status == 200
    entries = Overrides.load(site.overrides).entries
    assert "new/page.png" in entries and entries["plots/line.png"].label == "keep"


def test_a_malformed_overrides_file_is_an_error_not_a_crash(running, site):
    site.overrides.write_text("images: [\n", encoding="utf-8")
    status, payload = running.json("GET", "/api/items")
    assert status == 500 and "invertornot.yml" in payload["error"]
    status, payload = running.json("POST", "/api/labels", {"labels": {}})
    assert status == 500 and site.overrides.read_text(encoding="utf-8") == "images: [\n"


# --- retraining ---------------------------------------------------------------------------


@pytest.fixture
def embedded_site(site: Site, monkeypatch) -> Site:
    """The site with vectors in the store (as its build embedded them) and a forest small enough
    for a unit test; the rest of training is the real code."""
    from sklearn.ensemble import RandomForestClassifier

    from invertornot_ssg import training

    with EmbeddingStore(site.store_dir) as store:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(len(site.sha1), 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.add_vectors(embedder_id("efficientnet-lite0"), list(site.sha1.values()), vectors)
    monkeypatch.setattr(training, "new_model", lambda dim=0, n=0, seed=0: RandomForestClassifier(n_estimators=5, random_state=seed))
    # The vectors above are not the model's: augmented copies embedded by the real model would not
    # line up with them (test_retrain.py covers augmentation end to end).
    monkeypatch.setattr(training, "augmented_copies", lambda engine, paths, seed=0: [None] * len(paths))
    return site


def retrain_through_the_page(site: Site) -> tuple[Engine, dict]:
    """Label three images and retrain, both through the HTTP endpoints; returns the report."""
    engine = Engine(Settings(store=str(site.store_dir), overrides=str(site.overrides), write_overrides=False), site.root)
    server = Running(site, retrain=lambda: retrain_in_process(engine, site.overrides, False, engine.log))
    try:
        status, payload = server.json("POST", "/api/retrain", {})
        assert status == 422 and "both kinds" in payload["error"]  # one keep, one (explicit) invert so far
        labels = {"plots/line.png": "invert", "photos/portrait.jpg": "keep", "icons/lineart.png": "invert"}
        assert server.json("POST", "/api/labels", {"labels": labels})[0] == 200
        status, payload = server.json("POST", "/api/retrain", {}, timeout=300)
        assert status == 200, payload
        assert payload["lines"][0] == "samples: 5 (5 from the site, 0 bootstrap; 0 augmented copies)"
        assert Path(payload["head"]) == engine.site_head_path()
        assert server.server._retraining.acquire(blocking=False)  # one at a time
        try:
            assert server.json("POST", "/api/retrain", {})[0] == 409
        finally:
            server.server._retraining.release()
        assert server.request("POST", "/api/retrain", b"{", {"Content-Type": "application/json"}).status == 400
        return engine, payload
    finally:
        server.close()
        engine.store.close()


def test_retrain_endpoint_trains_in_process_on_the_saved_labels(embedded_site, monkeypatch):
    from invertornot_ssg import training

    saved = []  # skops imports all of scikit-learn (and torch): the slow test below saves for real
    monkeypatch.setattr(training, "save_head", lambda head, path: saved.append((head, Path(path))))
    engine, payload = retrain_through_the_page(embedded_site)
    assert [path for _, path in saved] == [engine.site_head_path()]
    head = saved[0][0]
    assert payload["version"] == head.version and head.metadata["site_samples"] == 5


@pytest.mark.slow
def test_retrain_endpoint_saves_a_head_builds_then_use(embedded_site):
    from invertornot_ssg.head import load_head

    engine, payload = retrain_through_the_page(embedded_site)
    assert load_head(engine.site_head_path()).version == payload["version"]


def test_retrain_off_answers_with_the_command(server):
    status, payload = server.json("POST", "/api/retrain", {})
    assert status == 404 and "invertornot-ssg retrain" in payload["error"]


# --- scale --------------------------------------------------------------------------------


def build_big_site(root: Path, n: int = 5000) -> Site:
    """n tiny distinct PNGs with random automatic decisions, as a build of a big site leaves them."""
    files = root / "docs"
    files.mkdir(parents=True)
    decisions, rows = {}, []
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (90, 160, 220)).save(buffer, "PNG")
    for i in range(n):
        path = files / f"img{i:04d}.png"
        raw = buffer.getvalue() + i.to_bytes(4, "big")  # bytes after IEND: distinct files, same picture
        path.write_bytes(raw)
        sha1 = hashlib.sha1(raw).hexdigest()
        st = path.stat()
        rows.append((str(path), st.st_size, st.st_mtime_ns, sha1))
        p = float(rng.uniform())
        decisions[f"docs/img{i:04d}.png"] = AutoRecord(sha1, p >= 0.5, p, abs(p - 0.5) * 2, "head", VERSION)
    with EmbeddingStore(root / "store") as store:
        store.remember_files(rows)
    overrides = root / "invertornot.yml"
    record_decisions(overrides, decisions)
    return Site(root, root / "store", overrides, {}, "")


def test_five_thousand_images_list_quickly(tmp_path):
    server = Running(build_big_site(tmp_path))
    try:
        start = time.perf_counter()
        status, payload = server.json("GET", "/api/items")
        first = time.perf_counter() - start
        start = time.perf_counter()
        server.json("GET", "/api/items")
        cached = time.perf_counter() - start
    finally:
        server.close()
    assert status == 200 and len(payload["items"]) == 5000
    distances = [abs(item["p_invert"] - 0.5) for item in payload["items"]]
    assert distances == sorted(distances)
    assert first < 15 and cached < 2, (first, cached)  # generous: CI machines are shared


# --- the command --------------------------------------------------------------------------


def test_cli_prints_the_address_and_serves_until_interrupted(built):
    command = [sys.executable, "-m", "invertornot_ssg.cli", "review", "--no-browser",
               "--store", str(built.store_dir), "--overrides", str(built.overrides)]
    # A shell's background job (`make test &`) starts with SIGINT ignored, and children inherit that.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=built.root,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()
        url = proc.stdout.readline().strip()
        assert first.startswith("Reviewing 8 images of"), (first, proc.stderr.read() if proc.poll() is not None else "")
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"invertornot-ssg review" in response.read()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()  # not left serving after the test
            raise
    assert proc.returncode == 0, err


def test_cli_opens_a_browser_unless_told_not_to(built, monkeypatch, capsys):
    opened = []

    def fake_open(url):
        with urllib.request.urlopen(url, timeout=10) as response:
            opened.append((url, response.status))
        _thread.interrupt_main()  # Ctrl+C
        return True

    monkeypatch.setattr(review.webbrowser, "open", fake_open)
    monkeypatch.chdir(built.root)  # relative paths resolve against the working directory
    # interrupt_main() does nothing while SIGINT is ignored, as in a shell's background job.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = cli.main(["review", "--store", ".invertornot", "--overrides", "invertornot.yml", "--threshold", "0.6"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0
    out = capsys.readouterr().out
    assert len(opened) == 1 and opened[0][1] == 200 and opened[0][0] in out


def test_cli_errors_name_what_is_missing(tmp_path, built, capsys):
    assert cli.main(["review", "--no-browser", "--store", str(built.store_dir),
                     "--overrides", str(tmp_path / "nope.yml")]) == 2
    assert "nope.yml" in capsys.readouterr().err
    assert cli.main(["review", "--no-browser", "--store", str(tmp_path / "nostore"),
                     "--overrides", str(built.overrides)]) == 2
    assert "nostore" in capsys.readouterr().err
    assert cli.main(["review", "--no-browser", "--store", str(built.store_dir),
                     "--overrides", str(built.overrides), "--port", "70000"]) == 2
    busy = Running(built)
    try:
        assert cli.main(["review", "--no-browser", "--store", str(built.store_dir),
                         "--overrides", str(built.overrides), "--port", str(busy.port)]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        busy.close()


def test_a_burst_of_200_connections_waits_in_the_backlog(site):
    """200 clients connect while the server is not accepting yet (as when a burst outruns the
    accept loop): the listen backlog holds them all, and each gets its answer once it serves.
    With socketserver's default backlog of 5, all but a few connects time out."""
    import socket

    store = EmbeddingStore(site.store_dir)
    server = ReviewServer(ReviewSite(site.overrides, store, 0.5, 0.2), 0)
    clients: list[socket.socket] = []
    thread = None
    try:
        for _ in range(200):
            client = socket.socket()
            client.settimeout(1)  # a full backlog drops the SYN: the connect times out
            client.connect(("127.0.0.1", server.port))  # completed by the kernel, into the backlog
            client.sendall(f"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                           f"X-Review-Token: {server.token}\r\nConnection: close\r\n\r\n".encode())
            clients.append(client)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        statuses = []
        for client in clients:
            client.settimeout(30)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            statuses.append(answer.split(b" ", 2)[1])
        assert statuses == [b"200"] * 200
    finally:
        for client in clients:
            client.close()
        if thread is not None:  # shutdown() waits for a serve_forever() that was started
            server.shutdown()
        server.server_close()
        store.close()
