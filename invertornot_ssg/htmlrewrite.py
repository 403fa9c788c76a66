"""Find `<img>` tags with a real tokenizer and rewrite them; every other byte stays as it was.

Tag boundaries come from the stdlib `html.parser`, so tags inside comments, CDATA sections,
`<script>`, `<style>`, `<textarea>`, `<title>` and the other raw-text elements are not seen.
`<template>` and `<noscript>` contents are parsed like any markup, so their images are found.
Inside a tag, attributes are split by a small scanner that follows the HTML5 tokenizer, and
that one scanner serves both reading and rewriting, so the two always agree.
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import html as _html
import re
from dataclasses import dataclass, field
from html.entities import html5 as _ENTITIES
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from .settings import Settings

_WS = " \t\n\r\f"  # HTML's ASCII whitespace
_TO_SPACE = str.maketrans("\t\n\r\f", "    ")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Browsers parse these elements' content as text, so an <img> inside is no image.
# html.parser only knows script and style (Python < 3.13).
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"})
_SCHEME_FRAGMENTS = frozenset({"only-light", "only-dark", "gh-light-mode-only", "gh-dark-mode-only"})
_SCHEME_CLASSES = frozenset({
    "only-dark", "only-light", "dark-only", "light-only", "dark-light", "light-dark",
    "only-dark-mode", "only-light-mode", "dark-mode-only", "light-mode-only",
})
_BAD_NAME_CHARS = frozenset(_WS + "\"'>/=<")
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")


@dataclass(frozen=True)
class ClassNames:
    """The four class names the rewriter reads and writes."""

    invert: str
    keep: str
    invert_auto: str
    keep_auto: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassNames:
        """The class names configured in `settings`."""
        return cls(settings.class_invert, settings.class_keep, settings.class_invert_auto, settings.class_keep_auto)


@dataclass(frozen=True)
class ImgTag:
    """One `<img>` start tag: where it is in the page and what it says."""

    start: int  # offset of '<' in the page
    end: int  # offset just past '>'
    src: str | None  # entities unescaped, surrounding whitespace stripped; None when absent
    srcset: str | None
    classes: list[str]
    explicit_label: str | None  # 'invert' | 'keep': the author's class on the tag
    skip_reason: str | None  # 'per-scheme' | 'no-src' | 'data-uri'
    remote: bool  # http(s) or protocol-relative src
    parsed: "_Tag | None" = field(default=None, repr=False, compare=False)  # lets rewrite skip a second parse


@dataclass(frozen=True)
class TagUpdate:
    """What to change in one tag: set one class, drop stale ones, set attributes, drop attributes."""

    add_class: str
    remove_classes: tuple[str, ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()
    remove_attrs: tuple[str, ...] = ()  # ASCII-lowercase names; every occurrence goes

    def __post_init__(self) -> None:
        if not self.add_class or any(c in _WS for c in self.add_class):
            raise ValueError(f"add_class: must be one class name, got {self.add_class!r}")
        if self.add_class in self.remove_classes:
            raise ValueError(f"add_class {self.add_class!r} is also in remove_classes")
        names = [name.translate(_ASCII_LOWER) for name, _ in self.attrs]
        for name in names:
            if not name or _BAD_NAME_CHARS.intersection(name) or name == "class":
                raise ValueError(f"attrs: {name!r} is not an attribute name this rewriter may set")
        if len(set(names)) != len(names):
            raise ValueError(f"attrs: duplicate attribute names in {names}")
        if set(names) & set(self.remove_attrs) or "class" in self.remove_attrs:
            raise ValueError(f"remove_attrs: {self.remove_attrs} overlaps what is set")


@dataclass(frozen=True)
class _Attr:
    """One attribute inside a start tag's text; spans are offsets into that text."""

    name: str  # ASCII-lowercased
    start: int  # where the name starts
    name_end: int
    value: str | None  # raw text, entities not decoded; None for a bare attribute
    value_start: int  # span of the value, inside any quotes
    value_end: int
    quoted: bool
    end: int  # just past the attribute, closing quote included


@dataclass(frozen=True)
class _Tag:
    """A start tag in the page, its attributes split."""

    start: int
    end: int
    raw: str
    attrs: list[_Attr]

    def first(self, name: str) -> _Attr | None:
        """The attribute browsers use: the first of duplicates."""
        return next((a for a in self.attrs if a.name == name), None)

    def value(self, name: str) -> str | None:
        attr = self.first(name)
        if attr is None:
            return None
        return "" if attr.value is None else _unescape_attr(attr.value)


