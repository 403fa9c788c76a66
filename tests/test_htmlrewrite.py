"""The `<img>` finder and byte-for-byte rewriter: examples of each edge case, then properties
over generated pages (never raises, changes only the tags, empty is a no-op, idempotent)."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invertornot_ssg.htmlrewrite import (
    ClassNames, ImgTag, TagUpdate, find_images, link_stylesheet, rewrite, rewrite_page, scan_page,
)
from invertornot_ssg.settings import Settings

NAMES = ClassNames.from_settings(Settings())
AUTO_INVERT = TagUpdate("invert-auto", ("invert-not-auto",), (("data-invertornot", "invert"),))


def srcs(html: str) -> list[str | None]:
    return [t.src for t in find_images(html, NAMES)]


def one(html: str) -> ImgTag:
    (tag,) = find_images(html, NAMES)
    return tag


def rewrite_all(html: str, update: TagUpdate = AUTO_INVERT) -> str:
    found = find_images(html, NAMES)
    updates = {t.start: update for t in found}
    out = rewrite(html, updates)
    assert rewrite(html, updates, found) == out  # reusing find_images' parse changes nothing
    return out


# --- finding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        '<script>var s = "<img src=x>";</script>',
        "<script type=module>document.write('<img src=x>')</script>",
        "<style>/* <img src=x> */</style>",
        "<!-- <img src=a.png> -->",
        "<!--\n<img src=a.png>\n-->",
        "<![CDATA[ <img src=a.png> ]]>",
        "<textarea><img src=a.png></textarea>",
        "<title><img src=a.png></title>",
        "<script/><img src=a.png></script>",  # browsers ignore the '/': still a script
        "<![foo <img src=a.png>",  # a bogus comment up to the first '>'
        "<img\x00src=a.png>",  # the tag name is 'img\ufffdsrc=a.png' in a browser
        "<imgx src=a.png>",
        "<svg><image href=a.png /></svg>",
    ],
)
def test_hidden_or_foreign_images_are_not_found(html):
    assert find_images(html, NAMES) == []


def test_template_and_noscript_images_are_found():
    # Both are markup that a page can show (an instantiated template, no-JS visitors).
    assert srcs("<template><img src=t.png></template><noscript><img src=n.png></noscript>") == ["t.png", "n.png"]


def test_text_after_hidden_blocks_is_scanned():
    html = '<script>"<img src=x>"</script><!-- <img src=y> --><textarea><img></textarea><img src=z.png>'
    assert srcs(html) == ["z.png"]


@pytest.mark.parametrize(
    "html, src",
    [
        ("<img src=a.png>", "a.png"),
        ("<img/>", None),
        ("<img src=a.png/>", "a.png/"),  # HTML5: the '/' belongs to an unquoted value
        ("<img src='a.png' />", "a.png"),
        ('<IMG SRC="A.PNG">', "A.PNG"),
        ("<Img\n  src\n  =\n  'a b.png'\n>", "a b.png"),
        ("<img alt src=a.png>", "a.png"),
        ("<img src=first.png src=second.png>", "first.png"),  # the first duplicate wins
        ('<img src="a.png?x=1&amp;y=2">', "a.png?x=1&y=2"),
        ('<img src="a.png?x=1&copy=2">', "a.png?x=1&copy=2"),  # no ';' before '=': literal
        ('<img src="&#97;&#x62;.png">', "ab.png"),
        ('<img src="  a.png\n">', "a.png"),
        ('<img alt="x > y" src="a.png">', "a.png"),
        ("<img/src=a.png>", "a.png"),
        ('<img src="a.png"class="x">', "a.png"),
        ('<img title="a\'b" src=\'c"d.png\'>', 'c"d.png'),
    ],
)
def test_attribute_syntax(html, src):
    assert one(html).src == src


def test_offsets_cover_the_tag_exactly_across_lines_and_crlf():
    html = "<p>x</p>\r\n<p>\n  <img\r\n src=a.png\n  alt='é'>\n</p>\n\n<IMG src=b.png/>tail"
    tags = find_images(html, NAMES)
    assert [html[t.start : t.end] for t in tags] == ["<img\r\n src=a.png\n  alt='é'>", "<IMG src=b.png/>"]


def test_classes_and_srcset():
    tag = one('<img class="  a\tb\nc  a" class="ignored" srcset="a.png 1x, b.png 2x" src=a.png>')
    assert tag.classes == ["a", "b", "c", "a"]
    assert tag.srcset == "a.png 1x, b.png 2x"
    assert one("<img class='a\xa0b' src=x>").classes == ["a\xa0b"]  # only ASCII whitespace splits


@pytest.mark.parametrize(
    "classes, label",
    [("invert", "invert"), ("x invert-not", "keep"), ("invert-auto", None), ("invert invert-not", "keep"), ("", None)],
)
def test_explicit_label(classes, label):
    assert one(f'<img class="{classes}" src=a.png>').explicit_label == label


def test_custom_class_names():
    names = ClassNames.from_settings(Settings(class_invert="dk-inv", class_keep="dk-keep"))
    assert find_images("<img class=dk-inv src=a>", names)[0].explicit_label == "invert"
    assert find_images("<img class=dk-keep src=a>", names)[0].explicit_label == "keep"
    assert find_images("<img class=invert src=a>", names)[0].explicit_label is None


@pytest.mark.parametrize(
    "html",
    [
        "<img src=a.png#only-light>",
        "<img src='a.png#only-dark'>",
        "<img src=a.png#gh-light-mode-only>",
        "<img src=a.png#gh-dark-mode-only>",
        "<img src=a.png class=only-dark>",
        "<img src=a.png class='x only-light'>",
        "<img src=a.png class=dark-light>",
        "<img src=a.png class=light-only>",
        "<img src=a.png class=dark-only>",
        '<picture><source srcset=d.png media="(prefers-color-scheme: dark)"><img src=a.png></picture>',
        "<picture><source srcset=w.png media='(min-width: 800px)'><img src=a.png></picture>",
        "<picture><img src=a.png><source media=print srcset=p.png></picture>",  # order does not matter
        "<picture><source media=x srcset=d.png><div><img src=a.png></div>",  # unclosed picture
    ],
)
def test_per_scheme_images_are_skipped(html):
    assert one(html).skip_reason == "per-scheme"


def test_picture_without_media_and_after_picture_is_not_skipped():
    html = (
        "<picture><source srcset=a.webp type=image/webp><img src=a.png></picture>"
        "<picture><source media=x srcset=d.png><img src=b.png></picture><img src=c.png>"
        "<picture><picture><source media=x><img src=d.png></picture><img src=e.png></picture>"
    )
    assert [t.skip_reason for t in find_images(html, NAMES)] == [None, "per-scheme", None, "per-scheme", None]


@pytest.mark.parametrize(
    "html, reason, remote",
    [
        ("<img alt=x>", "no-src", False),
        ("<img src>", "no-src", False),
        ("<img src='  '>", "no-src", False),
        ("<img src='data:image/png;base64,AAAA'>", "data-uri", False),
        ("<img src=' DATA:image/svg+xml,<svg/>'>", "data-uri", False),
        ("<img src=https://example.com/a.png>", None, True),
        ("<img src=HTTP://example.com/a.png>", None, True),
        ("<img src=//cdn.example.com/a.png>", None, True),
        ("<img src=/a.png>", None, False),
        ("<img src=../a.png>", None, False),
    ],
)
def test_skip_reason_and_remote(html, reason, remote):
    tag = one(html)
    assert (tag.skip_reason, tag.remote) == (reason, remote)


@pytest.mark.parametrize(
    "html",
    [
        "<img", "<img src='", '<img src="a.png', "<img src=a.png", "<", "</", "<!", "<!-", "<!--", "<![",
        "<![CDATA[", "<![if", "<!DOCTYPE", "<?", "&", "&#", "&#x;", "<img src='a>", '<img "=">', "<img ==>",
        "<script>", "<style><img>", "<textarea>", "<picture><source media>", "</picture></picture>",
        "<img src=&>", "\x00<img\x00>", "<img src=a><<<>>>", "<!--><img src=a>--><img src=b>", "<img src='a'''>",
    ],
)
def test_malformed_html_never_raises(html):
    tags = find_images(html, NAMES)
    assert rewrite_all(html) is not None
    for tag in tags:
        assert html[tag.start] == "<" and html[tag.end - 1] == ">"
    assert link_stylesheet(html, "x.css") is not None


def _attrs_by_characters(raw: str) -> list[tuple]:
    """The HTML5 tokenizer's attribute states, one character at a time: the reference the
    rewriter's regular expression must agree with (it was the rewriter's own code until it
    proved too slow for pages with many images)."""
    ws = " \t\n\r\f"
    n, i = len(raw) - 1, 1
    while i < n and raw[i] not in ws and raw[i] != "/":
        i += 1
    attrs = []
    while True:
        while i < n and (raw[i] in ws or raw[i] == "/"):
            i += 1
        if i >= n:
            return attrs
        name_start, i = i, i + 1
        while i < n and raw[i] not in ws and raw[i] not in "/=":
            i += 1
        name_end = j = i
        while j < n and raw[j] in ws:
            j += 1
        if j >= n or raw[j] != "=":
            attrs.append((raw[name_start:i].lower(), name_end, None, name_end, name_end, False, name_end))
            continue
        j += 1
        while j < n and raw[j] in ws:
            j += 1
        if j < n and raw[j] in "\"'":
            close = raw.find(raw[j], j + 1, n)
            close = n if close < 0 else close
            attrs.append((raw[name_start:name_end].lower(), name_end, raw[j + 1:close], j + 1, close, True, min(close + 1, n)))
            i = close + 1
        else:
            k = j
            while k < n and raw[k] not in ws:
                k += 1
            attrs.append((raw[name_start:name_end].lower(), name_end, raw[j:k], j, k, False, k))
            i = k


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=" \t\n\r\f/=\"'aB>&-\u00a0", max_size=40))
def test_attribute_scanner_agrees_with_the_tokenizer_states(body):
    from invertornot_ssg.htmlrewrite import _scan_attrs

    raw = f"<img{body}>"
    got = [(a.name, a.name_end, a.value, a.value_start, a.value_end, a.quoted, a.end) for a in _scan_attrs(raw)]
    assert got == _attrs_by_characters(raw)


# --- rewriting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, after",
    [
        ('<img class="a b" src=x>', '<img class="a b invert-auto" src=x data-invertornot="invert">'),
        ("<img src=x>", '<img src=x class="invert-auto" data-invertornot="invert">'),
        ("<img src='x' />", "<img src='x' class=\"invert-auto\" data-invertornot=\"invert\" />"),
        ('<img src="x"/>', '<img src="x" class="invert-auto" data-invertornot="invert"/>'),
        ("<img src=x/>", '<img src=x/ class="invert-auto" data-invertornot="invert">'),  # src stays 'x/'
        ("<img>", '<img class="invert-auto" data-invertornot="invert">'),
        ("<img/>", '<img class="invert-auto" data-invertornot="invert"/>'),
        ("<IMG\nSRC=x\n>", '<IMG\nSRC=x class="invert-auto" data-invertornot="invert"\n>'),
        ("<img class=a src=x>", '<img class="a invert-auto" src=x data-invertornot="invert">'),
        ("<img class src=x>", '<img class="invert-auto" src=x data-invertornot="invert">'),
        ("<img class='a ' src=x>", "<img class='a invert-auto' src=x data-invertornot=\"invert\">"),
        ('<img class="a invert-not-auto b">', '<img class="a b invert-auto" data-invertornot="invert">'),
        ("<img class='invert-not-auto'>", "<img class='invert-auto' data-invertornot=\"invert\">"),
        ("<img data-invertornot='keep' src=x>", "<img data-invertornot='invert' src=x class=\"invert-auto\">"),
        ("<img DATA-INVERTORNOT=keep>", '<img DATA-INVERTORNOT="invert" class="invert-auto">'),
        ("<img data-invertornot>", '<img data-invertornot="invert" class="invert-auto">'),
        ('<img class="x" class="y">', '<img class="x invert-auto" class="y" data-invertornot="invert">'),
        ('<img class="a&amp;b">', '<img class="a&amp;b invert-auto" data-invertornot="invert">'),
    ],
)
def test_rewrite_examples(before, after):
    html = f"<p>before</p>\n{before}\n<p>after</p>"
    assert rewrite_all(html) == f"<p>before</p>\n{after}\n<p>after</p>"


def test_rewrite_escapes_values_and_is_idempotent():
    update = TagUpdate("invert-auto", (), (("data-invertornot-confidence", "0.93"), ("data-note", "a\"b'c<d>&e")))
    once = rewrite_all("<img src=a.png>", update)
    assert once == (
        '<img src=a.png class="invert-auto" data-invertornot-confidence="0.93" '
        'data-note="a&quot;b&#x27;c&lt;d&gt;&amp;e">'
    )
    assert rewrite_all(once, update) == once
    tag = one(once)
    assert tag.src == "a.png" and tag.classes == ["invert-auto"]


def test_rewrite_without_change_keeps_bytes():
    html = "<img class='x\tinvert-auto' data-invertornot=invert src=a>"
    assert rewrite_all(html) == html
    bare = "<img class=invert-auto data-empty>"
    assert rewrite_all(bare, TagUpdate("invert-auto", (), (("data-empty", ""),))) == bare
    assert rewrite(html, {}) == html


@pytest.mark.parametrize(
    "before, after",
    [
        ('<img src=a data-invertornot-backdrop="dark-ink">', '<img src=a class="invert-not-auto">'),
        ("<img data-invertornot-backdrop src=a>", '<img src=a class="invert-not-auto">'),
        ("<img\nDATA-INVERTORNOT-BACKDROP=x\tsrc=a data-invertornot-backdrop=y>", '<img\tsrc=a class="invert-not-auto">'),
        ("<img src=a class=x data-invertornot-backdrop>", '<img src=a class="x invert-not-auto">'),
    ],
)
def test_rewrite_removes_attributes(before, after):
    """A stale backdrop goes, with the whitespace before it; every occurrence, any case."""
    update = TagUpdate("invert-not-auto", remove_attrs=("data-invertornot-backdrop",))
    assert rewrite_all(before, update) == after
    assert rewrite_all(after, update) == after


def test_rewrite_only_touches_the_given_tags():
    html = "<img src=a><p>&amp; text</p><img src=b><img src=c>"
    tags = find_images(html, NAMES)
    out = rewrite(html, {tags[1].start: TagUpdate("invert-not-auto")})
    assert out == '<img src=a><p>&amp; text</p><img src=b class="invert-not-auto"><img src=c>'


def test_rewrite_rejects_offsets_that_are_not_images():
    with pytest.raises(ValueError, match="offset"):
        rewrite("<p><img src=a></p>", {0: AUTO_INVERT})
    with pytest.raises(ValueError, match="offset"):
        rewrite("<!-- <img src=a> -->", {5: AUTO_INVERT})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"add_class": ""},
        {"add_class": "a b"},
        {"add_class": "a", "remove_classes": ("a",)},
        {"add_class": "a", "attrs": (("class", "x"),)},
        {"add_class": "a", "attrs": (("data x", "x"),)},
        {"add_class": "a", "attrs": (("data-x>", "x"),)},
        {"add_class": "a", "attrs": (("data-x", "1"), ("DATA-X", "2"))},
        {"add_class": "a", "attrs": (("data-x", "1"),), "remove_attrs": ("data-x",)},
        {"add_class": "a", "remove_attrs": ("class",)},
    ],
)
def test_tag_update_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        TagUpdate(**kwargs)


# --- stylesheet link -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, after",
    [
        ("<html><head><title>t</title></head><body>", '<html><head><title>t</title><link rel="stylesheet" href="{h}"></head><body>'),
        ("<HEAD lang=en><meta charset=utf-8><body>", '<HEAD lang=en><link rel="stylesheet" href="{h}"><meta charset=utf-8><body>'),
        ("<title>t</title></head><body>", '<title>t</title><link rel="stylesheet" href="{h}"></head><body>'),
        ("<head><script>'</head>'</script><!-- </head> --></head>", '<head><script>\'</head>\'</script><!-- </head> --><link rel="stylesheet" href="{h}"></head>'),
        ("<p>a fragment, no head</p>", "<p>a fragment, no head</p>"),
    ],
)
def test_link_stylesheet(before, after):
    href = "../assets/invertornot.css"
    assert link_stylesheet(before, href) == after.format(h=href)
    assert link_stylesheet(link_stylesheet(before, href), href) == link_stylesheet(before, href)


def test_link_stylesheet_escapes_and_recognises_an_existing_link():
    out = link_stylesheet("<head></head>", 'a&b".css')
    assert out == '<head><link rel="stylesheet" href="a&amp;b&quot;.css"></head>'
    assert link_stylesheet(out, 'a&b".css') == out
    existing = "<head><LINK REL=stylesheet HREF=x.css></head>"
    assert link_stylesheet(existing, "x.css") == existing


# --- properties over generated pages ---------------------------------------------------------

WORDS = st.sampled_from(["a", "b", "x y", " ", "\n", "\r\n", "\t", "é", "<3", "a < b", "1 > 0", "-", "'", '"', "="])
ENTITIES = st.sampled_from(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x2F;", "&copy;", "&nbsp;", "&bogus;"])
TEXT = st.lists(st.one_of(WORDS, ENTITIES), max_size=5).map("".join)


def _value(alphabet: str, min_size: int = 0) -> st.SearchStrategy[str]:
    chunk = st.one_of(st.text(alphabet=alphabet, min_size=1, max_size=3), ENTITIES)
    return st.lists(chunk, min_size=min_size, max_size=2).map("".join)


ATTR_NAME = st.sampled_from(["src", "SRC", "class", "Class", "alt", "srcset", "data-invertornot", "title", "width", "x"])
CLASS_VALUE = st.lists(st.sampled_from(["a", "b", "invert", "invert-auto", "invert-not-auto", "only-dark"]), max_size=3)
ATTR = st.one_of(
    ATTR_NAME,  # no value
    st.tuples(ATTR_NAME, st.sampled_from(["=", " = ", "=\n"]), _value("ab./ =>'\n<é")).map(lambda t: f'{t[0]}{t[1]}"{t[2]}"'),
    st.tuples(ATTR_NAME, _value('ab./ =>"\n')).map(lambda t: f"{t[0]}='{t[1]}'"),
    st.tuples(ATTR_NAME, _value("ab./_<é", min_size=1)).map(lambda t: f"{t[0]}={t[1]}"),
    CLASS_VALUE.map(lambda c: f'class="{" ".join(c)}"'),
)
SEP = st.sampled_from([" ", "\n", "\t", "  ", " / ", "\r\n "])


@st.composite
def img_tag(draw) -> str:
    attrs = draw(st.lists(st.tuples(SEP, ATTR), max_size=4))
    name = draw(st.sampled_from(["img", "IMG", "Img"]))
    end = draw(st.sampled_from([">", "/>", " />", "\n>"]))
    return "<" + name + "".join(s + a for s, a in attrs) + end


CONTAINERS = [
    ("<div class='c'>", "</div>"), ("<p>", "</p>"), ('<span title="a>b">', "</span>"), ("<template>", "</template>"),
    ("<picture>", "</picture>"), ("<picture><source media='(prefers-color-scheme: dark)' srcset=d.png>", "</picture>"),
]
HIDING = [("<!--", "-->"), ("<script>", "</script>"), ("<style>", "</style>"), ("<textarea>", "</textarea>")]


def _join(children: list[tuple[str, int]], open_: str = "", close: str = "", hidden: bool = False) -> tuple[str, int]:
    return open_ + "".join(h for h, _ in children) + close, 0 if hidden else sum(n for _, n in children)


# Each fragment comes with the number of <img> tags a browser would render from it.
IMG = img_tag().map(lambda t: (t, 1))
LEAF = st.one_of(TEXT.map(lambda t: (t, 0)), IMG)
FRAGMENT = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.tuples(st.lists(children, max_size=4), st.sampled_from(CONTAINERS)).map(lambda t: _join(t[0], *t[1])),
        # Only leaves go inside hiding elements: a nested '-->' or '</script>' would end them early.
        st.tuples(st.lists(LEAF, max_size=3), st.sampled_from(HIDING)).map(lambda t: _join(t[0], *t[1], hidden=True)),
    ),
    max_leaves=8,
)


@st.composite
def page(draw) -> tuple[str, int]:
    parts = draw(st.lists(st.one_of(IMG, FRAGMENT), min_size=1, max_size=4))
    head = draw(st.sampled_from(["", "<html><head><title>t</title></head><body>", "<head>"]))
    return head + "".join(h for h, _ in parts), sum(n for _, n in parts)


# Anything goes: random pieces of markup syntax, for "never raises" and the invariants.
JUNK = st.lists(
    st.one_of(
        st.sampled_from([
            "<", ">", "/", "=", '"', "'", " ", "\n", "!", "-", "--", "[", "]", "&", "#", ";", "?", "\x00", "\xa0",
            "img", "IMG", "src", "class", "a", "<img", "<img ", "<!--", "-->", "<![", "CDATA[", "]]>", "<!DOCTYPE",
            "<script>", "</script>", "<textarea>", "</textarea>", "<picture>", "<source media=x>", "</picture>",
            "<head>", "</head>", "&amp;", "&copy", "invert-auto", "<?", "</img>",
        ]),
        st.text(max_size=3),
        img_tag(),
    ),
    max_size=20,
).map("".join)

UPDATE = st.builds(
    lambda add, remove, attrs: TagUpdate(add, tuple(c for c in remove if c != add), tuple(attrs)),
    st.sampled_from(["invert-auto", "invert-not-auto", "x"]),
    st.lists(st.sampled_from(["invert-auto", "invert-not-auto", "a", "only-dark"]), max_size=2),
    st.lists(
        st.tuples(st.sampled_from(["data-invertornot", "data-invertornot-confidence", "alt", "Title"]), st.text(alphabet="ab \"'<>&=/\n", max_size=5)),
        max_size=3,
        unique_by=lambda a: a[0].lower(),
    ),
)
PROPERTY = settings(max_examples=300, deadline=None)


class _Oracle(HTMLParser):
    """The stdlib's own attribute parsing, as a second opinion on generated (well-behaved) pages."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "textarea":  # html.parser < 3.13 does not know it holds text
            self.set_cdata_mode(tag)
        if tag == "img":
            first: dict[str, str | None] = {}
            for name, value in attrs:
                first.setdefault(name, value)
            self.imgs.append(first)


