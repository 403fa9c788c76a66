"""The MkDocs plugin: its config schema (in sync with Settings), src resolution against real MkDocs
URLs, front matter, and real `mkdocs build`s of sample_site/mkdocs/ with the real default embedder."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from mkdocs.config import load_config
from mkdocs.config.base import get_schema
from mkdocs.exceptions import Abort, PluginError
from mkdocs.structure.files import File, get_files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

from invertornot_mkdocs import frontmatter
from invertornot_mkdocs.config import InvertOrNotConfig
from invertornot_mkdocs.plugin import STYLESHEET_URI, settings_from_config
from invertornot_mkdocs.urls import SiteFiles, page_url_dir
from invertornot_ssg import css
from invertornot_ssg.errors import ConfigError
from invertornot_ssg.htmlrewrite import ClassNames, find_images
from invertornot_ssg import themes
from invertornot_ssg.settings import Settings, option_names

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_site" / "mkdocs"

# --- config: one schema, two front doors --------------------------------------------------------


def test_config_options_are_exactly_the_settings_fields() -> None:
    schema = get_schema(InvertOrNotConfig)
    assert [name for name, _ in schema] == option_names()
    defaults = Settings()
    for name, option in schema:
        default = option.default
        expected = getattr(defaults, name)
        assert (tuple(default) if isinstance(default, list) else default) == expected, name
        assert type(expected) in (bool, str, float, tuple), name


def validated(values: dict) -> InvertOrNotConfig:
    cfg = InvertOrNotConfig()
    cfg.load_dict(values)
    errors, warnings = cfg.validate()
    assert not errors and not warnings, (errors, warnings)
    return cfg


def test_empty_config_gives_default_settings() -> None:
    assert settings_from_config(validated({})) == Settings()


def test_every_option_reaches_settings() -> None:
    values = {
        "enabled": False,
        "store": "/tmp/store",
        "model": "clip:ViT-B-32/openai",
        "head": "heads/h.skops",
        "overrides": "labels.yml",
        "write_overrides": False,
        "threshold": 1,  # an integer is fine
        "unsure": 0.1,
        "photo_region": 0.33,
        "class_invert": "a",
        "class_keep": "b",
        "class_invert_auto": "c",
        "class_keep_auto": "d",
        "css": False,
        "dark_selectors": ["html.dark"],
        "background": "#000000",
        "backdrop": "#eeeeee",
        "remote": True,
        "remote_allow_private": True,
        "remote_timeout": 2.5,
    }
    assert sorted(values) == sorted(option_names())
    settings = settings_from_config(validated(values))
    for name in option_names():
        value = getattr(settings, name)
        assert value != getattr(Settings(), name), name
        assert value == (tuple(values[name]) if isinstance(values[name], list) else values[name]), name


@pytest.mark.parametrize(("key", "value"), [("threshold", "high"), ("css", "maybe"), ("dark_selectors", "html.dark")])
def test_config_type_errors(key: str, value: object) -> None:
    cfg = InvertOrNotConfig()
    cfg.load_dict({key: value})
    errors, _ = cfg.validate()
    assert [k for k, _ in errors] == [key]


def test_config_range_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        settings_from_config(validated({"threshold": 2}))
    with pytest.raises(ConfigError, match="class names"):
        settings_from_config(validated({"class_keep": "invert"}))


# --- resolving src against the URLs MkDocs gives pages ------------------------------------------------

IMAGES = ("img/a.png", "img/my chart.png", "guide/local.svg")
PAGES = ("index.md", "about.md", "guide/index.md", "guide/setup.md", "guide/deep/page.md")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for rel in IMAGES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    for rel in PAGES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("# t\n")
    (tmp_path / "secret.png").write_bytes(b"secret")
    return root


@pytest.mark.parametrize("use_directory_urls", [True, False])
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("image", IMAGES)
def test_src_as_mkdocs_writes_it_resolves_to_the_file(docs: Path, use_directory_urls: bool, page: str, image: str) -> None:
    """MkDocs writes a Markdown image as the image's URL relative to the page's URL."""
    page_file = File(page, str(docs), "/site", use_directory_urls)
    image_file = File(image, str(docs), "/site", use_directory_urls)
    src = get_relative_url(image_file.url, page_file.url)  # what _RelativePathTreeprocessor does
    for suffix in ("", "?v=2", "#frag", "?v=2#frag"):
        resolved = SiteFiles(docs, None).for_page(page_file.url)(src + suffix)
        assert resolved is not None and resolved.problem is None, (src, resolved)
        assert resolved.key == image
        assert resolved.path == docs / image


@pytest.mark.parametrize(
    ("url", "folder"),
    [("", ""), ("guide/", "guide"), ("guide/setup/", "guide/setup"), ("about.html", ""), ("guide/setup.html", "guide"),
     ("my%20page/", "my page")],
)
def test_page_url_dir(url: str, folder: str) -> None:
    assert page_url_dir(url) == folder


@pytest.mark.parametrize(
    ("page_url", "src", "key"),
    [
        ("guide/setup/", "../../img/a.png", "img/a.png"),  # guide/setup.md, use_directory_urls: true
        ("guide/setup.html", "../img/a.png", "img/a.png"),  # the same page, use_directory_urls: false
        ("guide/setup/", "../local.svg", "guide/local.svg"),
        ("", "img/my%20chart.png", "img/my chart.png"),  # URL-encoded
        ("", "img/my chart.png", "img/my chart.png"),  # raw HTML, written as is
        ("guide/setup/", "/img/a.png", "img/a.png"),  # site-absolute
        ("guide/setup/", "/img/a.png?x=1#y", "img/a.png"),
        ("about/", "./../img/./a.png", "img/a.png"),
    ],
)
def test_resolve_cases(docs: Path, page_url: str, src: str, key: str) -> None:
    resolved = SiteFiles(docs, None).for_page(page_url)(src)
    assert resolved is not None and resolved.problem is None and resolved.key == key
    assert resolved.path is not None and resolved.path.is_file()


def test_site_absolute_under_site_url_path(docs: Path) -> None:
    site = SiteFiles(docs, "https://example.org/project/")
    resolved = site.for_page("guide/")("/project/img/a.png")
    assert resolved is not None and resolved.key == "img/a.png" and resolved.problem is None
    own_host = site.for_page("")("https://example.org/project/img/a.png")  # the site's own address
    assert own_host is not None and own_host.key == "img/a.png"
    outside = site.for_page("")("/img/a.png")  # same host, outside the site
    assert outside is not None and outside.problem and outside.path is None


@pytest.mark.parametrize(
    "src",
    ["http://example.org/a.png", "https://example.org/a.png", "//cdn.example.org/a.png", "data:image/png;base64,AAAA",
     "#top", "?q=1", "mailto:x@example.org"],
)
def test_not_ours(docs: Path, src: str) -> None:
    assert SiteFiles(docs, None).for_page("guide/")(src) is None


@pytest.mark.parametrize(
    ("page_url", "src"),
    [
        ("", "../secret.png"),
        ("guide/setup/", "../../../secret.png"),
        ("guide/setup/", "../../../../../../etc/passwd"),
        ("", "%2e%2e/secret.png"),
        ("", "..\\secret.png"),  # browsers read '\' as '/'
        ("", "/../secret.png"),
    ],
)
def test_paths_leaving_docs_dir_are_refused(docs: Path, page_url: str, src: str) -> None:
    resolved = SiteFiles(docs, None).for_page(page_url)(src)
    assert resolved is not None and resolved.path is None and "outside" in (resolved.problem or "")


def test_symlink_out_of_docs_dir_is_refused(docs: Path) -> None:
    (docs / "img" / "link.png").symlink_to(docs.parent / "secret.png")
    resolved = SiteFiles(docs, None).for_page("")("img/link.png")
    assert resolved is not None and resolved.path is None and resolved.problem


def test_missing_image_is_a_problem(docs: Path) -> None:
    resolved = SiteFiles(docs, None).for_page("guide/")("img/none.png")
    assert resolved is not None and resolved.path is None and "missing" in (resolved.problem or "")


def test_file_added_to_the_build_outside_docs_dir(tmp_path: Path, docs: Path) -> None:
    """A file another plugin (or the theme) adds to the build is looked up in MkDocs' Files."""
    elsewhere = tmp_path / "generated"
    (elsewhere / "img").mkdir(parents=True)
    (elsewhere / "img" / "gen.png").write_bytes(b"x")
    added = File("img/gen.png", str(elsewhere), "/site", True)
    resolved = SiteFiles(docs, None, [added]).for_page("guide/")("../img/gen.png")
    assert resolved is not None and resolved.problem is None and resolved.path == elsewhere / "img" / "gen.png"


