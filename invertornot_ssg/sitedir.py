"""A built site directory: its HTML pages, where their image URLs point, and writing pages back safely.

The Pelican plugin and `invertornot-ssg apply` both work on pages already written to an output
directory; this module is what they share. It finds the pages, resolves each `<img src>` to a file
under the site root (stripping the site's own base URL, refusing anything outside the root), runs
one `PageBatch` over all pages, and writes each changed page atomically with the stylesheet linked.
"""
from __future__ import annotations

import functools
import gc
import html as htmllib
import logging
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote, unquote, urljoin, urlsplit

from .css import STYLESHEET_NAME, stylesheet
from .engine import Engine, ImageResult
from .fileio import atomic_write
from .pages import PageBatch, Resolved, Resolver
from . import themes
from .themes import DarkMode

HTML_SUFFIXES = (".html", ".htm")
_WEB_SCHEMES = ("http", "https")
_PAGE_HOST = "http://page.invalid"  # stands in for the site's origin when joining relative URLs
_BASE_START = re.compile(r"<base\s", re.IGNORECASE)
_BASE_TAG = re.compile(r"<base\s[^>]*?\bhref\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.IGNORECASE)
_ENCODING = ("utf-8", "surrogateescape")  # any bytes round-trip unchanged, whatever the page's charset
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]+")  # a path with no scheme, query, escape or oddity


# -- finding pages ------------------------------------------------------------------------------


