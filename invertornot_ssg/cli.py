"""The `invertornot-ssg` command: argparse subcommands, each `main(argv) -> int`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from .contrast import DEFAULT_DARK_PAGE
from .errors import InvertOrNotError
from .settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".webp", ".svg", ".bmp", ".tif", ".tiff", ".avif"}
log = logging.getLogger("invertornot_ssg")

DESCRIPTION = """\
Decide which images of a static site to invert in dark mode: diagrams, plots and line art are
inverted, photographs and already-dark images are kept (dimmed). The MkDocs and Pelican plugins
do this during a build; these commands classify images, post-process any other generator's
output, and close the loop: review the decisions, label, retrain."""
EPILOG = """\
examples:
  invertornot-ssg classify docs/img           decide each image under a folder
  invertornot-ssg apply public                mark the images of a built site (Hugo, Sphinx, ...)
  invertornot-ssg review                      correct labels in the browser (after a build)
  invertornot-ssg map --output map.png        all the site's images on one picture, by similarity
  invertornot-ssg retrain                     train this site's head from invertornot.yml
  invertornot-ssg eval truth.csv              accuracy against known labels (rows: file,invert)

`invertornot-ssg COMMAND --help` describes a command's options."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.run(args)
    except InvertOrNotError as exc:
        print(f"invertornot-ssg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invertornot-ssg", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = sub.add_parser("classify", help="decide invert/keep for image files or folders")
    classify.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    classify.add_argument("--json", action="store_true", help="one JSON object per image per line")
    _add_common(classify)
    classify.set_defaults(overrides=None)  # see _site_overrides
    classify.set_defaults(run=run_classify)

    retrain = sub.add_parser("retrain", help="train the head from human labels (overrides files + bootstrap set)")
    retrain.add_argument("--overrides", dest="overrides_files", action="append", default=None, metavar="FILE",
                         help="overrides YAML with human labels (repeatable; default: invertornot.yml)")
    retrain.add_argument("--no-bootstrap", action="store_true", help="train on the given labels alone")
    retrain.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                         help="train on an edited copy (flip, turn, crop or tint) of each labeled image too"
                              " (default: off, as measured; see the README)")
    retrain.add_argument("--output", default="", help="write the head here (default: beside the first overrides file, to commit with it)")
    _add_common(retrain, overrides=False)
    retrain.set_defaults(run=run_retrain)

    evaluate = sub.add_parser("eval", help="accuracy against known labels, beside the saturation baseline")
    evaluate.add_argument("path", help="a folder with invert/ and keep/ subfolders, or a CSV of file,invert")
    _add_common(evaluate)
    evaluate.set_defaults(run=run_eval)

    review = sub.add_parser("review", help="a local web page to correct labels, most uncertain first")
    review.add_argument("--overrides", default=Settings().overrides, metavar="FILE",
                        help="the site's overrides YAML; Save writes its labels (default: invertornot.yml)")
    review.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    review.add_argument("--no-browser", action="store_true", help="print the page's address, open no browser")
    _add_common(review, overrides=False)
    review.set_defaults(run=run_review)

    site_map = sub.add_parser(
        "map", help="draw every image of the site on one grid, similar images side by side",
        description="Draw every image the last build recorded (the overrides file's entries the store knows) on a "
        "regular grid arranged by embedding similarity (t-SNE, then a linear assignment onto the grid), each as "
        "the site's dark mode shows it and framed by how it was decided. Reads the store and the overrides "
        "file; writes only --output.",
    )
    site_map.add_argument("--output", required=True, metavar="PNG", help="the picture to write (PNG)")
    site_map.add_argument("--overrides", default=Settings().overrides, metavar="FILE",
                          help="the site's overrides YAML (default: invertornot.yml)")
    site_map.add_argument("--dark-page", default=DEFAULT_DARK_PAGE, metavar="COLOUR",
                          help=f"the theme's dark page colour the tiles are drawn on (default: {DEFAULT_DARK_PAGE})")
    site_map.add_argument("--tile", type=int, default=48, metavar="PX", help="size of a tile (default: 48)")
    _add_common(site_map, overrides=False)
    site_map.set_defaults(run=run_map)

    serve = sub.add_parser("serve", help="an InvertOrNot-compatible HTTP API over this site's store, labels and head")
    serve.add_argument("--overrides", default=Settings().overrides, metavar="FILE",
                       help="the site's overrides YAML: its labels win; corrections are written there"
                       " (default: invertornot.yml)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: a free one)")
    serve.add_argument("--cors", nargs="+", default=[], metavar="ORIGIN",
                       help="origins whose pages may call the API from a browser, e.g. https://example.org (default: none)")
    serve.add_argument("--token-file", default="", metavar="F",
                       help="a file holding the token that POST /api/correction needs (default: corrections off)")
    serve.add_argument("--max-images", type=int, default=250, help="images per request (default: 250)")
    serve.add_argument("--max-request-mb", type=float, default=64, help="request body size limit (default: 64 MiB)")
    serve.add_argument("--remote-allow-private", action="store_true",
                       help="let /api/url fetch from loopback and private addresses (default: refused)")
    _add_common(serve, overrides=False)
    serve.set_defaults(run=run_serve)

    apply = sub.add_parser(
        "apply",
        help="classify the images of an already-built site directory and rewrite its pages in place",
        description=(
            "Post-process any generator's output: every .html file under SITE_DIR gets classes on its "
            "images (the same rules as the MkDocs and Pelican plugins) and a link to SITE_DIR/invertornot.css. "
            "Running it again changes nothing. With --overrides FILE, human labels in FILE win and this "
            "run's decisions are recorded there (unless --no-record or --dry-run)."
        ),
    )
    apply.add_argument("site_dir", metavar="SITE_DIR", help="the built site (e.g. public/, _site/, build/html/)")
    apply.add_argument(
        "--base-url", default="", metavar="PREFIX",
        help="where the site is served, a path (/docs/) or a URL (https://example.org/docs/): stripped "
        "from image URLs, and the stylesheet is linked site-absolute under it",
    )
    apply.add_argument("--no-css", action="store_true", help="neither write nor link the stylesheet")
    apply.add_argument(
        "--dark-selector", action="append", dest="dark_selectors", metavar="SELECTOR",
        help="where the theme's dark mode is on, e.g. '[data-theme=\"dark\"]' (repeatable; default: read it"
        " from the built pages and their CSS)",
    )
    apply.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    apply.add_argument("--no-record", action="store_true", help="do not record decisions in --overrides FILE")
    apply.add_argument("--overrides", default="", metavar="FILE",
                       help="overrides YAML: its human labels win; this run's decisions are recorded in it")
    _add_common(apply, overrides=False)
    apply.set_defaults(run=run_apply)
    return parser


