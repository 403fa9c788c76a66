"""Fetch remote (http/https) images safely into a disk cache, so they are classified like local files.

Off unless `remote: true`. Each fetch: the host is resolved once and *every* address it resolves to
must be public (loopback, private, link-local, reserved, multicast and unspecified addresses are
refused unless `remote_allow_private`); the connection goes to an address that was checked, never
to a name resolved again (no DNS rebinding); each redirect hop is checked the same way, at most
`MAX_REDIRECTS` of them. The whole fetch has one deadline (`remote_timeout`), the body a size cap,
the response must say it is an image (Content-Type) and its first bytes must be one (magic bytes).
Environment proxies are not used: the address checks would then mean nothing.

Cache layout, under `<store>/remote/`::

    <sha1 of the URL>.json    {"url", "sha1", "file", "size", "content_type", "fetched"}
    <sha1 of the bytes>.<ext> the image as served (shared by every URL serving the same bytes)

A cached URL is never fetched again; delete the folder to fetch everything anew. Any failure is a
`Fetched.problem`: the page pass warns and leaves the tag unchanged, as for a missing local image.
Only a cache that cannot be written (full disk, read-only store) raises `StoreError`.
"""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from . import __version__
from .errors import StoreError
from .fileio import atomic_write, write_error_detail

REMOTE_DIR = "remote"  # folder of the cache inside the store
MAX_BYTES = 20 * 2**20  # no image on a documentation page is this big
MAX_REDIRECTS = 5
WORKERS = 4  # fetches at a time
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_USER_AGENT = f"invertornot-ssg/{__version__}"
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"  # kept as they are when percent-encoding a path or query
_ACCEPTED_TYPES = ("application/octet-stream", "binary/octet-stream")  # besides image/*: magic bytes decide
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "ICO": ".ico",
               "TIFF": ".tif", "AVIF": ".avif", "SVG": ".svg", "SVGZ": ".svgz"}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_ADDRESS_KINDS = (  # checked in this order; the first that applies names the refusal
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)
_NEVER = ("an unspecified address", "a multicast address")  # refused even with remote_allow_private

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Fetched:
    """The outcome for one URL: a cached file, or why there is none."""

    url: str
    path: Path | None
    problem: str | None = None  # 'was not fetched: ...': the page pass warns and leaves the tag alone
    cached: bool = False  # served from the cache, no request made


class _Failure(Exception):
    """Internal: a specific reason a fetch failed."""


def normalize_url(src: str) -> str | None:
    """The URL a remote `<img src>` stands for (protocol-relative -> https, no fragment, non-ASCII
    characters of the path and query percent-encoded as UTF-8); None if the src is not an http(s)
    URL with a host."""
    text = src.strip()
    if text.startswith("//"):
        text = "https:" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    path = quote(parts.path or "/", safe=_URL_SAFE, errors="surrogateescape")
    query = quote(parts.query, safe=_URL_SAFE, errors="surrogateescape")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, query, ""))


