#!/usr/bin/env python3
"""The documentation's plots, drawn from the committed evaluation and benchmark results.

Usage: python docs/tools/plots.py [OUT_DIR]   (default: docs/src/img/plots/; docs/hooks.py calls
`write_all` on every docs build). Sources: the tables of models/bootstrap/EVALUATION.md (written
by scripts/train_default_head.py) and the newest benchmarks/results/{warm,cold,store}-*.json (and
every warm run, for the history). SVGs are written byte for byte the same from the same data.
"""
from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INK, ACCENT, SECOND, THIRD = "#222222", "#1f5fbf", "#d9480f", "#2b8a3e"


def write_all(repo: Path, out: Path) -> list[Path]:
    """Draw every plot into `out`; a file is rewritten only when its bytes change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.hashsalt": "invertornot-ssg", "svg.fonttype": "path", "font.size": 10,
        "axes.edgecolor": INK, "axes.labelcolor": INK, "xtick.color": INK, "ytick.color": INK,
        "text.color": INK, "axes.spines.top": False, "axes.spines.right": False,
        "figure.facecolor": "white", "axes.facecolor": "white",
    })
    evaluation = (repo / "models" / "bootstrap" / "EVALUATION.md").read_text(encoding="utf-8")
    results = repo / "benchmarks" / "results"
    drawn = {
        "quality-methods.svg": quality_methods(plt, evaluation),
        "quality-knn.svg": quality_knn(plt, evaluation),
        "quality-near-duplicate.svg": quality_near_duplicate(plt, evaluation),
        "performance-warm.svg": performance_warm(plt, results),
        "performance-cold.svg": performance_cold(plt, results),
        "performance-store.svg": performance_store(plt, results),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in drawn.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
        plt.close(figure)
        path = out / name
        if not path.is_file() or path.read_bytes() != buffer.getvalue():
            path.write_bytes(buffer.getvalue())
        written.append(path)
    return written


# --- reading --------------------------------------------------------------------------------------


def table(markdown: str, first_header: str) -> list[list[str]]:
    """The rows of the first Markdown table whose header starts with `first_header` (cells as text)."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header and i + 1 < len(lines) and set(lines[i + 1]) <= set("|- :"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise ValueError(f"no table starting with {first_header!r}")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not line.startswith("|"):
        return []
    return [cell.strip() for cell in line.strip("|").split("|")]


def percent(cell: str) -> float:
    return float(re.match(r"\s*([\d.]+)%", cell).group(1))


def newest(results: Path, kind: str) -> dict:
    paths = sorted(results.glob(f"{kind}-*.json"))
    if not paths:
        raise FileNotFoundError(f"no {kind}-*.json in {results}")
    return json.loads(paths[-1].read_text(encoding="utf-8")) | {"_file": paths[-1].name}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --- quality --------------------------------------------------------------------------------------


def quality_methods(plt, evaluation: str):
    """Held out by source: accuracy on clear-cut images and photographs inverted, per method."""
    rows = table(evaluation, "method")
    names = [row[0].replace("head: ", "") for row in rows]
    clear = [percent(row[2]) for row in rows]
    photos = [percent(row[5]) for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.5 * len(rows) + 1.2), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    ys = range(len(rows))
    left.barh(ys, clear, color=[SECOND if "baseline" in n else ACCENT for n in names])
    left.set_xlim(50, 100)
    left.set_xlabel("accuracy on clear-cut images (%)")
    left.set_yticks(list(ys), names)
    left.invert_yaxis()
    for y, value in zip(ys, clear):
        left.text(value + 0.5, y, f"{value:.1f}%", va="center")
    right.barh(ys, photos, color=[SECOND if "baseline" in n else THIRD for n in names])
    right.set_xlabel("photographs inverted (%, lower is better)")
    for y, value in zip(ys, photos):
        right.text(value + 0.3, y, f"{value:.1f}%", va="center")
    fig.suptitle("Held out by source (GroupKFold over sources), decision at p_invert >= 0.5", x=0.02, ha="left")
    return fig


def quality_knn(plt, evaluation: str):
    """The kNN fallback: accuracy where it votes and how many images it votes on."""
    rows = table(evaluation, "k")
    fig, (acc, cover) = plt.subplots(1, 2, figsize=(9, 3.2))
    for colour, k in zip((ACCENT, SECOND, THIRD), sorted({int(r[0]) for r in rows})):
        mine = [r for r in rows if int(r[0]) == k]
        cosine = [float(r[1]) for r in mine]
        acc.plot(cosine, [percent(r[3]) for r in mine], marker="o", color=colour, label=f"k = {k}")
        cover.plot(cosine, [percent(r[2]) for r in mine], marker="o", color=colour, label=f"k = {k}")
    acc.set_xlabel("minimum cosine of a neighbour")
    acc.set_ylabel("accuracy where it votes (%)")
    cover.set_xlabel("minimum cosine of a neighbour")
    cover.set_ylabel("images it votes on (%)")
    acc.legend(frameon=False)
    fig.suptitle("kNN fallback, neighbours from other sources only", x=0.02, ha="left")
    fig.tight_layout()
    return fig


