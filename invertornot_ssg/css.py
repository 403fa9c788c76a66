"""The dark-mode stylesheet for the configured class names and dark selectors."""
from __future__ import annotations

from . import themes
from .settings import Settings
from .themes import DarkMode

STYLESHEET_NAME = "invertornot.css"

# Gwern.net's filter: the hue rotation undoes invert()'s hue flip, so red stays red.
INVERT_FILTER = "grayscale(50%) invert(100%) brightness(95%) hue-rotate(180deg)"
KEEP_FILTER = "brightness(.85)"  # photos stay photos, a little less glaring; hover shows the original


BACKDROP_ATTRIBUTE = "data-invertornot-backdrop"  # on kept images whose ink would vanish on the dark page


def stylesheet(settings: Settings, dark_mode: DarkMode | None = None) -> str:
    """CSS that inverts diagrams and dims photos wherever `dark_mode` says the page is dark.

    `dark_mode`: what the theme was found to use (themes.py); None: the user's `dark_selectors`
    (or no rule at all while those are left to detection). Without a dark mode the file holds only
    its header: images look exactly as without the plugin."""
    if dark_mode is None:
        dark_mode = themes.none("unknown", "no theme read") if themes.is_auto(settings.dark_selectors) \
            else themes.from_selectors(settings.dark_selectors)
    invert = [_ident(settings.class_invert), _ident(settings.class_invert_auto)]
    keep = [_ident(settings.class_keep), _ident(settings.class_keep_auto)]
    blocks = [_header(invert, keep, dark_mode, settings.backdrop)]
    by_media: dict[str | None, list[str]] = {}  # one block per media query, in order
    for rule in dark_mode.rules:
        by_media.setdefault(rule.media, []).append(rule.selector)
    for media, prefixes in by_media.items():
        rules = _rules(prefixes, invert, keep, settings.backdrop)
        if media:
            inner = rules.replace("\n", "\n  ").rstrip(" ")
            blocks.append(f"{media} {{\n  {inner}}}\n")
        else:
            blocks.append(rules)
    return "\n".join(blocks)


def _header(invert: list[str], keep: list[str], dark_mode: DarkMode, backdrop: str) -> str:
    where = (f" * Dark mode as {dark_mode.theme} marks it." if dark_mode.found
             else f" * No dark mode found ({dark_mode.why}): no rule applies; set dark_selectors if the site has one.")
    paper = (f" * Kept images whose ink would vanish on the dark page ([{BACKDROP_ATTRIBUTE}]) get a {backdrop} backdrop.\n"
             if backdrop_enabled(backdrop) else "")
    return (
        "/* invertornot-ssg: dark-mode styles for images classified at build time.\n"
        f"{where}\n"
        f" * Inverted (diagrams): .{invert[0]} (set by the author), .{invert[1]} (automatic);\n"
        " * the theme's frame (padding background, border) is dropped, so it does not invert to a light one.\n"
        f" * Dimmed, original on hover (photos): .{keep[0]} (author), .{keep[1]} (automatic).\n"
        f"{paper}"
        " * To change them, add your own rules after this file (the same selectors win by order),\n"
        " * or set `css: false` and ship your own stylesheet. */\n"
    )


def backdrop_enabled(backdrop: str) -> bool:
    return backdrop.strip().lower() not in ("", "none", "off", "false")


def _rules(prefixes: list[str], invert: list[str], keep: list[str], backdrop: str) -> str:
    def selector_list(classes: list[str], suffix: str = "") -> str:
        return ",\n".join(f"{p} img.{c}{suffix}".lstrip() for p in prefixes for c in classes)

    css = (
        f"{selector_list(invert)} {{\n  filter: {INVERT_FILTER};\n"
        "  background-color: transparent;\n  border-color: transparent;\n}\n"
        f"{selector_list(keep)} {{\n  filter: {KEEP_FILTER};\n  transition: filter .3s ease;\n}}\n"
        f"{selector_list(keep, ':hover')} {{\n  filter: none;\n}}\n"
    )
    if backdrop_enabled(backdrop):
        css += f"{selector_list(keep, f'[{BACKDROP_ATTRIBUTE}]')} {{\n  background-color: {backdrop.strip()};\n}}\n"
    return css


def _ident(name: str) -> str:
    """Escape a class name as a CSS identifier (CSSOM's CSS.escape)."""
    out = []
    for i, c in enumerate(name):
        if c == "\0":
            out.append("\ufffd")
        elif "\x01" <= c <= "\x1f" or c == "\x7f" or (c.isdigit() and c.isascii() and (i == 0 or (i == 1 and name[0] == "-"))):
            out.append(f"\\{ord(c):x} ")
        elif c.isascii() and not (c.isalnum() or c in "-_"):
            out.append("\\" + c)
        elif name == "-":
            out.append("\\-")
        else:
            out.append(c)
    return "".join(out)
