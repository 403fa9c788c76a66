"""Warm rebuild: `mkdocs build` of the generated site with every image already in the store, with the
plugin against the same site without it; also the warm path through Engine.classify and the CLI.

    python benchmarks/bench_warm.py                   # 1000 images, 5 warm builds of each
    python benchmarks/bench_warm.py --images 100 --repeat 3

First one cold build with the plugin fills the store (its time and peak memory are reported too).
Then plain and plugin builds alternate, each in a fresh process (what `mkdocs build` costs a user,
interpreter start included); the table gives the median wall and CPU time of each and their
ratios. A third kind of build deletes the plugin's build memo and page scans first: a warm build
in which something changed, so that every image is looked at again (decisions still cached in
the store). Each build also reports which heavy modules it imported: a warm build must import
neither torch nor faiss. Peak memory is the process's maximum resident set.
"""
from __future__ import annotations

import argparse
import compileall
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

from common import DATA, median, save_results, table  # noqa: E402

HEAVY = ("torch", "faiss", "sklearn", "skops", "open_clip", "timm", "PIL", "numpy")


def imported() -> list[str]:
    """The heavy modules this process loaded (numpy sits in sys.modules unloaded until first use)."""
    loaded = [m for m in HEAVY if m != "numpy" and m in sys.modules]
    return loaded + (["numpy"] if "numpy._core" in sys.modules or "numpy.core" in sys.modules else [])


