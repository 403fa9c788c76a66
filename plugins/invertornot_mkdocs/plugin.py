"""MkDocs events: collect every page's images, classify them once, rewrite each page's content.

MkDocs renders every page's Markdown (`on_page_content`) before it renders any template, and
`on_env` runs in between. So pages are collected late in `on_page_content` (after other content
plugins), classified in one batch in `on_env`, and each `page.content` is replaced there: the
theme's chrome is never parsed or touched. `on_post_build` records the decisions and logs one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority, get_plugin_logger
from mkdocs.structure.files import File

from invertornot_ssg.errors import InvertOrNotError
from invertornot_ssg.settings import Settings, option_names

from . import frontmatter
from .config import InvertOrNotConfig

if TYPE_CHECKING:
    from jinja2 import Environment
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

    from invertornot_ssg.engine import Engine
    from invertornot_ssg.pages import PageBatch, Resolver
    from invertornot_ssg.themes import DarkMode

    from .urls import SiteFiles

log = get_plugin_logger(__name__)

STYLESHEET_URI = "assets/invertornot.css"  # site-relative; a docs file at this path replaces ours


@dataclass
class _Collected:
    page: Page
    html: str  # the content as collected; if a later plugin changes it, the page is collected again
    resolve: Resolver
    labels: dict[str, str]  # front matter: site-relative key -> invert | keep


@dataclass
class _Build:
    """One build's pages: from the first `on_page_content` to `on_post_build`."""

    batch: PageBatch
    site_files: SiteFiles | None = None
    pages: dict[str, _Collected] = field(default_factory=dict)
    results: list = field(default_factory=list)
    write_stylesheet: str | None = None  # MkDocs < 1.6: CSS written into site_dir after the build


