"""`invertornot-ssg review`: a local web page to correct the site's labels, most uncertain first.

`ReviewSite` reads what the page shows (the overrides entries whose file the embedding store
knows) and writes labels through `record_decisions(labels=...)`. `ReviewServer` serves it on
127.0.0.1 only: images by sha1 (never by a path from the request), a per-run token for every
read of site data and in a header for every write, Host and Origin checks against DNS
rebinding and cross-site requests, size-limited and validated JSON bodies. The page itself
is static: `review_assets/` (HTML, plain JS, CSS; no build step).
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import hmac
import http.cookies
import http.server
import io
import json
import logging
import math
import os
import re
import secrets
import shlex
import socketserver
import sys
import threading
import webbrowser
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO
from urllib.parse import parse_qs, urlsplit

from ._lazy import np
from PIL import Image, features

from .css import INVERT_FILTER, KEEP_FILTER
from .errors import ConfigError, InvertOrNotError
from .fileio import file_signature
from .images import DARK_PAGE, ImageError, load_image_bytes
from .overrides import LABELS, Overrides, record_decisions
from .settings import Settings
from .store import DB_NAME, EmbeddingStore

__all__ = ["ReviewItem", "ReviewServer", "ReviewSite", "serve"]

ASSETS_DIR = Path(__file__).with_name("review_assets")
ASSETS = {  # URL path -> (file in ASSETS_DIR, content type): the only files served from disk by name
    "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
    "/static/review.css": ("review.css", "text/css; charset=utf-8"),
}
PAGE_BACKGROUND = "#%02x%02x%02x" % DARK_PAGE  # the dark page the tiles show images on (docs/src/labeling.md)
PER_PAGE = 200
THUMB_SIDE = 256
THUMB_CACHE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # an original larger than this is not served (nor thumbnailed)
MAX_BODY_BYTES = 1024 * 1024
DRAIN_BYTES = 8 * 1024 * 1024  # an oversized body up to this is read and dropped, so the client sees the 413
TOKEN_HEADER = "X-Review-Token"
HUMAN_METHODS = ("explicit", "front-matter", "duplicate")  # a person decided, on the page or another entry
_SHA1_PATH = re.compile(r"/(image|thumb)/([0-9a-fA-F]{40})\Z")
_SHA1 = re.compile(r"[0-9a-f]{40}\Z")

_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"  # an SVG opened directly runs nothing


# --- what the page shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    """One overrides entry as the page shows it: its human label and the last build's decision."""

    key: str
    sha1: str
    label: str | None  # the human label in the overrides file
    invert: bool | None  # the last build's decision (`auto:`), None if it had none
    p_invert: float | None
    confidence: float | None
    method: str  # the last build's method, "" if never built
    width: int | None
    height: int | None

    @property
    def human(self) -> bool:
        """A person decided: a label here, a class on the page, or a labeled duplicate."""
        return self.label is not None or self.method in HUMAN_METHODS

    def uncertainty(self, threshold: float) -> float:
        """Distance of p_invert from the threshold (smaller: less sure); -1 when there is none."""
        return -1.0 if self.p_invert is None else abs(self.p_invert - threshold)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "sha1": self.sha1, "label": self.label, "invert": self.invert,
            "p_invert": self.p_invert, "confidence": self.confidence, "method": self.method,
            "human": self.human, "width": self.width, "height": self.height,
        }


