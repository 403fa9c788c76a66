"""Generator-neutral page pass: collect every page's images, classify them once, rewrite each page.

The MkDocs and Pelican plugins and `invertornot-ssg apply` differ only in how they find pages
and resolve an `<img src>` to a file; everything after that lives here.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .contrast import needs_backdrop
from .css import BACKDROP_ATTRIBUTE, backdrop_enabled
from .engine import Engine, ImageRequest, ImageResult
from .errors import shorten
from .fileio import read_cache, write_cache
from .htmlrewrite import ClassNames, ImgTag, PageScan, TagUpdate, find_images, page_key, rewrite, rewrite_page, scan_page

if TYPE_CHECKING:
    from .remote import RemoteFetcher


@dataclass(frozen=True)
class Resolved:
    """Where an `<img src>` points: a file with its site-relative key, or why it points nowhere."""

    path: Path | None
    key: str
    problem: str | None = None  # e.g. "outside the docs directory"; the tag is left unchanged
    theme: bool = False  # the theme's own image (its chrome): left to the theme, as MkDocs leaves it


BACKDROP_VALUE = "dark-ink"
Resolver = Callable[[str], Resolved | None]  # None: not ours to touch (remote, data URI, ...)


@dataclass
class _Page:
    html: str
    found: list[ImgTag] = field(default_factory=list)  # every <img> of html, as find_images parsed it
    scan: PageScan | None = None  # a whole page's scan (add_page(whole=True)): images, links, head
    tags: list[tuple[ImgTag, Resolved]] = field(default_factory=list)
    remote: list[tuple[ImgTag, str]] = field(default_factory=list)  # (tag, URL) to fetch in classify


class PageBatch:
    """One build: `add_page` for every page, `classify` once, then `rewritten(page_id)` per page."""

    def __init__(self, engine: Engine, logger: logging.Logger | None = None, fetcher: "RemoteFetcher | None" = None):
        self.engine = engine
        self.log = logger or engine.log
        self.fetcher = fetcher  # remote images: made from the settings when `remote: true` and needed
        self._remote = fetcher is not None or engine.settings.remote
        self.classes = ClassNames.from_settings(engine.settings)
        self._pages: dict[str, _Page] = {}
        self._front_matter: dict[str, str] = {}  # key -> label, site-wide: a page's label holds for the image
        self._results: dict[str, ImageResult] = {}
        self._scans: ScanMemo | None = None  # what the tokenizer found on each page, by digest
        self._updates: dict[tuple, TagUpdate] = {}
        self._backdrops: dict[str, bool] = {}  # image key -> needs the backdrop (contrast.needs_backdrop)
        self.theme_tags = 0  # <img> tags of the theme's, left alone
        self._whole = False  # whole pages: the scans are saved after the rewrite (save_scans)

    def add_page(
        self, page_id: str, html: str, resolve: Resolver, front_matter: Mapping[str, str] | None = None,
        *, whole: bool = False,
    ) -> None:
        """Collect the page's images. `front_matter` maps site-relative keys to 'invert' / 'keep'.
        `whole`: a whole page, not only its content: its head is scanned too, for `page_rewrite`."""
        page = _Page(html)
        if self._scans is None:
            self._scans = ScanMemo(self.engine.site_cache_path("pages"))
        if whole:
            self._whole = True
            page.scan = scan_page(html, self.classes, self._scans.pages)
            page.found = page.scan.images
        else:
            page.found = find_images(html, self.classes, self._scans.pages)
        for tag in page.found:
            if tag.skip_reason or not tag.src:
                continue
            resolved = resolve(tag.src)
            if resolved is not None and resolved.theme:
                self.theme_tags += 1
                continue
            if resolved is None:
                url = _normalize_url(tag.src) if self._remote and tag.remote else None
                if url:
                    page.remote.append((tag, url))  # fetched for all pages at once in classify()
                continue
            if resolved.problem:
                self.log.warning("%s: image %s %s; tag left unchanged", page_id, shorten(repr(tag.src)),
                                 shorten(resolved.problem))
                continue
            page.tags.append((tag, resolved))
        if front_matter:
            self._add_front_matter(page_id, page, front_matter)
        self._pages[page_id] = page

    def _add_front_matter(self, page_id: str, page: _Page, front_matter: Mapping[str, str]) -> None:
        keys_on_page = {resolved.key for _, resolved in page.tags} | {url for _, url in page.remote}
        for key, label in front_matter.items():
            if key not in keys_on_page:
                self.log.warning("%s: front matter names %s, which is not an image on this page", page_id,
                                 shorten(repr(key)))
            self._front_matter[key] = label

    def classify(self) -> list[ImageResult]:
        """Classify every distinct image of every page in one batched pass."""
        self._fetch_remote()
        requests: dict[str, ImageRequest] = {}
        for page in self._pages.values():
            for tag, resolved in page.tags:
                label, source = None, None
                if tag.explicit_label:
                    label, source = tag.explicit_label, "explicit"
                elif resolved.key in self._front_matter:
                    label, source = self._front_matter[resolved.key], "front-matter"
                current = requests.get(resolved.key)
                if current is None or (source == "explicit" and current.label_source != "explicit"):
                    requests[resolved.key] = ImageRequest(resolved.path, resolved.key, label, source)
        if self._scans is not None and not self._whole:
            self._scans.save()
        results = self.engine.classify(list(requests.values()), memo=True, whole_site=True)
        self._results = {r.request.key: r for r in results}
        return results

    def _fetch_remote(self) -> None:
        """Fetch every page's remote images (each URL once); one that fails warns and stays unchanged."""
        pending = [(page_id, page, tag, url) for page_id, page in self._pages.items() for tag, url in page.remote]
        if not pending:
            return
        if self.fetcher is None:
            from .remote import REMOTE_DIR, RemoteFetcher  # http.client and ssl: only for sites that fetch

            settings = self.engine.settings
            self.fetcher = RemoteFetcher(
                self.engine.store_dir / REMOTE_DIR, timeout=settings.remote_timeout,
                allow_private=settings.remote_allow_private, logger=self.log,
            )
        fetched = self.fetcher.fetch_all([url for *_, url in pending])
        for page_id, page, tag, url in pending:
            outcome = fetched[url]
            if outcome.problem or outcome.path is None:
                self.log.warning("%s: image %s %s; tag left unchanged", page_id, shorten(repr(tag.src)),
                                 shorten(str(outcome.problem)))
            else:
                page.tags.append((tag, Resolved(outcome.path, url)))
        for _, page, _, _ in pending:
            page.remote.clear()
        cached = sum(1 for f in fetched.values() if f.cached)
        self.log.debug("remote images: %d URLs, %d from the cache, %d requests", len(fetched), cached,
                       self.fetcher.requests)

    def rewritten(self, page_id: str) -> str:
        """The page with classes and data attributes on its classified images; unchanged elsewhere."""
        page = self._pages[page_id]
        updates = self._page_updates(page)
        return rewrite(page.html, updates, page.found) if updates else page.html

    def page_rewrite(
        self, page_id: str, stylesheet_href: str | None = None, *, remember: bool = True
    ) -> tuple[str, tuple[tuple[str, str], ...], bool]:
        """A whole page (`add_page(whole=True)`) rewritten and linked to the stylesheet, without
        parsing it again: (its text, (src, class added) per `<img>` whose text changed, whether
        the link was added). `remember`: the new text's scan goes to the memo too, for a run that
        reads the page back (`apply` on its own output); `save_scans` keeps the memo."""
        page = self._pages[page_id]
        assert page.scan is not None and self._scans is not None, "page_rewrite needs add_page(whole=True)"
        updates = self._page_updates(page)
        new = rewrite_page(page.html, updates, page.scan, stylesheet_href)
        if remember and new.html != page.html:
            self._scans.pages[page_key(new.html)] = new.memo_entry()
        return new.html, tuple((tag.src or "", updates[tag.start].add_class) for tag in new.changed), new.linked

    def save_scans(self) -> None:
        """Keep the scans of this run's pages (whole pages: after page_rewrite) for the next run."""
        if self._scans is not None:
            self._scans.save()

    def _page_updates(self, page: _Page) -> dict[int, TagUpdate]:
        updates = {}
        for tag, resolved in page.tags:
            result = self._results.get(resolved.key)
            if result is None or result.invert is None:
                continue
            if tag.explicit_label:  # the author's class stays exactly as written; only the backdrop changes
                label = self.classes.keep if tag.explicit_label == "keep" else self.classes.invert
                if label == self.classes.keep and self.backdrop(result):
                    updates[tag.start] = TagUpdate(label, attrs=((BACKDROP_ATTRIBUTE, BACKDROP_VALUE),))
                elif tag.parsed is not None and tag.parsed.first(BACKDROP_ATTRIBUTE) is not None:
                    updates[tag.start] = TagUpdate(label, remove_attrs=(BACKDROP_ATTRIBUTE,))
                continue
            updates[tag.start] = self.tag_update(result)
        return updates

    def tag_update(self, result: ImageResult) -> TagUpdate:
        c = self.classes
        if result.human:
            add = c.invert if result.invert else c.keep
        else:
            add = c.invert_auto if result.invert else c.keep_auto
        confidence = None if result.confidence is None else f"{result.confidence:.2f}"
        backdrop = not result.invert and self.backdrop(result)
        key = (add, bool(result.invert), confidence, backdrop)
        update = self._updates.get(key)  # a few hundred distinct updates at most: made once each
        if update is None:
            stale = tuple(name for name in (c.invert_auto, c.keep_auto) if name != add)
            attrs = [("data-invertornot", "invert" if result.invert else "keep")]
            if confidence is not None:
                attrs.append(("data-invertornot-confidence", confidence))
            if backdrop:
                attrs.append((BACKDROP_ATTRIBUTE, BACKDROP_VALUE))
            update = self._updates[key] = TagUpdate(add_class=add, remove_classes=stale, attrs=tuple(attrs),
                                                    remove_attrs=() if backdrop else (BACKDROP_ATTRIBUTE,))
        return update

    def backdrop(self, result: ImageResult) -> bool:
        """Whether a kept image needs the light backdrop: its ink would vanish on the theme's dark page.
        Measured once per image, not per tag (a site shows one image on many pages)."""
        if not backdrop_enabled(self.engine.settings.backdrop):
            return False
        key = result.request.key
        found = self._backdrops.get(key)
        if found is None:
            found = self._backdrops[key] = needs_backdrop(result.ink, self.engine.dark_page)
        return found

    @property
    def results(self) -> Sequence[ImageResult]:
        return list(self._results.values())


class ScanMemo:
    """The pages' scans (htmlrewrite.scan_page's memo) kept in the store between builds; only
    the pages of the latest build are kept. A cache: unreadable means every page is parsed."""

    _FORMAT = 2  # 2: with each page's <link> hrefs and head offsets

    def __init__(self, path: Path):
        self.path = path
        kept = read_cache(path)
        fits = isinstance(kept, dict) and kept.get("format") == self._FORMAT and isinstance(kept.get("pages"), dict)
        self._before: dict[str, list] = kept["pages"] if fits else {}
        self.pages = _Recording(self._before)

    def save(self) -> None:
        if self.pages.used == self._before:
            return  # nothing new: no write on a warm build
        write_cache(self.path, json.dumps({"format": self._FORMAT, "pages": self.pages.used}).encode())
        self._before = dict(self.pages.used)


class _Recording(dict):
    """A dict that also notes which entries were read or written (what the next build needs)."""

    def __init__(self, before: dict[str, list]):
        super().__init__(before)
        self.used: dict[str, list] = {}

    def get(self, key, default=None):
        value = super().get(key, default)
        if value is not None:
            self.used[key] = value
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.used[key] = value


def _normalize_url(src: str) -> str | None:
    from .remote import normalize_url

    return normalize_url(src)