def _add_common(p: argparse.ArgumentParser, overrides: bool = True) -> None:
    defaults = Settings()
    p.add_argument("--store", default=defaults.store, help=f"embedding store directory (default: {defaults.store})")
    p.add_argument("--model", default=defaults.model, help=f"embedder id (default: {defaults.model})")
    if overrides:
        p.add_argument("--overrides", default="", help="overrides YAML whose human labels win (read only)")
    p.add_argument("--head", default="", help="a head file (.skops) instead of the store's or the shipped one")
    p.add_argument("--threshold", type=float, default=defaults.threshold, help="p_invert at or above inverts")
    p.add_argument("--unsure", type=float, default=defaults.unsure, help="band around the threshold left to kNN")
    p.add_argument("--background", default=defaults.background, help="page colour for transparent images")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("invertornot-ssg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _nothing_to_do(message: str) -> int:
    """A command with nothing to work on says so and fails, so a typo in a CI script is seen."""
    print(f"invertornot-ssg: {message}", file=sys.stderr)
    return 1


def _site_overrides(args: argparse.Namespace) -> str:
    """`classify` in a site's folder uses its overrides file (and so its head), as the build does."""
    if args.overrides is not None:
        return args.overrides
    default = Settings().overrides
    return default if Path(default).is_file() else ""


def _settings(args: argparse.Namespace, **extra) -> Settings:
    extra.setdefault("overrides", getattr(args, "overrides", ""))
    return Settings(
        store=args.store, model=args.model, head=args.head,
        threshold=args.threshold, unsure=args.unsure, background=args.background, **extra,
    )


def expand_paths(paths: Sequence[str]) -> list[tuple[str, Path]]:
    """(as given, path) for each file; folders are searched recursively for image files, sorted."""
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        found.append((os.path.join(root, name), Path(root, name)))
        else:
            found.append((given, path))
    return found


def run_classify(args: argparse.Namespace) -> int:
    from .engine import Engine, ImageRequest

    missing = [given for given in args.paths if not os.path.lexists(given)]
    for given in missing:
        print(f"invertornot-ssg: {given}: no such file or folder", file=sys.stderr)
    files = expand_paths([given for given in args.paths if given not in missing])
    if not files:
        return _nothing_to_do("nothing to classify: no image files in " + ", ".join(args.paths))
    engine = Engine(_settings(args, overrides=_site_overrides(args), write_overrides=False), Path.cwd(), logger=log)
    print(_what_decides(engine), file=sys.stderr)
    requests = [ImageRequest(path=path.absolute(), key=given) for given, path in files]
    results = engine.classify(requests)
    status = 1 if missing else 0
    if args.json:
        for result in results:
            print(json.dumps(result.as_json(result.request.key)))
        return status
    width = max([len(r.request.key) for r in results] + [4])
    print(f"{'path':<{width}}  decision  p_invert  method          cached")
    for r in results:
        decision = "error" if r.invert is None else ("invert" if r.invert else "keep")
        p = "" if r.p_invert is None else f"{r.p_invert:.3f}"
        print(f"{r.request.key:<{width}}  {decision:<8}  {p:>8}  {r.method:<14}  {'yes' if r.cached else 'no'}")
        if r.error:
            print(f"{'':<{width}}  ! {r.error}")
    print(engine.summary(results))
    return status


def _what_decides(engine) -> str:
    """One line naming the store, labels and head a run uses: a build's must match to agree."""
    store = f"{os.path.normpath(engine.store_dir)}{'' if engine.store_dir.exists() else ' (new)'}"
    labels = engine.overrides_path or "none"
    info = engine.head_info
    head = f"{info.path} ({info.version})" if info else "none"
    return f"invertornot-ssg: store {store}; labels {labels}; head {head}"


def run_retrain(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .training import AUGMENT_DEFAULT, report_lines, retrain

    files = [Path(f) for f in (args.overrides_files or [Settings().overrides])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"invertornot-ssg: error: no such overrides file: {', '.join(missing)}", file=sys.stderr)
        return 2
    # The head is saved per overrides file in the (shared) store: name the first one as the site.
    engine = Engine(_settings(args, overrides=str(files[0]), write_overrides=False), Path.cwd(), logger=log)
    head, report = retrain(engine, files, bootstrap=not args.no_bootstrap,
                           output=Path(args.output) if args.output else None, log=log,
                           augment=AUGMENT_DEFAULT if args.augment is None else args.augment)
    for line in report_lines(report):
        print(line)
    print(f"saved head {head.version} for {head.embedder_id} to {args.output or engine.site_head_path()}")
    site = report["training_site"]
    if site["n"] and site["accuracy"] < 1.0:
        log.warning("the head disagrees with some site labels; those images still get their label "
                    "(overrides and duplicate lookup win over the head)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, format_report, read_truth

    truth = read_truth(Path(args.path))
    if not truth:
        return _nothing_to_do(f"nothing to evaluate: {args.path} lists no image files")
    report = evaluate(_settings(args, write_overrides=False), Path.cwd(), truth, log)
    print(format_report(report))
    return 0


def run_review(args: argparse.Namespace) -> int:
    from .review import serve

    return serve(_settings(args), Path.cwd(), port=args.port, open_browser=not args.no_browser, logger=log)


def run_map(args: argparse.Namespace) -> int:
    from .mapimage import run

    return run(_settings(args), Path.cwd(), Path(args.output), dark_page=args.dark_page, tile=args.tile, logger=log)


def run_serve(args: argparse.Namespace) -> int:
    from .serve import ServeOptions, read_token, serve

    options = ServeOptions(
        host=args.host, port=args.port, cors=tuple(args.cors), max_images=args.max_images,
        max_request_bytes=int(args.max_request_mb * 2**20),
        token=read_token(Path(args.token_file)) if args.token_file else None,
    )
    settings = _settings(args, write_overrides=False, remote_allow_private=args.remote_allow_private)
    return serve(settings, Path.cwd(), options, logger=log)


def run_apply(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .errors import ConfigError
    from .sitedir import SitePage, SiteResolver, absolute_href, html_files, process_site, relative_href

    root = Path(args.site_dir)
    if not root.is_dir():
        raise ConfigError(f"SITE_DIR: {root} is not a directory")
    extra = {"dark_selectors": tuple(args.dark_selectors)} if args.dark_selectors else {}
    settings = _settings(args, write_overrides=not args.no_record, css=not args.no_css, **extra)
    engine = Engine(settings, Path.cwd(), logger=log)
    resolver = SiteResolver(root, [args.base_url] if args.base_url else [])
    if not settings.css:
        css_href = None
    elif args.base_url:
        prefix = resolver.bases[0].prefix  # site-absolute: the same link from every page
        css_href = lambda page_id: absolute_href(prefix)  # noqa: E731
    else:
        css_href = relative_href
    pages = [SitePage(path) for path in html_files(root)]
    if not pages:
        return _nothing_to_do(f"nothing to apply: no .html files under {root} (is it the built site?)")
    run = process_site(engine, resolver, pages, css_href=css_href, dry_run=args.dry_run, logger=log)
    for line in run.describe():
        print(("would change " if args.dry_run else "") + line)
    verb = "would change" if args.dry_run else "changed"
    done = "" if run.changes else " (nothing to do: every page is already as apply leaves it)"
    print(f"{run.pages} pages, {verb} {len(run.changes)}{done}; {engine.summary(run.results)}")
    return 0


def _setup_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


if __name__ == "__main__":
    sys.exit(main())