@pytest.mark.parametrize("use_directory_urls", [True, False])
def test_rendered_pages_resolve(tmp_path: Path, docs: Path, use_directory_urls: bool) -> None:
    """Render real pages with MkDocs (Markdown and raw HTML images) and resolve every <img>."""
    (docs / "guide" / "setup.md").write_text(
        "![a](../img/a.png)\n\n![chart](../img/my%20chart.png)\n\n![local](local.svg)\n\n"
        '<img src="/img/a.png" alt="raw, site-absolute">\n'
    )
    (docs / "index.md").write_text("![a](img/a.png)\n\n![chart](<img/my chart.png>)\n")
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(f"site_name: t\nuse_directory_urls: {str(use_directory_urls).lower()}\n")
    config = load_config(str(config_file))
    files = get_files(config)
    classes = ClassNames.from_settings(Settings())
    seen = {}
    for page_src in ("index.md", "guide/setup.md"):
        file = files.get_file_from_path(page_src)
        page = Page(None, file, config)
        page.read_source(config)
        page.render(config, files)
        resolve = SiteFiles(config.docs_dir, config.site_url, files).for_page(page.url)
        for tag in find_images(page.content, classes):
            resolved = resolve(tag.src)
            assert resolved is not None and resolved.problem is None, (page_src, tag.src, resolved)
            seen.setdefault(page_src, []).append(resolved.key)
    assert seen == {
        "index.md": ["img/a.png", "img/my chart.png"],
        "guide/setup.md": ["img/a.png", "img/my chart.png", "guide/local.svg", "img/a.png"],
    }


