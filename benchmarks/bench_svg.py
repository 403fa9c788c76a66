"""What SVG hardening costs (issue 34): load_image on SVGs as the engine runs it (structure check,
then resvg in a thread with a large stack) against resvg called directly in the calling thread
with no check, as before. SVGs: benchmarks/sitegen.py's diagrams, the sample sites' SVGs, a
matplotlib-style scatter of 3,000 <use> markers, and, with --extra DIR, every *.svg under DIR.

    python benchmarks/bench_svg.py [--rounds 5] [--extra DIR]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import median  # noqa: E402
from sitegen import svg as diagram  # noqa: E402

from invertornot_ssg import images  # noqa: E402
from invertornot_ssg.images import loaded, svg  # noqa: E402


def corpus(extra: Path | None) -> list[bytes]:
    rng = random.Random(0)
    files = [diagram(rng).encode() for _ in range(40)]
    files += [p.read_bytes() for p in sorted((HERE.parent / "sample_site").rglob("*.svg"))]
    dots = "".join(f'<use xlink:href="#d" x="{i % 100}" y="{i // 100}"/>' for i in range(3000))
    files.append(('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                  f'width="400" height="300"><defs><circle id="d" r="2"/></defs>{dots}</svg>').encode())
    if extra:
        files += [p.read_bytes() for p in sorted(extra.rglob("*.svg"))]
    return files


def direct(resvg_py, svg: str, box: tuple[int, int]) -> bytes:
    """resvg in the calling thread, as before issue 34."""
    try:
        return resvg_py.svg_to_bytes(svg_string=svg, width=box[0], height=box[1], dpi=96.0)
    except ValueError as exc:
        raise loaded._Reject("svg-error", str(exc)) from None


def run(files: list[bytes]) -> float:
    start = time.perf_counter()
    for data in files:
        images.load_image_bytes(data, "x.svg", max_side=224)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--extra", type=Path)
    args = parser.parse_args()
    files = corpus(args.extra)
    hardened = (svg._check_structure, svg._rasterize)
    plain = (lambda root: None, direct)
    times: dict[str, list[float]] = {"before": [], "hardened": []}
    run(files)  # warm up: imports, resvg's font database
    for _ in range(args.rounds):
        for name, (check, rasterize) in (("before", plain), ("hardened", hardened)):
            svg._check_structure, svg._rasterize = check, rasterize
            times[name].append(run(files))
    svg._check_structure, svg._rasterize = hardened
    before, after = median(times["before"]), median(times["hardened"])
    ratios = sorted(h / b for h, b in zip(times["hardened"], times["before"]))
    print(f"{len(files)} SVGs, median of {args.rounds} rounds: before {1000 * before / len(files):.2f} ms/SVG,"
          f" hardened {1000 * after / len(files):.2f} ms/SVG; ratio {after / before:.3f}"
          f" (per-round ratios {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
