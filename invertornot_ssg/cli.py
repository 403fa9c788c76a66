"""The `invertornot-ssg` command: argparse subcommands, each `main(argv) -> int`."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from .errors import InvertOrNotError
from .settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".webp", ".svg", ".bmp", ".tif", ".tiff", ".avif"}
log = logging.getLogger("invertornot_ssg")


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
    parser = argparse.ArgumentParser(prog="invertornot-ssg", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = sub.add_parser("classify", help="decide invert/keep for image files or folders")
    classify.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    classify.add_argument("--json", action="store_true", help="one JSON object per image per line")
    _add_common(classify)
    classify.set_defaults(run=run_classify)
    return parser


def _add_common(p: argparse.ArgumentParser) -> None:
    defaults = Settings()
    p.add_argument("--store", default=defaults.store, help=f"embedding store directory (default: {defaults.store})")
    p.add_argument("--model", default=defaults.model, help=f"embedder id (default: {defaults.model})")
    p.add_argument("--overrides", default="", help="overrides YAML whose human labels win (read only)")
    p.add_argument("--head", default="", help="a head file (.skops) instead of the store's or the shipped one")
    p.add_argument("--threshold", type=float, default=defaults.threshold, help="p_invert at or above inverts")
    p.add_argument("--unsure", type=float, default=defaults.unsure, help="band around the threshold left to kNN")
    p.add_argument("--background", default=defaults.background, help="page colour for transparent images")


def _settings(args: argparse.Namespace, **extra) -> Settings:
    return Settings(
        store=args.store, model=args.model, overrides=args.overrides, head=args.head,
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

    engine = Engine(_settings(args, write_overrides=False), Path.cwd(), logger=log)
    files = expand_paths(args.paths)
    requests = [ImageRequest(path=path.absolute(), key=given) for given, path in files]
    results = engine.classify(requests)
    if args.json:
        for result in results:
            print(json.dumps(result.as_json(result.request.key)))
        return 0
    width = max([len(r.request.key) for r in results] + [4])
    print(f"{'path':<{width}}  decision  p_invert  method          cached")
    for r in results:
        decision = "error" if r.invert is None else ("invert" if r.invert else "keep")
        p = "" if r.p_invert is None else f"{r.p_invert:.3f}"
        print(f"{r.request.key:<{width}}  {decision:<8}  {p:>8}  {r.method:<14}  {'yes' if r.cached else 'no'}")
        if r.error:
            print(f"{'':<{width}}  ! {r.error}")
    print(engine.summary(results))
    return 0


def _setup_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


if __name__ == "__main__":
    sys.exit(main())
