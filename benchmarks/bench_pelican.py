"""Warm rebuild of a generated Pelican blog: `pelican` with the plugin against the same blog without
it, and `invertornot-ssg apply` on a site it has already applied.

    python benchmarks/bench_pelican.py                   # 1,300 articles (~2,000 pages), 5 rounds
    python benchmarks/bench_pelican.py --reuse --repeat 3
    python benchmarks/bench_pelican.py --profile         # one warm build under cProfile, top 25

The blog: 1,300 Markdown articles in 8 categories with 40 tags, 10 articles an index page, so
Pelican writes ~2,000 pages (articles, index, tag, category, author and archive pages); 0 to 3
images an article, drawn from 350 images of `sitegen.py`'s mix, so a few thousand `<img>` tags
(summaries repeat some); the theme is Pelican's `notmyidea` with a logo in its header, one
`<img>` from THEME_STATIC_DIR on every page. `STATIC_CHECK_IF_MODIFIED = True`, so neither
build copies the 350 images again. One cold build with the plugin fills the store; then plain
and plugin builds alternate, each in a fresh process (interpreter start included), as do the
CLI's floor (python + its import) and `apply` on a copy of the plain output it already applied.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

import bench_warm  # noqa: E402
from bench_warm import imported, measure, run  # noqa: E402
from common import DATA, median, save_results, table  # noqa: E402

BLOG_VERSION = 1  # bump when the generated blog changes
IMAGES = 350
CATEGORIES = ("notes", "releases", "howto", "photos", "talks", "data", "travel", "misc")
TAGS = tuple(f"tag{i:02d}" for i in range(40))
WORDS = ("the build", "an image", "dark mode", "a plugin", "the store", "an index", "a theme", "the page",
         "a photo", "the reader", "a diagram", "the model")

CONF = '''AUTHOR = "Bench Author"
SITENAME = "invertornot bench blog"
SITEURL = ""
RELATIVE_URLS = True
PATH = "content"
THEME = "theme"
STATIC_PATHS = ["images"]
STATIC_CHECK_IF_MODIFIED = True
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_PAGINATION = 10
FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
CACHE_CONTENT = False
PLUGINS = []  # unset, Pelican would load every installed namespace plugin, this one included
'''
PLUGIN_CONF = 'PLUGINS = ["invertornot"]\nINVERTORNOT = {"store": ".invertornot", "overrides": "invertornot.yml"}\n'


def make_blog(out: Path, articles: int, seed: int = 0) -> Path:
    """Generate (or reuse) the blog in `out`: content/, theme/, pelicanconf-plain.py, pelicanconf.py."""
    from sitegen import make_site  # numpy and Pillow: here, not in the children whose imports count

    marker = out / "blog.json"
    want = {"articles": articles, "images": IMAGES, "seed": seed, "version": BLOG_VERSION}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        _configs(out)
        return out
    shutil.rmtree(out, ignore_errors=True)
    paths = make_site(DATA / f"site-{IMAGES}", IMAGES, seed=seed)
    images = out / "content" / "images"
    images.mkdir(parents=True)
    for path in paths:
        os.link(path, images / path.name)  # the same bytes as the MkDocs benchmark's, without a copy
    _theme(out / "theme")
    rng = random.Random(seed)
    posts = out / "content" / "posts"
    posts.mkdir()
    for i in range(articles):
        body = []
        for _ in range(rng.randrange(2, 6)):
            body.append(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 60))) + ".")
            if rng.random() < 0.4:
                image = rng.choice(paths).name
                body.append(f"![{image}]({{static}}/images/{image})")
        day = time.gmtime(1_600_000_000 + i * 86_400)
        (posts / f"post-{i:04d}.md").write_text(
            f"Title: Post {i}\nDate: {time.strftime('%Y-%m-%d', day)}\nCategory: {rng.choice(CATEGORIES)}\n"
            f"Tags: {', '.join(rng.sample(TAGS, 2))}\nSlug: post-{i:04d}\n\n" + "\n\n".join(body) + "\n"
        )
    _configs(out)
    marker.write_text(json.dumps(want) + "\n")
    return out


def _configs(out: Path) -> None:
    (out / "pelicanconf-plain.py").write_text(CONF)
    (out / "pelicanconf.py").write_text(CONF + PLUGIN_CONF)


def _theme(theme: Path) -> None:
    """Pelican's notmyidea with a logo in the header: one theme image on every page."""
    from PIL import Image, ImageDraw, ImageFont

    import pelican

    shutil.copytree(Path(pelican.__file__).parent / "themes" / "notmyidea", theme)
    logo = Image.new("RGBA", (240, 64), (0, 0, 0, 0))
    ImageDraw.Draw(logo).text((8, 12), "bench blog", fill=(20, 20, 30, 255), font=ImageFont.load_default(size=32))
    (theme / "static" / "images").mkdir(exist_ok=True)
    logo.save(theme / "static" / "images" / "logo.png")
    base = theme / "templates" / "base.html"
    html = base.read_text()
    header = '<header id="banner" class="body">'
    assert header in html, "notmyidea's base.html changed: put the logo elsewhere"
    logo_tag = '<img src="{{ SITEURL }}/{{ THEME_STATIC_DIR }}/images/logo.png" alt="logo" width="240" height="64">'
    base.write_text(html.replace(header, header + "\n" + logo_tag, 1))


