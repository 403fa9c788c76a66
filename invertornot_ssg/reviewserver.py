"""The review page's HTTP server: 127.0.0.1 only, per-run token, Host/Origin checks, validated JSON bodies."""
from __future__ import annotations

import hmac
import http.cookies
import http.server
import json
import logging
import math
import re
import secrets
import socketserver
import threading
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from ._lazy import np
from .css import INVERT_FILTER, KEEP_FILTER
from .errors import InvertOrNotError
from .images import DARK_PAGE
from .reviewsite import _image_type, _thumb_type, HUMAN_METHODS, MINI_SIDE, PER_PAGE, ReviewSite

ASSETS_DIR = Path(__file__).with_name("review_assets")
ASSETS = {  # URL path -> (file in ASSETS_DIR, content type): the only files served from disk by name
    "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
    "/static/reviewmap.js": ("reviewmap.js", "text/javascript; charset=utf-8"),
    "/static/review.css": ("review.css", "text/css; charset=utf-8"),
}
PAGE_BACKGROUND = "#%02x%02x%02x" % DARK_PAGE  # the dark page the tiles show images on (docs/src/labeling.md)
MAX_BODY_BYTES = 1024 * 1024
DRAIN_BYTES = 8 * 1024 * 1024  # an oversized body up to this is read and dropped, so the client sees the 413
TOKEN_HEADER = "X-Review-Token"
_SHA1_PATH = re.compile(r"/(image|thumb|mini)/([0-9a-fA-F]{40})\Z")
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_IMAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"  # an SVG opened directly runs nothing
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
        site_map: Any = None,
    ) -> None:
        self.site = site
        self.site_map = site_map  # maplayout.SiteMapCache: the map view; None: no map
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
            "has_map": self.site_map is not None,
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
        if path == "/api/map":
            self._allow(method, "GET")
            self._check_read()
            return self._map()
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
        if kind == "image":
            data = site.image_bytes(sha1)
        else:
            data = site.thumbnail(sha1) if kind == "thumb" else site.thumbnail(sha1, MINI_SIDE)
        if data is None:
            raise _Reply(404, f"no image {sha1} on this site (or it cannot be read, or changed since the build)")
        content_type = _image_type(data) if kind == "image" else _thumb_type(data)
        headers = {"Cache-Control": "private, max-age=3600", "Content-Security-Policy": _IMAGE_CSP}
        if content_type == "application/octet-stream":
            headers["Content-Disposition"] = "attachment"
        self._send(200, data, content_type, headers)

    def _map(self) -> None:
        if self.server.site_map is None:
            raise _Reply(404, "no map here")
        site = self.server.site
        self._json(200, self.server.site_map.get().as_json(site.threshold, site.unsure))

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
