"""`invertornot-ssg review`: a local web page to correct the site's labels, most uncertain first.

`ReviewSite` reads what the page shows (the overrides entries whose file the embedding store
knows) and writes labels through `record_decisions(labels=...)`. `ReviewServer` serves it on
127.0.0.1 only: images by sha1 (never by a path from the request), a per-run token for every
read of site data and in a header for every write, Host and Origin checks against DNS
rebinding and cross-site requests, size-limited and validated JSON bodies. The page itself
is static: `review_assets/` (HTML, plain JS, CSS; no build step).

This module is the command (`serve`); the page's data is in reviewsite.py, the server in
reviewserver.py.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import shlex
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError
from .maplayout import SiteMapCache
from .settings import Settings
from .reviewserver import MAX_BODY_BYTES, ReviewServer
from .reviewsite import ReviewItem, ReviewSite
from .store import DB_NAME

__all__ = ["MAX_BODY_BYTES", "ReviewItem", "ReviewServer", "ReviewSite", "open_site", "retrain_in_process", "serve"]


def retrain_in_process(engine: Any, overrides_path: Path, bootstrap: bool, log: logging.Logger) -> dict:
    """`invertornot-ssg retrain` for this site, in this process; returns what the page shows."""
    from .training import report_lines, retrain

    head, report = retrain(engine, [overrides_path], bootstrap=bootstrap, output=None, log=log)
    path = engine.site_head_path()
    lines = [*report_lines(report), f"saved head {head.version} to {path}; rebuild the site to apply it"]
    return {"head": str(path), "version": head.version, "lines": lines, "report": report}


def open_site(settings: Settings, base_dir: Path, log: logging.Logger) -> tuple[Any, ReviewSite]:
    """(Engine, ReviewSite) of the site a build left: its overrides file and embedding store, which
    must exist (`review` and `map` read them; neither builds)."""
    from .engine import Engine

    engine = Engine(dataclasses.replace(settings, write_overrides=False), base_dir, logger=log)
    overrides_path = engine.overrides_path
    if overrides_path is None or not overrides_path.is_file():
        raise ConfigError(f"overrides: no such file {overrides_path}; build the site first (builds record every image there)")
    if not (engine.store_dir / DB_NAME).is_file():
        raise ConfigError(f"store: no embedding store at {engine.store_dir}; build the site first or pass --store")
    novelty = engine.novelty_info  # the cut-off the builds used, from the novelty model's sidecar
    cutoff = novelty.sidecar.get("cutoff") if novelty else None
    return engine, ReviewSite(overrides_path, engine.store, settings.threshold, settings.unsure, log,
                              **({"novelty_cutoff": float(cutoff)} if isinstance(cutoff, (int, float)) else {}))


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
    log = logger or logging.getLogger("invertornot_ssg")
    out = out or sys.stdout
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected 0..65535, got {port}")
    engine, site = open_site(settings, base_dir, log)
    overrides_path = site.overrides_path
    items = site.items()  # a malformed overrides file fails here, before anything is served
    command = shlex.join([
        "invertornot-ssg", "retrain", "--store", str(engine.store_dir), "--model", settings.model,
        "--overrides", str(overrides_path),
    ])
    retrain = lambda: retrain_in_process(engine, overrides_path, bootstrap, log)  # noqa: E731
    try:
        server = ReviewServer(site, port, retrain=retrain, retrain_command=command, logger=log,
                              site_map=SiteMapCache(site, engine.embedder_id, log))
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
