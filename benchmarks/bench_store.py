"""The embedding store at scale: 10k, 100k and 1M synthetic 512-d vectors, all through EmbeddingStore.

    python benchmarks/bench_store.py                       # 10k, 100k, 1M: about 15 min on 2 cores
    python benchmarks/bench_store.py --sizes 10000 100000  # a couple of minutes

For each size: add the vectors in 10 calls of add_vectors (the store switches index type as it
grows, see store._index_plan), then the cost a build pays per batch (add 32 more to the full
store), then in a fresh process: open + first search (reads the index file), resident memory,
1,000 single-query kNN searches (k=10) through store.search (p50, p99), recall@10 against exact
search, and a flat (exact) scan of the same vectors for comparison; size on disk last.

The data is a mixture of Gaussians (a cluster per ~500 vectors, sizes drawn from a gamma
distribution, power-law spread inside a cluster, a shared mean direction as real embeddings
have), L2-normalised; uniform random vectors would be unrealistically hard for any ANN index.
Queries are fresh draws from the same mixture. Everything is seeded: reruns see the same data.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, median, percentile, proc_status, save_results, table  # noqa: E402

DIM = 512
EMBEDDER = "clip:ViT-B-32/synthetic"  # any id: the store keys vectors by it
CHUNK = 50_000  # vectors generated at a time
QUERIES = 1000
K = 10
EXTRA, EXTRA_BATCHES = 32, 5  # after the bulk add: 5 batches of 32, as a build adds them


class Mixture:
    """Clustered unit vectors, generated chunk by chunk from a seed (never all in memory)."""

    def __init__(self, n: int, dim: int = DIM, seed: int = 0, spread: float = 0.75):
        rng = np.random.default_rng(seed)
        clusters = max(20, n // 500)
        centers = rng.standard_normal((clusters, dim)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        shared = rng.standard_normal(dim).astype(np.float32)
        centers += 0.7 * shared / np.linalg.norm(shared)  # embeddings share a direction
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        weights = rng.gamma(1.0, size=clusters)
        self.weights = weights / weights.sum()
        scale = np.arange(1, dim + 1, dtype=np.float32) ** -0.5  # power-law spectrum inside a cluster
        scale *= spread / np.sqrt((scale ** 2).sum())
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.noise = (scale[:, None] * rotation.T).astype(np.float32)
        self.n, self.dim, self.seed = n, dim, seed

    def chunk(self, index: int, size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        labels = rng.choice(len(self.weights), size, p=self.weights)
        x = self.centers[labels] + rng.standard_normal((size, self.dim), dtype=np.float32) @ self.noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float16).astype(np.float32)  # what the store keeps

    def chunks(self, extra: bool = False):
        for i, start in enumerate(range(0, self.n, CHUNK)):
            yield start, self.chunk(i, min(CHUNK, self.n - start))
        if extra:
            for b, x in enumerate(self.extra()):
                yield self.n + b * EXTRA, x

    def extra(self):
        """The engine-sized batches added after the bulk (rows n, n+1, ...)."""
        for b in range(EXTRA_BATCHES):
            yield self.chunk(2 * 10**6 + b, EXTRA)

    def queries(self, count: int) -> np.ndarray:
        return self.chunk(10**6, count)


def sha1_of(i: int) -> str:
    return f"{i:040x}"  # a row's sha1 in the benchmark store: its number, so results map back


def exact_top_k(mixture: Mixture, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the exact k nearest (inner product), by a chunked scan."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start, x in mixture.chunks(extra=True):
        s = queries @ x.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def blocks(mixture: Mixture, step: int):
    """The mixture's rows in blocks of `step`."""
    buffer = np.zeros((0, mixture.dim), dtype=np.float32)
    for _, x in mixture.chunks():
        buffer = np.concatenate([buffer, x])
        while len(buffer) >= step:
            yield buffer[:step]
            buffer = buffer[step:]
    if len(buffer):
        yield buffer