# --- front matter ----------------------------------------------------------------------------------


def test_front_matter_parse() -> None:
    meta = {"title": "x", "invertornot": {"invert": ["img/a.png", "b.svg"], "keep": "img/p.jpg"}}
    assert frontmatter.parse(meta, "p.md") == [("invert", "img/a.png"), ("invert", "b.svg"), ("keep", "img/p.jpg")]
    assert frontmatter.parse({}, "p.md") == []
    assert frontmatter.parse({"invertornot": None}, "p.md") == []
    assert frontmatter.parse({"invertornot": {"keep": None}}, "p.md") == []


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("img/a.png", "'invertornot'"),
        (["img/a.png"], "'invertornot'"),
        ({"inverted": ["a.png"]}, "'invertornot.inverted'"),
        ({"invert": {"a.png": True}}, "'invertornot.invert'"),
        ({"keep": [1, 2]}, "'invertornot.keep'"),
        ({"keep": [""]}, "'invertornot.keep'"),
        ({"invert": ["a.png"], "keep": ["a.png"]}, "'invertornot'"),
    ],
)
def test_front_matter_malformed(value: object, names: str) -> None:
    with pytest.raises(frontmatter.FrontMatterError) as info:
        frontmatter.parse({"invertornot": value}, "guide/page.md")
    assert str(info.value).startswith("guide/page.md: ") and names in str(info.value)


@pytest.mark.parametrize(
    ("path", "page", "expected"),
    [
        ("img/a.png", "index.md", ["img/a.png"]),
        ("../img/a.png", "guide/page.md", ["img/a.png"]),
        ("img/a.png", "guide/page.md", ["guide/img/a.png", "img/a.png"]),
        ("/img/a.png", "guide/page.md", ["img/a.png"]),
        ("img/my%20chart.png", "index.md", ["img/my%20chart.png", "img/my chart.png"]),
        ("../../etc/passwd", "guide/page.md", []),
    ],
)
def test_front_matter_candidates(path: str, page: str, expected: list[str]) -> None:
    assert frontmatter.candidates(path, page) == expected


# --- small in-process builds (no images to embed: the model is never loaded) --------------------------