def quality_near_duplicate(plt, evaluation: str):
    """Near-duplicate reuse: edited copies found against other images matched, per threshold."""
    rows = table(evaluation, "cosine >=")
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for colour, phash in zip((ACCENT, SECOND, THIRD), sorted({int(r[1]) for r in rows})):
        mine = [r for r in rows if int(r[1]) == phash]
        ax.plot([float(r[0]) for r in mine], [percent(r[2]) for r in mine], marker="o", color=colour,
                label=f"phash distance <= {phash}")
    ax.set_xlabel("cosine at least")
    ax.set_ylabel("edited copies matched (%)")
    ax.legend(frameon=False)
    ax.set_title("Near-duplicate reuse: resized, recompressed or cropped copies", loc="left")
    return fig


# --- performance ----------------------------------------------------------------------------------


def performance_warm(plt, results: Path):
    """Every warm-build run: plugin / no plugin, the median and each pair, beside the 1.10 target."""
    runs = []
    for path in sorted(results.glob("warm-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "mkdocs_ratio" in data:
            stamp = path.stem.split("-", 1)[1]
            runs.append((f"{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}", data))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for x, (_, data) in enumerate(runs):
        pairs = data.get("mkdocs_pair_ratios") or []
        ax.scatter([x] * len(pairs), pairs, color="#9aa5b1", s=12, zorder=2)
        ax.scatter([x], [data["mkdocs_ratio"]], color=ACCENT, s=40, zorder=3)
    ax.axhline(1.10, color=SECOND, linestyle="--", linewidth=1)
    ax.text(len(runs) - 0.5, 1.105, "target 1.10", color=SECOND, ha="right", va="bottom")
    ax.axhline(1.0, color=INK, linewidth=0.6)
    ax.set_xticks(range(len(runs)), [label for label, _ in runs], rotation=45, ha="right")
    ax.set_ylabel("build time, plugin / no plugin")
    ax.set_title(f"Warm mkdocs build of a {runs[-1][1].get('images', 1000):,}-image site: median (blue) "
                 "and each pair (grey), per run", loc="left")
    return fig


def performance_cold(plt, results: Path):
    """The newest cold run: images a second through the whole pipeline against the bare model."""
    data = newest(results, "cold")
    runs = data["runs"]
    labels = [f"{run['model']}\n{run['images']:,} images" for run in runs]
    pipeline = [_median(run["pipeline"]) for run in runs]
    bare = [_median(run["bare"]) for run in runs]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    xs = range(len(runs))
    ax.bar([x - 0.2 for x in xs], bare, width=0.4, color="#9aa5b1", label="bare model forward")
    ax.bar([x + 0.2 for x in xs], pipeline, width=0.4, color=ACCENT, label="whole pipeline")
    for x, p, b in zip(xs, pipeline, bare):
        ax.text(x + 0.2, p + 1, f"{p:.0f} ({p / b:.0%})", ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("images per second")
    ax.legend(frameon=False)
    machine = data.get("machine", {})
    ax.set_title(f"Cold: new images, model loaded ({machine.get('cpus', '?')} vCPUs, {machine.get('cpu', '?')}; "
                 f"{data['_file']})", loc="left")
    return fig


def performance_store(plt, results: Path):
    """The newest store run: query latency against the number of vectors, beside a flat scan."""
    data = newest(results, "store")
    runs = sorted(data["runs"], key=lambda run: run["vectors"])
    vectors = [run["vectors"] for run in runs]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(vectors, [run["p50_ms"] for run in runs], marker="o", color=ACCENT, label="kNN query, p50")
    ax.plot(vectors, [run["p99_ms"] for run in runs], marker="o", color=SECOND, label="kNN query, p99")
    ax.plot(vectors, [run["flat_p50_ms"] for run in runs], marker="o", color="#9aa5b1", linestyle="--",
            label="exact flat scan, p50")
    ax.axhline(5, color=SECOND, linestyle=":", linewidth=1)
    ax.text(vectors[0], 5.4, "target p99 5 ms", color=SECOND)
    for run in runs:
        ax.annotate(f"recall@10 {run['recall_at_10']:.2f}", (run["vectors"], run["p99_ms"]),
                    textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors in the store")
    ax.set_ylabel("milliseconds")
    ax.legend(frameon=False, loc="upper left")
    ax.set_title(f"Store at scale ({data['_file']})", loc="left")
    return fig


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "src" / "img" / "plots"
    for written in write_all(REPO, target):
        print(written)