@dataclass(frozen=True)
class PageScan:
    """What the tokenizer found in a whole page: its images, its stylesheet links and its head."""

    images: list[ImgTag]
    in_scheme_picture: tuple[bool, ...]  # per image: inside a <picture> with <source media>
    link_hrefs: frozenset[str]  # the hrefs of its <link>s, entities decoded
    head_open_end: int | None  # just past <head>
    head_close: int | None  # at </head>

    @property
    def head_at(self) -> int | None:
        """Where a new `<link>` goes: at `</head>`, else just past `<head>`; None: no head."""
        return self.head_close if self.head_close is not None else self.head_open_end

    def memo_entry(self) -> list:
        """What a memo keeps of it (JSON): tags as starts and raw text, to be split again."""
        return [[t.start for t in self.images], [t.parsed.raw if t.parsed else "" for t in self.images],
                list(self.in_scheme_picture), sorted(self.link_hrefs), self.head_open_end, self.head_close]


def page_key(html: str) -> str:
    """A page's key in a scan memo: the digest of its text."""
    return hashlib.sha1(html.encode("utf-8", "surrogatepass")).hexdigest()


def find_images(html: str, classes: ClassNames, memo: dict[str, list] | None = None) -> list[ImgTag]:
    """Every `<img>` a browser would render from `html`, in document order; never raises.

    `memo`: where to keep, by the page's digest, what the tokenizer found (a warm build of a
    large site otherwise spends most of its time re-parsing unchanged pages); JSON-able."""
    if "<img" not in html.lower():  # most pages of a docs site have none: skip the slow parser
        return []
    return scan_page(html, classes, memo).images


def scan_page(html: str, classes: ClassNames, memo: dict[str, list] | None = None) -> PageScan:
    """`find_images` for a whole page, with its links and head (for `rewrite_page`): one parse,
    or none when `memo` holds the page."""
    key = None
    if memo is not None:
        key = page_key(html)
        found = _from_memo(html, classes, memo.get(key))
        if found is not None:
            return found
    scan = _scan(html)
    flags = tuple(tag.start in scan.scheme_pictures for tag in scan.imgs)
    hrefs = frozenset(href for link in scan.links if (href := link.value("href")) is not None)
    page = PageScan([_img_tag(tag, classes, flag) for tag, flag in zip(scan.imgs, flags)], flags, hrefs,
                    scan.head_open_end, scan.head_close)
    if key is not None:
        memo[key] = page.memo_entry()
    return page


def _from_memo(html: str, classes: ClassNames, kept: object) -> PageScan | None:
    """The page's scan from what an earlier scan of the same text kept; None if unusable."""
    try:
        starts, raws, flags, hrefs, head_open_end, head_close = kept  # type: ignore[misc]
        if not len(starts) == len(raws) == len(flags):
            return None
        for at in (head_open_end, head_close):
            if at is not None and not (isinstance(at, int) and 0 < at <= len(html)):
                return None
        found = []
        for start, raw, flag in zip(starts, raws, flags):
            # A start or raw of the wrong type raises TypeError here: the memo is damaged.
            if not (raw and html.startswith(raw, start)) or start < 0:
                return None
            attrs, tag = _kept_tag(raw, classes, flag is True)
            end = start + len(raw)
            found.append(ImgTag(start, end, tag.src, tag.srcset, list(tag.classes), tag.explicit_label,
                                tag.skip_reason, tag.remote, _Tag(start, end, raw, attrs)))
        if not all(type(h) is str for h in hrefs):
            return None
        return PageScan(found, tuple(flag is True for flag in flags), frozenset(hrefs), head_open_end, head_close)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)  # a logo, or an image on many pages, is the same tag each time
def _kept_tag(raw: str, classes: ClassNames, in_scheme_picture: bool) -> tuple[list[_Attr], ImgTag]:
    """A tag's attributes and what it says, wherever it is (offsets are the caller's to set)."""
    attrs = _scan_attrs(raw)
    return attrs, _img_tag(_Tag(0, len(raw), raw, attrs), classes, in_scheme_picture)


def rewrite(html: str, updates: Mapping[int, TagUpdate], found: Sequence[ImgTag] | None = None) -> str:
    """Apply `updates` (keyed by `ImgTag.start`); bytes outside the changed attributes are kept.

    `found`: what find_images returned for this very `html`, so it is not parsed a second time."""
    if not updates:
        return html
    if found is not None and all(t.parsed is not None for t in found):
        tags = {t.start: t.parsed for t in found}
    else:
        tags = {tag.start: tag for tag in _scan(html).imgs}
    unknown = sorted(set(updates) - set(tags))
    if unknown:
        raise ValueError(f"no <img> tag starts at offset(s) {unknown}; was the page changed after find_images?")
    out, pos = [], 0
    for start in sorted(updates):
        tag = tags[start]
        out += [html[pos:start], _rewrite_tag(tag, updates[start])]
        pos = tag.end
    out.append(html[pos:])
    return "".join(out)