def html_files(root: Path) -> list[Path]:
    """Every `.html`/`.htm` file under `root`, sorted; hidden folders (`.git`, a store) are skipped."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(HTML_SUFFIXES) and not name.startswith("."):
                found.append(Path(folder, name))
    return found


# -- resolving image URLs -----------------------------------------------------------------------


@dataclass(frozen=True)
class BaseURL:
    """Where the site is served: an optional host and a path prefix that always ends in '/'."""

    host: str | None  # lower-cased netloc, e.g. 'example.org'; None for a bare path prefix
    prefix: str  # '/', '/docs/', ...

    @classmethod
    def parse(cls, value: str) -> BaseURL:
        """'/docs/', 'docs', 'https://example.org/docs/' or '//example.org/docs'."""
        parts = urlsplit(value.strip())
        host = parts.netloc.lower() or None
        path = unquote(parts.path)
        if not path.startswith("/"):
            path = "/" + path
        path = posixpath.normpath(path)
        return cls(host, path if path.endswith("/") else path + "/")


class SiteResolver:
    """Turns `<img src>` values of pages under `root` into files and site-relative keys.

    `base_urls` are the site's own addresses (`--base-url`, Pelican's `SITEURL`): absolute URLs on
    one of their hosts and site-absolute paths have the prefix stripped. A URL that leads outside the
    root is refused (a problem the page pass warns about) and never read. `allowed_roots` are extra
    folders that symlinks in the site may point into (Pelican's content folder with
    `STATIC_CREATE_LINKS`). Images under `theme_dirs` (site-relative folders: Pelican's
    THEME_STATIC_DIR) are the theme's chrome, on every page: left to the theme, as the MkDocs
    plugin, which sees only page content, leaves its theme's.
    """

    def __init__(self, root: Path, base_urls: Iterable[str] = (), allowed_roots: Iterable[Path] = (),
                 theme_dirs: Iterable[str] = ()):
        self.root = Path(os.path.abspath(root))
        self.theme_prefixes = tuple(
            posixpath.normpath(d.strip("/")) + "/" for d in theme_dirs if d.strip("/") not in ("", ".")
        )
        self.bases = [BaseURL.parse(b) for b in base_urls if b and b.strip()]
        self.hosts = {b.host for b in self.bases if b.host}
        prefixes = {b.prefix for b in self.bases}
        self.prefixes = sorted(prefixes, key=len, reverse=True) if prefixes else ["/"]
        self._real_roots = [os.path.realpath(p) for p in (self.root, *allowed_roots)]
        self._root = str(self.root)
        self._real_folders: dict[str, str] = {}
        self._resolved: dict[tuple[str, str], Resolved | None] = {}  # for_page's, by (src, page folder)

    def page_id(self, page: Path) -> str:
        path = os.path.abspath(page)
        if path.startswith(self._root + os.sep):  # the usual case, without relpath's work
            return path[len(self._root) + 1 :].replace(os.sep, "/")
        return Path(os.path.relpath(path, self.root)).as_posix()

    def for_page(self, page: Path, base_href: str | None = None, *, page_id: str | None = None) -> Resolver:
        """The resolver for one page; `base_href` is the page's `<base href>`, if it has one.
        What it resolves is remembered for the other pages of one pass over the site (a logo or an
        image shown on many pages is looked up once): files must not change during the pass."""
        page_id = page_id or self.page_id(page)
        page_dir = posixpath.dirname(page_id)
        if not base_href:
            return lambda src: self._resolve_once(src, page_dir)

        def resolve_against_base(src: str) -> Resolved | None:
            parts = urlsplit(src.strip())
            if parts.scheme or parts.netloc or parts.path.startswith("/") or not parts.path:
                return self.resolve(src, page_dir)
            # Relative URLs follow <base href>; a relative base is itself relative to the page.
            base = urlsplit(base_href.strip())
            if base.scheme or base.netloc or base.path.startswith("/"):
                return self.resolve(urljoin(base_href.strip(), src), page_dir)
            joined = urljoin(urljoin(f"{_PAGE_HOST}/{quote(page_id, errors='surrogateescape')}", base_href.strip()), src)
            rel = urlsplit(joined)
            path = unquote(rel.path, errors="surrogateescape").lstrip("/")
            return self.resolve(quote(path, errors="surrogateescape") + (f"?{rel.query}" if rel.query else ""), "")

        return resolve_against_base

    def _resolve_once(self, src: str, page_dir: str) -> Resolved | None:
        try:
            return self._resolved[src, page_dir]
        except KeyError:
            resolved = self._resolved[src, page_dir] = self.resolve(src, page_dir)
            return resolved

    def resolve(self, src: str, page_dir: str = "") -> Resolved | None:
        """`page_dir` is the page's folder relative to the root ('' for the root); None: not ours."""
        src = src.strip()
        if _PLAIN_PATH.fullmatch(src) and not src.startswith("//"):
            path = src  # most srcs: nothing for urlsplit to split or unquote to decode
        else:
            parts = urlsplit(src.replace("\\", "/"))
            scheme = parts.scheme.lower()
            if scheme and scheme not in _WEB_SCHEMES:
                return None  # data:, blob:, mailto:, a Windows drive letter, ...
            path = unquote(parts.path, errors="surrogateescape")  # %E9 is the byte a server would look up
            if "\0" in path:
                return Resolved(None, src, "holds a NUL character")
            if parts.netloc:  # absolute or protocol-relative: ours only on one of the site's hosts
                if parts.netloc.lower() not in self.hosts:
                    return None
                path = path or "/"
            if not path:
                return None  # '#frag' or '?query': the page itself
        if path.startswith("/"):
            for prefix in self.prefixes:
                if path.startswith(prefix) or path + "/" == prefix:
                    rel = path[len(prefix):]
                    break
            else:
                return Resolved(None, path, f"is outside the site root (served under {self.prefixes[0]})")
        else:
            rel = posixpath.join(page_dir, path)
        key = posixpath.normpath(rel) if rel else "."
        if key == ".." or key.startswith("../") or key.startswith("/"):
            return Resolved(None, key, "is outside the site root")
        if self.theme_prefixes and key.startswith(self.theme_prefixes):
            return Resolved(None, key, theme=True)
        # Paths as strings until the end: pathlib cost more than the rest of a warm build's resolving.
        file = os.path.join(self._root, *key.split("/")) if key != "." else self._root
        try:
            st = os.lstat(file)
        except (OSError, ValueError):
            return Resolved(None, key, f"is missing from the site directory ({file})")
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(file)
            if os.path.isdir(real):
                return Resolved(None, key, "is a directory")
        elif stat.S_ISDIR(st.st_mode):
            return Resolved(None, key, "is a directory")
        else:  # not a link itself: only its folder can lead elsewhere (resolved once per folder)
            folder, name = os.path.split(file)
            real = os.path.join(self._real_folder(folder), name)
        # Both sides are real paths: a string prefix is the containment test (Path.parents is slow).
        if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self._real_roots):
            return Resolved(None, key, f"is a link to a file outside the site root ({real})")
        if not _is_utf8(file):  # the store and the overrides file keep paths as UTF-8 text
            return Resolved(None, key, "has a file name that is not valid UTF-8; rename the file")
        return Resolved(Path(file), key)

    def _real_folder(self, folder: str) -> str:
        real = self._real_folders.get(folder)
        if real is None:
            real = self._real_folders[folder] = os.path.realpath(folder)
        return real


