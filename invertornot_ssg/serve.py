"""`invertornot-ssg serve`: InvertOrNot's HTTP API over this site's store, labels and head.

Pages show images no build saw (popups of other pages, user content, remote thumbnails); a
script on the page asks this server about them. The API is InvertOrNot's (its api/main.py):
`POST /api/file` (multipart, any number of file fields), `POST /api/url` (a JSON list of URLs)
and `POST /api/sha1` (a JSON list of SHA-1s) answer a list in request order of
``{"invert": 0 | 1 | -1, "sha1", "error", ["url"]}``, each also carrying `p_invert`,
`confidence`, `method` and `version`. `POST /api/correction` (with the token) writes a human
label into the overrides file, so `retrain` and every later build and answer learn from it.

Every image goes through `Engine.classify`, as in a build: the same decoding (transparency,
SVG, GIF, WebP), labels, near-duplicates, head and store; uploaded bytes are kept in
`<store>/served/<sha1>`, fetched URLs in the remote cache (`remote.py`, with its SSRF guard).
The engine runs in one worker thread (`service.Decider`); requests that arrive within a few
milliseconds of each other share one engine pass. Decisions are kept in memory while the
overrides file and head files are unchanged, so a repeated question costs no engine pass and
an answer is never served under a model version other than the current one.
"""
# No `from __future__ import annotations`: FastAPI reads the routes' annotations, whose names are local.

import hmac
import ipaddress
import json
import logging
import re
import socket
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, InvertOrNotError
from .settings import Settings

DEFAULT_PORT = 8765
MAX_IMAGES = 250  # per request, as InvertOrNot's own page sends at most
MAX_REQUEST_BYTES = 64 * 2**20
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
INSTALL_HINT = "`serve` needs the serve extra: pip install 'invertornot-ssg[serve]'"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors: tuple[str, ...] = ()  # origins allowed to call from a browser; none: no CORS headers at all
    token: str | None = None  # needed for /api/correction; None: corrections are refused
    max_images: int = MAX_IMAGES
    max_request_bytes: int = MAX_REQUEST_BYTES
    trusted_networks: tuple[str, ...] = ()  # URL fetches allowed there even so (tests: 127.0.0.1/32)
    batch_window: float = 0.005  # seconds a batch waits for more requests once the first arrived

    def __post_init__(self) -> None:
        if self.max_images < 1:
            raise ConfigError(f"--max-images: must be at least 1, got {self.max_images}")
        if self.max_request_bytes < 1024:
            raise ConfigError(f"--max-request-mb: must allow at least 1 KiB, got {self.max_request_bytes} bytes")


