"""A built site directory: finding pages, resolving image URLs to files (base URLs, escapes,
links), atomic page writes and stylesheet hrefs. No model is loaded here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from invertornot_ssg import sitedir
from invertornot_ssg.sitedir import BaseURL, SiteResolver, atomic_write, base_href, html_files, relative_href


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    for rel in ("img/a.png", "img/my photo.JPG", "posts/one/cover.gif", "_images/plot.png", "index.html"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"secret")
    return root


def test_html_files_sorted_and_skip_hidden(tmp_path: Path) -> None:
    for rel in ("b.html", "a/index.HTM", "a/x.css", ".git/x.html", "z/.hidden.html", "z/page.html"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = [p.relative_to(tmp_path).as_posix() for p in html_files(tmp_path)]
    assert found == ["b.html", "a/index.HTM", "z/page.html"]


@pytest.mark.parametrize(
    ("value", "host", "prefix"),
    [
        ("/docs/", None, "/docs/"),
        ("/docs", None, "/docs/"),
        ("docs", None, "/docs/"),
        ("/", None, "/"),
        ("https://Example.org", "example.org", "/"),
        ("https://example.org/docs", "example.org", "/docs/"),
        ("//example.org/a%20b/", "example.org", "/a b/"),
    ],
)
def test_base_url_parse(value: str, host: str | None, prefix: str) -> None:
    assert BaseURL.parse(value) == BaseURL(host, prefix)


@pytest.mark.parametrize(
    ("src", "page_dir", "key"),
    [
        ("img/a.png", "", "img/a.png"),
        ("./img/a.png?v=3#x", "", "img/a.png"),
        ("../../img/a.png", "posts/one", "img/a.png"),
        ("cover.gif", "posts/one", "posts/one/cover.gif"),
        ("/img/a.png", "posts/one", "img/a.png"),
        ("img/my%20photo.JPG", "", "img/my photo.JPG"),
        ("img/my photo.JPG", "", "img/my photo.JPG"),
        ("../_images/plot.png", "api", "_images/plot.png"),
    ],
)
def test_resolves_relative_and_site_absolute(site: Path, src: str, page_dir: str, key: str) -> None:
    resolved = SiteResolver(site).resolve(src, page_dir)
    assert resolved is not None and resolved.problem is None
    assert resolved.key == key
    assert resolved.path == site.joinpath(*key.split("/"))


@pytest.mark.parametrize(
    "src",
    [
        "https://example.org/docs/img/a.png",
        "http://EXAMPLE.org/docs/img/a.png",
        "//example.org/docs/img/a.png",
        "/docs/img/a.png",
        "../img/a.png",  # relative, from a page in posts/
    ],
)
@pytest.mark.parametrize("base", ["https://example.org/docs/", "https://example.org/docs"])
def test_base_url_is_stripped(site: Path, src: str, base: str) -> None:
    resolved = SiteResolver(site, [base]).resolve(src, "posts")
    assert resolved is not None and resolved.problem is None and resolved.key == "img/a.png"


def test_path_prefix_base(site: Path) -> None:
    resolver = SiteResolver(site, ["/docs/"])
    assert resolver.resolve("/docs/img/a.png").key == "img/a.png"
    assert resolver.resolve("https://example.org/docs/img/a.png") is None  # no host given: remote


@pytest.mark.parametrize(
    ("src", "base"),
    [
        ("https://cdn.example.com/img/a.png", "https://example.org/docs/"),
        ("//cdn.example.com/img/a.png", ""),
        ("https://example.org/img/a.png", ""),
        ("data:image/png;base64,AAAA", ""),
        ("blob:https://example.org/123", ""),
        ("mailto:someone@example.org", ""),
        ("#top", ""),
        ("?page=2", ""),
    ],
)
def test_not_ours(site: Path, src: str, base: str) -> None:
    assert SiteResolver(site, [base] if base else []).resolve(src, "") is None


@pytest.mark.parametrize(
    ("src", "page_dir", "base", "problem"),
    [
        ("../secret.png", "", "", "outside the site root"),
        ("../../../secret.png", "posts/one", "", "outside the site root"),
        ("%2e%2e/secret.png", "", "", "outside the site root"),
        ("..\\secret.png", "", "", "outside the site root"),
        ("/docs/../secret.png", "", "/docs/", "outside the site root"),
        ("/other/img/a.png", "", "/docs/", "outside the site root"),
        ("https://example.org/other/a.png", "", "https://example.org/docs/", "outside the site root"),
        ("img/missing.png", "", "", "missing from the site directory"),
        ("img/", "", "", "is a directory"),
        ("img/a%00.png", "", "", "NUL"),
    ],
)
def test_refused(site: Path, src: str, page_dir: str, base: str, problem: str) -> None:
    resolved = SiteResolver(site, [base] if base else []).resolve(src, page_dir)
    assert resolved is not None and resolved.path is None
    assert problem in resolved.problem


def test_symlink_out_of_root_is_refused_unless_allowed(site: Path, tmp_path: Path) -> None:
    (site / "img" / "link.png").symlink_to(tmp_path / "secret.png")
    resolved = SiteResolver(site).resolve("img/link.png")
    assert resolved.path is None and "outside the site root" in resolved.problem
    allowed = SiteResolver(site, allowed_roots=[tmp_path]).resolve("img/link.png")
    assert allowed.problem is None and allowed.path == site / "img" / "link.png"


def test_base_href(site: Path) -> None:
    page = site / "posts" / "one" / "index.html"
    assert base_href('<html><head><base href="https://example.org/docs/"></head>') == "https://example.org/docs/"
    assert base_href("<head><BASE target=_top HREF=/docs/></head>") == "/docs/"
    assert base_href("<head></head><body><base href='/late/'>") is None
    resolver = SiteResolver(site, ["https://example.org/docs/"])
    assert resolver.for_page(page, "https://example.org/docs/")("img/a.png").key == "img/a.png"
    assert resolver.for_page(page, "../../")("img/a.png").key == "img/a.png"
    assert resolver.for_page(page, "/docs/")("img/a.png").key == "img/a.png"
    assert resolver.for_page(page)("cover.gif").key == "posts/one/cover.gif"


@pytest.mark.parametrize(
    ("page_id", "href"),
    [("index.html", "invertornot.css"), ("a/b/index.html", "../../invertornot.css"), ("api/x.html", "../invertornot.css")],
)
def test_relative_href(page_id: str, href: str) -> None:
    assert relative_href(page_id) == href


def test_absolute_href() -> None:
    assert sitedir.absolute_href("https://example.org/blog") == "https://example.org/blog/invertornot.css"
    assert sitedir.absolute_href("/docs/") == "/docs/invertornot.css"
    assert sitedir.absolute_href("") == "/invertornot.css"


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_bytes(b"old")
    os.chmod(page, 0o640)
    atomic_write(page, b"new")
    assert page.read_bytes() == b"new"
    assert os.stat(page).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["index.html"]


def test_atomic_write_interrupted_leaves_the_old_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "index.html"
    page.write_bytes(b"<html>old</html>")

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sitedir.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(page, b"<html>new, half-")
    assert page.read_bytes() == b"<html>old</html>"
    assert os.listdir(tmp_path) == ["index.html"]


def test_write_stylesheet_only_when_changed(tmp_path: Path) -> None:
    assert sitedir.write_stylesheet(tmp_path, "a{}") is True
    mtime = os.stat(tmp_path / "invertornot.css").st_mtime_ns
    assert sitedir.write_stylesheet(tmp_path, "a{}") is False
    assert os.stat(tmp_path / "invertornot.css").st_mtime_ns == mtime
    assert sitedir.write_stylesheet(tmp_path, "b{}") is True