def _outside(html: str, tags: list[ImgTag]) -> list[str]:
    """The text between and around the tags."""
    bounds = [0] + [b for t in tags for b in (t.start, t.end)] + [len(html)]
    return [html[a:b] for a, b in zip(bounds[::2], bounds[1::2])]


def _check_rewrite(html: str, data: st.DataObject) -> tuple[list[ImgTag], dict[int, TagUpdate], str, list[ImgTag]]:
    tags = find_images(html, NAMES)
    updates = {t.start: data.draw(UPDATE) for t in tags}
    out = rewrite(html, updates)
    new_tags = find_images(out, NAMES)
    assert len(new_tags) == len(tags)
    assert _outside(out, new_tags) == _outside(html, tags)
    for old, new in zip(tags, new_tags):
        update = updates[old.start]
        kept = [c for c in old.classes if c not in update.remove_classes]
        assert new.classes == kept + ([update.add_class] if update.add_class not in kept else [])
        assert (new.src, new.srcset) == (old.src, old.srcset)
    # The same updates on the rewritten page change nothing.
    again = {new.start: updates[old.start] for old, new in zip(tags, new_tags)}
    assert rewrite(out, again) == out
    return tags, updates, out, new_tags


@PROPERTY
@given(page(), st.data())
def test_generated_pages_find_every_visible_image_and_rewrite_only_those(generated, data):
    html, visible = generated
    assert rewrite(html, {}) == html
    tags, updates, out, _ = _check_rewrite(html, data)
    assert len(tags) == visible
    # The stdlib parser agrees on what each rewritten tag now says.
    before, after = _Oracle(html).imgs, _Oracle(out).imgs
    assert len(before) == len(after) == visible
    for tag, old, new in zip(tags, before, after):
        update = updates[tag.start]
        for name, value in update.attrs:
            assert (new[name.lower()] or "") == value  # html.parser says None for a bare attribute
        assert update.add_class in (new["class"] or "").split()
        changed = {"class"} | {name.lower() for name, _ in update.attrs}
        assert {k: v for k, v in old.items() if k not in changed} == {k: v for k, v in new.items() if k not in changed}