def _is_utf8(path: str | Path) -> bool:
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def base_href(html: str) -> str | None:
    """The `<base href>` of a page's head, entities decoded; None when it has none."""
    if _BASE_START.search(html) is None:  # most pages: no need to find the head's end
        return None
    head_end = html.lower().find("</head")
    m = _BASE_TAG.search(html, 0, head_end if head_end >= 0 else len(html))
    if m is None:
        return None
    return htmllib.unescape(next(g for g in m.groups() if g is not None)).strip() or None


# -- writing ------------------------------------------------------------------------------------


def write_stylesheet(root: Path, css: str, name: str = STYLESHEET_NAME) -> bool:
    """Write the stylesheet at the site root unless it is there already; True when written."""
    target = Path(root) / name
    data = css.encode("utf-8")
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write(target, data)
    return True


def relative_href(page_id: str, target: str = STYLESHEET_NAME) -> str:
    """`target` (site-relative) as a URL relative to the page `page_id` (site-relative)."""
    return _relative_href(posixpath.dirname(page_id) or ".", target)


@functools.lru_cache(maxsize=1024)  # the same few folders on every page of a site
def _relative_href(folder: str, target: str) -> str:
    return posixpath.relpath(target, folder)


def absolute_href(base_url: str, target: str = STYLESHEET_NAME) -> str:
    """`target` under the site's base: a full URL stays a full URL, a path prefix stays a path."""
    return base_url.rstrip("/") + "/" + target


def _overwrite(path: Path, data: bytes, old_size: int) -> None:
    """Write `data` over the file where it is (no truncation unless it shrinks)."""
    with open(path, "r+b") as f:
        f.write(data)
        if len(data) < old_size:
            f.truncate()


# -- one pass over the site ---------------------------------------------------------------------


@dataclass(frozen=True)
class SitePage:
    """One written page and the labels its author gave (site-relative image key -> invert | keep)."""

    path: Path
    front_matter: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PageChange:
    """What the pass did (or, dry, would do) to one page."""

    page_id: str
    path: Path
    classes: tuple[tuple[str, str], ...]  # (src, class added) per image tag that changed
    stylesheet: bool  # the stylesheet link was added


@dataclass
class SiteRun:
    results: list[ImageResult]
    changes: list[PageChange] = field(default_factory=list)
    pages: int = 0
    stylesheet_written: bool = False

    def describe(self) -> list[str]:
        """One line per changed page: 'blog/index.html: 3 images (2 invert-auto, 1 invert-not-auto), stylesheet'."""
        lines = []
        for change in self.changes:
            counts: dict[str, int] = {}
            for _, cls in change.classes:
                counts[cls] = counts.get(cls, 0) + 1
            bits = []
            if change.classes:
                n = len(change.classes)
                detail = ", ".join(f"{c} {k}" for k, c in sorted(counts.items()))
                bits.append(f"{n} image{'s' if n != 1 else ''} ({detail})")
            if change.stylesheet:
                bits.append("stylesheet linked")
            lines.append(f"{change.page_id}: {', '.join(bits)}")
        return lines