def run(argv: list[str]) -> tuple[float, dict]:
    """(wall seconds, the JSON line it printed) of a child process; children report their own peak
    RSS, and the line gets the child's CPU time (user + system): on a shared machine whose other
    tenants steal time, CPU time moves far less than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, row


def build_once(config: str) -> dict:
    """Child process: one `mkdocs build`, as the CLI does it, then what it imported and its peak RSS."""
    import logging

    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    from common import proc_status

    logging.getLogger("mkdocs").setLevel(logging.WARNING)
    start = time.perf_counter()
    cfg = load_config(config_file=config)
    cfg.plugins.on_startup(command="build", dirty=False)
    try:
        build(cfg)
    finally:
        cfg.plugins.on_shutdown()
    return {
        "build_seconds": time.perf_counter() - start,
        "peak_rss_mb": proc_status("VmHWM") / 2**20,
        "imported": imported(),
    }


def classify_once(store: str, folder: str) -> dict:
    """Child process: the `invertornot-ssg classify` CLI on a folder, then what it imported."""
    import contextlib
    import io

    from invertornot_ssg.cli import main

    from common import proc_status

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["classify", "--json", "--store", store, folder])
    return {
        "rc": rc,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": proc_status("VmHWM") / 2**20,
        "imported": imported(),
    }


def child(*args: str) -> list[str]:
    return [sys.executable, __file__, *args]


def have_mkdocs_plugin() -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == "invertornot" for ep in entry_points(group="mkdocs.plugins"))


def measure(argvs: list[list[str]], repeat: int) -> list[list[dict]]:
    """Run the commands in turn, `repeat` rounds (after one warm-up round); their JSON lines + wall time."""
    outs: list[list[dict]] = [[] for _ in argvs]
    for i in range(repeat + 1):
        for argv, out in zip(argvs, outs):
            seconds, row = run(argv)
            row["wall_seconds"] = seconds
            if i:  # the first round warms the page cache (and leaves the build memo)
                out.append(row)
    return outs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep the store of an earlier run: no cold builds")
    parser.add_argument("--build-once", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--forget", metavar="CACHE_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--classify-once", nargs=2, metavar=("STORE", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_once:
        for memo in Path(args.forget or "/nonexistent").glob("*.json"):
            if memo.name.startswith(("build-", "pages-")):
                memo.unlink()
        print(json.dumps(build_once(args.build_once)))
        return 0
    if args.classify_once:
        print(json.dumps(classify_once(*args.classify_once)))
        return 0
    if args.noop:  # the CLI's floor: interpreter, imports of the CLI module, nothing classified
        from common import proc_status
        import invertornot_ssg.cli  # noqa: F401

        print(json.dumps({"peak_rss_mb": proc_status("VmHWM") / 2**20, "imported": []}))
        return 0

    # Byte-compile the package as `pip install` does: an editable install in an environment with
    # PYTHONDONTWRITEBYTECODE (CI images often set it) would otherwise compile every module of
    # the plugin on each build, while mkdocs' own modules load from the .pyc files pip wrote.
    compileall.compile_dir(str(REPO / "invertornot_ssg"), quiet=1)
    compileall.compile_dir(str(REPO / "plugins"), quiet=1)

    from sitegen import make_site  # numpy and Pillow: here, not in the children whose imports count

    site = DATA / f"site-{args.images}"
    make_site(site, args.images)
    store = site / ".invertornot"
    rows, raw = [], {}
    reuse = args.reuse and store.is_dir()
    if not reuse:
        shutil.rmtree(store, ignore_errors=True)
        (site / "invertornot.yml").unlink(missing_ok=True)

    if have_mkdocs_plugin():
        plain, plugin = child("--build-once", str(site / "mkdocs-plain.yml")), child("--build-once", str(site / "mkdocs.yml"))
        if not reuse:
            seconds, cold = run(plugin)
            raw["mkdocs_cold"] = {**cold, "wall_seconds": seconds}
            rows.append(["mkdocs build, plugin, cold (embeds every image)", f"{seconds:.1f} s", "", f"{cold['cpu_seconds']:.1f} s", "",
                         f"{cold['peak_rss_mb']:.0f} MB", ", ".join(cold["imported"])])
        # Without its caches (build memo, page scans): what a build pays when something changed
        # and it must look at every image again, decisions still cached in the store.
        forgetful = child("--build-once", str(site / "mkdocs.yml"), "--forget", str(store / "cache"))
        plains, plugins, forgetfuls = measure([plain, plugin, forgetful], args.repeat)
        raw["mkdocs_plugin_warm_no_memo"] = forgetfuls
        raw["mkdocs_plain"], raw["mkdocs_plugin_warm"] = plains, plugins
        p, w = median(r["wall_seconds"] for r in plains), median(r["wall_seconds"] for r in plugins)
        pc, wc = median(r["cpu_seconds"] for r in plains), median(r["cpu_seconds"] for r in plugins)
        pairs = sorted(b["wall_seconds"] / a["wall_seconds"] for a, b in zip(plains, plugins))
        rows.append(["mkdocs build, no plugin", f"{p:.2f} s", "1.00", f"{pc:.2f} s", "1.00",
                     f"{median(r['peak_rss_mb'] for r in plains):.0f} MB", ", ".join(plains[-1]["imported"]) or "none"])
        rows.append(["mkdocs build, plugin, warm", f"{w:.2f} s", f"{w / p:.2f}", f"{wc:.2f} s", f"{wc / pc:.2f}",
                     f"{median(r['peak_rss_mb'] for r in plugins):.0f} MB", ", ".join(plugins[-1]["imported"]) or "none"])
        f, fc = median(r["wall_seconds"] for r in forgetfuls), median(r["cpu_seconds"] for r in forgetfuls)
        rows.append(["mkdocs build, plugin, warm, build memo and page scans deleted", f"{f:.2f} s", f"{f / p:.2f}",
                     f"{fc:.2f} s", f"{fc / pc:.2f}", f"{median(r['peak_rss_mb'] for r in forgetfuls):.0f} MB",
                     ", ".join(forgetfuls[-1]["imported"]) or "none"])
        raw["mkdocs_ratio"] = w / p
        raw["mkdocs_cpu_ratio"] = wc / pc
        raw["mkdocs_pair_ratios"] = pairs
    else:
        print("the MkDocs plugin is not installed (no 'invertornot' mkdocs.plugins entry point):"
              " measuring the CLI only", file=sys.stderr)

    folder = str(site / "docs" / "img")
    cli_store = str(DATA / f"cli-store-{args.images}")
    if not (reuse and Path(cli_store).is_dir()):
        shutil.rmtree(cli_store, ignore_errors=True)
        seconds, cold = run(child("--classify-once", cli_store, folder))
        raw["cli_cold"] = {**cold, "wall_seconds": seconds}
        rows.append(["invertornot-ssg classify, cold", f"{seconds:.1f} s", "", f"{cold['cpu_seconds']:.1f} s", "",
                     f"{cold['peak_rss_mb']:.0f} MB", ", ".join(cold["imported"])])
    noops, warms = measure([child("--noop"), child("--classify-once", cli_store, folder)], args.repeat)
    raw["cli_noop"], raw["cli_warm"] = noops, warms
    n, w = median(r["wall_seconds"] for r in noops), median(r["wall_seconds"] for r in warms)
    nc, wc = median(r["cpu_seconds"] for r in noops), median(r["cpu_seconds"] for r in warms)
    rows.append(["python + import of the CLI, nothing classified", f"{n:.2f} s", "1.00", f"{nc:.2f} s", "1.00",
                 f"{median(r['peak_rss_mb'] for r in noops):.0f} MB", "none"])
    rows.append([f"invertornot-ssg classify, warm ({args.images} images)", f"{w:.2f} s", f"{w / n:.2f}", f"{wc:.2f} s", f"{wc / nc:.2f}",
                 f"{median(r['peak_rss_mb'] for r in warms):.0f} MB", ", ".join(warms[-1]["imported"]) or "none"])
    raw["cli_warm_classify_ms_per_image"] = median(r["seconds"] for r in warms) / args.images * 1e3

    print(table(["run", "wall (median)", "ratio", "CPU (median)", "ratio", "peak RSS", "heavy modules imported"], rows))
    if "mkdocs_pair_ratios" in raw:
        print("\nwall-time ratio of each plain/plugin pair: " + ", ".join(f"{r:.2f}" for r in raw["mkdocs_pair_ratios"]))
    print(f"\nwarm classify inside the CLI: {raw['cli_warm_classify_ms_per_image']:.2f} ms per image")
    save_results("warm", {"images": args.images, "repeat": args.repeat, **raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