@PROPERTY
@given(JUNK, st.data())
def test_junk_never_raises_and_keeps_the_invariants(html, data):
    assert rewrite(html, {}) == html
    for tag in find_images(html, NAMES):
        assert html[tag.start] == "<" and html[tag.end - 1] == ">"
    _, updates, _, _ = _check_rewrite(html, data)
    linked = link_stylesheet(html, "x.css")
    assert link_stylesheet(linked, "x.css") == linked
    _check_rewrite_page(html, updates)


def _check_rewrite_page(html: str, updates: dict[int, TagUpdate], href: str = "x.css") -> None:
    """rewrite_page, from one scan (or the memo of one), gives the bytes of rewrite + link_stylesheet,
    names exactly the tags whose text changed, and knows what a scan of the new text finds."""
    expected = link_stylesheet(rewrite(html, updates), href)
    memo: dict = {}
    for scan in (scan_page(html, NAMES), scan_page(html, NAMES, memo), scan_page(html, NAMES, memo)):
        new = rewrite_page(html, updates, scan, href)
        assert new.html == expected
        assert new.linked == (expected != rewrite(html, updates))
        assert [t.start for t in new.changed] == [
            start for start in sorted(updates) if rewrite(html, {start: updates[start]}) != html
        ]
        assert new.memo_entry() == scan_page(new.html, NAMES).memo_entry()
    unchanged = rewrite_page(html, {}, scan_page(html, NAMES))
    assert (unchanged.html, unchanged.changed, unchanged.linked) == (html, [], False)
    assert unchanged.memo_entry() == scan_page(html, NAMES).memo_entry()