class ReviewSite:
    """The site's images: overrides entries with a sha1 whose file the store knows, most uncertain first.

    Thread-safe. Re-reads the overrides file when it changes on disk (a build may run meanwhile);
    writes only labels, through `record_decisions`, which merges under the file's lock."""

    def __init__(
        self,
        overrides_path: Path,
        store: EmbeddingStore,
        threshold: float = 0.5,
        unsure: float = 0.2,
        logger: logging.Logger | None = None,
    ) -> None:
        self.overrides_path = Path(overrides_path)
        self.store = store
        self.threshold = threshold
        self.unsure = unsure  # the page's "uncertain" filter: |p_invert - threshold| below this
        self.log = logger or logging.getLogger("invertornot_ssg")
        self._lock = threading.RLock()
        self._signature: tuple[int, ...] | None = None
        self._items: list[ReviewItem] = []
        self._by_key: dict[str, ReviewItem] = {}
        self._sha1s: frozenset[str] = frozenset()
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._thumb_bytes = 0
        self._thumb_lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))

    # -- reading ---------------------------------------------------------------------------------

    def items(self) -> list[ReviewItem]:
        """Every reviewable image, most uncertain first (p_invert nearest the threshold; none first)."""
        with self._lock:
            self._refresh()
            return list(self._items)

    def keys(self) -> Mapping[str, ReviewItem]:
        with self._lock:
            self._refresh()
            return dict(self._by_key)

    def knows(self, sha1: str) -> bool:
        """Whether `sha1` is one of this site's reviewable images (the only images served)."""
        with self._lock:
            self._refresh()
            return sha1 in self._sha1s

    def _refresh(self) -> None:
        signature = file_signature(self.overrides_path)
        if signature is not None and signature == self._signature:
            return
        overrides = Overrides.load(self.overrides_path)
        entries = {key: e for key, e in overrides.entries.items() if e.sha1 and _SHA1.match(e.sha1)}
        paths = self.store.paths_for({e.sha1 for e in entries.values()})
        records = self.store.get_images(list(paths))
        items = []
        for key, entry in entries.items():
            if entry.sha1 not in paths:
                continue
            auto = entry.auto if isinstance(entry.auto, dict) else {}
            record = records.get(entry.sha1)
            invert = auto.get("invert")
            method = auto.get("method")
            items.append(ReviewItem(
                key=key, sha1=entry.sha1, label=entry.label,
                invert=invert if isinstance(invert, bool) else None,
                p_invert=_unit_number(auto.get("p_invert")),
                confidence=_unit_number(auto.get("confidence")),
                method=method if isinstance(method, str) else "",
                width=record.width if record else None, height=record.height if record else None,
            ))
        items.sort(key=lambda item: (item.uncertainty(self.threshold), item.key))
        self._items = items
        self._by_key = {item.key: item for item in items}
        self._sha1s = frozenset(item.sha1 for item in items)
        self._signature = signature

    # -- writing ---------------------------------------------------------------------------------

    def save(self, labels: Mapping[str, str | None]) -> list[str]:
        """Write human labels ('invert', 'keep', or None to clear) for known keys; returns the keys
        whose label changed. Raises ValueError naming unknown keys or bad labels (nothing written)."""
        with self._lock:
            known = self.keys()
            unknown = sorted(k for k in labels if k not in known)
            if unknown:
                raise ValueError(f"not images of this site: {_some(unknown)}")
            bad = sorted(k for k, v in labels.items() if v is not None and v not in LABELS)
            if bad:
                raise ValueError(f"labels must be 'invert', 'keep' or null: {_some(bad)}")
            changed = sorted(k for k, v in labels.items() if known[k].label != v)
            if changed:
                record_decisions(self.overrides_path, {}, labels={k: labels[k] for k in changed})
                self._signature = None  # re-read on next access
            return changed

    # -- images ----------------------------------------------------------------------------------

    def image_bytes(self, sha1: str) -> bytes | None:
        """The file of one of this site's images, if its content still has that sha1."""
        if not self.knows(sha1):
            return None
        path = self.store.paths_for([sha1]).get(sha1)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            self.log.debug("review: cannot read %s: %s", path, exc)
            return None
        if len(data) > MAX_IMAGE_BYTES or hashlib.sha1(data).hexdigest() != sha1:
            return None  # too large to serve, or changed since the store saw it
        return data

    def thumbnail(self, sha1: str) -> bytes | None:
        """A WebP (PNG without WebP support) of at most THUMB_SIDE px, transparency kept; cached."""
        with self._thumb_lock:
            if sha1 in self._thumbs:
                self._thumbs.move_to_end(sha1)
                return self._thumbs[sha1]
        data = self.image_bytes(sha1)
        if data is None:
            return None
        with self._decoding:
            thumb = _thumbnail(data, sha1)
        if thumb is None:
            return None
        with self._thumb_lock:
            if sha1 not in self._thumbs:
                self._thumbs[sha1] = thumb
                self._thumb_bytes += len(thumb)
            while self._thumb_bytes > THUMB_CACHE_BYTES and len(self._thumbs) > 1:
                _, dropped = self._thumbs.popitem(last=False)
                self._thumb_bytes -= len(dropped)
        return thumb


