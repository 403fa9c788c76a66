"""The Pelican plugin: its namespace layout and cheap import, `Invert:` / `Invert-Not:` metadata,
in-process Pelican builds with a fast fake embedder, and the sample site built for real with
`pelican` after the MkDocs sample on one shared store."""
from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from PIL import Image

from invertornot_ssg.embedders import embedder_id
from invertornot_ssg.errors import ConfigError
from invertornot_ssg.htmlrewrite import ClassNames, find_images
from invertornot_ssg.settings import Settings

from fakes import FAKE_MODEL

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "pelican" / "plugins"
SAMPLES = REPO / "sample_site"
NAMES = ClassNames.from_settings(Settings())
OURS = {NAMES.invert, NAMES.keep, NAMES.invert_auto, NAMES.keep_auto}
DATA_ATTRS = {"data-invertornot", "data-invertornot-confidence", "data-invertornot-backdrop"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def namespace_installed() -> bool:
    return importlib.util.find_spec("pelican.plugins.invertornot") is not None


def plugin_settings() -> dict:
    """How a build finds the plugin: installed (`PLUGINS = ["invertornot"]`), or from the source tree.

    A regular install puts it in pelican/plugins/ beside Pelican. Outside CI, a checkout without
    that falls back to PLUGIN_PATHS; in CI a missing namespace package is a packaging bug: fail.
    """
    if namespace_installed():
        return {"PLUGINS": ["invertornot"]}
    if in_ci():
        pytest.fail("pelican.plugins.invertornot is not importable: CI must `pip install .` (make setup)")
    return {"PLUGINS": ["invertornot"], "PLUGIN_PATHS": [str(PLUGIN_DIR)]}


def plugin_module() -> ModuleType:
    """The plugin module as Pelican loads it."""
    if namespace_installed():
        return importlib.import_module("pelican.plugins.invertornot")
    if "invertornot" in sys.modules:
        return sys.modules["invertornot"]
    spec = importlib.machinery.PathFinder.find_spec("invertornot", [str(PLUGIN_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["invertornot"] = module
    spec.loader.exec_module(module)
    return module


def images_by_src(html: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for tag in find_images(html, NAMES):
        found.setdefault(tag.src, []).append(tag)
    return found


def our_class(tag) -> str | None:
    return next((c for c in tag.classes if c in OURS), None)


def raw_tag(html: str, src_part: str) -> str:
    (tag,) = [t for t in find_images(html, NAMES) if src_part in (t.src or "")]
    return html[tag.start : tag.end]


class _Attrs(HTMLParser):
    def __init__(self, raw: str) -> None:
        super().__init__()
        self.attrs: list = []
        self.feed(raw)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.attrs = attrs


def assert_only_ours_changed(old: str, new: str, href: str | None) -> None:
    """Byte for byte: besides one stylesheet link, only classes and data attributes of <img> changed."""
    if href is not None:
        link = f'<link rel="stylesheet" href="{href}">'
        assert new.count(link) == 1
        new = new.replace(link, "", 1)
    before, after = find_images(old, NAMES), find_images(new, NAMES)
    assert len(before) == len(after)
    rebuilt, pos = [], 0
    for b, a in zip(before, after):
        rebuilt += [new[pos : a.start], old[b.start : b.end]]
        pos = a.end
        old_attrs, new_attrs = _Attrs(old[b.start : b.end]).attrs, _Attrs(new[a.start : a.end]).attrs
        keep = lambda attrs: [(k, v) for k, v in attrs if k not in DATA_ATTRS | {"class"}]  # noqa: E731
        assert keep(old_attrs) == keep(new_attrs)
        added = [c for c in a.classes if c not in b.classes]
        assert a.classes[: len(b.classes)] == b.classes and len(added) <= 1 and set(added) <= OURS
    rebuilt.append(new[pos:])
    assert "".join(rebuilt) == old


# --- layout and import ---------------------------------------------------------------------


def test_namespace_layout() -> None:
    assert (PLUGIN_DIR / "invertornot" / "__init__.py").is_file()
    assert not (REPO / "plugins" / "pelican" / "__init__.py").exists()
    assert not (PLUGIN_DIR / "__init__.py").exists()
    assert callable(plugin_module().register)


def test_import_is_cheap() -> None:
    """Pelican imports every installed namespace plugin: ours must not drag in the core or a model."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pelican import signals; before = set(sys.modules);"
        "import importlib; m = importlib.import_module('invertornot'); m.register();"
        "new = sorted(set(sys.modules) - before);"
        "print([n for n in new if n.split('.')[0] in ('invertornot_ssg', 'numpy', 'torch', 'faiss', 'PIL')])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(PLUGIN_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_namespace_name_loads_the_same_plugin() -> None:
    if not namespace_installed():
        if in_ci():
            pytest.fail("pelican.plugins.invertornot is not importable: CI must `pip install .`")
        pytest.skip("the namespace package is not installed beside pelican here")
    from pelican.plugins._utils import load_plugins

    short = load_plugins({"PLUGINS": ["invertornot"]})
    full = load_plugins({"PLUGINS": ["pelican.plugins.invertornot"]})
    assert [m.__name__ for m in short] == [m.__name__ for m in full] == ["pelican.plugins.invertornot"]


# --- settings and metadata -----------------------------------------------------------------


def test_settings_merge_onto_the_shared_defaults() -> None:
    plugin = plugin_module()
    assert plugin.plugin_settings({}) == Settings()
    got = plugin.plugin_settings({"INVERTORNOT": {"store": "../.invertornot", "threshold": 1, "css": False}})
    assert got == Settings(store="../.invertornot", threshold=1.0, css=False)


@pytest.mark.parametrize(
    ("value", "message"),
    [({"colour": "red"}, "unknown option(s) colour"), ({"threshold": "high"}, "threshold"), (["store"], "dict")],
)
def test_bad_settings_name_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="INVERTORNOT") as info:
        plugin_module().plugin_settings({"INVERTORNOT": value})
    assert message in str(info.value)


def content(metadata: dict, relative_dir: str = "") -> SimpleNamespace:
    return SimpleNamespace(metadata=metadata, relative_dir=relative_dir, source_path=f"/c/{relative_dir}/post.md")


def static(save_as: str) -> SimpleNamespace:
    return SimpleNamespace(save_as=save_as)


def test_metadata_labels() -> None:
    plugin = plugin_module()
    statics = {"posts/d.png": static("2024/post/d.png"), "images/a.png": static("images/a.png")}
    meta = {
        "invert": "images/a.png, {static}/images/b.png , /images/my%20chart.png,",
        "invert-not": ["{static}d.png", "{attach}/images/c.JPG"],
    }
    assert plugin.front_matter(content(meta, "posts"), statics) == {
        "images/a.png": "invert",
        "images/b.png": "invert",
        "images/my chart.png": "invert",
        "2024/post/d.png": "keep",  # relative to the article, then where Pelican saved it
        "images/c.JPG": "keep",
    }


def test_metadata_outside_content_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    plugin = plugin_module()
    with caplog.at_level(logging.WARNING):
        labels = plugin.front_matter(content({"invert": "../../etc/passwd, images/a.png"}), {})
    assert labels == {"images/a.png": "invert"}
    assert "outside the content folder" in caplog.text


def test_no_metadata() -> None:
    plugin = plugin_module()
    assert plugin.front_matter(None, {}) == {}
    assert plugin.front_matter(content({"title": "x"}), {}) == {}


def test_sample_images_are_the_mkdocs_samples() -> None:
    """The two samples share one store only if the shared images are the same bytes."""
    mkdocs_img = SAMPLES / "mkdocs" / "docs" / "img"
    digests = {hashlib.sha1(p.read_bytes()).hexdigest() for p in mkdocs_img.iterdir()}
    for image in sorted((SAMPLES / "pelican" / "content" / "images").iterdir()):
        assert hashlib.sha1(image.read_bytes()).hexdigest() in digests, f"{image.name} differs from sample_site/mkdocs"


# --- in-process builds with the fake embedder ----------------------------------------------


def pelican_build(site: Path, monkeypatch: pytest.MonkeyPatch, **overrides) -> Path:
    """Build a copy of the Pelican sample in this process; returns its output folder."""
    from pelican import Pelican
    from pelican.settings import read_settings

    monkeypatch.chdir(site)
    settings = {**plugin_settings(), "OUTPUT_PATH": "output", "CACHE_CONTENT": False, **overrides}
    Pelican(read_settings(str(site / "pelicanconf.py"), override=settings)).run()
    return site / "output"


@pytest.fixture
def pelican_site(tmp_path: Path) -> Path:
    site = tmp_path / "pelican"
    shutil.copytree(SAMPLES / "pelican", site, ignore=shutil.ignore_patterns("output", "invertornot.yml", "__pycache__"))
    return site


def fake_settings(site: Path, **extra) -> dict:
    return {"INVERTORNOT": {"store": str(site.parent / "store"), "model": FAKE_MODEL, **extra}}


def test_build_with_absolute_siteurl(pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder) -> None:
    out = pelican_build(pelican_site, monkeypatch, RELATIVE_URLS=False, **fake_settings(pelican_site))
    photos = (out / "photos-and-images-the-author-decided.html").read_text()
    tags = images_by_src(photos)
    base = "https://example.org/blog/images/"
    assert set(tags) >= {base + "chelsea.jpg", base + "scan.png", base + "brand-colours.png"}
    assert our_class(tags[base + "scan.png"][0]) == "invert"  # Invert: metadata
    assert our_class(tags[base + "brand-colours.png"][0]) == "invert-not"  # Invert-Not: {static}/...
    # The author kept black line art on transparency: its class stays as written, and it gets the
    # backdrop that keeps it legible on the dark page
    assert raw_tag(photos, "line-art.png") == (
        f'<img alt="Line art" class="invert-not" src="{base}line-art.png" data-invertornot-backdrop="dark-ink">')
    assert raw_tag(photos, "logo-light.svg") == f'<img src="{base}logo-light.svg" alt="The project\'s logo">'
    for page in sorted(out.rglob("*.html")):
        html = page.read_text()
        assert html.count('<link rel="stylesheet" href="https://example.org/blog/invertornot.css">') == 1, page
        for tag in find_images(html, NAMES):
            if tag.src.startswith(base) and not tag.skip_reason:
                assert our_class(tag) is not None, (page, tag.src)
    assert "invert-auto" in (out / "invertornot.css").read_text()
    charts = (out / "charts-on-a-dark-page.html").read_text()
    assert {base + n for n in ("bar%20chart.png", "line-plot.png", "pipeline.svg", "Equation.PNG")} <= {
        t.src.replace(" ", "%20") for t in find_images(charts, NAMES) if our_class(t)
    }


def test_rebuild_gives_the_same_pages(pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder) -> None:
    out = pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site))
    first = {p: p.read_bytes() for p in out.rglob("*.html")}
    pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site))
    assert {p: p.read_bytes() for p in out.rglob("*.html")} == first
    about = (out / "pages" / "about.html").read_text()
    assert '<link rel="stylesheet" href="../invertornot.css">' in about  # RELATIVE_URLS = True
    assert our_class(images_by_src(about)["/blog/images/pie-chart.png"][0]) is not None  # under SITEURL's path
    drafts = list((out / "drafts").glob("*.html"))
    assert drafts and our_class(find_images(drafts[0].read_text(), NAMES)[0]) is not None


def test_only_classes_and_the_link_change(pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder) -> None:
    """Byte for byte: the plugin's pages are Pelican's pages plus our classes, data and one link."""
    from invertornot_ssg.sitedir import relative_href

    out = pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site, enabled=False))
    plain = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.html")}
    assert not any("data-invertornot" in html or "invertornot.css" in html for html in plain.values())
    assert not (out / "invertornot.css").exists()
    shutil.rmtree(out)
    out = pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site))
    rewritten = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*.html")}
    assert rewritten.keys() == plain.keys() and len(plain) >= 10
    for page_id, html in rewritten.items():
        assert_only_ours_changed(plain[page_id], html, relative_href(page_id))
    assert sum(html.count("data-invertornot=") for html in rewritten.values()) >= 20
    shutil.rmtree(out)
    out = pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site, css=False))
    html = (out / "index.html").read_text()
    assert "data-invertornot" in html and "invertornot.css" not in html
    assert not (out / "invertornot.css").exists()


def logo_theme(site: Path) -> Path:
    """Pelican's default theme with a logo in its header, as many blogs' themes have: one
    `<img>` from THEME_STATIC_DIR on every page."""
    import pelican

    theme = site / "logo-theme"
    shutil.copytree(Path(pelican.__file__).parent / "themes" / "notmyidea", theme)
    (theme / "static" / "images").mkdir(exist_ok=True)
    shutil.copy(site / "content" / "images" / "pie-chart.png", theme / "static" / "images" / "logo.png")
    base = theme / "templates" / "base.html"
    header = '<header id="banner" class="body">'
    assert header in base.read_text()
    base.write_text(base.read_text().replace(
        header, header + '<img src="{{ SITEURL }}/{{ THEME_STATIC_DIR }}/images/logo.png" alt="logo">', 1
    ))
    return theme


@pytest.mark.parametrize("static_dir", ["theme", "assets/theme"])
def test_theme_logo_is_left_to_the_theme(
    pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder, static_dir: str
) -> None:
    """The theme's chrome is not content: as in MkDocs, the theme keeps it as it is, however often
    it appears (here the same file as a content image, which is classified)."""
    theme = logo_theme(pelican_site)
    out = pelican_build(pelican_site, monkeypatch, THEME=str(theme), THEME_STATIC_DIR=static_dir,
                        **fake_settings(pelican_site))
    logos = 0
    for page in sorted(out.rglob("*.html")):
        html = page.read_text()
        for tag in find_images(html, NAMES):
            if tag.src.endswith(f"{static_dir}/images/logo.png"):
                logos += 1
                assert html[tag.start : tag.end] == f'<img src="{tag.src}" alt="logo">', page
    assert logos == len(list(out.rglob("*.html"))) >= 10
    about = (out / "pages" / "about.html").read_text()
    assert our_class(images_by_src(about)["/blog/images/pie-chart.png"][0]) is not None
    assert "logo.png" not in (pelican_site / "invertornot.yml").read_text()


def test_warm_build_parses_no_page(pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder) -> None:
    """A cold build parses each page once; a warm one none (their scans are kept), with the same pages,
    each written where Pelican wrote it."""
    from test_apply import count_scans

    theme = str(logo_theme(pelican_site))
    parsed = count_scans(monkeypatch)
    out = pelican_build(pelican_site, monkeypatch, THEME=theme, **fake_settings(pelican_site))
    first = {p: p.read_bytes() for p in out.rglob("*.html")}
    inodes = {p: p.stat().st_ino for p in first}
    assert len(parsed) == len(first) == len(set(parsed))
    parsed.clear()
    pelican_build(pelican_site, monkeypatch, THEME=theme, **fake_settings(pelican_site))
    assert parsed == []
    assert {p: p.read_bytes() for p in out.rglob("*.html")} == first
    assert {p: p.stat().st_ino for p in first} == inodes  # rewritten in place, as Pelican writes them


def test_refused_and_missing_images_warn(
    pelican_site: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder, caplog: pytest.LogCaptureFixture
) -> None:
    (pelican_site.parent / "secret.png").write_bytes((pelican_site / "content/images/pie-chart.png").read_bytes())
    frames = [Image.new("RGB", (40, 40), "white"), Image.new("RGB", (40, 40), "black")]
    frames[0].save(pelican_site / "content/images/spinner.GIF", save_all=True, append_images=frames[1:], loop=0)
    (pelican_site / "content" / "odd.md").write_text(
        "Title: Odd links\nDate: 2024-06-01\nInvert: images/not-here.png\n\n"
        '<img src="../secret.png" alt="a"> <img src="https://example.org/secret.png" alt="b">\n'
        '<img src="{static}/images/nope.png" alt="c"> <img src="https://elsewhere.example/x.png" alt="d">\n'
        '<img src="{static}/images/spinner.GIF" alt="an animated GIF">\n'
    )
    with caplog.at_level(logging.WARNING):
        out = pelican_build(pelican_site, monkeypatch, **fake_settings(pelican_site))
    html = (out / "odd-links.html").read_text()
    for src in ("../secret.png", "https://example.org/secret.png", "https://elsewhere.example/x.png"):
        assert our_class(images_by_src(html)[src][0]) is None
    assert our_class(images_by_src(html)["./images/spinner.GIF"][0]) is not None
    assert "'../secret.png' is outside the site root" in caplog.text
    assert "'https://example.org/secret.png' is outside the site root" in caplog.text
    assert "not-here.png" in caplog.text  # metadata naming an image that is not on the page
    assert "elsewhere.example" not in caplog.text  # someone else's server: not ours, no warning


def test_bad_setting_fails_the_build(pelican_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="INVERTORNOT: unknown option.*colour"):
        pelican_build(pelican_site, monkeypatch, INVERTORNOT={"colour": "red"})


# --- the real thing: both samples, one store, the default embedder --------------------------


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "COLUMNS": "400"}  # Pelican logs through rich: keep the summary on one line
    env.pop("INVERTORNOT_ENABLED", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-4000:]}"
    return output


def vector_count(store: Path) -> int:
    from invertornot_ssg.store import EmbeddingStore

    with EmbeddingStore(store) as opened:
        return opened.vector_count(embedder_id("efficientnet-lite0"))


def build_samples(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The MkDocs sample, then the Pelican sample (`pelican content -s pelicanconf.py`), on one store.

    Built once per test session (tests/test_apply.py compares `apply` with the same MkDocs build).
    """
    root = tmp_path_factory.getbasetemp() / "invertornot-samples"
    done = root / "built.json"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        ignore = shutil.ignore_patterns("site", "output", "__pycache__", ".cache")
        shutil.copytree(SAMPLES / "mkdocs", root / "mkdocs", ignore=ignore)
        shutil.copytree(SAMPLES / "pelican", root / "pelican", ignore=shutil.ignore_patterns("output", "invertornot.yml"))
        run([sys.executable, "-m", "mkdocs", "build", "-f", "mkdocs.yml", "-d", str(root / "site")], root / "mkdocs")
        after_mkdocs = vector_count(root / ".invertornot")
        extra = plugin_settings()
        # At Pelican's default log level: the summary line shows without -v, as Pelican's own "Done:".
        cmd = [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output"]
        if "PLUGIN_PATHS" in extra:
            cmd += ["-e", f"PLUGIN_PATHS={json.dumps(extra['PLUGIN_PATHS'])}"]
        log = run(cmd, root / "pelican")
        after_pelican = vector_count(root / ".invertornot")
        done.write_text(json.dumps({"log": log, "after_mkdocs": after_mkdocs, "after_pelican": after_pelican}))
    facts = json.loads(done.read_text())
    return SimpleNamespace(
        root=root, store=root / ".invertornot", mkdocs_site=root / "site", out=root / "pelican" / "output", **facts
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return build_samples(tmp_path_factory)


@pytest.mark.slow
def test_pelican_reuses_the_mkdocs_embeddings(samples: SimpleNamespace) -> None:
    assert samples.after_mkdocs > 0
    assert samples.after_pelican == samples.after_mkdocs  # every Pelican image was embedded by MkDocs
    summary = re.search(r"invertornot: (\d+) images: .*?(\d+) embedded, (\d+) cached", samples.log)
    assert summary, samples.log[-3000:]
    images, embedded, cached = map(int, summary.groups())
    assert embedded == 0 and cached == images > 0
    assert (samples.out / "invertornot.css").is_file()
    assert (samples.root / "pelican" / "invertornot.yml").is_file()  # the overrides file beside pelicanconf.py
    assert not (samples.root / "pelican" / ".invertornot").exists()  # INVERTORNOT's store: ../.invertornot


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "src", "expected"),
    [
        ("photos-and-images-the-author-decided.html", "https://example.org/blog/images/chelsea.jpg", "invert-not-auto"),
        ("photos-and-images-the-author-decided.html", "./images/coffee.jpg", "invert-not-auto"),
        ("photos-and-images-the-author-decided.html", "./images/scan.png", "invert"),
        ("photos-and-images-the-author-decided.html", "./images/brand-colours.png", "invert-not"),
        ("index.html", "./images/scan.png", "invert"),  # in the article's summary on the index
        ("index.html", "https://example.org/blog/images/chelsea.jpg", "invert-not-auto"),
    ],
)
def test_sample_classes(samples: SimpleNamespace, page: str, src: str, expected: str) -> None:
    (tag,) = images_by_src((samples.out / page).read_text())[src]
    assert our_class(tag) == expected


@pytest.mark.slow
def test_sample_author_classes_and_scheme_images_untouched(samples: SimpleNamespace) -> None:
    photos = (samples.out / "photos-and-images-the-author-decided.html").read_text()
    assert raw_tag(photos, "line-art.png") == (  # the author's class as written, and the backdrop
        '<img alt="Line art" class="invert-not" src="./images/line-art.png" data-invertornot-backdrop="dark-ink">')
    assert raw_tag(photos, "logo-light.svg") == '<img src="./images/logo-light.svg" alt="The project\'s logo">'
    for page in samples.out.rglob("*.html"):
        assert page.read_text().count('invertornot.css">') == 1, page


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "src"),
    [
        ("charts-on-a-dark-page.html", "./images/bar chart.png"),
        ("charts-on-a-dark-page.html", "./images/line-plot.png"),
        ("charts-on-a-dark-page.html", "./images/pipeline.svg"),
        ("charts-on-a-dark-page.html", "./images/Equation.PNG"),
        # Not the pie chart: the shipped head is unsure of it (p_invert ~0.69, inside the unsure band),
        # and unsure means keep by design; test_rebuild checks it is classified under SITEURL's path.
    ],
)
def test_sample_diagrams_are_inverted(samples: SimpleNamespace, page: str, src: str) -> None:
    (tag,) = images_by_src((samples.out / page).read_text())[src]
    assert our_class(tag) == "invert-auto"


def test_the_pelican_extra_brings_a_markdown_reader() -> None:
    """Pelican reads .md only when `markdown` is installed; without it a Markdown blog builds 0 articles."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    wanted = [Requirement(r) for r in requires("invertornot-ssg") or []]
    in_extra = {r.name.lower() for r in wanted if r.marker and r.marker.evaluate({"extra": "pelican"})}
    assert {"pelican", "markdown"} <= in_extra