def build(root: Path, mixture: Mixture) -> dict:
    """Fill a fresh store with 10 add_vectors calls; then time adding engine-sized batches."""
    from invertornot_ssg.store import EmbeddingStore, _index_kind

    shutil.rmtree(root, ignore_errors=True)
    n = mixture.n
    step = max(1, n // 10)
    store = EmbeddingStore(root)
    start = time.perf_counter()
    added = 0
    for block in blocks(mixture, step):
        store.add_vectors(EMBEDDER, [sha1_of(added + i) for i in range(len(block))], block)
        added += len(block)
    add_seconds = time.perf_counter() - start
    kind = _index_kind(store._indexes[EMBEDDER].index)
    # What a build pays per batch: 32 new vectors into the full store (SQLite + index file).
    batch_seconds = []
    for b, vectors in enumerate(mixture.extra()):
        t = time.perf_counter()
        store.add_vectors(EMBEDDER, [sha1_of(n + b * EXTRA + i) for i in range(len(vectors))], vectors)
        batch_seconds.append(time.perf_counter() - t)
    store.close()
    # Rebuilding the index from SQLite (a deleted or corrupt index file), in this process.
    store = EmbeddingStore(root)
    store.index_path(EMBEDDER).unlink()
    t = time.perf_counter()
    store.search(EMBEDDER, mixture.queries(1), 1)
    rebuild_seconds = time.perf_counter() - t
    store.close()
    return {
        "add_seconds": add_seconds,
        "add_us_per_vector": add_seconds / n * 1e6,
        "add_batch_of_32_ms": median(batch_seconds) * 1e3,
        "rebuild_seconds": rebuild_seconds,
        "index": f"{kind[0]}" + (f", {kind[1]} lists" if kind[1] else ""),
    }


def query_worker(root: Path, queries_path: Path, truth_path: Path, flat: bool) -> dict:
    """In a fresh process: open, memory, latency, recall, and a flat scan for comparison."""
    import faiss

    from invertornot_ssg.store import EmbeddingStore

    queries, truth = np.load(queries_path), np.load(truth_path)
    baseline = proc_status("VmRSS")
    store = EmbeddingStore(root)
    t = time.perf_counter()
    store.search(EMBEDDER, queries[:1], K)
    open_seconds = time.perf_counter() - t
    rss = proc_status("VmRSS")
    hwm = proc_status("VmHWM")
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = store.search(EMBEDDER, q[None], K)[0]
        latencies.append(time.perf_counter() - t)
        found.append([int(sha1, 16) for sha1, _ in hits])
    recall = float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))
    out = {
        "open_and_first_search_s": open_seconds,
        "rss_mb": rss / 2**20,
        "rss_above_baseline_mb": (rss - baseline) / 2**20,
        "peak_rss_mb": hwm / 2**20,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "recall_at_10": recall,
    }
    # Two FAISS threads for the same single queries (the store uses one; see SEARCH_THREADS).
    from invertornot_ssg.store import faiss_index

    faiss_index.SEARCH_THREADS = 2
    two = []
    for q in queries[:200]:
        t = time.perf_counter()
        store.search(EMBEDDER, q[None], K)
        two.append(time.perf_counter() - t)
    out["p50_ms_2_threads"] = percentile(two, 50) * 1e3
    if flat:  # exact search over the same vectors, one thread
        _, matrix = store.vectors_matrix(EMBEDDER)
        index = faiss.IndexFlatIP(matrix.shape[1])
        index.add(matrix)
        del matrix
        faiss.omp_set_num_threads(1)
        scan = []
        for q in queries[: 50 if index.ntotal > 200_000 else 200]:
            t = time.perf_counter()
            index.search(q[None], K)
            scan.append(time.perf_counter() - t)
        out["flat_p50_ms"] = percentile(scan, 50) * 1e3
    return out


def disk_mb(root: Path) -> dict:
    sizes = {p.name: p.stat().st_size for p in root.iterdir() if p.is_file()}
    sqlite = sum(v for k, v in sizes.items() if k.startswith("store.sqlite"))
    index = sum(v for k, v in sizes.items() if k.startswith("index-") and k.endswith(".faiss"))
    return {"sqlite_mb": sqlite / 2**20, "index_mb": index / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-flat", action="store_true", help="skip the exact-scan comparison")
    parser.add_argument("--keep", action="store_true", help="keep the stores in benchmarks/.data/")
    parser.add_argument("--reuse", action="store_true",
                        help="query stores kept by an earlier --keep run instead of building them")
    parser.add_argument("--query-worker", nargs=4, metavar=("ROOT", "QUERIES", "TRUTH", "FLAT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.query_worker:
        root, queries, truth, flat = args.query_worker
        print(json.dumps(query_worker(Path(root), Path(queries), Path(truth), flat == "1")))
        return 0

    DATA.mkdir(exist_ok=True)
    rows, raw = [], []
    for n in args.sizes:
        t0 = time.perf_counter()
        mixture = Mixture(n)
        root = DATA / f"store-{n}"
        if args.reuse and (root / "store.sqlite").is_file():
            built = {"index": "(kept)"}
        else:
            print(f"{n} vectors: adding ...", file=sys.stderr)
            built = build(root, mixture)
        queries = mixture.queries(QUERIES)
        truth = exact_top_k(mixture, queries, K)
        np.save(DATA / "queries.npy", queries)
        np.save(DATA / "truth.npy", truth)
        print(f"{n} vectors: querying in a fresh process ...", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, __file__, "--query-worker", str(root), str(DATA / "queries.npy"),
             str(DATA / "truth.npy"), "0" if args.no_flat else "1"],
            check=True, capture_output=True, text=True,
        )
        queried = json.loads(proc.stdout.strip().splitlines()[-1])
        result = {"vectors": n, **built, **queried, **disk_mb(root), "total_seconds": time.perf_counter() - t0}
        raw.append(result)
        print(json.dumps(result), file=sys.stderr)
        rows.append([
            f"{n:,}", result["index"],
            f"{result['add_seconds']:.0f} s ({result['add_us_per_vector']:.0f} µs/vector)" if "add_seconds" in result else "-",
            f"{result['add_batch_of_32_ms']:.0f} ms" if "add_seconds" in result else "-",
            f"{result['rebuild_seconds']:.1f} s" if "add_seconds" in result else "-",
            f"{result['open_and_first_search_s']:.2f} s",
            f"{result['p50_ms']:.2f} / {result['p99_ms']:.2f} ms",
            f"{result['p50_ms_2_threads']:.2f} ms",
            "-" if "flat_p50_ms" not in result else f"{result['flat_p50_ms']:.1f} ms",
            f"{result['recall_at_10']:.3f}", f"{result['rss_mb']:.0f} MB ({result['rss_above_baseline_mb']:.0f})",
            f"{result['sqlite_mb']:.0f} + {result['index_mb']:.0f} MB",
        ])
        if not (args.keep or args.reuse):
            shutil.rmtree(root, ignore_errors=True)
    for name in ("queries.npy", "truth.npy"):
        (DATA / name).unlink(missing_ok=True)
    print(table(["vectors", "index", "add (10 calls)", "add 32 more", "rebuild index", "open + 1st search",
                 "kNN p50 / p99", "p50, 2 FAISS threads", "flat scan p50", "recall@10",
                 "RSS (store part)", "disk: SQLite + index"], rows))
    save_results("store", {"runs": raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