def _thumbnail(data: bytes, name: str) -> bytes | None:
    """Decode with the core's safe loader (SVG, bomb limits) and keep the alpha channel.

    The loader composites on a background; compositing is linear (c = a*f + (1-a)*bg), so two
    decodes, on black and on white, give back alpha and colour exactly (up to rounding)."""
    dark = load_image_bytes(data, name, background=(0, 0, 0), max_side=THUMB_SIDE)
    if isinstance(dark, ImageError):
        return None
    image = dark.image
    if dark.transparency > 0:
        light = load_image_bytes(data, name, background=(255, 255, 255), max_side=THUMB_SIDE)
        if not isinstance(light, ImageError) and light.image.size == image.size:
            d = np.asarray(image, dtype=np.float32)
            w = np.asarray(light.image, dtype=np.float32)
            alpha = np.clip(255.0 - (w - d).mean(axis=2), 0.0, 255.0)
            colour = np.clip(d * 255.0 / np.maximum(alpha, 1.0)[..., None], 0.0, 255.0)
            rgba = np.dstack([colour, alpha]).round().astype(np.uint8)
            image = Image.fromarray(rgba, "RGBA")
    out = io.BytesIO()
    if features.check("webp"):
        image.save(out, "WEBP", quality=82, method=4)
    else:
        image.save(out, "PNG", optimize=False)
    return out.getvalue()


def _thumb_type(data: bytes) -> str:
    return "image/webp" if data[:4] == b"RIFF" else "image/png"