def build_once(blog: str, conf: str, output: str, profile: str | None = None) -> dict:
    """Child process: one `pelican` build, as its CLI runs it, then what it imported and its peak RSS."""
    import logging

    from pelican import Pelican
    from pelican.settings import read_settings

    from common import proc_status

    logging.getLogger("pelican").setLevel(logging.WARNING)
    os.chdir(blog)  # as a user runs `pelican` beside pelicanconf.py
    in_plugin = _time_plugin_handlers()
    cpu, start = time.process_time(), time.perf_counter()
    settings = read_settings(conf, override={"OUTPUT_PATH": output})
    if profile:  # CPU time, not wall: the machine is shared, and waiting is not this process's cost
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(lambda: Pelican(settings).run())
        profiler.dump_stats(profile)
    else:
        Pelican(settings).run()
    return {
        "build_seconds": time.perf_counter() - start,
        "build_cpu_seconds": time.process_time() - cpu,
        "plugin_cpu_seconds": in_plugin[0],
        "peak_rss_mb": proc_status("VmHWM") / 2**20,
        "imported": imported(),
    }


def _time_plugin_handlers() -> list[float]:
    """The CPU time the plugin's signal handlers take, summed into the returned list's one item as
    the build runs: a share of the build measured inside one process, which the machine's other
    tenants move far less than the difference between two builds (Pelican connects the handlers
    when it loads the plugin, after this)."""
    spent = [0.0]
    try:
        import pelican.plugins.invertornot as plugin
    except ImportError:
        return spent

    def timed(handler):
        def run(*args, **kwargs):
            before = time.process_time()
            try:
                return handler(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - before
        return run

    for name in ("initialized", "start_build", "content_written", "finalized"):
        setattr(plugin, name, timed(getattr(plugin, name)))
    return spent


def apply_once(site: str, store: str, overrides: str) -> dict:
    """Child process: `invertornot-ssg apply` as its CLI runs, then what it printed last."""
    import contextlib
    import io

    from invertornot_ssg.cli import main

    from common import proc_status

    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        rc = main(["apply", site, "--store", store, "--overrides", overrides])
    return {"rc": rc, "seconds": time.perf_counter() - start, "summary": out.getvalue().strip().splitlines()[-1],
            "peak_rss_mb": proc_status("VmHWM") / 2**20, "imported": imported()}


def child(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def html_pages(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=1300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the store of an earlier run: no cold build")
    parser.add_argument("--profile", action="store_true", help="profile one warm plugin build; no timings")
    parser.add_argument("--build-once", nargs=3, metavar=("BLOG", "CONF", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--apply-once", nargs=3, metavar=("SITE", "STORE", "OVERRIDES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_once:
        print(json.dumps(build_once(*args.build_once, profile=args.profile_to)))
        return 0
    if args.apply_once:
        print(json.dumps(apply_once(*args.apply_once)))
        return 0

    compileall.compile_dir(str(REPO / "invertornot_ssg"), quiet=1)  # as pip does (see bench_warm.py)
    compileall.compile_dir(str(REPO / "plugins"), quiet=1)
    blog = make_blog(DATA / f"blog-{args.articles}", args.articles)
    store = blog / ".invertornot"
    plain = child("--build-once", str(blog), "pelicanconf-plain.py", "output-plain")
    plugin = child("--build-once", str(blog), "pelicanconf.py", "output")
    raw: dict = {"articles": args.articles, "repeat": args.repeat}
    rows = []
    if not (args.reuse and store.is_dir()):
        shutil.rmtree(store, ignore_errors=True)
        (blog / "invertornot.yml").unlink(missing_ok=True)
        seconds, cold = run(plugin)
        raw["pelican_cold"] = {**cold, "wall_seconds": seconds}
        rows.append(["pelican, plugin, cold (embeds every image)", f"{seconds:.1f} s", "", f"{cold['cpu_seconds']:.1f} s",
                     "", f"{cold['peak_rss_mb']:.0f} MB", ", ".join(cold["imported"])])
    if args.profile:
        run(plugin)  # warm: the memo and page scans of this very site
        target = DATA / "pelican-warm.prof"
        run([*plugin, "--profile-to", str(target)])
        import pstats

        pstats.Stats(str(target)).sort_stats("cumulative").print_stats(25)
        print(f"profile in {target}")
        return 0

    plains, plugins = measure([plain, plugin], args.repeat)
    raw["pelican_plain"], raw["pelican_plugin_warm"] = plains, plugins
    raw["pages"], raw["img_tags"] = html_pages(blog / "output"), _img_tags(blog / "output")
    p, w = median(r["wall_seconds"] for r in plains), median(r["wall_seconds"] for r in plugins)
    pc, wc = median(r["cpu_seconds"] for r in plains), median(r["cpu_seconds"] for r in plugins)
    raw["pelican_ratio"], raw["pelican_cpu_ratio"] = w / p, wc / pc
    raw["pelican_pair_ratios"] = sorted(b["wall_seconds"] / a["wall_seconds"] for a, b in zip(plains, plugins))
    raw["pelican_pair_cpu_ratios"] = sorted(b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(plains, plugins))
    rows.append(["pelican, no plugin", f"{p:.2f} s", "1.00", f"{pc:.2f} s", "1.00",
                 f"{median(r['peak_rss_mb'] for r in plains):.0f} MB", ", ".join(plains[-1]["imported"]) or "none"])
    rows.append(["pelican, plugin, warm", f"{w:.2f} s", f"{w / p:.2f}", f"{wc:.2f} s", f"{wc / pc:.2f}",
                 f"{median(r['peak_rss_mb'] for r in plugins):.0f} MB", ", ".join(plugins[-1]["imported"]) or "none"])
    # Inside each warm build: the plugin's handlers' CPU time against the rest of the build.
    shares = sorted(r["plugin_cpu_seconds"] / (r["build_cpu_seconds"] - r["plugin_cpu_seconds"]) for r in plugins)
    raw["plugin_cpu_share_of_the_rest"] = shares
    raw["plugin_cpu_seconds"] = median(r["plugin_cpu_seconds"] for r in plugins)

    # apply on a site it has already applied: a copy of the plain output, applied once first.
    applied = blog / "output-applied"
    shutil.rmtree(applied, ignore_errors=True)
    shutil.copytree(blog / "output-plain", applied)
    apply = child("--apply-once", str(applied), str(store), str(blog / "invertornot-apply.yml"))
    seconds, first = run(apply)
    raw["apply_first"] = {**first, "wall_seconds": seconds}
    noops, applies = measure([[sys.executable, bench_warm.__file__, "--noop"], apply], args.repeat)
    raw["cli_noop"], raw["apply_again"] = noops, applies
    n, a = median(r["wall_seconds"] for r in noops), median(r["wall_seconds"] for r in applies)
    nc, ac = median(r["cpu_seconds"] for r in noops), median(r["cpu_seconds"] for r in applies)
    rows.append(["python + import of the CLI, nothing done", f"{n:.2f} s", "1.00", f"{nc:.2f} s", "1.00",
                 f"{median(r['peak_rss_mb'] for r in noops):.0f} MB", "none"])
    rows.append([f"invertornot-ssg apply, first time ({raw['pages']} pages)", f"{seconds:.2f} s", f"{seconds / n:.2f}",
                 f"{first['cpu_seconds']:.2f} s", f"{first['cpu_seconds'] / nc:.2f}", f"{first['peak_rss_mb']:.0f} MB",
                 ", ".join(first["imported"]) or "none"])
    rows.append(["invertornot-ssg apply, already applied", f"{a:.2f} s", f"{a / n:.2f}", f"{ac:.2f} s", f"{ac / nc:.2f}",
                 f"{median(r['peak_rss_mb'] for r in applies):.0f} MB", ", ".join(applies[-1]["imported"]) or "none"])
    raw["apply_again_summary"] = applies[-1]["summary"]

    print(f"{raw['pages']} pages, {raw['img_tags']} <img> tags in the plugin's output")
    print(table(["run", "wall (median)", "ratio", "CPU (median)", "ratio", "peak RSS", "heavy modules imported"], rows))
    print("\nwall-time ratio of each plain/plugin pair: " + ", ".join(f"{r:.2f}" for r in raw["pelican_pair_ratios"]))
    print("CPU-time ratio of each pair: " + ", ".join(f"{r:.2f}" for r in raw["pelican_pair_cpu_ratios"]))
    print(f"inside each warm build, the plugin's handlers took {raw['plugin_cpu_seconds']:.2f} s of CPU (median),"
          " this much of the rest of the build: " + ", ".join(f"{r:.1%}" for r in shares))
    print(f"apply, already applied, said: {raw['apply_again_summary']}")
    save_results("pelican", raw)
    return 0


def _img_tags(root: Path) -> int:
    return sum(p.read_text(errors="replace").lower().count("<img") for p in root.rglob("*.html"))


if __name__ == "__main__":
    sys.exit(main())
