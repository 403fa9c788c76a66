"""Property tests of `<img src>` resolution (sitedir.SiteResolver, the MkDocs SiteFiles) and of remote
URL normalisation: whatever the src, nothing raises, and a src only ever leads to a file whose real
path is inside the site (a `..`, an encoded `%2e%2e`, a backslash, a link to a file or a folder
outside: all refused)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invertornot_ssg.remote import normalize_url
from invertornot_ssg.sitedir import SiteResolver

SEGMENTS = st.sampled_from([
    "", ".", "..", "%2e%2e", "%2E.", "img", "a.png", "b.png", "link-out.png", "outdir", "secret.png",
    "loop.png", "%2F", "%00", "%E9", "caf%C3%A9.png", "é", "\\", "..\\..", "//", "~", "site", "outside.png",
])
SRC = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=7).map("/".join),
    st.tuples(
        st.sampled_from(["", "/", "//", "http://example.org/", "https://site.test/docs/", "//site.test/", "file:///",
                         "data:image/png;base64,", "HTTP://SITE.TEST/docs/"]),
        st.lists(SEGMENTS, max_size=6).map("/".join),
        st.sampled_from(["", "?v=1", "#x", "?a=%2e%2e/../b", " "]),
    ).map("".join),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("resolve")
    root = base / "site"
    (root / "img").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "img" / "a.png").write_bytes(b"a")
    (root / "docs" / "b.png").write_bytes(b"b")
    (base / "outside.png").write_bytes(b"outside")
    (base / "outdir").mkdir()
    (base / "outdir" / "secret.png").write_bytes(b"secret")
    (root / "img" / "link-out.png").symlink_to("../../outside.png")
    (root / "img" / "outdir").symlink_to("../../outdir")
    (root / "img" / "loop.png").symlink_to("loop.png")
    return {"root": root, "resolvers": [
        SiteResolver(root),
        SiteResolver(root, ["https://site.test/docs/"]),
        SiteResolver(root, ["/docs"]),
    ]}


def inside(root: Path, path: Path) -> bool:
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == top or top in real.parents


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(src=SRC, page_dir=st.sampled_from(["", "img", "docs/guide", "img/outdir"]))
def test_any_src_resolves_inside_the_site_or_not_at_all(tree: dict, src: str, page_dir: str) -> None:
    for resolver in tree["resolvers"]:
        resolved = resolver.resolve(src, page_dir)
        if resolved is None or resolved.path is None:
            continue
        assert resolved.problem is None
        assert inside(tree["root"], resolved.path), (src, page_dir, resolved)
        assert not resolved.key.startswith(("../", "/")) and resolved.key != ".."


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(src=SRC, page_url=st.sampled_from(["", "img/", "guide/setup/", "guide/setup.html"]))
def test_mkdocs_site_files_never_lead_outside(tree: dict, src: str, page_url: str) -> None:
    pytest.importorskip("mkdocs")
    from invertornot_mkdocs.urls import SiteFiles

    resolved = SiteFiles(tree["root"], "https://site.test/docs/").for_page(page_url)(src)
    if resolved is not None and resolved.path is not None:
        assert inside(tree["root"], resolved.path), (src, page_url, resolved)


@pytest.mark.parametrize(
    ("src", "problem"),
    [
        ("../outside.png", "is outside the site root"),
        ("img/../../outside.png", "is outside the site root"),
        ("/../outside.png", "is outside the site root"),
        ("%2e%2e/outside.png", "is outside the site root"),
        ("img\\..\\..\\outside.png", "is outside the site root"),
        ("img/link-out.png", "is a link to a file outside the site root"),
        ("img/outdir/secret.png", "is a link to a file outside the site root"),
        ("img/a.png%00.txt", "holds a NUL character"),
    ],
)
def test_escapes_are_named(tree: dict, src: str, problem: str) -> None:
    resolved = tree["resolvers"][0].resolve(src, "")
    assert resolved is not None and resolved.path is None and problem in resolved.problem


@settings(max_examples=300, deadline=None)
@given(src=st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(["http://", "https://", "//", "HTTP://"]), st.text(max_size=40)).map("".join),
))
def test_normalize_url_never_raises_and_gives_ascii_paths(src: str) -> None:
    url = normalize_url(src)
    if url is not None:
        assert url.startswith(("http://", "https://"))
        _, _, rest = url.partition("://")
        path = rest[rest.find("/"):] if "/" in rest else ""
        assert path.isascii() and not any(c in path for c in " \t\r\n#"), url