def read_token(path: Path) -> str:
    """The correction token: the file's text, stripped; a short or unreadable one is an error."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file: cannot read {path} ({exc})") from None
    if len(token) < 16:
        raise ConfigError(f"--token-file: {path} must hold a token of at least 16 characters"
                          " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings, base_dir: Path, options: ServeOptions, logger: logging.Logger | None = None):
    """The ASGI application; the model and head load once, when uvicorn starts it (lifespan)."""
    try:
        from fastapi import FastAPI, HTTPException, Request
        from fastapi.responses import JSONResponse
        from starlette.datastructures import UploadFile
        from starlette.exceptions import HTTPException as ParseError  # what Starlette's form parsing raises
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    from .service import Decider, Outcome

    log = logger or logging.getLogger("invertornot_ssg")
    decider = Decider(settings, base_dir, options, log)

    @asynccontextmanager
    async def lifespan(app):
        await decider.start()
        try:
            yield
        finally:
            await decider.stop()

    app = FastAPI(title="invertornot-ssg", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit, max_bytes=options.max_request_bytes)
    if options.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])

    def answers(outcomes: list[Outcome]) -> JSONResponse:
        return JSONResponse([o.as_json() for o in outcomes])

    def capped(items: list) -> list:
        if len(items) > options.max_images:
            raise HTTPException(413, f"at most {options.max_images} images per request, got {len(items)}")
        return items

    async def json_strings(request: Request, what: str) -> list[str]:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(400, f"send a JSON list of {what}") from None
        if not isinstance(body, list) or not all(isinstance(item, str) for item in body):
            raise HTTPException(422, f"send a JSON list of {what}")
        return capped(body)

    @app.get("/")
    async def about() -> dict[str, Any]:
        return {"service": "invertornot-ssg", "version": decider.version,
                "endpoints": ["/api/file", "/api/url", "/api/sha1", "/api/correction"],
                "max_images": options.max_images, "corrections": options.token is not None,
                "engine_passes": decider.passes, "images_classified": decider.images}

    @app.post("/api/file")
    async def by_file(request: Request) -> JSONResponse:
        try:
            form = await request.form(max_files=options.max_images, max_fields=options.max_images)
        except ParseError as exc:
            if exc.status_code == 413:
                raise
            raise HTTPException(413 if "Too many" in str(exc.detail) else 400,
                                f"{exc.detail} (at most {options.max_images} images per request)") from None
        try:
            files = capped([value for _, value in form.multi_items() if isinstance(value, UploadFile)])
            contents = [(await f.read(), f.content_type or "") for f in files]
        finally:
            await form.close()
        return answers(await decider.classify_bytes(contents))

    @app.post("/api/url")
    async def by_url(request: Request) -> JSONResponse:
        return answers(await decider.classify_urls(await json_strings(request, "image URLs")))

    @app.post("/api/sha1")
    async def by_sha1(request: Request) -> JSONResponse:
        return answers(await decider.look_up(await json_strings(request, "SHA-1 hashes")))

    @app.post("/api/correction")
    async def correction(request: Request) -> JSONResponse:
        if options.token is None:
            raise HTTPException(403, "corrections are off: start the server with --token-file")
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), options.token.encode()):
            raise HTTPException(401, "send the token as `Authorization: Bearer <token>`",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            body = None
        shape = 'send {"sha1": "<40 hex digits>", "invert": 0 | 1} (and "url" for an image fetched by URL)'
        if not (isinstance(body, dict) and isinstance(body.get("sha1"), str) and _SHA1.match(body["sha1"])
                and body.get("invert") in (0, 1) and isinstance(body.get("url", ""), str)
                and set(body) <= {"sha1", "invert", "url"}):
            raise HTTPException(422, shape)
        outcome = await decider.correct(body["sha1"].lower(), bool(body["invert"]), body.get("url") or None)
        if outcome is None:
            raise HTTPException(404, "this server has not seen that image: send it to /api/file or /api/url first")
        return JSONResponse(outcome.as_json())

    @app.exception_handler(InvertOrNotError)
    async def failed(request: Request, exc: InvertOrNotError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    app.state.decider = decider  # tests and the benchmark read its counters
    return app


class _BodyLimit:
    """Refuses request bodies over `max_bytes`: by Content-Length before reading, else while reading."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse

        detail = f"request body over the {self.max_bytes} byte limit"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail)  # the route's exception handling answers it
            return message

        await self.app(scope, limited, send)


def serve(settings: Settings, base_dir: Path, options: ServeOptions, logger: logging.Logger) -> int:
    """Run the server until interrupted (the `serve` command)."""
    try:
        import uvicorn
        import python_multipart  # noqa: F401  (Starlette parses uploads with it)
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    if not is_loopback(options.host):
        logger.warning("serving on %s, not a loopback address: anyone who can reach this port can use the API"
                       " (and make it fetch URLs); put it behind a proxy with limits if that is not meant",
                       options.host)
    app = create_app(settings, base_dir, options, logger)
    app.state.decider.load()  # here, so that a bad store, head or model is a one-line error
    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {options.host}:{options.port} ({exc.strerror or exc})") from None
    host, port = sock.getsockname()[:2]
    print(f"invertornot-ssg: serving {settings.model} decisions on http://{_netloc(host, port)}/"
          f" (store {settings.store}, overrides {settings.overrides or 'none'}); Ctrl-C stops", flush=True)
    access = logger.isEnabledFor(logging.INFO)
    config = uvicorn.Config(app, log_level="info" if access else "warning", access_log=access, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's way to say that the start failed; it logged why
        pass
    finally:
        sock.close()
    if not server.started:
        print("invertornot-ssg: error: the server did not start (see above)", file=sys.stderr)
        return 1
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so callers learn the port before uvicorn starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on such sockets (and the connections
    # they accept); without it each answer waits for the client's delayed ACK, ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