def process_site(
    engine: Engine,
    resolver: SiteResolver,
    pages: Sequence[SitePage],
    *,
    css_href: Callable[[str], str] | None = None,
    dry_run: bool = False,
    in_place: bool = False,
    logger: logging.Logger | None = None,
    dark_mode: DarkMode | None = None,
) -> SiteRun:
    """Collect every page's images, classify them in one pass, rewrite and link the stylesheet.

    `css_href(page_id)` gives the stylesheet URL for a page; None: no stylesheet (`css: false`).
    `dark_mode`: what the theme uses (themes.py); None: read from the built pages and their CSS.
    Either way `dark_selectors`, when set, wins; no dark mode found warns once.
    Each page is parsed once (or not at all when the store's page scans hold it) and only pages
    whose bytes change are written; `dry_run` writes nothing (neither pages, stylesheet nor the
    overrides file) and only reports. Returns what was (or would be) changed.

    How pages are written, and what survives an interruption: `in_place` (Pelican, whose build
    has just written every page itself) overwrites each page where it is, as Pelican did: a build
    killed meanwhile may leave a page half rewritten, and the next build writes it again.
    Otherwise (`apply`) each page is replaced atomically: old or new, never half. Neither is
    fsync'd: pages are build output that a build or `apply` writes again, and an fsync per page
    cost a warm build of 1,849 pages 2.3 s. The overrides file, which holds what people decided,
    keeps its fsync'd write. (Replacing a file, by rename or by truncation, makes ext4 start
    writing it back at once: 0.2-3 ms a page on a busy machine, against ~5 us in place.)
    """
    log = logger or engine.log
    settings = engine.settings
    if dark_mode is None:
        dark_mode = themes.built_site(resolver.root, [Path(p.path) for p in pages])
    dark_mode = themes.choose(settings.dark_selectors, dark_mode)
    if settings.css and themes.is_auto(settings.dark_selectors) and not dark_mode.found:
        log.warning("%s", themes.no_dark_mode_warning(dark_mode))
    engine.dark_page = dark_mode.background
    # The pass makes no reference cycles worth collecting, while each collection of the oldest
    # generation walks every object of the generator's process (Pelican's whole site).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _process_site(engine, resolver, pages, css_href, dry_run, in_place, log, dark_mode)
    finally:
        if collecting:
            gc.enable()


def _process_site(
    engine: Engine, resolver: SiteResolver, pages: Sequence[SitePage], css_href: Callable[[str], str] | None,
    dry_run: bool, in_place: bool, log: logging.Logger, dark_mode: DarkMode,
) -> SiteRun:
    batch = PageBatch(engine, log)
    texts: dict[str, tuple[Path, str, int]] = {}  # page id -> (file, text, size in bytes)
    for page in pages:
        path = page.path
        page_id = resolver.page_id(path)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            log.warning("%s: cannot read the page (%s); left unchanged", page_id, exc.strerror or exc)
            continue
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            log.warning("%s: UTF-16 pages are not supported; left unchanged", page_id)
            continue
        text = raw.decode(*_ENCODING)
        texts[page_id] = (path, text, len(raw))
        resolve = resolver.for_page(path, base_href(text), page_id=page_id)
        batch.add_page(page_id, text, resolve, page.front_matter, whole=True)
    if batch.theme_tags:
        log.debug("%d <img> tags of the theme's (under %s) left to the theme", batch.theme_tags,
                  ", ".join(resolver.theme_prefixes))

    results = batch.classify()
    run = SiteRun(results=results, pages=len(texts))
    for page_id, (path, old, size) in texts.items():
        # A page the generator writes again on each build (in_place) is never read back: its
        # new scan is not worth keeping. apply reads its own output on the next run.
        new, classes, linked = batch.page_rewrite(
            page_id, css_href(page_id) if css_href is not None else None, remember=not (dry_run or in_place)
        )
        if new == old:
            continue  # not written: its mtime and inode stay, and nothing watching the site wakes
        run.changes.append(PageChange(page_id, path, classes, linked))
        if dry_run:
            continue
        data = new.encode(*_ENCODING)
        if in_place:
            _overwrite(path, data, size)
        else:
            atomic_write(path, data, fsync=False)
    batch.save_scans()
    if css_href is not None and not dry_run:
        run.stylesheet_written = write_stylesheet(resolver.root, stylesheet(engine.settings, dark_mode))
    if not dry_run:
        engine.record(results)
    return run