class InvertOrNotPlugin(BasePlugin[InvertOrNotConfig]):
    """`plugins: [invertornot]`: dark-mode classes for every `<img>` of the site."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.engine: Engine | None = None
        self._engine_key: tuple[Settings, str] | None = None
        self._build: _Build | None = None
        self.dark_mode: DarkMode | None = None

    # -- configuration ------------------------------------------------------------------------

    def on_startup(self, *, command: str, dirty: bool) -> None:
        # Defining on_startup keeps this instance (and its Engine: store, head, loaded model)
        # alive across `mkdocs serve` rebuilds; on_config replaces the Engine only when the
        # settings or the config file change.
        pass

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        self._build = None
        if not self.config.enabled:
            return config
        where = f"{_config_name(config)}: plugins.invertornot"
        try:
            settings = settings_from_config(self.config, source=where)
        except InvertOrNotError as exc:
            message = str(exc)
            raise PluginError(message if message.startswith(where) else f"{where}: {message}") from None
        base_dir = Path(os.path.dirname(config.config_file_path or "") or os.curdir).resolve()
        key = (settings, str(base_dir))
        if self.engine is None or key != self._engine_key:
            from invertornot_ssg.engine import Engine

            try:
                self.engine = Engine(settings, base_dir, logger=log)  # type: ignore[arg-type]
            except InvertOrNotError as exc:
                raise PluginError(f"{where}: {exc}") from None
            self._engine_key = key
        self.settings = settings
        self.dark_mode = _dark_mode(config, settings, where)
        self.engine.dark_page = self.dark_mode.background
        self._check_paths(config, where)
        if settings.css and STYLESHEET_URI not in config.extra_css:
            # First, so that the site's own extra_css comes after it and overrides it by order.
            config.extra_css.insert(0, STYLESHEET_URI)
        return config

    def _check_paths(self, config: MkDocsConfig, where: str) -> None:
        """A store inside docs_dir would be published (MkDocs leaves out only hidden folders, such as
        the default `.invertornot`). The overrides file and the site's head may sit there (a
        mkdocs.yml inside docs_dir has them beside it): `on_files` leaves them out of the site."""
        assert self.engine is not None
        docs = Path(config.docs_dir).resolve()
        store = self.engine.store_dir.resolve()
        if store == docs or docs in store.parents:
            if not any(part.startswith(".") for part in store.relative_to(docs).parts):
                log.warning("%s: store %s is inside docs_dir, so it would be published; set `store` to a "
                            "folder outside docs_dir or a hidden one (like the default .invertornot)", where, store)

    def _not_published(self, files: Files) -> None:
        """The overrides file, its lock and the site's head are this plugin's, not the site's."""
        assert self.engine is not None
        overrides = self.engine.overrides_path
        if overrides is None:
            return
        folder, name = overrides.resolve().parent, overrides.name
        head = self.engine.site_head_path()
        own = {name, head.name, head.with_suffix(".json").name}
        for file in list(files):
            source = Path(file.abs_src_path or "")
            if source.parent.resolve() != folder:
                continue
            if source.name in own or source.name.startswith((f"{name}.", f".{name}.")):
                log.debug("%s: the plugin's own file, not published", file.src_uri)
                files.remove(file)

    # -- the build ----------------------------------------------------------------------------

    def on_pre_build(self, *, config: MkDocsConfig) -> None:
        if not self.config.enabled:
            return
        from invertornot_ssg.pages import PageBatch

        assert self.engine is not None
        self._build = _Build(PageBatch(self.engine, log))  # type: ignore[arg-type]

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files | None:
        if self._build is not None:
            self._not_published(files)
        if self._build is None or self.settings is None or not self.settings.css:
            return files
        if files.get_file_from_path(STYLESHEET_URI) is not None:
            log.debug("%s comes from docs_dir; not generating it", STYLESHEET_URI)
            return files
        from invertornot_ssg.css import stylesheet

        css = stylesheet(self.settings, self.dark_mode)
        if hasattr(File, "generated"):  # MkDocs >= 1.6
            files.append(File.generated(config, STYLESHEET_URI, content=css))
        else:
            self._build.write_stylesheet = css
        return files

    @event_priority(-100)  # late: after content plugins (lightboxes, ...) have shaped the HTML
    def on_page_content(self, html: str, *, page: Page, config: MkDocsConfig, files: Files) -> str | None:
        build = self._build
        if build is None:
            return html
        if build.site_files is None:
            from .urls import SiteFiles

            build.site_files = SiteFiles(config.docs_dir, config.site_url, files)
        resolve = build.site_files.for_page(page.url)
        labels = self._front_matter(page, html, resolve)
        page_id = page.file.src_uri
        build.batch.add_page(page_id, html, resolve, labels)
        build.pages[page_id] = _Collected(page, html, resolve, labels)
        return html

    def _front_matter(self, page: Page, html: str, resolve: Resolver) -> dict[str, str]:
        """Front-matter labels keyed by site-relative image key; a path matching no image warns."""
        page_id = page.file.src_uri
        try:
            pairs = frontmatter.parse(page.meta or {}, page_id)
        except frontmatter.FrontMatterError as exc:
            raise PluginError(str(exc)) from None
        if not pairs:
            return {}
        from invertornot_ssg.htmlrewrite import find_images

        assert self._build is not None
        on_page: set[str] = set()  # keys of the page's images, missing ones included
        usable: set[str] = set()  # ... and those the batch will classify
        for tag in find_images(html, self._build.batch.classes):
            if tag.skip_reason or not tag.src:
                continue
            resolved = resolve(tag.src)
            if resolved is not None:
                on_page.add(resolved.key)
                if resolved.problem is None:
                    usable.add(resolved.key)
        labels: dict[str, str] = {}
        for label, path in pairs:
            tried = frontmatter.candidates(path, page_id)
            key = next((k for k in tried if k in on_page), None)
            if key is None:
                log.warning(
                    "%s: front matter '%s.%s' names %r, which matches no image on this page (looked for %s)",
                    page_id, frontmatter.KEY, label, path, ", ".join(tried) or "nothing inside docs_dir",
                )
            elif labels.get(key, label) != label:
                raise PluginError(
                    f"{page_id}: front matter '{frontmatter.KEY}': {path!r} names {key}, "
                    "which is also listed under the other label"
                )
            elif key in usable:
                labels[key] = label
        return labels

    @event_priority(-100)  # after other plugins' on_env, in case one of them changes page content
    def on_env(self, env: Environment, *, config: MkDocsConfig, files: Files) -> Environment | None:
        build = self._build
        if build is None:
            return env
        for page_id, collected in build.pages.items():
            content = collected.page.content
            if content is not None and content != collected.html:  # changed by a plugin after us
                build.batch.add_page(page_id, content, collected.resolve, collected.labels)
                collected.html = content
        try:
            build.results = build.batch.classify()
        except InvertOrNotError as exc:
            raise PluginError(str(exc)) from None
        for result in build.results:
            decision = "error" if result.invert is None else ("invert" if result.invert else "keep")
            p = "" if result.p_invert is None else f" p_invert={result.p_invert:.3f}"
            log.debug("%s: %s (%s%s)", result.request.key, decision, result.method, p)
        for page_id, collected in build.pages.items():
            new = build.batch.rewritten(page_id)
            if new != collected.html:
                collected.page.content = new
        return env

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        build, self._build = self._build, None
        if build is None:
            return
        assert self.engine is not None
        if build.write_stylesheet is not None:
            target = Path(config.site_dir, *STYLESHEET_URI.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(build.write_stylesheet, encoding="utf-8")
        try:
            self.engine.record(build.results)
        except InvertOrNotError as exc:
            raise PluginError(str(exc)) from None
        log.info(self.engine.summary(build.results))

    def on_build_error(self, *, error: Exception) -> None:
        self._build = None


def _dark_mode(config: MkDocsConfig, settings: Settings, where: str) -> DarkMode:
    """The theme's dark mode (config.theme's name and settings), unless dark_selectors names one;
    a theme without one gets a warning, and no rule."""
    from invertornot_ssg import themes

    theme = config.theme
    detected = themes.mkdocs(getattr(theme, "name", None), theme, getattr(theme, "dirs", ()))
    dark_mode = themes.choose(settings.dark_selectors, detected)
    if settings.css and themes.is_auto(settings.dark_selectors) and not dark_mode.found:
        log.warning("%s: %s", where, themes.no_dark_mode_warning(dark_mode))
    return dark_mode


def _config_name(config: MkDocsConfig) -> str:
    return os.path.basename(config.config_file_path) if config.config_file_path else "mkdocs.yml"


def settings_from_config(values: Mapping[str, Any], source: str = "plugins.invertornot") -> Settings:
    """The core `Settings` for a validated plugin config: same names, same meaning."""
    return Settings.from_mapping({name: values[name] for name in option_names()}, source=source)
