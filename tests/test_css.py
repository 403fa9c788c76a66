"""The dark-mode stylesheet: rules for every class under every dark selector, and CSS that parses.

No CSS parser is a dependency, so `parse_css` below is a small structural reader (comments,
strings, escapes, nested blocks, declarations); where tinycss2 is installed it checks too."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from invertornot_ssg import themes
from invertornot_ssg.css import BACKDROP_ATTRIBUTE, INVERT_FILTER, KEEP_FILTER, STYLESHEET_NAME, _ident, stylesheet
from invertornot_ssg.settings import Settings

CLASSES = ("invert", "invert-auto", "invert-not", "invert-not-auto")
MATERIAL = ('[data-md-color-scheme="slate"]', "@media (prefers-color-scheme: dark)")  # as a user may set them
# An inverted image drops the theme's frame (padding background, border): inverted, it would be light.
INVERTED = {"filter": INVERT_FILTER, "background-color": "transparent", "border-color": "transparent"}


@dataclass
class Block:
    prelude: str  # a selector list, or an at-rule such as '@media (...)'
    declarations: dict[str, str] = field(default_factory=dict)
    children: list["Block"] = field(default_factory=list)


def parse_css(text: str) -> list[Block]:
    """Read a stylesheet into nested blocks; AssertionError on anything unbalanced or malformed."""
    root = Block("")
    stack, buf, i = [root], [], 0
    while i < len(text):
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            assert end >= 0, f"unclosed comment at {i}"
            i = end + 2
            continue
        if c == "\\":  # an escape: the next character is never syntax
            assert i + 1 < len(text), "escape at end of file"
            buf.append(text[i : i + 2])
            i += 2
            continue
        if c in "\"'":
            end = i + 1
            while end < len(text) and text[end] != c:
                assert text[end] != "\n", f"unclosed string at {i}"
                end += 2 if text[end] == "\\" else 1
            assert end < len(text), f"unclosed string at {i}"
            buf.append(text[i : end + 1])
            i = end + 1
            continue
        if c == "{":
            prelude = "".join(buf).strip()
            assert prelude, f"block without a selector at {i}"
            block = Block(prelude)
            stack[-1].children.append(block)
            stack.append(block)
            buf = []
        elif c == "}":
            assert len(stack) > 1, f"unbalanced '}}' at {i}"
            block = stack.pop()
            body = "".join(buf).strip()
            if body:
                assert not block.children, f"declarations beside nested rules in {block.prelude!r}"
                for decl in filter(None, (d.strip() for d in body.split(";"))):
                    name, colon, value = decl.partition(":")
                    assert colon and name.strip() and value.strip(), f"bad declaration {decl!r}"
                    block.declarations[name.strip()] = value.strip()
            buf = []
        else:
            buf.append(c)
        i += 1
    assert len(stack) == 1, "unclosed block at end of file"
    assert not "".join(buf).strip(), f"text after the last rule: {''.join(buf)!r}"
    return root.children


def rules(blocks: list[Block]) -> dict[str, dict[str, str]]:
    """Every selector (media blocks flattened, their query as a prefix) and its declarations."""
    out: dict[str, dict[str, str]] = {}
    for block in blocks:
        if block.prelude.startswith("@media"):
            assert not block.declarations
            for selector, decls in rules(block.children).items():
                out[f"{block.prelude} | {selector}"] = decls
        else:
            assert block.declarations and not block.children
            for selector in block.prelude.split(","):
                out.setdefault(selector.strip(), {}).update(block.declarations)
    return out


def test_stylesheet_covers_every_class_under_every_selector():
    css = stylesheet(Settings(dark_selectors=MATERIAL))
    found = rules(parse_css(css))
    slate = '[data-md-color-scheme="slate"]'
    media = "@media (prefers-color-scheme: dark) | :root:not([data-md-color-scheme]) body:not([data-md-color-scheme])"
    for prefix in (slate, media):
        for cls in ("invert", "invert-auto"):
            assert found[f"{prefix} img.{cls}"] == INVERTED
        for cls in ("invert-not", "invert-not-auto"):
            assert found[f"{prefix} img.{cls}"]["filter"] == KEEP_FILTER
            assert "filter" in found[f"{prefix} img.{cls}"]["transition"]
            assert found[f"{prefix} img.{cls}:hover"] == {"filter": "none"}
            assert found[f"{prefix} img.{cls}[{BACKDROP_ATTRIBUTE}]"] == {"background-color": "#ffffff"}
    assert len(found) == 2 * 8  # nothing else: no rule outside a dark selector
    assert INVERT_FILTER == "grayscale(50%) invert(100%) brightness(95%) hue-rotate(180deg)"


def test_without_a_dark_mode_no_rule_applies():
    """dark_selectors left to detection and no theme read (or one without a dark mode): the file
    holds only its header, so every reader sees the images as without the plugin."""
    for css in (stylesheet(Settings()), stylesheet(Settings(), themes.mkdocs("readthedocs", {})),
                stylesheet(Settings(dark_selectors=[]))):
        assert rules(parse_css(css)) == {}
        assert "no rule applies" in css[: css.index("*/")]


def test_backdrop_colour_or_off():
    found = rules(parse_css(stylesheet(Settings(dark_selectors=["html.dark"], backdrop="#f4f4f0"))))
    assert found[f"html.dark img.invert-not-auto[{BACKDROP_ATTRIBUTE}]"] == {"background-color": "#f4f4f0"}
    for off in ("none", ""):
        css = stylesheet(Settings(dark_selectors=["html.dark"], backdrop=off))
        assert BACKDROP_ATTRIBUTE not in css and "background-color: #" not in css


def test_theme_rules_from_detection():
    found = rules(parse_css(stylesheet(Settings(), themes.mkdocs("mkdocs", {"color_mode": "auto"}))))
    assert found['[data-bs-theme="dark"] img.invert-auto'] == INVERTED
    assert not any("@media" in selector for selector in found)
    # dark_selectors set by the user win over the theme
    found = rules(parse_css(stylesheet(Settings(dark_selectors=["html.dark"]),
                                       themes.choose(["html.dark"], themes.mkdocs("mkdocs", {"color_mode": "auto"})))))
    assert "html.dark img.invert-auto" in found and not any("bs-theme" in s for s in found)


def test_header_says_how_to_override():
    css = stylesheet(Settings(dark_selectors=MATERIAL))
    assert css.startswith("/*")
    header = css[: css.index("*/")]
    assert "css: false" in header and "after this file" in header
    assert all(f".{c}" in header for c in CLASSES)


def test_custom_class_names_are_used_and_escaped():
    settings = Settings(class_invert="2col", class_keep="photo.keep", class_invert_auto="ai{x}", class_keep_auto="a*/b")
    css = stylesheet(settings, themes.from_selectors(MATERIAL))
    found = rules(parse_css(css))  # the escapes keep '{', '}' and '*/' from breaking the sheet
    slate = '[data-md-color-scheme="slate"]'
    for name in ("2col", "ai{x}"):
        assert found[f"{slate} img.{_ident(name)}"] == INVERTED
    for name in ("photo.keep", "a*/b"):
        assert found[f"{slate} img.{_ident(name)}:hover"] == {"filter": "none"}
    assert not any(f"img.{c}" in css for c in CLASSES)


def test_media_only_config_applies_without_scope():
    settings = Settings(dark_selectors=("@media (prefers-color-scheme: dark)",))
    found = rules(parse_css(stylesheet(settings)))
    assert set(found) == {
        f"@media (prefers-color-scheme: dark) | img.{c}{h}"
        for c in CLASSES for h in ("", ":hover", f"[{BACKDROP_ATTRIBUTE}]") if h == "" or "not" in c
    }


def test_selector_only_config_has_no_media_block():
    css = stylesheet(Settings(dark_selectors=("html.dark",)))
    found = rules(parse_css(css))
    assert "@media" not in css
    assert found["html.dark img.invert-auto"] == INVERTED


def test_media_block_is_scoped_by_every_attribute_a_toggle_sets():
    settings = Settings(dark_selectors=('html[data-theme="dark"], .dark', "[data-md-color-scheme=slate]", "@media (prefers-color-scheme: dark)"))
    found = rules(parse_css(stylesheet(settings)))
    for prefix in ('html[data-theme="dark"]', ".dark", "[data-md-color-scheme=slate]"):  # a selector list is split
        assert found[f"{prefix} img.invert-auto"] == INVERTED
    chosen = ":not([data-theme]):not([data-md-color-scheme])"
    assert found[f"@media (prefers-color-scheme: dark) | :root{chosen} body{chosen} img.invert-auto"] == INVERTED


def test_class_only_toggle_leaves_media_block_unscoped():
    # A class cannot say "the visitor chose light", so the OS preference applies as is.
    settings = Settings(dark_selectors=(".dark-mode", "@media (prefers-color-scheme: dark)"))
    assert "@media (prefers-color-scheme: dark) | img.invert" in rules(parse_css(stylesheet(settings)))


@pytest.mark.parametrize(
    "name, escaped",
    [("invert", "invert"), ("2x", "\\32 x"), ("-2x", "-\\32 x"), ("-", "\\-"), ("a.b", "a\\.b"), ("é", "é"), ("a\x01", "a\\1 "), ("a\0", "a\ufffd")],
)
def test_ident_escape(name, escaped):
    assert _ident(name) == escaped


@pytest.mark.parametrize(
    "broken",
    ["a { b: c", "a { b: c } }", "/* open", "a { b }", "a { b: 'c }", "{ b: c }", "a { b: c } d"],
)
def test_the_checker_catches_broken_css(broken):
    with pytest.raises(AssertionError):
        rules(parse_css(broken))


def test_tinycss2_parses_it_without_errors():
    tinycss2 = pytest.importorskip("tinycss2")
    settings = Settings(class_invert="ai{x}", dark_selectors=("[data-theme=dark]", "@media (prefers-color-scheme: dark)"))
    nodes = tinycss2.parse_stylesheet(stylesheet(settings), skip_comments=True, skip_whitespace=True)
    assert nodes and not [n for n in nodes if n.type == "error"]
    for node in nodes:
        inner = tinycss2.parse_blocks_contents(node.content) if node.type == "at-rule" else [node]
        for rule in inner:
            if rule.type == "qualified-rule":
                assert not [d for d in tinycss2.parse_blocks_contents(rule.content) if d.type == "error"]


def test_stylesheet_name():
    assert STYLESHEET_NAME == "invertornot.css"
