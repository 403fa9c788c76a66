"""The dark-mode stylesheet for the configured class names and dark selectors."""
from __future__ import annotations

from .settings import Settings

STYLESHEET_NAME = "invertornot.css"

# Gwern.net's filter: the hue rotation undoes invert()'s hue flip, so red stays red.
INVERT_FILTER = "grayscale(50%) invert(100%) brightness(95%) hue-rotate(180deg)"
KEEP_FILTER = "brightness(.85)"  # photos stay photos, a little less glaring; hover shows the original


def stylesheet(settings: Settings) -> str:
    """CSS that inverts diagrams and dims photos under each of `settings.dark_selectors`."""
    invert = [_ident(settings.class_invert), _ident(settings.class_invert_auto)]
    keep = [_ident(settings.class_keep), _ident(settings.class_keep_auto)]
    selectors = [s.strip() for s in settings.dark_selectors if s.strip()]
    prefixes = [p for s in selectors if not s.startswith("@media") for p in _split_selector_list(s)]
    # Inside a media query, the OS preference applies only where no toggle has chosen a scheme.
    # A toggle that writes an attribute (Material: `data-md-color-scheme` on <body>; other themes
    # put theirs on <html>) has chosen once that attribute exists, whatever its value.
    chosen = "".join(f":not([{name}])" for name in _attribute_names(prefixes))
    media_scope = [f":root{chosen} body{chosen}"] if chosen else [""]

    blocks = [_header(invert, keep)]
    for selector in selectors:
        if selector.startswith("@media"):
            inner = _rules(media_scope, invert, keep).replace("\n", "\n  ").rstrip(" ")
            blocks.append(f"{selector} {{\n  {inner}}}\n")
        else:
            blocks.append(_rules(_split_selector_list(selector), invert, keep))
    return "\n".join(blocks)


def _header(invert: list[str], keep: list[str]) -> str:
    return (
        "/* invertornot-ssg: dark-mode styles for images classified at build time.\n"
        f" * Inverted (diagrams): .{invert[0]} (set by the author), .{invert[1]} (automatic).\n"
        f" * Dimmed, original on hover (photos): .{keep[0]} (author), .{keep[1]} (automatic).\n"
        " * To change them, add your own rules after this file (the same selectors win by order),\n"
        " * or set `css: false` and ship your own stylesheet. */\n"
    )


def _rules(prefixes: list[str], invert: list[str], keep: list[str]) -> str:
    def selector_list(classes: list[str], suffix: str = "") -> str:
        return ",\n".join(f"{p} img.{c}{suffix}".lstrip() for p in prefixes for c in classes)

    return (
        f"{selector_list(invert)} {{\n  filter: {INVERT_FILTER};\n}}\n"
        f"{selector_list(keep)} {{\n  filter: {KEEP_FILTER};\n  transition: filter .3s ease;\n}}\n"
        f"{selector_list(keep, ':hover')} {{\n  filter: none;\n}}\n"
    )


def _split_selector_list(selector: str) -> list[str]:
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