def link_stylesheet(html: str, href: str) -> str:
    """Link the stylesheet `href` once in the page's head; unchanged if linked already or headless."""
    scan = _scan(html)
    if any(link.value("href") == href for link in scan.links):
        return html
    at = scan.head_close if scan.head_close is not None else scan.head_open_end
    if at is None:
        return html
    return f'{html[:at]}<link rel="stylesheet" href="{_html.escape(href)}">{html[at:]}'


@dataclass(frozen=True)
class PageRewrite:
    """A page `rewrite_page` rewrote: its text, what changed, and (on demand) the new text's scan."""

    html: str
    changed: list[ImgTag]  # the tags (of the old text) whose text changed
    linked: bool  # the stylesheet link was added
    _old: str = field(repr=False)
    _scan: PageScan = field(repr=False)
    _edits: list[tuple[int, int, str]] = field(repr=False)  # (start, end, new text), in order
    _hrefs: frozenset[str] = field(repr=False)

    def memo_entry(self) -> list:
        """What scan_page would keep for the new text: the old scan's tags, links and head,
        moved by what was inserted before them (a rewrite changes only attributes in tags)."""
        scan, edits = self._scan, self._edits
        ends, grown = [end for _, end, _ in edits], [0]
        for start, end, text in edits:
            grown.append(grown[-1] + len(text) - (end - start))

        def moved(offset: int | None, end_of_tag: bool = False) -> int | None:
            """Where `offset` of the old text is in the new; an insertion at the offset itself
            comes before what starts there, and after what ends there (`end_of_tag`)."""
            if offset is None:
                return None
            i = bisect.bisect_left(ends, offset)
            new = offset + grown[i]
            for start, end, text in edits[i:]:
                if end != offset:
                    break
                if start < end or not end_of_tag:
                    new += len(text) - (end - start)
            return new

        raws = {start: text for start, end, text in edits if start < end}
        return [[moved(t.start) for t in scan.images],
                [raws.get(t.start) or self._old[t.start : t.end] for t in scan.images],
                list(scan.in_scheme_picture), sorted(self._hrefs), moved(scan.head_open_end, end_of_tag=True),
                moved(scan.head_close)]


def rewrite_page(
    html: str, updates: Mapping[int, TagUpdate], scan: PageScan, stylesheet_href: str | None = None
) -> PageRewrite:
    """`rewrite`, then `link_stylesheet`, in one pass over a page `scan_page` scanned, without
    parsing it again; the same bytes as those two calls. A rewrite changes only attributes inside
    `<img>` tags, so the new text has the old one's tags, links and head, moved by what was
    inserted before them: its scan is known too (`memo_entry`), and the next run on the new text
    (`apply` on its own output) need not parse it either."""
    tags = {tag.start: tag for tag in scan.images} if updates else {}
    if not updates.keys() <= tags.keys():
        unknown = sorted(set(updates) - set(tags))
        raise ValueError(f"no <img> tag starts at offset(s) {unknown}; was the page changed after scan_page?")
    edits: list[tuple[int, int, str]] = []  # (start, end, new text); the link is (at, at, text)
    changed = []
    for start in sorted(updates):
        tag = tags[start]
        raw = html[tag.start : tag.end]
        text = _rewritten_tag(raw, updates[start])
        if text != raw:
            edits.append((tag.start, tag.end, text))
            changed.append(tag)
    at, hrefs = scan.head_at, scan.link_hrefs
    linked = stylesheet_href is not None and at is not None and stylesheet_href not in hrefs
    if linked:
        # A tag may start where the link goes (`<head><img>`): the link comes first, as
        # link_stylesheet puts it at that offset of the rewritten page.
        edits.append((at, at, f'<link rel="stylesheet" href="{_html.escape(stylesheet_href)}">'))
        edits.sort(key=lambda e: (e[0], e[1]))
        hrefs = hrefs | {stylesheet_href}
    out, pos = [], 0
    for start, end, text in edits:
        out += [html[pos:start], text]
        pos = end
    out.append(html[pos:])
    return PageRewrite("".join(out) if edits else html, changed, linked, html, scan, edits, hrefs)


