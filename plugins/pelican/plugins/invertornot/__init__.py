"""Pelican plugin: classify the images of the written site and mark them for dark mode.

`PLUGINS = ["invertornot"]` and `INVERTORNOT = {...}` (the same options as the MkDocs plugin).
Pelican imports every installed namespace plugin when `PLUGINS` is unset, so this module imports
only Pelican's signals; the core (and the model behind it) is imported in the handlers.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import unquote

if TYPE_CHECKING:
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.settings import Settings

log = logging.getLogger(__name__)

# Pelican lowercases metadata names; both take a comma-separated list of image paths.
METADATA_LABELS = (("invert", "invert"), ("invert-not", "keep"))
_LINK_SYNTAX = ("{static}", "{attach}", "{filename}", "|static|", "|attach|", "|filename|")


class _Build:
    """What one Pelican build has written: HTML file -> the content object it renders (if any)."""

    def __init__(self) -> None:
        self.pages: dict[str, Any] = {}
        self.static_content: Mapping[str, Any] = {}


_build = _Build()
_engines: dict[tuple["Settings", str], "Engine"] = {}  # survive `pelican --autoreload` rebuilds


def register() -> None:
    from pelican import signals

    signals.initialized.connect(initialized)
    signals.all_generators_finalized.connect(start_build)
    signals.content_written.connect(content_written)
    signals.finalized.connect(finalized)


def plugin_settings(pelican_settings: Mapping[str, Any]) -> "Settings":
    """`INVERTORNOT` merged onto the shared defaults; a ConfigError names the bad key."""
    from invertornot_ssg.errors import ConfigError
    from invertornot_ssg.settings import Settings

    values = pelican_settings.get("INVERTORNOT") or {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"INVERTORNOT: expected a dict of options, got {type(values).__name__}")
    return Settings.from_mapping(values, source="INVERTORNOT")


def initialized(pelican: Any) -> None:
    """Check the settings before anything is built: a typo fails the build at once."""
    plugin_settings(pelican.settings)


def start_build(generators: Any) -> None:
    global _build
    _build = _Build()


def content_written(path: str, context: Mapping[str, Any]) -> None:
    """Remember each HTML file Pelican writes (articles, pages, drafts, index, tags, archives...)."""
    if not path.lower().endswith((".html", ".htm")):
        return
    _build.pages[os.path.abspath(path)] = context.get("article") or context.get("page")
    _build.static_content = context.get("static_content") or _build.static_content


def _gc_paused(handler):
    """Run `handler` with the cyclic GC paused: each collection would walk every object of Pelican's
    site, and the pass (its imports included) makes no cycles worth collecting."""

    @functools.wraps(handler)
    def paused(*args: Any) -> None:
        collecting = gc.isenabled()
        gc.disable()
        try:
            handler(*args)
        finally:
            if collecting:
                gc.enable()

    return paused


@_gc_paused
def finalized(pelican: Any) -> None:
    """Everything is written: classify all images of the written pages at once and rewrite them."""
    settings = plugin_settings(pelican.settings)
    written, build = sorted(_build.pages), _build
    start_build(None)
    if not settings.enabled or not written:
        return
    from invertornot_ssg.sitedir import SitePage, SiteResolver, absolute_href, process_site, relative_href

    output, content = Path(pelican.output_path), Path(pelican.settings["PATH"])
    siteurl = pelican.settings.get("SITEURL") or ""
    # The theme's images (its logo, on every page) are its chrome: left to the theme, as in MkDocs.
    theme_static = pelican.settings.get("THEME_STATIC_DIR") or "theme"
    resolver = SiteResolver(output, [siteurl] if siteurl else [], allowed_roots=[content], theme_dirs=[theme_static])
    pages = [
        SitePage(Path(path), front_matter(build.pages[path], build.static_content))
        for path in written
    ]
    if not settings.css:
        css_href = None
    elif pelican.settings.get("RELATIVE_URLS"):
        css_href = relative_href
    else:  # as Pelican's themes link their own CSS: "{{ SITEURL }}/theme/css/main.css"
        css_href = lambda page_id: absolute_href(siteurl)  # noqa: E731
    engine = _engine(settings)
    dark_mode = theme_dark_mode(pelican.settings)
    run = process_site(engine, resolver, pages, css_href=css_href, in_place=True, logger=log,
                       dark_mode=dark_mode)
    _say(f"invertornot: {engine.summary(run.results)}")


def _say(line: str) -> None:
    """The build's one summary line, printed as Pelican prints its own "Done: ..." line: at the
    default log level, not only with -v (and not with -q)."""
    if logging.getLogger().getEffectiveLevel() > logging.WARNING:
        return
    try:
        from pelican.log import console
    except ImportError:  # a Pelican without rich's console
        print(line)
        return
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def theme_dark_mode(pelican_settings: Mapping[str, Any]):
    """The theme's dark mode, read from its stylesheets (Pelican's default theme has one from 4.12)."""
    from invertornot_ssg import themes

    return themes.pelican(pelican_settings.get("THEME"))


def _engine(settings: "Settings") -> "Engine":
    """One engine per settings and folder; paths in INVERTORNOT resolve against the current folder
    (Pelican does not tell plugins where pelicanconf.py is; run `pelican` beside it, as usual)."""
    from invertornot_ssg.engine import Engine

    base = os.getcwd()
    engine = _engines.get((settings, base))
    if engine is None:
        engine = _engines[(settings, base)] = Engine(settings, Path(base), logger=log)
    return engine


def front_matter(content: Any, static_content: Mapping[str, Any]) -> dict[str, str]:
    """`Invert:` / `Invert-Not:` metadata of an article or page as {output key: 'invert' | 'keep'}."""
    if content is None:
        return {}
    metadata = getattr(content, "metadata", None) or {}
    labels: dict[str, str] = {}
    for field, label in METADATA_LABELS:
        for value in _values(metadata.get(field)):
            key = _content_key(value, getattr(content, "relative_dir", ""))
            if key is None:
                log.warning(
                    "%s: %s: %r is outside the content folder; ignored",
                    getattr(content, "source_path", "?"), field, value,
                )
                continue
            static = static_content.get(key)
            save_as = getattr(static, "save_as", None)
            labels[posixpath.normpath(save_as.replace(os.sep, "/")) if save_as else key] = label
    return labels


def _values(value: Any) -> list[str]:
    """'a.png, b.png' (or a list of such strings, when the field is repeated) -> ['a.png', 'b.png']."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _content_key(value: str, relative_dir: str) -> str | None:
    """A path as written in the metadata -> the file's path relative to the content root.

    `images/a.png` and `/images/a.png`: from the content root. `{static}/images/a.png` and
    `{attach}/…` as in the text; `{static}a.png` (no slash) is relative to the article, as in Pelican.
    """
    path = unquote(value.split("?", 1)[0].split("#", 1)[0])
    relative = ""
    for syntax in _LINK_SYNTAX:
        if path.startswith(syntax):
            path = path[len(syntax):]
            relative = "" if path.startswith("/") else (relative_dir or "")
            break
    key = posixpath.normpath(posixpath.join(relative, path.lstrip("/")))
    if key == ".." or key.startswith("../") or key == ".":
        return None
    return key
