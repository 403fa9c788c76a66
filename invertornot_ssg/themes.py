"""Which dark mode a site has, read from its theme: the selectors our stylesheet keys on.

A stylesheet that assumes a dark mode where there is none inverts diagrams on a white page, so
nothing here guesses: each theme is read the way it marks its own dark mode (its settings, its
built pages, its CSS). No dark mode found and no `dark_selectors` set: no rule applies, and the
caller warns once (`no_dark_mode_warning`).

A `DarkMode` is a list of rules, each an optional media query and the selector that must match an
ancestor of the image, plus the theme's dark page colour (what the legibility measure compares
images against, see `contrast.py`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .contrast import DEFAULT_DARK_PAGE

AUTO = "auto"  # dark_selectors' default: read the theme
MEDIA_DARK = "@media (prefers-color-scheme: dark)"

# The dark page colour of the themes we know, from their stylesheets.
MATERIAL_SLATE = "#1e2029"  # hsla(var(--md-hue) 225deg, 15%, 14%)
BOOTSTRAP_DARK = "#212529"  # MkDocs' theme: Bootstrap 5.3's --bs-body-bg in dark mode
NOTMYIDEA_DARK = "#111111"  # Pelican's default theme: #content's background in dark mode
FURO_DARK = "#131416"  # --color-background-primary
PYDATA_DARK = "#14181e"  # --pst-color-background
DOCUSAURUS_DARK = "#1b1b1d"  # --ifm-background-color

_MEDIA_DARK = re.compile(r"@media[^{]*prefers-color-scheme\s*:\s*dark", re.IGNORECASE)
_DATA_THEME_DARK = re.compile(r"""\[data-theme\s*=\s*["']?dark["']?\s*\]""", re.IGNORECASE)
_CSS_LIMIT = 8 * 1024 * 1024  # bytes of CSS read at most: a theme's is well under 1 MB
_PAGES_LIMIT = 20  # built pages read for their root attributes
_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Rule:
    """Images under `selector` (an ancestor: `[data-bs-theme="dark"]`) are dark-mode images,
    inside `media` when it is set (`@media (prefers-color-scheme: dark)`)."""

    selector: str
    media: str | None = None


# Themes that write data-theme (Furo on <body>, pydata-sphinx-theme and Docusaurus on <html>): dark
# when it says so, and when the system is dark while it says neither light nor dark (Furo's
# "auto", or before the theme's script ran), as Furo's own CSS does.
DATA_THEME_RULES = (
    Rule('[data-theme="dark"]'),
    Rule(':root:not([data-theme="light"]) body:not([data-theme="light"])', MEDIA_DARK),
)


@dataclass(frozen=True)
class DarkMode:
    """How a site marks its dark mode; `rules` empty: it has none (or none we can see)."""

    theme: str  # what was read: 'material', 'mkdocs', 'notmyidea', 'furo', 'dark_selectors', ...
    rules: tuple[Rule, ...]
    background: str = DEFAULT_DARK_PAGE  # the dark page colour images are shown on
    why: str = ""  # when there are no rules: what was found, for the warning

    @property
    def found(self) -> bool:
        return bool(self.rules)


def none(theme: str, why: str) -> DarkMode:
    return DarkMode(theme, (), DEFAULT_DARK_PAGE, why)


def is_auto(dark_selectors: Sequence[str]) -> bool:
    """Whether `dark_selectors` asks for detection (the default) rather than naming selectors."""
    return [s.strip() for s in dark_selectors] == [AUTO]


def from_selectors(dark_selectors: Sequence[str], background: str = DEFAULT_DARK_PAGE) -> DarkMode:
    """The user's `dark_selectors`: each a selector list, or a media query (`@media ...`).

    Inside a media query the OS preference applies only where no toggle has chosen a scheme: a
    toggle that writes an attribute named in one of the selectors (Material's `data-md-color-scheme`
    on <body>, others on <html>) has chosen once that attribute exists, whatever its value."""
    selectors = [s.strip() for s in dark_selectors if s.strip()]
    prefixes = [p for s in selectors if not s.startswith("@media") for p in split_selector_list(s)]
    chosen = "".join(f":not([{name}])" for name in _attribute_names(prefixes))
    rules: list[Rule] = []
    for selector in selectors:
        if selector.startswith("@media"):
            rules.append(Rule(f":root{chosen} body{chosen}" if chosen else "", selector))
        else:
            rules.extend(Rule(p) for p in split_selector_list(selector))
    return DarkMode("dark_selectors", tuple(rules), background, "dark_selectors is empty")


def choose(dark_selectors: Sequence[str], detected: DarkMode) -> DarkMode:
    """The user's `dark_selectors` when set (they always win), else what the theme says."""
    if is_auto(dark_selectors):
        return detected
    return from_selectors(dark_selectors, detected.background)


def no_dark_mode_warning(dark_mode: DarkMode) -> str:
    """The one warning for a site without a dark mode."""
    return (
        f"no dark mode found ({dark_mode.why}): images get their classes but no dark-mode rule applies,"
        " so every reader sees them as without the plugin. If the site has a dark mode, set"
        " dark_selectors to the selector its theme sets when dark, e.g. ['html.dark'] or"
        " ['@media (prefers-color-scheme: dark)']; if it has none, dark_selectors: [] silences this"
    )


# -- MkDocs -------------------------------------------------------------------------------------


def mkdocs(theme_name: str | None, theme: Mapping, theme_dirs: Iterable[str] = ()) -> DarkMode:
    """From mkdocs.yml's `theme`: Material's palette, MkDocs' own `color_mode`, or for any other
    theme what its stylesheets say (readthedocs has no dark mode)."""
    name = theme_name or ""
    if name == "material":
        return material_palette(theme.get("palette"))
    if name == "mkdocs":
        mode = theme.get("color_mode") or "light"
        if mode == "light" and not theme.get("user_color_mode_toggle"):
            return none("mkdocs", "MkDocs' theme with color_mode: light and no user_color_mode_toggle")
        # Its script sets data-bs-theme on <html> to light or dark, following the system for auto.
        return DarkMode("mkdocs", (Rule('[data-bs-theme="dark"]'),), BOOTSTRAP_DARK)
    found = css_dark_mode(name or "theme", _css_files(theme_dirs))
    if not found.found:
        return none(name or "theme", f"the {name or 'custom'} theme's stylesheets have no dark mode")
    return found


def material_palette(palette: object) -> DarkMode:
    """Material marks the scheme it shows on <body> as `data-md-color-scheme`, also when a palette
    follows the system: its script writes the scheme whose `media` matches. Dark schemes: slate."""
    entries = palette if isinstance(palette, list) else [palette] if isinstance(palette, Mapping) else []
    schemes = [str(e.get("scheme") or "default") for e in entries if isinstance(e, Mapping)] or ["default"]
    dark = [s for s in dict.fromkeys(schemes) if s == "slate"]
    if not dark:
        return none("material", "Material's palette has only light schemes (" + ", ".join(dict.fromkeys(schemes)) + ")")
    return DarkMode("material", tuple(Rule(f'[data-md-color-scheme="{s}"]') for s in dark), MATERIAL_SLATE)


# -- Pelican ------------------------------------------------------------------------------------


def pelican(theme_path: str | os.PathLike | None) -> DarkMode:
    """From the theme's own stylesheets: Pelican's default theme follows the system's dark mode
    from 4.12 (a prefers-color-scheme rule in its CSS), earlier versions and many themes have none."""
    if not theme_path:
        return none("pelican", "no THEME")
    root = Path(theme_path)
    name = root.name
    found = css_dark_mode(name, _css_files([str(root)]))
    if not found.found:
        return none(name, f"Pelican theme {name}'s stylesheets have no dark mode")
    if name == "notmyidea":
        return DarkMode(name, found.rules, NOTMYIDEA_DARK)
    return found


# -- a built site (apply) -----------------------------------------------------------------------


def built_site(root: Path, pages: Sequence[Path]) -> DarkMode:
    """From the built pages' root attributes (Material, Bootstrap themes, Furo, pydata-sphinx-theme,
    Docusaurus) or, failing those, a prefers-color-scheme rule in the site's own CSS."""
    heads = [_head_of(p) for p in pages[:_PAGES_LIMIT]]
    text = "\n".join(heads)
    if "data-md-color-scheme" in text:
        schemes = re.findall(r"""data-md-color-scheme=["']?([\w-]+)""", text)
        return material_palette([{"scheme": s} for s in schemes])
    if "data-bs-theme" in text:
        # MkDocs' theme (Bootstrap): color_mode light without a toggle never loads its script.
        if re.search(r"""data-bs-theme=["']?(dark|auto)|data-bs-theme-value|darkmode\.js""", text):
            return DarkMode("bootstrap", (Rule('[data-bs-theme="dark"]'),), BOOTSTRAP_DARK)
        return none("bootstrap", "the pages set data-bs-theme to light and have no toggle")
    if "data-theme" in text:
        theme, background = "data-theme", DEFAULT_DARK_PAGE
        if "furo" in text:
            theme, background = "furo", FURO_DARK
        elif "pydata" in text:
            theme, background = "pydata-sphinx-theme", PYDATA_DARK
        elif "docusaurus" in text.lower():
            theme, background = "docusaurus", DOCUSAURUS_DARK
        return DarkMode(theme, DATA_THEME_RULES, background)
    inline = "\n".join(re.findall(r"(?is)<style[^>]*>(.*?)</style>", text))
    from .css import STYLESHEET_NAME  # css imports this module

    ours = root / STYLESHEET_NAME  # what an earlier apply wrote: the site's own CSS decides, not ours
    found = css_dark_mode("site", [p for p in _css_files([str(root)]) if p != ours], extra=inline)
    if not found.found:
        return none("site", "no page marks a dark mode and the site's CSS has no prefers-color-scheme: dark rule")
    return found


def css_dark_mode(theme: str, css_files: Iterable[Path], extra: str = "") -> DarkMode:
    """A dark mode from stylesheets: `[data-theme="dark"]` rules (with the system preference
    where the theme says `auto`) or a `prefers-color-scheme: dark` media query."""
    text, read = extra, 0
    for path in css_files:
        if read > _CSS_LIMIT:
            break
        try:
            chunk = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        read += len(chunk)
        text += "\n" + chunk
    rules: list[Rule] = []
    media = bool(_MEDIA_DARK.search(text))
    if _DATA_THEME_DARK.search(text):
        rules.extend(DATA_THEME_RULES if media else DATA_THEME_RULES[:1])
    elif media:
        rules.append(Rule("", MEDIA_DARK))
    if not rules:
        return none(theme, "no dark-mode rule in its CSS")
    return DarkMode(theme, tuple(rules), DEFAULT_DARK_PAGE)


def _css_files(folders: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        for base, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(base, f) for f in sorted(files) if f.lower().endswith(".css"))
    return found


def _head_of(page: Path) -> str:
    """The start of a page (its <html>, <head> and <body> tags), as text."""
    try:
        with open(page, "rb") as fp:
            return fp.read(_HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


# -- selector text ------------------------------------------------------------------------------


def split_selector_list(selector: str) -> list[str]:
    """Split `a, b` into its selectors, leaving commas inside brackets, parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(selector):
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return [p.strip() for p in parts if p.strip()]


def _attribute_names(selectors: list[str]) -> list[str]:
    """The attribute names tested by `[name...]` in the selectors, in order, once each."""
    names: list[str] = []
    for selector in selectors:
        for chunk in selector.split("[")[1:]:
            name = chunk
            for stop in "=~|^$*] \t":
                name = name.split(stop, 1)[0]
            if name and name not in names:
                names.append(name)
    return names