@PROPERTY
@given(page(), st.data())
def test_rewrite_page_is_rewrite_then_link_stylesheet(generated, data):
    html, _ = generated
    updates = {t.start: data.draw(UPDATE) for t in find_images(html, NAMES)}
    _check_rewrite_page(html, updates, data.draw(st.sampled_from(["x.css", "../a&b.css"])))
    out = rewrite_page(html, updates, scan_page(html, NAMES), "x.css").html
    again = {t.start: u for t, u in zip(find_images(out, NAMES), (updates[s] for s in sorted(updates)))}
    twice = rewrite_page(out, again, scan_page(out, NAMES), "x.css")
    assert (twice.html, twice.changed, twice.linked) == (out, [], False)  # applied twice: a no-op


@pytest.mark.parametrize(
    "html",
    [
        '<html><head><img src="h.png"></head><body><img src=b.png></body>',  # a tag where the link goes
        "<head><img src=a.png><title>t</title>",  # no </head>: after <head>
        '<head><link rel=stylesheet href="x.css"></head><img src=a.png>',  # linked already
        "<p><img src=a.png></p>",  # no head: images only
    ],
)
def test_rewrite_page_examples(html):
    _check_rewrite_page(html, {t.start: AUTO_INVERT for t in find_images(html, NAMES)})