def tiny_site(tmp_path: Path, pages: dict[str, str], plugin: str = "invertornot", files: dict[str, bytes] | None = None) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    for rel, text in pages.items():
        (tmp_path / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / rel).write_text(text)
    for rel, data in (files or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: tiny\nplugins:\n  - {plugin}\n")
    return config


def build_in_process(config_file: Path, site_dir: Path, **overrides) -> None:
    from mkdocs.commands.build import build

    build(load_config(str(config_file), site_dir=str(site_dir), **overrides))


def test_malformed_front_matter_fails_the_build(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_site(tmp_path, {"index.md": "---\ninvertornot:\n  keep: 3\n---\n# hi\n"})
    with pytest.raises(Abort):
        build_in_process(config, tmp_path / "site")
    assert "index.md: front matter 'invertornot.keep' must be a list of image paths" in caplog.text


def test_core_errors_become_plugin_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_site(tmp_path, {"index.md": "# hi\n"}, files={"invertornot.yml": b"version: [\n"})
    with pytest.raises(Abort):
        build_in_process(config, tmp_path / "site")
    assert "invertornot.yml:2: invalid YAML" in caplog.text
    cfg = load_config(str(config))
    cfg.plugins["invertornot"].load_config({"threshold": 3})
    with pytest.raises(PluginError, match="threshold"):
        cfg.plugins.on_config(cfg)


def test_stylesheet_added_replaced_or_off(tmp_path: Path) -> None:
    config = tiny_site(tmp_path / "a", {"index.md": "# hi\n"})
    build_in_process(config, tmp_path / "a" / "site")
    written = (tmp_path / "a" / "site" / STYLESHEET_URI).read_text()
    # MkDocs' theme with its default color_mode (light), no toggle: no dark mode, no rule
    assert written == css.stylesheet(Settings(), themes.mkdocs("mkdocs", {"color_mode": "light"}))
    assert '<link href="assets/invertornot.css" rel="stylesheet">' in (tmp_path / "a" / "site" / "index.html").read_text()
    # The site's own extra_css comes after ours, so its rules win by order.
    config.write_text(config.read_text() + "extra_css: [extra.css]\n")
    (tmp_path / "a" / "docs" / "extra.css").write_text("img.invert-auto { filter: none; }\n")
    build_in_process(config, tmp_path / "a" / "site")
    page = (tmp_path / "a" / "site" / "index.html").read_text()
    assert page.index('href="assets/invertornot.css"') < page.index('href="extra.css"')

    own = "img.invert-auto { filter: invert(1); }\n"
    config = tiny_site(tmp_path / "b", {"index.md": "# hi\n", STYLESHEET_URI: own})
    build_in_process(config, tmp_path / "b" / "site")
    assert (tmp_path / "b" / "site" / STYLESHEET_URI).read_text() == own

    config = tiny_site(tmp_path / "c", {"index.md": "# hi\n"}, plugin="invertornot:\n      css: false")
    build_in_process(config, tmp_path / "c" / "site")
    assert not (tmp_path / "c" / "site" / "assets").exists()
    assert "invertornot.css" not in (tmp_path / "c" / "site" / "index.html").read_text()


def test_disabled_touches_nothing(tmp_path: Path) -> None:
    config = tiny_site(tmp_path, {"index.md": "# hi\n"}, plugin="invertornot:\n      enabled: false")
    build_in_process(config, tmp_path / "site")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "mkdocs.yml", "site"]
    assert not (tmp_path / "site" / "assets").exists()


def test_store_inside_docs_dir_warns_unless_hidden(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_site(tmp_path / "a", {"index.md": "# hi\n"}, plugin="invertornot:\n      store: docs/store")
    build_in_process(config, tmp_path / "a" / "site")
    assert "store" in caplog.text and "is inside docs_dir, so it would be published" in caplog.text
    caplog.clear()
    config = tiny_site(tmp_path / "b", {"index.md": "# hi\n"}, plugin="invertornot:\n      store: docs/.store")
    build_in_process(config, tmp_path / "b" / "site")  # MkDocs leaves hidden folders out of the site
    assert "docs_dir" not in caplog.text


def test_overrides_and_head_inside_docs_dir_are_not_published(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A mkdocs.yml that lives inside docs_dir has its invertornot.yml there too: the file, its lock
    and the site's head stay out of the site, and no warning asks to move them where they are."""
    files = {"docs/invertornot.yml": b"images:\n  a.png: keep\n", "docs/invertornot.yml.lock": b"",
             "docs/notes.txt": b"published"}
    config = tiny_site(tmp_path, {"index.md": "# hi\n"}, files=files,
                       plugin="invertornot:\n      overrides: docs/invertornot.yml")
    plugin = load_config(str(config)).plugins["invertornot"]
    plugin.on_config(load_config(str(config)))
    head = plugin.engine.site_head_path()
    assert head.parent == tmp_path / "docs"
    head.write_bytes(b"")
    head.with_suffix(".json").write_text("{}")
    build_in_process(config, tmp_path / "site")
    published = sorted(p.name for p in (tmp_path / "site").iterdir() if p.is_file())
    assert "notes.txt" in published
    assert not [name for name in published if name.startswith("invertornot")], published
    assert "docs_dir" not in caplog.text


def test_stylesheet_without_file_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MkDocs 1.5 has no File.generated: the stylesheet is written into site_dir after the build."""
    monkeypatch.delattr(File, "generated", raising=False)
    config = tiny_site(tmp_path, {"index.md": "# hi\n"})
    build_in_process(config, tmp_path / "site")
    assert (tmp_path / "site" / STYLESHEET_URI).read_text() == css.stylesheet(Settings(), themes.mkdocs("mkdocs", {}))


# --- real builds of sample_site/mkdocs ------------------------------------------------------------

ENV = {"SOURCE_DATE_EPOCH": "1700000000", "TQDM_DISABLE": "1"}
SUMMARY = re.compile(r"invertornot_mkdocs: (\d+) images: (\d+) inverted, (\d+) embedded, (\d+) cached")
PHOTOS = ("astronaut.png", "coffee.jpg", "chelsea.jpg", "rocket.jpg", "hubble.jpg")
FIGURES = ("pipeline.svg", "line-plot.png", "bar%20chart.png", "scatter.svg", "line-art.png")
HUMAN = {"scan.png": "invert", "equation.png": "invert", "brand-colours.png": "invert-not"}
UNTOUCHED = ("pie-chart.png", "logo-light.svg", "logo-dark.svg", "shields.io", "missing.png", "corrupt.png", "etc/passwd")
OUR_CLASSES = ("invert", "invert-not", "invert-auto", "invert-not-auto")

# What `mkdocs serve` does: one process, on_startup once, then load_config + build per rebuild.
SERVE_LIKE = textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    import invertornot_ssg.engine as engine_module

    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(message)s")
    loads = []
    real_get_embedder = engine_module.get_embedder
    def counting_get_embedder(*args, **kwargs):
        loads.append(args)
        return real_get_embedder(*args, **kwargs)
    engine_module.get_embedder = counting_get_embedder

    config_file, site_on, site_rebuild, site_extra = sys.argv[1:5]
    docs = Path(config_file).parent / "docs"
    report = {}
    config = load_config(config_file, site_dir=site_on)
    config.plugins.on_startup(command="serve", dirty=False)
    build(config)
    plugin = config.plugins["invertornot"]
    engine = plugin.engine
    report["first"] = {"embedded": engine.embedded, "loads": len(loads)}

    config = load_config(config_file, site_dir=site_rebuild)
    build(config)
    report["rebuild"] = {"embedded": plugin.engine.embedded, "loads": len(loads),
                         "same_plugin": config.plugins["invertornot"] is plugin, "same_engine": plugin.engine is engine}

    from PIL import Image, ImageDraw
    image = Image.new("RGB", (200, 120), "white")
    ImageDraw.Draw(image).line([(10, 110), (60, 20), (120, 80), (190, 10)], fill="black", width=3)
    image.save(docs / "img" / "extra.png")
    (docs / "extra.md").write_text("# Extra\\n\\n![A new plot](img/extra.png)\\n")
    try:
        config = load_config(config_file, site_dir=site_extra)
        build(config)
    finally:
        (docs / "extra.md").unlink()
        (docs / "img" / "extra.png").unlink()
    report["extra"] = {"embedded": plugin.engine.embedded, "loads": len(loads), "same_engine": plugin.engine is engine}
    print(json.dumps(report))
    """
)


def run_mkdocs(config_file: Path, site_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(config_file), "-d", str(site_dir), *args],
        capture_output=True, text=True, env={**os.environ, **ENV, **(env or {})}, timeout=600,
    )


def warnings_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("WARNING")]