def _image_type(data: bytes) -> str:
    """Content type of an original by its bytes; unknown bytes are offered as a download."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in head:
        return "image/svg+xml"
    return "application/octet-stream"


# --- the HTTP server --------------------------------------------------------------------------


RetrainFn = Callable[[], dict]


class ReviewServer(http.server.ThreadingHTTPServer):
    """Serves the review page on 127.0.0.1 only. `serve_forever()` in a thread for tests."""

    daemon_threads = True
    # listen()'s backlog: socketserver's default of 5 dropped connections when a page or a
    # script sent a burst of 100-200 requests before the accept loop caught up.
    request_queue_size = 256

    def __init__(
        self,
        site: ReviewSite,
        port: int = 0,
        retrain: RetrainFn | None = None,
        retrain_command: str = "",
        logger: logging.Logger | None = None,
        token: str | None = None,
    ) -> None:
        self.site = site
        self.retrain_fn = retrain
        self.retrain_command = retrain_command
        self.log = logger or logging.getLogger("invertornot_ssg")
        self.token = token or secrets.token_urlsafe(32)
        self._retraining = threading.Lock()
        self.assets = {route: (ASSETS_DIR / name).read_bytes() for route, (name, _) in ASSETS.items()}
        self.page_template = (ASSETS_DIR / "index.html").read_text(encoding="utf-8")
        super().__init__(("127.0.0.1", port), _Handler)
        self.port = int(self.server_address[1])
        self.allowed_hosts = frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})
        self.allowed_origins = frozenset(f"http://{host}" for host in self.allowed_hosts)
        self.cookie_name = f"invertornot_review_{self.port}"  # cookies ignore ports: one name per server

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host name (socket.getfqdn): slow, and not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def page(self) -> bytes:
        config = {
            "token": self.token,
            "threshold": self.site.threshold,
            "unsure": self.site.unsure,
            "per_page": PER_PAGE,
            "invert_filter": INVERT_FILTER,
            "keep_filter": KEEP_FILTER,
            "page_background": PAGE_BACKGROUND,
            "human_methods": list(HUMAN_METHODS),
            "overrides": str(self.site.overrides_path),
            "retrain_command": self.retrain_command,
            "can_retrain": self.retrain_fn is not None,
        }
        # Inside <script type="application/json">: no "<" may close the element early.
        text = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return self.page_template.replace("__CONFIG__", text).encode("utf-8")

    def token_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(value.encode("utf-8", "replace"), self.token.encode())

    def retrain(self) -> dict | None:
        """Run the retrain function unless one is running (then None)."""
        if not self._retraining.acquire(blocking=False):
            return None
        try:
            assert self.retrain_fn is not None
            return self.retrain_fn()
        finally:
            self._retraining.release()


class _Reply(Exception):
    """Stop handling a request with this status and message (sent as JSON)."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"
    server_version = "invertornot-ssg-review"
    sys_version = ""
    timeout = 30  # seconds a connection may stay silent (also bounds reading a body)

    # -- plumbing --------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        self.server.log.debug("review: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _handle(self) -> None:
        self._body_read = False
        try:
            self._route()
        except _Reply as reply:
            drained = self._discard_body()
            close = reply.close or not drained
            self._json(reply.status, {"error": reply.message}, close=close)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except InvertOrNotError as exc:  # e.g. the overrides file became malformed
            self.server.log.error("review: %s", exc)
            self._json(500, {"error": str(exc)}, close=True)
        except Exception:
            self.server.log.exception("review: %s %s failed", self.command, self.path)
            self._json(500, {"error": "internal error; see the terminal running `invertornot-ssg review`"}, close=True)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        headers = dict(headers or {})
        headers.setdefault("Cache-Control", "no-store")
        headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        for name, value in headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, close: bool = False) -> None:
        body = json.dumps(data, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", close=close)

    # -- routing and checks ----------------------------------------------------------------------

    def _route(self) -> None:
        host = self.headers.get("Host", "")
        if host.lower() not in self.server.allowed_hosts:
            raise _Reply(403, f"forbidden: Host must be one of {', '.join(sorted(self.server.allowed_hosts))}")
        url = urlsplit(self.path)
        path = url.path  # never unquoted: routes are exact, sha1s are matched by pattern
        method = self.command
        if path == "/":
            self._allow(method, "GET")
            return self._page(parse_qs(url.query).get("token", [""])[0])
        if path in ASSETS:
            self._allow(method, "GET")
            return self._send(200, self.server.assets[path], ASSETS[path][1], {"Cache-Control": "no-cache"})
        if path == "/api/items":
            self._allow(method, "GET")
            self._check_read()
            return self._items()
        match = _SHA1_PATH.match(path)
        if match:
            self._allow(method, "GET")
            self._check_read()
            return self._image(match.group(1), match.group(2).lower())
        if path == "/api/labels":
            self._allow(method, "POST")
            self._check_write()
            return self._labels(self._body())
        if path == "/api/retrain":
            self._allow(method, "POST")
            self._check_write()
            self._body()
            return self._retrain()
        raise _Reply(404, "not found")

    def _allow(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise _Reply(405, f"method {method} not allowed here (only {allowed})")

    def _cookie_token(self) -> str | None:
        try:
            cookie = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        morsel = cookie.get(self.server.cookie_name)
        return morsel.value if morsel else None

    def _check_read(self) -> None:
        """Site data needs the token: in the header (scripts) or the page's cookie (<img>)."""
        if not (self.server.token_ok(self.headers.get(TOKEN_HEADER)) or self.server.token_ok(self._cookie_token())):
            raise _Reply(403, "forbidden: open the address with ?token= that `invertornot-ssg review` printed")

    def _check_write(self) -> None:
        """Writes need the token in the header (a cookie alone is what a forged request would carry)."""
        if not self.server.token_ok(self.headers.get(TOKEN_HEADER)):
            raise _Reply(403, f"forbidden: writes need the {TOKEN_HEADER} header of this run")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.allowed_origins:
            raise _Reply(403, "forbidden: cross-origin request")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise _Reply(403, "forbidden: cross-site request")

    def _discard_body(self) -> bool:
        """Read and drop an unread request body (up to DRAIN_BYTES), so that the client reads the
        answer rather than a connection reset; False when the connection must be closed instead."""
        if self._body_read or self.command not in ("POST", "PUT", "PATCH", "DELETE"):
            return True
        self._body_read = True
        if self.headers.get("Transfer-Encoding"):
            return False
        length_text = (self.headers.get("Content-Length") or "0").strip()
        if not length_text.isdigit() or int(length_text) > DRAIN_BYTES:
            return False
        remaining = int(length_text)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                return False
            remaining -= len(chunk)
        return True

    def _body(self) -> Any:
        """The request's JSON body: application/json, Content-Length at most MAX_BODY_BYTES."""
        if self.headers.get("Transfer-Encoding"):
            raise _Reply(411, "send a Content-Length (chunked bodies are not accepted)", close=True)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _Reply(411, "Content-Length required", close=True)
        if not length_text.strip().isdigit():
            raise _Reply(400, "bad Content-Length", close=True)
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _Reply(413, f"request body over {MAX_BODY_BYTES} bytes", close=True)  # drained if small
        self._body_read = True
        body = self.rfile.read(length)
        if len(body) < length:
            raise _Reply(400, "request body shorter than its Content-Length", close=True)
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _Reply(415, "send JSON (Content-Type: application/json)")
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Reply(400, f"malformed JSON: {exc}") from None

    # -- endpoints -------------------------------------------------------------------------------

    def _page(self, query_token: str) -> None:
        from_query = self.server.token_ok(query_token)
        if not (from_query or self.server.token_ok(self._cookie_token())):
            body = (
                "<!doctype html><meta charset=utf-8><title>invertornot-ssg review</title>"
                "<p>Open the address with <code>?token=</code> that <code>invertornot-ssg review</code> printed.</p>"
            ).encode()
            return self._send(403, body, "text/html; charset=utf-8")
        headers = {"Content-Security-Policy": _PAGE_CSP}
        if from_query:
            headers["Set-Cookie"] = f"{self.server.cookie_name}={self.server.token}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, self.server.page(), "text/html; charset=utf-8", headers)

    def _items(self) -> None:
        self._json(200, self._items_payload())

    def _items_payload(self) -> dict[str, Any]:
        items = self.server.site.items()
        return {"threshold": self.server.site.threshold, "items": [item.as_json() for item in items]}

    def _image(self, kind: str, sha1: str) -> None:
        site = self.server.site
        data = site.thumbnail(sha1) if kind == "thumb" else site.image_bytes(sha1)
        if data is None:
            raise _Reply(404, f"no image {sha1} on this site (or it cannot be read, or changed since the build)")
        content_type = _thumb_type(data) if kind == "thumb" else _image_type(data)
        headers = {"Cache-Control": "private, max-age=3600", "Content-Security-Policy": _IMAGE_CSP}
        if content_type == "application/octet-stream":
            headers["Content-Disposition"] = "attachment"
        self._send(200, data, content_type, headers)

    def _labels(self, body: Any) -> None:
        shape = 'expected {"labels": {"<image path>": "invert" | "keep" | null, ...}}'
        if not isinstance(body, dict) or set(body) != {"labels"} or not isinstance(body["labels"], dict):
            raise _Reply(400, shape)
        labels = body["labels"]
        try:
            changed = self.server.site.save(labels)
        except ValueError as exc:
            raise _Reply(400, str(exc)) from None
        if changed:
            self.server.log.info("review: saved %d label(s) to %s", len(changed), self.server.site.overrides_path)
        self._json(200, {"changed": changed, **self._items_payload()})

    def _retrain(self) -> None:
        if self.server.retrain_fn is None:
            raise _Reply(404, f"retraining here is off; run: {self.server.retrain_command}")
        try:
            report = self.server.retrain()
        except InvertOrNotError as exc:
            raise _Reply(422, str(exc)) from None
        if report is None:
            raise _Reply(409, "a retrain is already running")
        self._json(200, _finite(report))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _finite(value.item())
    return value


def _unit_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _some(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


# --- the command ------------------------------------------------------------------------------


def retrain_in_process(engine: Any, overrides_path: Path, bootstrap: bool, log: logging.Logger) -> dict:
    """`invertornot-ssg retrain` for this site, in this process; returns what the page shows."""
    from .training import report_lines, retrain

    head, report = retrain(engine, [overrides_path], bootstrap=bootstrap, output=None, log=log)
    path = engine.site_head_path()
    lines = [*report_lines(report), f"saved head {head.version} to {path}; rebuild the site to apply it"]
    return {"head": str(path), "version": head.version, "lines": lines, "report": report}


def serve(
    settings: Settings,
    base_dir: Path,
    port: int = 0,
    open_browser: bool = True,
    logger: logging.Logger | None = None,
    bootstrap: bool = True,
    out: TextIO | None = None,
) -> int:
    """Run the review server until Ctrl+C; prints the page's address (with its token) on `out`."""
    from .engine import Engine

    log = logger or logging.getLogger("invertornot_ssg")
    out = out or sys.stdout
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected 0..65535, got {port}")
    engine = Engine(dataclasses.replace(settings, write_overrides=False), base_dir, logger=log)
    overrides_path = engine.overrides_path
    if overrides_path is None or not overrides_path.is_file():
        raise ConfigError(f"overrides: no such file {overrides_path}; build the site first (builds record every image there)")
    if not (engine.store_dir / DB_NAME).is_file():
        raise ConfigError(f"store: no embedding store at {engine.store_dir}; build the site first or pass --store")
    site = ReviewSite(overrides_path, engine.store, settings.threshold, settings.unsure, log)
    items = site.items()  # a malformed overrides file fails here, before anything is served
    command = shlex.join([
        "invertornot-ssg", "retrain", "--store", str(engine.store_dir), "--model", settings.model,
        "--overrides", str(overrides_path),
    ])
    retrain = lambda: retrain_in_process(engine, overrides_path, bootstrap, log)  # noqa: E731
    try:
        server = ReviewServer(site, port, retrain=retrain, retrain_command=command, logger=log)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: already in use; pick another or leave --port out for a free one") from None
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    with server:
        print(f"Reviewing {len(items)} images of {overrides_path} (Ctrl+C stops):", file=out)
        print(server.url, file=out, flush=True)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
        try:
            server.serve_forever(poll_interval=0.25)
        except KeyboardInterrupt:
            pass
    return 0
