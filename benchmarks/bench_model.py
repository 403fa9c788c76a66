"""Model load time, memory and batch size: importing torch, building the embedder, the first
batch, then the bare forward rate at that batch size; each in a fresh process (what a cold build
pays before its first image), repeated; medians.

    python benchmarks/bench_model.py                                    # batch 32, both models
    python benchmarks/bench_model.py --batches 8 16 32 64 --models efficientnet-lite0

Peak memory of whole builds (cold and warm) is bench_warm.py's.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, proc_status, save_results, table  # noqa: E402


def load_once(model: str, batch: int) -> dict:
    """Child process: the timings of one model load, and the resident memory after each step."""
    import numpy as np

    start = time.perf_counter()
    base = proc_status("VmRSS")
    import torch  # noqa: F401

    t_torch = time.perf_counter()
    rss_torch = proc_status("VmRSS")
    from PIL import Image

    from invertornot_ssg.embedders import get_embedder

    embedder = get_embedder(model, progress=False)
    t_model = time.perf_counter()
    rss_model = proc_status("VmRSS")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)) for _ in range(batch)]
    batch_input = embedder.preprocess(images)
    embedder.forward(batch_input)
    t_batch = time.perf_counter()
    rounds = max(2, 128 // batch)
    for _ in range(rounds):
        embedder.forward(batch_input)
    rate = rounds * batch / (time.perf_counter() - t_batch)
    return {
        "forward_images_per_s": rate,
        "import_torch_s": t_torch - start,
        "load_model_s": t_model - t_torch,
        "first_batch_s": t_batch - t_model,
        "rss_python_mb": base / 2**20,
        "rss_after_torch_mb": rss_torch / 2**20,
        "rss_after_model_mb": rss_model / 2**20,
        "peak_rss_mb": proc_status("VmHWM") / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "clip:ViT-B-32"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[32])
    parser.add_argument("--load-once", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_once:
        print(json.dumps(load_once(args.load_once, args.batches[0])))
        return 0
    rows, raw = [], {}
    for model in args.models:
        for batch in args.batches:
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run([sys.executable, __file__, "--load-once", model, "--batches", str(batch)],
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            raw[f"{model} batch {batch}"] = runs
            m = {key: median(r[key] for r in runs) for key in runs[0]}
            rows.append([model, batch, f"{m['import_torch_s']:.2f} s", f"{m['load_model_s']:.2f} s",
                         f"{m['first_batch_s']:.2f} s", f"{m['forward_images_per_s']:.1f}",
                         f"{m['rss_after_model_mb']:.0f} MB", f"{m['peak_rss_mb']:.0f} MB"])
    print(table(["model", "batch", "import torch", "load model", "first batch", "forward (img/s)",
                 "RSS after load", "peak RSS"], rows))
    save_results("model", {"runs": raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