def address_problem(address: IPAddress) -> str | None:
    """Why a connection to `address` is refused by default (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, kind in _ADDRESS_KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
        return "not a public address"
    return None


class RemoteFetcher:
    """Fetches remote images into `cache_dir` (normally `<store>/remote`); safe to share between threads.

    `trusted` are networks allowed even when private ones are not (tests use 127.0.0.1/32).
    """

    def __init__(
        self,
        cache_dir: Path,
        timeout: float = 10.0,
        allow_private: bool = False,
        max_bytes: int = MAX_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        trusted: Iterable[str | IPNetwork] = (),
        logger: logging.Logger | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self.timeout = float(timeout)
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.trusted = tuple(ipaddress.ip_network(n) for n in trusted)
        self.log = logger or logging.getLogger(__name__)
        self.requests = 0  # HTTP requests sent (redirect hops included), for the summary and tests
        self._count = threading.Lock()

    # -- public --------------------------------------------------------------------------------

    def fetch_all(self, urls: Sequence[str]) -> dict[str, Fetched]:
        """`fetch` for each distinct URL, a few at a time."""
        distinct = list(dict.fromkeys(urls))
        if len(distinct) <= 1:
            return {url: self.fetch(url) for url in distinct}
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(distinct))) as pool:
            return dict(zip(distinct, pool.map(self.fetch, distinct)))

    def fetch(self, url: str) -> Fetched:
        """The cached file for `url`, fetching it first if needed. Never raises for the URL, the
        network or the response; raises StoreError only when the cache cannot be written."""
        hit = self._cached(url)
        if hit is not None:
            return hit
        try:
            data, content_type, fmt = self._download(url)
        except _Failure as failure:
            return Fetched(url, None, f"was not fetched: {failure}")
        return Fetched(url, self._save(url, data, content_type, fmt))

    # -- cache ---------------------------------------------------------------------------------

    def _entry_path(self, url: str) -> Path:
        return self.cache_dir / f"{hashlib.sha1(url.encode('utf-8')).hexdigest()}.json"

    def _cached(self, url: str) -> Fetched | None:
        entry = self._entry_path(url)
        try:
            record = json.loads(entry.read_text(encoding="utf-8"))
            file = self.cache_dir / record["file"]
            if (record["url"] != url or Path(record["file"]).name != record["file"]
                    or file.stat().st_size != record["size"]):
                raise ValueError("does not match its file")
        except FileNotFoundError:
            if entry.exists():
                self.log.warning("remote image cache %s names a missing file; fetching %s again", entry, url)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.warning("remote image cache %s is unreadable (%s); fetching %s again", entry, exc, url)
            return None
        return Fetched(url, file, cached=True)

    def _save(self, url: str, data: bytes, content_type: str, fmt: str) -> Path:
        sha1 = hashlib.sha1(data).hexdigest()
        name = sha1 + _EXTENSIONS.get(fmt, ".img")
        record = {"url": url, "sha1": sha1, "file": name, "size": len(data), "content_type": content_type,
                  "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            file = self.cache_dir / name
            if not (file.is_file() and file.stat().st_size == len(data)):
                atomic_write(file, data)
            atomic_write(self._entry_path(url), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        except OSError as exc:
            detail = write_error_detail(exc)
            raise StoreError(f"cannot write the remote image cache {self.cache_dir}: {detail} ({exc})") from exc
        return file

    # -- network -------------------------------------------------------------------------------

    def _download(self, url: str) -> tuple[bytes, str, str]:
        """(body, content type, format) of an image URL after redirects; _Failure otherwise."""
        deadline = time.monotonic() + self.timeout
        current = url
        for _ in range(self.max_redirects + 1):
            response = self._get(current, deadline)
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise _Failure(f"HTTP {response.status} redirect without a Location")
                target = normalize_url(urljoin(current, location.strip()))
                if target is None:
                    raise _Failure(f"redirected to {location!r}, not an http(s) URL")
                current = target
                continue
            try:
                return self._body(current, response, deadline)
            finally:
                response.close()
        raise _Failure(f"more than {self.max_redirects} redirects")

    def _get(self, url: str, deadline: float) -> _Response:
        parts = urlsplit(url)
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise _Failure(f"invalid port in {url!r}") from None
        if not host:
            raise _Failure(f"no host in {url!r}")
        try:
            host = host.encode("idna").decode("ascii")  # an internationalised name, as DNS and Host want it
        except UnicodeError:
            raise _Failure(f"invalid host name {host!r}") from None
        addresses = self._checked_addresses(host, port, deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure(f"timed out after {self.timeout:g} s")
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = _PinnedHTTPSConnection(host, port, addresses, remaining)
        else:
            conn = _PinnedHTTPConnection(host, port, addresses, remaining)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        watchdog = threading.Timer(remaining, _abort, (conn,))  # one deadline, however slowly bytes come
        watchdog.daemon = True
        watchdog.start()
        try:
            with self._count:
                self.requests += 1
            conn.request("GET", path, headers={
                "User-Agent": _USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity",
            })
            return _Response(conn, conn.getresponse(), watchdog)
        except BaseException as exc:
            watchdog.cancel()
            conn.close()
            raise self._network_failure(exc, deadline, host) from None

    def _body(self, url: str, response: _Response, deadline: float) -> tuple[bytes, str, str]:
        if response.status != 200:
            raise _Failure(f"HTTP {response.status} {response.reason}".rstrip())
        headers = response.headers
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type and not (content_type.startswith("image/") or content_type in _ACCEPTED_TYPES):
            raise _Failure(f"served as {content_type}, not an image")
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise _Failure(f"served with Content-Encoding {encoding} although identity was asked for")
        declared = headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise _Failure(f"declares {int(declared)} bytes, over the {_mib(self.max_bytes)} limit")
        chunks, size = [], 0
        try:
            while True:
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise _Failure(f"larger than the {_mib(self.max_bytes)} limit (stopped reading)")
                chunks.append(chunk)
        except _Failure:
            raise
        except BaseException as exc:
            raise self._network_failure(exc, deadline, urlsplit(url).hostname or url) from None
        if time.monotonic() >= deadline:  # the watchdog cut the connection: what came is not all
            raise _Failure(f"timed out after {self.timeout:g} s")
        if declared and declared.strip().isdigit() and size < int(declared):
            raise _Failure(f"connection closed after {size} of {int(declared)} bytes")
        data = b"".join(chunks)
        if not data:
            raise _Failure("empty response (0 bytes)")
        fmt = _image_format(data, content_type)
        if fmt is None:
            raise _Failure(f"{_describe(data)}, although served as {content_type or 'no content type'}")
        return data, content_type, fmt

    def _checked_addresses(self, host: str, port: int, deadline: float) -> list[tuple[int, tuple]]:
        """Every address `host` resolves to, each checked; the connection may use only these."""
        infos = _resolve(host, port, deadline - time.monotonic())
        if infos is None:
            raise _Failure(f"timed out resolving {host} after {self.timeout:g} s")
        if isinstance(infos, BaseException):
            raise _Failure(f"cannot resolve {host} ({getattr(infos, 'strerror', None) or infos})")
        checked: list[tuple[int, tuple]] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            problem = self._refusal(address)
            if problem:
                raise _Failure(f"refused: {host} resolves to {address}, {problem}"
                               " (set remote_allow_private: true to allow it)")
            if (family, sockaddr) not in checked:
                checked.append((family, sockaddr))
        if not checked:
            raise _Failure(f"cannot resolve {host} (no IPv4 or IPv6 address)")
        return checked

    def _refusal(self, address: IPAddress) -> str | None:
        if any(address in network for network in self.trusted):
            return None
        problem = address_problem(address)
        if problem is not None and self.allow_private and problem not in _NEVER:
            return None
        return problem

    def _network_failure(self, exc: BaseException, deadline: float, host: str) -> _Failure:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        if isinstance(exc, _Failure):
            return exc
        if time.monotonic() >= deadline - 0.01 or isinstance(exc, (socket.timeout, TimeoutError)):
            return _Failure(f"timed out after {self.timeout:g} s")
        if isinstance(exc, ssl.SSLError):
            return _Failure(f"TLS error with {host} ({exc.reason or exc})")
        if isinstance(exc, OSError):
            return _Failure(f"cannot connect to {host} ({exc.strerror or exc})")
        if isinstance(exc, http.client.HTTPException):
            return _Failure(f"invalid HTTP response from {host} ({type(exc).__name__}: {exc})")
        return _Failure(f"failed ({type(exc).__name__}: {exc})")


# -- helpers ---------------------------------------------------------------------------------------


class _Response:
    """An HTTP response with its connection and deadline watchdog; `close` ends all three."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 watchdog: threading.Timer):
        self.conn, self.response, self.watchdog = conn, response, watchdog
        self.status, self.reason, self.headers = response.status, response.reason, response.headers

    def read1(self, n: int) -> bytes:
        return self.response.read1(n)

    def close(self) -> None:
        self.watchdog.cancel()
        self.response.close()
        self.conn.close()