def _img_tag(tag: _Tag, names: ClassNames, in_scheme_picture: bool) -> ImgTag:
    src = tag.value("src")
    if src is not None:
        src = src.strip(_WS)  # browsers strip these from URLs
    classes = _split_classes(tag.value("class") or "")
    if names.keep in classes:  # both? keeping is the safer mistake
        label = "keep"
    elif names.invert in classes:
        label = "invert"
    else:
        label = None
    fragment = src.partition("#")[2].lower() if src else ""
    if in_scheme_picture or fragment in _SCHEME_FRAGMENTS or _SCHEME_CLASSES.intersection(classes):
        skip = "per-scheme"
    elif not src:
        skip = "no-src"
    elif src[:5].lower() == "data:":
        skip = "data-uri"
    else:
        skip = None
    remote = bool(src) and (src.startswith("//") or src.lower().startswith(("http://", "https://")))
    return ImgTag(tag.start, tag.end, src, tag.value("srcset"), classes, label, skip, remote, tag)


@functools.lru_cache(maxsize=4096)  # an image on many pages: the same tag, the same update
def _rewritten_tag(raw: str, update: TagUpdate) -> str:
    return _rewrite_tag(_Tag(0, len(raw), raw, _scan_attrs(raw)), update)


def _rewrite_tag(tag: _Tag, update: TagUpdate) -> str:
    raw = tag.raw
    new_attrs_at = tag.attrs[-1].end if tag.attrs else len("<img")  # new attributes follow the last one
    # (start, new attribute?, end, text) in raw: at one offset, a bare attribute's new value
    # must come before the attributes inserted after it.
    edits: list[tuple[int, bool, int, str]] = []

    cls = tag.first("class")
    old = _split_classes(tag.value("class") or "")
    new = [c for c in old if c not in update.remove_classes]
    if update.add_class not in new:
        new.append(update.add_class)
    if new != old:
        text = " ".join(_html.escape(c) for c in new)
        if cls is None:
            edits.append((new_attrs_at, True, new_attrs_at, f' class="{text}"'))
        elif cls.value is None:
            edits.append((cls.name_end, False, cls.name_end, f'="{text}"'))
        elif cls.quoted and new == old + [update.add_class]:
            # Only appending: keep the author's text as it is and add one token.
            sep = " " if cls.value and cls.value[-1] not in _WS else ""
            edits.append((cls.value_end, False, cls.value_end, sep + _html.escape(update.add_class)))
        else:
            edits.append(_replace_value(cls, text))

    for name, value in update.attrs:
        attr = tag.first(name.translate(_ASCII_LOWER))
        escaped = _html.escape(value)
        if attr is None:
            edits.append((new_attrs_at, True, new_attrs_at, f' {name}="{escaped}"'))
        elif tag.value(attr.name) == value:  # leave the bytes alone: rewriting twice changes nothing
            continue
        elif attr.value is None:
            edits.append((attr.name_end, False, attr.name_end, f'="{escaped}"'))
        else:
            edits.append(_replace_value(attr, escaped))

    for attr in tag.attrs:
        if attr.name in update.remove_attrs:  # with the whitespace before it
            start = attr.start - 1 if attr.start > 0 and raw[attr.start - 1] in _WS else attr.start
            edits.append((start, False, attr.end, ""))

    out, pos = [], 0
    for start, _, end, text in sorted(edits, key=lambda e: e[:2]):  # stable: class first among new ones
        out += [raw[pos:start], text]
        pos = end
    out.append(raw[pos:])
    return "".join(out)


def _replace_value(attr: _Attr, escaped: str) -> tuple[int, bool, int, str]:
    """Replace a value in place; an unquoted one gets double quotes (the new text may hold spaces)."""
    return (attr.value_start, False, attr.value_end, escaped if attr.quoted else f'"{escaped}"')


def _split_classes(value: str) -> list[str]:
    """Class tokens, split on ASCII whitespace only (a no-break space belongs to the class name)."""
    return [c for c in value.translate(_TO_SPACE).split(" ") if c]


