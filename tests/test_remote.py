"""Remote images (`remote: true`): address checks against SSRF and DNS rebinding, redirects, timeouts,
size caps, content-type and magic-byte checks, the URL cache, and the wiring into the page pass and
a real in-process MkDocs build. Every server is a local one on 127.0.0.1; nothing else is contacted
(names that would resolve elsewhere are answered by a patched getaddrinfo and refused before any
connection)."""
from __future__ import annotations

import errno
import http.server
import io
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from invertornot_ssg import remote
from invertornot_ssg.engine import Engine
from invertornot_ssg.errors import ConfigError, StoreError
from invertornot_ssg.overrides import Overrides
from invertornot_ssg.pages import PageBatch, Resolved
from invertornot_ssg.remote import RemoteFetcher, address_problem, normalize_url
from invertornot_ssg.settings import Settings

from fakes import FAKE_MODEL

LOOPBACK = ["127.0.0.1/32"]  # trusted in tests that need the local server but not other private addresses


def png(color: str = "white", size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


PNG = png()
HTML = b"<!DOCTYPE html>\n<html><head><title>Not found</title></head><body>nope</body></html>\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10"/></svg>'


# --- a local server with one behaviour per path ---------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.routes: dict[str, object] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                owner.hits[path] = owner.hits.get(path, 0) + 1
                owner.headers[path] = dict(self.headers.items())
                route = owner.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, *args: object) -> None:
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # the client hanging up on purpose (size cap, timeout) is expected

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(body: bytes, content_type: str | None = "image/png", status: int = 200, length: bool = True, **headers: str):
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        if content_type:
            h.send_header("Content-Type", content_type)
        if length:
            h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.end_headers()
        h.wfile.write(body)

    return handle


def redirect(location: str, status: int = 302):
    return reply(b"", None, status, Location=location)


def sleeping(seconds: float):
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        reply(PNG)(h)

    return handle


def dripping(h: http.server.BaseHTTPRequestHandler) -> None:
    """Headers at once, then a byte every 0.1 s: each read is quick, the whole is not."""
    h.send_response(200)
    h.send_header("Content-Type", "image/png")
    h.send_header("Content-Length", str(len(PNG)))
    h.end_headers()
    try:
        for byte in PNG:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def streaming(total: int):
    """No Content-Length: the body ends when the connection closes (HTTP/1.0)."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.end_headers()
        try:
            h.wfile.write(PNG[:8])
            for _ in range(total // 4096):
                h.wfile.write(b"\0" * 4096)
        except OSError:
            pass

    return handle


@pytest.fixture
def server():
    s = Server()
    s.routes.update({
        "/a.png": reply(PNG),
        "/b.png": reply(png("black")),
        "/same-as-a.png": reply(PNG),
        "/pic.svg": reply(SVG, "image/svg+xml; charset=utf-8"),
        "/octet.png": reply(PNG, "application/octet-stream"),
        "/untyped.png": reply(PNG, None),
        "/page.html": reply(HTML, "text/html; charset=utf-8"),
        "/png-as-html": reply(PNG, "text/html"),
        "/html-as-png.png": reply(HTML, "image/png"),
        "/garbage.png": reply(b"\x00\x01\x02garbage" * 10, "image/png"),
        "/empty.png": reply(b"", "image/png"),
        "/gzip.png": reply(PNG, "image/png", Content_Encoding="gzip"),
        "/slow.png": sleeping(5),
        "/drip.png": dripping,
        "/declared-huge.png": reply(PNG, "image/png", length=False, Content_Length=str(50 * 2**20)),
        "/streamed-huge.png": streaming(64 * 1024),
        "/short.png": reply(PNG[:20], "image/png", length=False, Content_Length=str(len(PNG))),
        "/gone.png": reply(HTML, "text/html", status=410),
        "/redirect-ok": redirect("/a.png"),
        "/redirect-relative": redirect("a.png", 301),
        "/redirect-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/redirect-private": redirect("http://10.1.2.3/a.png", 307),
        "/redirect-ftp": redirect("ftp://example.org/a.png"),
        "/redirect-nowhere": reply(b"", None, 302),
        "/loop": redirect("/loop"),
    })
    yield s
    s.close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every address the fetcher connects to."""
    made: list = []
    real = remote._connect

    def spy(addresses, timeout):
        made.append([sockaddr[0] for _, sockaddr in addresses])
        return real(addresses, timeout)

    monkeypatch.setattr(remote, "_connect", spy)
    return made


