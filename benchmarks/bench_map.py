"""`invertornot-ssg map` on the generated benchmark sites: how long it takes, phase by phase, and how
well t-SNE's iteration count places images of a kind together.

    python benchmarks/bench_map.py                          # the 1,000- and 3,000-image sites
    python benchmarks/bench_map.py --images 1000 --iters 250 500 1000

For each size: the site from sitegen.py (generated once) and a cold `mkdocs build` with the plugin
(once: it fills the store and the overrides file the map reads; its time is reported, not counted).
Then:

1. the command end to end in a fresh process (`invertornot-ssg map --output ...`: imports, store,
   layout, decoding every image, drawing, PNG), wall and CPU time;
2. its phases in this process: reading the items and vectors, PCA + t-SNE at each `--iters`, the
   linear assignment onto the grid, decoding the tiles, drawing;
3. for each t-SNE iteration count, a quality figure: the mean grid distance between two images of
   the same kind (photo, screenshot, plot, diagram: sitegen's mix) divided by the same with the
   kinds shuffled (mean of 20 shuffles). 1.0 is chance; lower is better.

`--bootstrap` (also with `--images 0`: no site) lays out real embeddings instead: the shipped
bootstrap set's (models/, 4,050 real images from ~60 sources: icon themes, documentation
packages, photographs), a fixed sample of each size: t-SNE and assignment times, and the same
quality figure with "same source" (images of one icon set, one package's docs) as the siblings.

The target (#33): a few thousand images on 2 cores in under a minute.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

from common import DATA, save_results, table  # noqa: E402


def build_site(n: int, data: Path) -> tuple[Path, float | None]:
    """The generated site with its store filled by one cold build; (site dir, build seconds or None if done before)."""
    from sitegen import make_site

    site = data / f"site-{n}"
    make_site(site, n)
    if (site / "invertornot.yml").is_file() and (site / ".invertornot" / "store.db").is_file():
        return site, None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", "mkdocs.yml"], cwd=site, check=True)
    return site, time.perf_counter() - start


def end_to_end(site: Path, output: Path) -> dict:
    # The command's own peak memory (RUSAGE_CHILDREN's would include the site's build).
    child = ("import resource, sys\nfrom invertornot_ssg.cli import main\nrc = main(sys.argv[1:])\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", child, "map", "--output", str(output)], cwd=site,
                          check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": time.perf_counter() - start,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mib": int(proc.stderr.split()[-1]) / 1024, "png_kib": output.stat().st_size / 1024,
            "load_average": os.getloadavg()[0]}


def timed(fn, *args, **kwargs):
    """(fn's result, wall seconds, CPU seconds of this process: every thread's)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def kind_ratio(cells, kinds: list[str], shuffles: int = 20) -> float:
    """Mean grid distance within a kind over the same with kinds shuffled (1.0: chance)."""
    import numpy as np

    def within(labels) -> float:
        total = count = 0.0
        for kind in set(labels):
            points = cells[np.asarray(labels) == kind].astype(float)
            if len(points) > 1:
                d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
                total += d.sum() / 2
                count += len(points) * (len(points) - 1) / 2
        return total / count

    rng = np.random.default_rng(0)
    return within(kinds) / float(np.mean([within(list(rng.permutation(kinds))) for _ in range(shuffles)]))


def bootstrap_layouts(sizes: list[int], iters: list[int]) -> tuple[dict, list[list]]:
    """Layout time and same-source quality on samples of the shipped bootstrap set's embeddings."""
    import numpy as np

    from invertornot_ssg.maplayout import ASPECT, assign_to_grid, embed_2d, grid_shape

    data = np.load(REPO / "models" / "bootstrap-efficientnet-lite0.prep2.npz")
    vectors, sources = data["vectors"].astype(np.float32), list(data["source"])
    times: dict = {}
    rows = []
    for n in sizes:
        pick = np.sort(np.random.default_rng(0).choice(len(vectors), size=min(n, len(vectors)), replace=False))
        cols, grid_rows = grid_shape(len(pick), ASPECT)
        for n_iter in iters:
            (points, tsne, tsne_cpu) = timed(embed_2d, vectors[pick], max_iter=n_iter)
            (cells, assign, assign_cpu) = timed(assign_to_grid, points, cols, grid_rows)
            ratio = kind_ratio(cells, [sources[i] for i in pick])
            times[f"{len(pick)}_{n_iter}"] = {"tsne_s": tsne, "tsne_cpu_s": tsne_cpu, "assign_s": assign,
                                              "assign_cpu_s": assign_cpu, "source_ratio": ratio}
            rows.append([len(pick), n_iter, f"{tsne_cpu:.1f} s ({tsne:.1f} s)", f"{assign_cpu:.1f} s ({assign:.1f} s)",
                         f"{ratio:.2f}"])
            print(f"bootstrap {len(pick)} images, {n_iter} iterations: t-SNE {tsne_cpu:.1f} s CPU, "
                  f"assignment {assign_cpu:.1f} s CPU, same source / chance {ratio:.2f}", file=sys.stderr)
    return times, rows