def _connect(addresses: Sequence[tuple[int, tuple]], timeout: float | None) -> socket.socket:
    """A TCP connection to the first of the checked addresses that answers."""
    last: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an already checked address; `Host` still names the host."""

    def __init__(self, host: str, port: int, addresses: Sequence[tuple[int, tuple]], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self.tcp: socket.socket | None = None  # kept for the watchdog: `sock` is dropped once the response owns it

    def connect(self) -> None:
        self.sock = self.tcp = _connect(self._addresses, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an already checked address; the certificate is verified for the host name (SNI)."""

    def __init__(self, host: str, port: int, addresses: Sequence[tuple[int, tuple]], timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._addresses = addresses
        self.tcp: socket.socket | None = None

    def connect(self) -> None:
        sock = self.tcp = _connect(self._addresses, self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _abort(conn: http.client.HTTPConnection) -> None:
    """The deadline passed: wake any blocked read by shutting the socket down."""
    sock = getattr(conn, "tcp", None)  # conn.sock is None once an HTTP/1.0 response owns the socket
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _resolve(host: str, port: int, timeout: float) -> list | BaseException | None:
    """getaddrinfo within `timeout` (None when it ran out); a daemon thread, so a hung resolver
    never holds up the build or the interpreter's exit."""
    if timeout <= 0:
        return None
    result: list = []

    def run() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller
            result.append(exc)

    worker = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else None


def _image_format(data: bytes, content_type: str) -> str | None:
    """The image format the bytes start with, or None when they are not an image we can read."""
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data.startswith(b"\x1f\x8b") and content_type == "image/svg+xml":
        return "SVGZ"
    text = _text_head(data)
    if text is not None and "<svg" in text and "<html" not in text and "<!doctype html" not in text:
        return "SVG"
    return None


def _text_head(data: bytes) -> str | None:
    """The start of the body as lower-case text when it is markup, else None."""
    head = data[:4096]
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            head, encoding = head[len(bom):], codec
            break
    else:
        encoding = "utf-8"
    text = head.decode(encoding, "ignore").lstrip().lower()
    return text if text.startswith("<") else None


def _describe(data: bytes) -> str:
    """What a non-image body looks like, for the warning."""
    text = _text_head(data)
    if text is not None:
        return "content is HTML, not an image" if "<html" in text or "<!doctype html" in text else \
            "content is markup, not an image"
    return f"content is not an image (starts with bytes {data[:8].hex(' ')})"


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"