def test_memo_gives_what_a_scan_gives_and_ignores_what_does_not_fit() -> None:
    pages = [
        '<p><img src="a.png" class="x invert"><!-- <img src="c.png"> --><img src=b.svg alt=b></p>',
        '<picture><source media="(prefers-color-scheme: dark)" srcset="d.png"><img src="l.png"></picture>',
        "<p>no images</p>",
    ]
    memo: dict = {}
    for html in pages:
        assert find_images(html, NAMES, memo) == find_images(html, NAMES)
    assert len(memo) == 2  # a page without "<img" is not scanned at all
    for html in pages:
        from_memo = find_images(html, NAMES, memo)
        assert from_memo == find_images(html, NAMES)
        assert rewrite_all(html) == rewrite(html, {t.start: AUTO_INVERT for t in from_memo}, from_memo)
    (key,) = [k for k, (starts, *_) in memo.items() if len(starts) == 2]
    memo[key][1][0] = '<img src="other.png">'  # does not match the page: scanned again
    assert find_images(pages[0], NAMES, memo) == find_images(pages[0], NAMES)
    memo[key] = "damaged"
    assert find_images(pages[0], NAMES, memo) == find_images(pages[0], NAMES)
    memo[key] = memo[key][:3] if isinstance(memo[key], list) else memo[key]  # a memo of format 1
    assert find_images(pages[0], NAMES, memo) == find_images(pages[0], NAMES)


def test_page_memo_keeps_links_and_head() -> None:
    html = '<html><head><link rel=stylesheet href="a.css"><link rel=icon></head><body><p>no images</p>'
    memo: dict = {}
    scan = scan_page(html, NAMES, memo)
    assert scan.link_hrefs == {"a.css"} and html.startswith("</head>", scan.head_at) and not scan.images
    assert len(memo) == 1  # a whole page is kept even without images: its head is needed
    assert scan_page(html, NAMES, memo) == scan
    (key,) = memo
    memo[key][5] = len(html) + 5  # a head past the page's end: scanned again
    assert scan_page(html, NAMES, memo) == scan