def phases(site: Path, iters: list[int]) -> tuple[dict, list[list]]:
    from invertornot_ssg import mapimage
    from invertornot_ssg.maplayout import ASPECT, assign_to_grid, embed_2d, grid_shape
    from invertornot_ssg.review import open_site
    from invertornot_ssg.settings import Settings

    os.chdir(site)
    log = logging.getLogger("bench_map")
    times: dict = {}
    start = time.perf_counter()
    engine, review_site = open_site(Settings(), site, log)
    items = sorted(review_site.items(), key=lambda item: item.key)
    vectors = engine.store.get_vectors(engine.embedder_id, {item.sha1 for item in items})
    times["items_and_vectors_s"] = time.perf_counter() - start
    import numpy as np

    matrix = np.stack([vectors[item.sha1] for item in items])
    kinds = [item.key.rsplit("-", 1)[-1].split(".")[0] for item in items]  # 00012-photo.jpg -> photo
    cols, rows = grid_shape(len(items), ASPECT)
    rows_out = []
    for n_iter in iters:
        points, tsne, tsne_cpu = timed(embed_2d, matrix, max_iter=n_iter)
        cells, assign, assign_cpu = timed(assign_to_grid, points, cols, rows)
        ratio = kind_ratio(cells, kinds)
        times[f"tsne_{n_iter}_s"], times[f"tsne_{n_iter}_cpu_s"] = tsne, tsne_cpu
        times["assign_s"], times["assign_cpu_s"] = assign, assign_cpu
        times[f"kind_ratio_{n_iter}"] = ratio
        rows_out.append([len(items), n_iter, f"{tsne_cpu:.1f} s ({tsne:.1f} s)", f"{assign_cpu:.1f} s ({assign:.1f} s)",
                         f"{ratio:.2f}"])
    images, times["decode_s"], times["decode_cpu_s"] = timed(
        mapimage.decode_tiles, review_site, items, mapimage.TILE - 2 * mapimage.FRAME)
    times["unreadable"] = sum(image is None for image in images)
    engine.store.close()
    return times, rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--iters", type=int, nargs="+", default=[250, 500, 1000], help="t-SNE iterations to compare")
    parser.add_argument("--data", type=Path, default=DATA, help="where the generated sites live (default: benchmarks/.data)")
    parser.add_argument("--bootstrap", type=int, nargs="*", default=None, metavar="N",
                        help="also lay out N of the shipped bootstrap set's real embeddings (default sizes: 1000 3000)")
    args = parser.parse_args(argv)
    results: dict = {"sizes": {}}
    if args.bootstrap is not None:
        times, rows = bootstrap_layouts(args.bootstrap or [1000, 3000], args.iters)
        results["bootstrap"] = times
        print(table(["bootstrap images", "t-SNE iterations", "PCA + t-SNE: CPU (wall)", "assignment: CPU (wall)", "same-source distance / chance"], rows))
        print()
    summary, quality = [], []
    for n in [n for n in args.images if n > 0]:
        site, build_s = build_site(n, args.data.resolve())
        e2e = end_to_end(site, site / "map.png")
        here = os.getcwd()
        try:
            times, rows = phases(site, args.iters)
        finally:
            os.chdir(here)
        results["sizes"][str(n)] = {"build_s": build_s, "end_to_end": e2e, "phases": times}
        summary.append([n, f"{e2e['wall_s']:.1f} s (load {e2e['load_average']:.1f})", f"{e2e['cpu_s']:.1f} s",
                        f"{e2e['peak_rss_mib']:.0f} MiB", f"{times['items_and_vectors_s']:.1f} s",
                        f"{times['decode_cpu_s']:.1f} s ({times['decode_s']:.1f} s)", f"{e2e['png_kib']:.0f} KiB"])
        quality += rows
        print(f"{n} images: map in {e2e['wall_s']:.1f} s", file=sys.stderr)
    if summary:
        print(table(["images", "map, end to end: wall", "CPU", "peak RSS", "items + vectors", "decode tiles: CPU (wall)", "PNG"], summary))
        print()
        print(table(["images", "t-SNE iterations", "PCA + t-SNE: CPU (wall)", "assignment: CPU (wall)", "same-kind distance / chance"], quality))
    save_results("map", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