def variant(site: Path, name: str, text: str) -> Path:
    """A config beside the sample's mkdocs.yml that inherits it."""
    path = site / name
    path.write_text("INHERIT: mkdocs.yml\n" + textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample site copied to tmp (its `store: ../.invertornot` lands beside it), built:
    like `mkdocs serve` (cold, rebuild, rebuild with a new image), then with the real CLI:
    again, with the plugin disabled via !ENV, and with no plugin at all."""
    base = tmp_path_factory.mktemp("mkdocs-e2e")
    site = base / "mkdocs"
    shutil.copytree(SAMPLE, site, ignore=shutil.ignore_patterns("site", "*.lock"))
    out = {"base": base, "site": site}
    serve = subprocess.run(
        [sys.executable, "-c", SERVE_LIKE, str(site / "mkdocs.yml"), str(base / "on"), str(base / "rebuild"), str(base / "extra")],
        capture_output=True, text=True, env={**os.environ, **ENV}, timeout=600,
    )
    assert serve.returncode == 0, serve.stderr[-5000:]
    out["serve"] = json.loads(serve.stdout.strip().splitlines()[-1])
    out["serve_log"] = serve.stderr
    out["cli"] = run_mkdocs(site / "mkdocs.yml", base / "cli")
    out["off"] = run_mkdocs(site / "mkdocs.yml", base / "off", env={"INVERTORNOT_ENABLED": "false"})
    plain = site / "mkdocs.yml"
    text = plain.read_text()
    start, end = text.index("  - invertornot:"), text.index("\nnav:")
    plain = site / "plain.yml"
    plain.write_text(text[:start] + text[end:])
    assert "invertornot" not in plain.read_text().split("plugins:")[1].split("nav:")[0]
    out["plain"] = run_mkdocs(plain, base / "plain")
    return out


def html_pages(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.html"))}


class _Attrs(HTMLParser):
    def handle_starttag(self, tag, attrs):
        self.attrs = dict(attrs)


def attrs(tag: str) -> dict[str, str | None]:
    parser = _Attrs()
    parser.feed(tag)
    return parser.attrs


IMG_TAG = re.compile(r"<img\b[^>]*>")


def img_tags(html: str) -> list[str]:
    return IMG_TAG.findall(html)


def tag_for(pages: dict[str, str], page: str, needle: str) -> str:
    found = [t for t in img_tags(pages[page]) if needle in (attrs(t).get("src") or "")]
    assert len(found) == 1, (page, needle, found)
    return found[0]


def strip_ours(html: str) -> str:
    """The page with exactly what the plugin adds removed: the stylesheet link, and on each tag
    it classified (those carrying data-invertornot) the data attributes and the one class."""

    def clean(m: re.Match[str]) -> str:
        tag = m.group(0)
        if "data-invertornot=" not in tag:
            return tag
        tag = re.sub(r' data-invertornot(?:-confidence)?="[^"]*"', "", tag)
        classes = "|".join(OUR_CLASSES)
        tag, n = re.subn(rf' class="(?:{classes})"', "", tag, count=1)  # the attribute it added
        if not n:
            tag, n = re.subn(rf'( class="[^"]*?) ?(?:{classes})"', r'\1"', tag, count=1)  # the token it appended
        assert n == 1, tag
        return tag

    html = re.sub(r'\n\s*<link href="[^"]*assets/invertornot\.css" rel="stylesheet">', "", html)
    return IMG_TAG.sub(clean, html)


@pytest.mark.slow
def test_serve_rebuilds_keep_the_engine_and_the_model(builds: dict) -> None:
    serve = builds["serve"]
    assert serve["first"]["embedded"] > 10 and serve["first"]["loads"] == 1
    assert serve["rebuild"] == {"embedded": 0, "loads": 1, "same_plugin": True, "same_engine": True}
    assert serve["extra"] == {"embedded": 1, "loads": 1, "same_engine": True}  # the new image, same model


@pytest.mark.slow
def test_sample_site_classes(builds: dict) -> None:
    on = html_pages(builds["base"] / "on")
    off = html_pages(builds["base"] / "off")
    for page, needle in [("index.html", "astronaut.png"), ("photos/index.html", "/img/astronaut.png")] + [
        ("photos/index.html", p) for p in PHOTOS[1:]
    ]:
        a = attrs(tag_for(on, page, needle))
        assert a["class"] == "invert-not-auto" and a["data-invertornot"] == "keep", (page, needle, a)
    for page, needle in [("index.html", "pipeline.svg"), ("index.html", "line-plot.png?v=2")] + [
        ("diagrams/index.html", f) for f in FIGURES if f != "line-plot.png"
    ]:
        a = attrs(tag_for(on, page, needle))
        assert a["class"] in ("invert-auto", "invert-not-auto") and a["data-invertornot"], (page, needle, a)
    # One image on two pages gets one decision.
    assert attrs(tag_for(on, "index.html", "pipeline.svg"))["class"] == attrs(tag_for(on, "diagrams/index.html", "pipeline.svg"))["class"]
    for page, needle in [("diagrams/index.html", "scan.png"), ("guide/authors/index.html", "equation.png"),
                         ("guide/authors/index.html", "brand-colours.png")]:
        a = attrs(tag_for(on, page, needle))
        expected = HUMAN[needle]
        assert a["class"] == expected and a["data-invertornot"] == ("invert" if expected == "invert" else "keep"), a
        assert a["data-invertornot-confidence"] == "1.00"
    for page, needle in [("guide/authors/index.html", "pie-chart.png"), ("index.html", "logo-light.svg"),
                         ("index.html", "logo-dark.svg"), ("index.html", "shields.io"), ("problems/index.html", "missing.png"),
                         ("problems/index.html", "corrupt.png"), ("problems/index.html", "etc/passwd")]:
        assert tag_for(on, page, needle) == tag_for(off, page, needle), (page, needle)
    assert attrs(tag_for(on, "guide/authors/index.html", "pie-chart.png"))["class"] == "invert-not"


@pytest.mark.slow
def test_sample_site_figures_are_inverted(builds: dict) -> None:
    on = html_pages(builds["base"] / "on")
    for page, needle in [("index.html", "pipeline.svg"), ("index.html", "line-plot.png?v=2")] + [
        ("diagrams/index.html", f) for f in FIGURES if f != "line-plot.png"
    ]:
        a = attrs(tag_for(on, page, needle))
        assert a["class"] == "invert-auto" and a["data-invertornot"] == "invert", (page, needle, a)


@pytest.mark.slow
def test_a_fresh_store_writes_the_committed_overrides_file_again(builds: dict) -> None:
    """`make demo` leaves git clean: sample_site/mkdocs/invertornot.yml is committed as a build
    leaves it, and these builds, on a new store, write the same bytes (but for the image the
    serve-like build added)."""
    committed = (SAMPLE / "invertornot.yml").read_text(encoding="utf-8")
    assert "auto: {" in committed
    built = (builds["site"] / "invertornot.yml").read_text(encoding="utf-8")
    assert re.sub(r"  img/extra\.png:\n(    .*\n)+", "", built) == committed


@pytest.mark.slow
def test_sample_site_warnings(builds: dict) -> None:
    warnings = "\n".join(warnings_of(builds["cli"].stderr))
    assert "corrupt.png" in warnings and "truncated" in warnings
    assert "problems.md: image 'img/missing.png' is missing" in warnings
    assert "problems.md: image '../../../../etc/passwd' is outside the site root" in warnings
    assert "problems.md: front matter 'invertornot.keep' names 'img/not-on-this-page.png'" in warnings
    # Only those four: remote, per-scheme, explicit and front-matter images are no warning.
    assert len([w for w in warnings_of(builds["cli"].stderr) if "invertornot_mkdocs:" in w]) == 4


@pytest.mark.slow
def test_everything_else_is_byte_for_byte_what_mkdocs_wrote(builds: dict) -> None:
    on = html_pages(builds["base"] / "on")
    off = html_pages(builds["base"] / "off")
    assert on.keys() == off.keys()
    changed = 0
    for name in on:
        assert len(img_tags(on[name])) == len(img_tags(off[name])), name
        assert strip_ours(on[name]) == off[name], name
        changed += on[name] != off[name]
    assert changed == len(on)  # every page links the stylesheet
    assert (builds["base"] / "on" / STYLESHEET_URI).is_file()
    assert not (builds["base"] / "off" / STYLESHEET_URI).exists()
    sample = themes.mkdocs("mkdocs", {"color_mode": "auto", "user_color_mode_toggle": True})  # the sample's theme
    assert sample.rules == (themes.Rule('[data-bs-theme="dark"]'),)
    assert (builds["base"] / "on" / STYLESHEET_URI).read_text() == css.stylesheet(Settings(), sample)


@pytest.mark.slow
def test_second_build_embeds_nothing(builds: dict) -> None:
    cli = builds["cli"]
    assert cli.returncode == 0, cli.stderr
    summaries = SUMMARY.findall(cli.stderr)
    assert len(summaries) == 1
    total, inverted, embedded, cached = map(int, summaries[0])
    assert embedded == 0 and cached == total - 1  # all but the corrupt image
    assert html_pages(builds["base"] / "cli") == html_pages(builds["base"] / "on")


@pytest.mark.slow
def test_disabled_is_plain_mkdocs(builds: dict) -> None:
    off, plain = builds["base"] / "off", builds["base"] / "plain"
    assert builds["off"].returncode == 0 and builds["plain"].returncode == 0
    assert "invertornot" not in builds["off"].stderr
    files_off = sorted(p.relative_to(off).as_posix() for p in off.rglob("*") if p.is_file())
    files_plain = sorted(p.relative_to(plain).as_posix() for p in plain.rglob("*") if p.is_file())
    assert files_off == files_plain
    for rel in files_off:
        assert (off / rel).read_bytes() == (plain / rel).read_bytes(), rel


@pytest.mark.slow
def test_directory_urls_off_gives_the_same_decisions(builds: dict) -> None:
    site = builds["site"]
    config = variant(site, "flat.yml", "use_directory_urls: false\n")
    result = run_mkdocs(config, builds["base"] / "flat")
    assert result.returncode == 0, result.stderr
    flat = html_pages(builds["base"] / "flat")
    nested = html_pages(builds["base"] / "on")
    for nested_name, flat_name in [("index.html", "index.html"), ("photos/index.html", "photos.html"),
                                   ("diagrams/index.html", "diagrams.html"), ("guide/authors/index.html", "guide/authors.html")]:
        def decisions(html: str) -> list[tuple]:
            return [(a.get("alt"), a.get("class"), a.get("data-invertornot")) for a in map(attrs, img_tags(html))]

        assert decisions(flat[flat_name]) == decisions(nested[nested_name]), flat_name
    assert SUMMARY.search(result.stderr).group(3) == "0"


@pytest.mark.slow
def test_strict_fails_on_the_corrupt_image_only(builds: dict) -> None:
    base = builds["base"]
    strict = base / "strict"  # a sibling copy: shares ../.invertornot, so nothing is embedded again
    shutil.copytree(builds["site"], strict)
    nav = "nav: [index.md, photos.md, diagrams.md, guide/authors.md]\n"
    clean = variant(strict, "clean.yml", f"exclude_docs: |\n  problems.md\n  corrupt.md\n{nav}")
    result = run_mkdocs(clean, base / "strict-clean", "--strict")
    assert result.returncode == 0, result.stderr
    assert not warnings_of(result.stderr)

    (strict / "docs" / "corrupt.md").write_text("# Corrupt\n\n![Corrupt](img/corrupt.png)\n")
    corrupt = variant(strict, "corrupt.yml", "exclude_docs: problems.md\nnav: [index.md, corrupt.md]\n")
    result = run_mkdocs(corrupt, base / "strict-corrupt", "--strict")
    assert result.returncode != 0
    warnings = warnings_of(result.stderr)
    assert len(warnings) == 1 and "img/corrupt.png" in warnings[0] and "invertornot_mkdocs" in warnings[0], result.stderr
    assert "Aborted with 1 warnings in strict mode" in result.stdout + result.stderr


REUSED = "nothing changed since the last build"


@pytest.mark.slow
def test_unchanged_rebuild_reuses_the_last_build_and_sees_every_change(builds: dict) -> None:
    """The build memo: a rebuild with nothing changed reuses the last build's decisions, and a
    human label, a replaced image or a damaged memo each take the full path again."""
    import yaml

    base = builds["base"]
    site = base / "memo"  # a sibling copy: shares ../.invertornot, so nothing is embedded again
    shutil.copytree(builds["site"], site)

    def build(name: str) -> tuple[str, dict[str, str]]:
        result = run_mkdocs(site / "mkdocs.yml", base / name)
        assert result.returncode == 0, result.stderr
        return result.stderr, html_pages(base / name)

    log, first = build("memo-1")
    assert REUSED not in log  # no memo for this site yet
    log, second = build("memo-2")
    assert REUSED in log and second == first

    overrides = site / "invertornot.yml"
    data = yaml.safe_load(overrides.read_text())
    assert "invert-not-auto" in attrs(tag_for(second, "photos/index.html", "chelsea.jpg"))["class"].split()
    data["images"]["img/chelsea.jpg"]["label"] = "invert"
    overrides.write_text(yaml.safe_dump(data))
    log, third = build("memo-3")
    assert REUSED not in log
    assert "invert" in attrs(tag_for(third, "photos/index.html", "chelsea.jpg"))["class"].split()

    from PIL import Image, ImageDraw

    drawing = Image.new("RGB", (320, 200), "white")
    ImageDraw.Draw(drawing).rectangle((40, 30, 280, 170), outline="black", width=3)
    drawing.save(site / "docs" / "img" / "coffee.jpg", "PNG")  # same name, bytes never seen before
    log, _ = build("memo-4")
    assert REUSED not in log and SUMMARY.search(log).group(3) == "1"  # embedded and decided
    log, fifth = build("memo-5")  # the last build wrote its new decision: this one finds it recorded
    assert REUSED not in log
    log, sixth = build("memo-6")
    assert REUSED in log and sixth == fifth

    for memo in (base / ".invertornot" / "cache").glob("*.json"):
        memo.write_bytes(b"\x00 not json")
    log, seventh = build("memo-7")
    assert REUSED not in log and seventh == fifth