def fetcher(tmp_path: Path, **kwargs) -> RemoteFetcher:
    kwargs.setdefault("timeout", 5.0)
    return RemoteFetcher(tmp_path / "store" / "remote", **kwargs)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """getaddrinfo answering `answers` (name -> addresses) and the real resolver for anything else.
    Returns the names looked up, in order."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host not in answers:
            return real(host, port, *args, **kwargs)
        out = []
        for address in answers[host]:
            ip = ipaddress.ip_address(address)
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            sockaddr = (address, port) if ip.version == 4 else (address, port, 0, 0)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# --- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "url"),
    [
        ("https://example.org/a.png", "https://example.org/a.png"),
        ("HTTP://example.org/a.png#frag", "http://example.org/a.png"),
        ("//cdn.example.org/a.png?v=2", "https://cdn.example.org/a.png?v=2"),
        ("  https://example.org  ", "https://example.org/"),
        ("ftp://example.org/a.png", None),
        ("data:image/png;base64,AAAA", None),
        ("img/a.png", None),
        ("https:///nohost.png", None),
        ("http://[::1", None),
    ],
)
def test_normalize_url(src: str, url: str | None) -> None:
    assert normalize_url(src) == url


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is checked as the IPv4 address
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved; Python files 240/4 under is_private too
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_address_problem(address: str, problem: str | None) -> None:
    got = address_problem(ipaddress.ip_address(address))
    assert (got is None) if problem is None else (problem in got)


# --- refusals before any connection ---------------------------------------------------------------


def test_loopback_is_refused_before_any_connection_by_default(tmp_path: Path, server: Server, connections: list) -> None:
    outcome = fetcher(tmp_path).fetch(server.url("/a.png"))
    assert outcome.path is None
    assert "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address" in outcome.problem
    assert "remote_allow_private" in outcome.problem
    assert connections == [] and server.total == 0
    assert not (tmp_path / "store" / "remote").exists()


def test_allow_private_reaches_loopback(tmp_path: Path, server: Server) -> None:
    outcome = fetcher(tmp_path, allow_private=True).fetch(server.url("/a.png"))
    assert outcome.problem is None and outcome.path.read_bytes() == PNG
    assert server.headers["/a.png"]["Accept-Encoding"] == "identity"
    assert server.headers["/a.png"]["User-Agent"].startswith("invertornot-ssg/")


@pytest.mark.parametrize(
    ("addresses", "shown"),
    [
        (["169.254.169.254"], "169.254.169.254, a link-local address"),
        (["10.20.30.40"], "10.20.30.40, a private address"),
        (["192.168.0.10"], "192.168.0.10, a private address"),
        (["::1"], "::1, a loopback address"),
        (["fe80::1"], "fe80::1, a link-local address"),
        (["0.0.0.0"], "0.0.0.0, an unspecified address"),
        (["93.184.216.34", "10.0.0.7"], "10.0.0.7, a private address"),  # one bad address is enough
    ],
)
def test_names_resolving_to_private_addresses_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: list, addresses: list[str], shown: str
) -> None:
    fake_dns(monkeypatch, {"images.example.org": addresses})
    outcome = fetcher(tmp_path).fetch("https://images.example.org/a.png")
    assert outcome.problem == (
        f"was not fetched: refused: images.example.org resolves to {shown} (set remote_allow_private: true to allow it)"
    )
    assert connections == []


def test_multicast_and_unspecified_stay_refused_even_when_private_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: list
) -> None:
    fake_dns(monkeypatch, {"a.example.org": ["0.0.0.0"], "b.example.org": ["224.0.0.1"]})
    f = fetcher(tmp_path, allow_private=True)
    assert "unspecified" in f.fetch("http://a.example.org/x.png").problem
    assert "multicast" in f.fetch("http://b.example.org/x.png").problem
    assert connections == []


def test_connects_to_the_checked_address_not_a_second_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server, connections: list
) -> None:
    """DNS rebinding: the name is resolved once per hop and the connection goes to what was checked,
    with the Host header still naming the host."""
    asked = fake_dns(monkeypatch, {"images.example.org": ["127.0.0.1"]})
    f = fetcher(tmp_path, trusted=LOOPBACK)
    outcome = f.fetch(f"http://images.example.org:{server.port}/a.png")
    assert outcome.problem is None
    assert asked == ["images.example.org"]
    assert connections == [["127.0.0.1"]]
    assert server.headers["/a.png"]["Host"] == f"images.example.org:{server.port}"


def test_unresolvable_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: list) -> None:
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    outcome = fetcher(tmp_path).fetch("https://no-such-host.invalid/a.png")
    assert outcome.problem == "was not fetched: cannot resolve no-such-host.invalid (Name or service not known)"
    assert connections == []


def test_hung_resolver_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args, **kwargs):
        time.sleep(3)
        raise socket.gaierror("late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    outcome = fetcher(tmp_path, timeout=0.3).fetch("https://slow-dns.example.org/a.png")
    assert time.monotonic() - started < 2
    assert outcome.problem == "was not fetched: timed out resolving slow-dns.example.org after 0.3 s"


# --- redirects ------------------------------------------------------------------------------------


def test_redirects_are_followed(tmp_path: Path, server: Server) -> None:
    f = fetcher(tmp_path, trusted=LOOPBACK)
    assert f.fetch(server.url("/redirect-ok")).path.read_bytes() == PNG
    assert f.fetch(server.url("/redirect-relative")).path.read_bytes() == PNG


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/redirect-metadata", "169.254.169.254 resolves to 169.254.169.254, a link-local address"),
        ("/redirect-private", "10.1.2.3 resolves to 10.1.2.3, a private address"),
    ],
)
def test_redirect_to_a_private_address_is_refused(
    tmp_path: Path, server: Server, connections: list, path: str, shown: str
) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url(path))
    assert outcome.problem == f"was not fetched: refused: {shown} (set remote_allow_private: true to allow it)"
    assert connections == [["127.0.0.1"]]  # the first hop only
    assert server.hits[path] == 1


def test_redirect_to_a_name_that_rebinds_to_private_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server, connections: list
) -> None:
    fake_dns(monkeypatch, {"evil.example.org": ["10.9.8.7"]})
    server.routes["/to-evil"] = redirect(f"http://evil.example.org:{server.port}/a.png")
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url("/to-evil"))
    assert "refused: evil.example.org resolves to 10.9.8.7, a private address" in outcome.problem
    assert connections == [["127.0.0.1"]]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/loop", "more than 5 redirects"),
        ("/redirect-ftp", "redirected to 'ftp://example.org/a.png', not an http(s) URL"),
        ("/redirect-nowhere", "HTTP 302 redirect without a Location"),
    ],
)
def test_bad_redirects(tmp_path: Path, server: Server, path: str, problem: str) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url(path))
    assert outcome.problem == f"was not fetched: {problem}"
    if path == "/loop":
        assert server.hits["/loop"] == 6  # the request and five redirects, no more


# --- time, size, type -----------------------------------------------------------------------------


def test_server_that_sleeps_times_out(tmp_path: Path, server: Server) -> None:
    started = time.monotonic()
    outcome = fetcher(tmp_path, trusted=LOOPBACK, timeout=0.5).fetch(server.url("/slow.png"))
    assert time.monotonic() - started < 3
    assert outcome.problem == "was not fetched: timed out after 0.5 s"


def test_slow_drip_hits_the_overall_deadline(tmp_path: Path, server: Server) -> None:
    """Each byte arrives within any per-read timeout; the whole fetch still has one deadline."""
    started = time.monotonic()
    outcome = fetcher(tmp_path, trusted=LOOPBACK, timeout=0.8).fetch(server.url("/drip.png"))
    assert time.monotonic() - started < 3
    assert outcome.problem == "was not fetched: timed out after 0.8 s"
    assert not list((tmp_path / "store").rglob("*.png"))  # nothing partial was kept


def test_declared_length_over_the_cap_is_refused_unread(tmp_path: Path, server: Server) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url("/declared-huge.png"))
    assert outcome.problem == f"was not fetched: declares {50 * 2**20} bytes, over the 20 MiB limit"


def test_streamed_body_over_the_cap_is_cut_off(tmp_path: Path, server: Server) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK, max_bytes=10_000).fetch(server.url("/streamed-huge.png"))
    assert outcome.problem == "was not fetched: larger than the 10000 bytes limit (stopped reading)"
    assert not (tmp_path / "store" / "remote").exists()


def test_connection_closed_early(tmp_path: Path, server: Server) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url("/short.png"))
    assert outcome.problem == f"was not fetched: connection closed after 20 of {len(PNG)} bytes"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/page.html", "served as text/html, not an image"),
        ("/png-as-html", "served as text/html, not an image"),
        ("/html-as-png.png", "content is HTML, not an image, although served as image/png"),
        ("/garbage.png", "content is not an image (starts with bytes 00 01 02 67 61 72 62 61), although served as image/png"),
        ("/empty.png", "empty response (0 bytes)"),
        ("/gzip.png", "served with Content-Encoding gzip although identity was asked for"),
        ("/gone.png", "HTTP 410 Gone"),
        ("/nothing-here.png", "HTTP 404 Not Found"),
    ],
)
def test_what_is_not_an_image_is_refused(tmp_path: Path, server: Server, path: str, problem: str) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url(path))
    assert outcome.problem == f"was not fetched: {problem}"
    assert not (tmp_path / "store" / "remote").exists()


@pytest.mark.parametrize(("path", "suffix"), [("/pic.svg", ".svg"), ("/octet.png", ".png"), ("/untyped.png", ".png")])
def test_accepted_types(tmp_path: Path, server: Server, path: str, suffix: str) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url(path))
    assert outcome.problem is None and outcome.path.suffix == suffix


def test_https_to_a_plain_http_server_is_a_tls_error(tmp_path: Path, server: Server, connections: list) -> None:
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(f"https://127.0.0.1:{server.port}/a.png")
    assert outcome.problem.startswith("was not fetched: TLS error with 127.0.0.1")
    assert connections == [["127.0.0.1"]]


def test_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nobody listens once closed
    outcome = fetcher(tmp_path, trusted=LOOPBACK).fetch(f"http://127.0.0.1:{port}/a.png")
    assert outcome.problem == "was not fetched: cannot connect to 127.0.0.1 (Connection refused)"


# --- the cache ------------------------------------------------------------------------------------


def test_cache_by_url_and_sha1_serves_the_second_build_without_a_request(tmp_path: Path, server: Server) -> None:
    first = fetcher(tmp_path, trusted=LOOPBACK)
    urls = [server.url(p) for p in ("/a.png", "/same-as-a.png", "/b.png", "/redirect-ok")]
    got = first.fetch_all(urls)
    assert not any(f.cached or f.problem for f in got.values())
    assert server.total == 5 and first.requests == 5
    cache = tmp_path / "store" / "remote"
    # One JSON per URL; one image file per distinct content, named by its sha1.
    assert len(list(cache.glob("*.json"))) == 4
    assert sorted(p.name for p in cache.glob("*.png")) == sorted(
        {f.path.name for f in got.values()}
    ) and len(list(cache.glob("*.png"))) == 2
    record = json.loads(next(cache.glob("*.json")).read_text())
    assert set(record) == {"url", "sha1", "file", "size", "content_type", "fetched"}

    second = fetcher(tmp_path, trusted=LOOPBACK)  # the next build
    again = second.fetch_all(urls)
    assert all(f.cached for f in again.values()) and server.total == 5 and second.requests == 0
    assert {u: f.path for u, f in again.items()} == {u: f.path for u, f in got.items()}


def test_failures_are_not_cached(tmp_path: Path, server: Server) -> None:
    f = fetcher(tmp_path, trusted=LOOPBACK)
    f.fetch(server.url("/page.html"))
    f.fetch(server.url("/page.html"))
    assert server.hits["/page.html"] == 2


@pytest.mark.parametrize("damage", ["bad-json", "missing-file", "wrong-size"])
def test_damaged_cache_entry_is_fetched_again(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    url = server.url("/a.png")
    path = fetcher(tmp_path, trusted=LOOPBACK).fetch(url).path
    entry = next(path.parent.glob("*.json"))
    if damage == "bad-json":
        entry.write_text("{not json")
    elif damage == "missing-file":
        path.unlink()
    else:
        path.write_bytes(PNG[:10])
    with caplog.at_level(logging.WARNING):
        again = fetcher(tmp_path, trusted=LOOPBACK).fetch(url)
    assert not again.cached and again.path.read_bytes() == PNG and server.hits["/a.png"] == 2
    assert str(entry) in caplog.text and "fetching" in caplog.text


def test_cache_that_cannot_be_written_is_a_store_error(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(remote, "atomic_write", full)
    with pytest.raises(StoreError, match=r"cannot write the remote image cache .*remote: the disk is full"):
        fetcher(tmp_path, trusted=LOOPBACK).fetch(server.url("/a.png"))


# --- settings -------------------------------------------------------------------------------------


def test_settings_defaults_and_checks() -> None:
    s = Settings()
    assert (s.remote, s.remote_allow_private, s.remote_timeout) == (False, False, 10.0)
    assert Settings.from_mapping({"remote_timeout": 3, "remote_allow_private": "yes"}).remote_timeout == 3.0
    for bad in (0, -1, 601):
        with pytest.raises(ConfigError, match="remote_timeout"):
            Settings(remote_timeout=bad)


# --- wiring: the page pass and a real MkDocs build ------------------------------------------------


def not_ours(src: str) -> Resolved | None:
    return None  # a resolver for a page with no local images


def page_with(*srcs: str) -> str:
    return "".join(f'<p><img src="{s}" alt=""></p>\n' for s in srcs)


def test_remote_off_by_default_touches_nothing_and_fetches_nothing(
    tmp_path: Path, server: Server, fake_embedder: None, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(Settings(store=str(tmp_path / "store"), model=FAKE_MODEL), tmp_path)
    batch = PageBatch(engine)
    html = page_with(server.url("/a.png"))
    with caplog.at_level(logging.WARNING):
        batch.add_page("index.html", html, not_ours)
        assert batch.classify() == []
    assert batch.rewritten("index.html") == html
    assert server.total == 0 and not caplog.records


def test_page_pass_classifies_remote_images_and_warns_for_failures(
    tmp_path: Path, server: Server, fake_embedder: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(store=str(tmp_path / "store"), model=FAKE_MODEL, remote=True, overrides=str(tmp_path / "o.yml"))
    engine = Engine(settings, tmp_path)
    good, bad = server.url("/a.png"), server.url("/html-as-png.png")
    html = page_with(good, bad, "//10.0.0.1/x.png")
    batch = PageBatch(engine, fetcher=RemoteFetcher(tmp_path / "store" / "remote", trusted=LOOPBACK))
    with caplog.at_level(logging.WARNING):
        batch.add_page("index.html", html, not_ours)
        batch.add_page("other.html", page_with(good), not_ours)
        results = batch.classify()
    assert [r.request.key for r in results] == [good]  # the URL is the key
    assert results[0].invert is not None and results[0].request.path.parent == tmp_path / "store" / "remote"
    assert server.hits["/a.png"] == 1  # once for two pages
    new = batch.rewritten("index.html")
    assert 'data-invertornot="' in new.split("\n")[0]
    assert new.split("\n")[1:] == html.split("\n")[1:]  # the failures are left as they were
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"index.html: image {bad!r} was not fetched: content is HTML, not an image, although served as image/png;"
        " tag left unchanged",
        "index.html: image '//10.0.0.1/x.png' was not fetched: refused: 10.0.0.1 resolves to 10.0.0.1,"
        " a private address (set remote_allow_private: true to allow it); tag left unchanged",
    ]
    engine.record(results)
    assert good in Overrides.load(tmp_path / "o.yml").entries


def test_remote_label_in_the_overrides_file_is_used(tmp_path: Path, server: Server, fake_embedder: None) -> None:
    good = server.url("/a.png")
    (tmp_path / "o.yml").write_text(f"version: 1\nimages:\n  '{good}': invert\n")
    settings = Settings(store=str(tmp_path / "store"), model=FAKE_MODEL, remote=True, overrides=str(tmp_path / "o.yml"))
    batch = PageBatch(Engine(settings, tmp_path), fetcher=RemoteFetcher(tmp_path / "store" / "remote", trusted=LOOPBACK))
    batch.add_page("index.html", page_with(good), not_ours)
    (result,) = batch.classify()
    assert (result.method, result.invert) == ("override", True)
    assert 'class="invert"' in batch.rewritten("index.html")


def mkdocs_site(tmp_path: Path, markdown: str, **options: object) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(markdown)
    lines = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in options.items())
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: remote\nplugins:\n  - invertornot:\n{lines}")
    return config


def test_mkdocs_build_fetches_once_and_caches_across_builds(
    tmp_path: Path, server: Server, fake_embedder: None, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mkdocs")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    good, bad = server.url("/a.png"), server.url("/page.html")
    config = mkdocs_site(
        tmp_path, f'# Remote\n\n<img src="{good}" alt="a">\n\n<img src="{bad}" alt="b">\n',
        remote=True, remote_allow_private=True, remote_timeout=5, model=FAKE_MODEL,
        dark_selectors=[],  # the default theme has no dark mode: say so, so that it does not warn
    )
    for n in (1, 2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            build(load_config(str(config), site_dir=str(tmp_path / f"site{n}")))
        html = (tmp_path / f"site{n}" / "index.html").read_text()
        tag = next(t for t in html.split("<img")[1:] if good in t)
        assert "data-invertornot=" in tag
        assert f'<img src="{bad}" alt="b">' in html or f'<img alt="b" src="{bad}"' in html
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "served as text/html, not an image; tag left unchanged" in warnings[0]
    assert server.hits["/a.png"] == 1  # the second build came from the cache
    assert server.hits["/page.html"] == 2  # failures are tried again
    assert good in Overrides.load(tmp_path / "invertornot.yml").entries


def test_mkdocs_build_without_allow_private_refuses_loopback(
    tmp_path: Path, server: Server, fake_embedder: None, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mkdocs")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    good = server.url("/a.png")
    config = mkdocs_site(tmp_path, f'<img src="{good}" alt="a">\n', remote=True, model=FAKE_MODEL)
    with caplog.at_level(logging.WARNING):
        build(load_config(str(config), site_dir=str(tmp_path / "site")))
    assert server.total == 0
    assert "a loopback address (set remote_allow_private: true to allow it); tag left unchanged" in caplog.text
    assert "data-invertornot" not in (tmp_path / "site" / "index.html").read_text()


def test_international_names_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server, connections: list
) -> None:
    """A non-ASCII path is sent percent-encoded (UTF-8); an internationalised host name is looked up
    and sent in its ASCII (IDNA) form, and checked like any other."""
    server.routes["/%E5%9B%BE%201.png"] = reply(PNG)
    f = fetcher(tmp_path, trusted=LOOPBACK)
    url = normalize_url(server.url("/图 1.png"))
    assert url == server.url("/%E5%9B%BE%201.png")
    assert f.fetch(url).problem is None and server.hits["/%E5%9B%BE%201.png"] == 1
    asked = fake_dns(monkeypatch, {"xn--r8jz45g.jp": ["10.0.0.1"]})
    outcome = f.fetch("https://例え.jp/a.png")
    assert asked == ["xn--r8jz45g.jp"]
    assert "refused: xn--r8jz45g.jp resolves to 10.0.0.1, a private address" in outcome.problem
    assert connections == [["127.0.0.1"]]