def _unescape_attr(value: str) -> str:
    """Decode character references the way browsers do inside attribute values."""

    def decode(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("#"):
            return _html.unescape(m.group(0))
        # HTML5: a legacy name without ';' right before '=' stays literal (`?a=1&copy=2`), and so
        # does a known name followed by more letters (`&ampx`).
        if ref in _ENTITIES and (ref.endswith(";") or not value.startswith("=", m.end())):
            return _html.unescape(m.group(0))
        return m.group(0)

    return _CHARREF.sub(decode, value)


# One attribute as the HTML5 tokenizer reads it inside a start tag: separators, a name (its first
# character may be '='), then optionally '=' and a quoted (possibly unterminated) or unquoted value.
_ATTRIBUTE = re.compile(
    r"[ \t\n\r\f/]*"
    r"(?P<name>[^ \t\n\r\f/][^ \t\n\r\f/=]*)"
    r"(?:[ \t\n\r\f]*=[ \t\n\r\f]*(?:\"(?P<dq>[^\"]*)\"?|'(?P<sq>[^']*)'?|(?P<uq>[^ \t\n\r\f]*)))?"
)
_TAG_NAME = re.compile(r"[^ \t\n\r\f/]*")


def _scan_attrs(raw: str) -> list[_Attr]:
    """Split a start tag's attributes like the HTML5 tokenizer; `raw` is the whole tag, `<` to `>`.
    (A regular expression, not a loop over characters: ~10x faster, and pages have many images.)"""
    n = len(raw) - 1  # the closing '>'
    i = _TAG_NAME.match(raw, 1, n).end()
    attrs = []
    while (m := _ATTRIBUTE.match(raw, i, n)) is not None:
        name_end = m.end("name")
        name = m.group("name").translate(_ASCII_LOWER)
        group = next((g for g in ("dq", "sq", "uq") if m.start(g) >= 0), None)
        if group is None:
            attrs.append(_Attr(name, m.start("name"), name_end, None, name_end, name_end, False, name_end))
        else:
            attrs.append(_Attr(name, m.start("name"), name_end, m.group(group), m.start(group), m.end(group),
                               group != "uq", m.end()))
        i = m.end()
    return attrs


@dataclass
class _Picture:
    has_media: bool = False  # a <source media=...>: the author picks the image per scheme or size
    imgs: list[int] = field(default_factory=list)


class _Scanner(HTMLParser):
    """Collects `<img>` and `<link>` tags and the head's bounds, with character offsets."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        # getpos() counts lines by '\n' only; so do these line starts.
        self.line_starts = [0]
        at = html.find("\n")
        while at >= 0:
            self.line_starts.append(at + 1)
            at = html.find("\n", at + 1)
        self.imgs: list[_Tag] = []
        self.links: list[_Tag] = []
        self.head_open_end: int | None = None
        self.head_close: int | None = None
        self.scheme_pictures: set[int] = set()  # starts of imgs in a <picture> with <source media>
        self._pictures: list[_Picture] = []  # open <picture> elements, innermost last

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        # Browsers ignore the '/' of '<textarea/>' or '<picture/>': the element stays open.
        self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _RAW_TEXT:
            self.set_cdata_mode(tag)
        if tag not in ("img", "link", "head", "picture", "source"):
            return
        start, raw = self._offset(), self.get_starttag_text() or ""
        # Guards against any drift in html.parser's positions: a tag we cannot place is left alone.
        if (
            not self.html.startswith(raw, start)
            or raw[1 : len(tag) + 1].translate(_ASCII_LOWER) != tag  # html.parser lowercases beyond ASCII
            or raw[len(tag) + 1 : len(tag) + 2] not in tuple(_WS + "/>")  # and ends names at NUL
        ):
            return
        found = _Tag(start, start + len(raw), raw, _scan_attrs(raw))
        if tag == "img":
            self.imgs.append(found)
            if self._pictures:
                self._pictures[-1].imgs.append(start)
        elif tag == "link":
            self.links.append(found)
        elif tag == "head" and self.head_open_end is None:
            self.head_open_end = found.end
        elif tag == "picture":
            self._pictures.append(_Picture())
        elif tag == "source" and self._pictures and (found.value("media") or "").strip(_WS):
            self._pictures[-1].has_media = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "head" and self.head_close is None:
            self.head_close = self._offset()
        elif tag == "picture" and self._pictures:
            self._close_picture()

    def _close_picture(self) -> None:
        picture = self._pictures.pop()
        if picture.has_media:
            self.scheme_pictures.update(picture.imgs)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # Python < 3.13 raises AssertionError on `<![foo` and may have moved its position first;
        # browsers read any `<![...` in HTML as a bogus comment up to the next '>'.
        pos = self.getpos()
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.lineno, self.offset = pos
            return self.parse_bogus_comment(i, report)

    def close(self) -> None:
        super().close()
        while self._pictures:  # unclosed at the end of the page
            self._close_picture()


@functools.lru_cache(maxsize=2)  # rewrite() right after find_images() on one page parses once
def _scan(html: str) -> _Scanner:
    scanner = _Scanner(html)
    scanner.feed(html)
    scanner.close()
    return scanner
