"""EmbeddingStore on real SQLite and FAISS files: round trips, search, concurrency, corruption, errors."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from invertornot_ssg.errors import StoreError
from invertornot_ssg.store import faiss_index
from invertornot_ssg.store import EmbeddingStore, ImageRecord, _index_kind, embedder_slug

EMB = "clip:ViT-B-32/laion2b"
DIM = 32
LOGGER = logging.getLogger("test.invertornot.store")


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sha1s_for(n: int, tag: str = "") -> list[str]:
    return [hashlib.sha1(f"{tag}{i}".encode()).hexdigest() for i in range(n)]


def open_store(root: Path) -> EmbeddingStore:
    return EmbeddingStore(root, logger=LOGGER)


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "store")
    yield s
    s.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER.name and r.levelno >= logging.WARNING]


# -- layout --------------------------------------------------------------------------------------


def test_new_store_layout(store: EmbeddingStore):
    assert store.heads_dir.is_dir()
    assert (store.root / "store.sqlite").is_file()
    assert json.loads((store.root / "store.json").read_text())["schema_version"] == 1
    mode = sqlite3.connect(store.root / "store.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_embedder_slug_is_safe_and_distinct():
    slug = embedder_slug("clip:ViT-B-32/laion2b")
    assert slug.startswith("clip-ViT-B-32-laion2b-") and "/" not in slug and ":" not in slug
    assert embedder_slug("a/b") != embedder_slug("a:b")  # same readable part, different hash
    assert "/" not in embedder_slug("clip:ViT-B-32@/home/me/ckpt.pt")


# -- round trips ---------------------------------------------------------------------------------


def test_files_warm_path(store: EmbeddingStore, tmp_path: Path):
    path = tmp_path / "a.png"
    store.remember_files([(path, 100, 1_700_000_000_123_456_789, "aa"), ("/x/b.png", 5, 6, "bb")])
    assert store.known_sha1(path, 100, 1_700_000_000_123_456_789) == "aa"
    assert store.known_sha1(str(path), 100, 1_700_000_000_123_456_789) == "aa"
    assert store.known_sha1(path, 101, 1_700_000_000_123_456_789) is None  # size changed
    assert store.known_sha1(path, 100, 1_700_000_000_123_456_790) is None  # mtime changed
    assert store.known_sha1("/nowhere.png", 100, 1) is None
    entries = [(path, 100, 1_700_000_000_123_456_789), ("/x/b.png", 5, 7)]
    assert store.known_sha1s(entries) == {str(path): "aa"}
    store.remember_files([(path, 101, 2, "cc")])  # the file changed: replaced
    assert store.known_sha1(path, 101, 2) == "cc"
    assert store.known_sha1(path, 100, 1_700_000_000_123_456_789) is None


def test_paths_for_existing_files(store: EmbeddingStore, tmp_path: Path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    store.remember_files([(tmp_path / "gone.png", 1, 1, "s1"), (b, 1, 1, "s1"), (a, 1, 1, "s2")])
    assert store.paths_for(["s1", "s2", "s3"]) == {"s1": str(b), "s2": str(a)}
    a.unlink()
    assert store.paths_for(["s2"]) == {}


def test_images_round_trip(store: EmbeddingStore):
    stats = np.array([0.5, 1.25, -3.0, 7.0], dtype=np.float32)
    store.put_images([
        ImageRecord(sha1="aa", width=640, height=480, format="PNG", phash="f0e1d2c3b4a59687", stats=stats),
        ImageRecord(sha1="bb", width=1, height=2, format=None, phash=None, stats=np.zeros(0, np.float32)),
    ])
    got = store.get_images(["aa", "bb", "missing", "aa"])
    assert set(got) == {"aa", "bb"}
    a = got["aa"]
    assert (a.sha1, a.width, a.height, a.format, a.phash) == ("aa", 640, 480, "PNG", "f0e1d2c3b4a59687")
    assert a.stats.dtype == np.float32 and np.array_equal(a.stats, stats)
    assert got["bb"].format is None and got["bb"].stats.shape == (0,)
    assert store.get_images([]) == {}


def test_decisions_round_trip_and_version_miss(store: EmbeddingStore):
    decisions = {"aa": {"invert": True, "p": 0.9}, "bb": {"invert": False}}
    store.put_decisions("efficientnet-lite0+head-1", decisions)
    assert store.get_decisions("efficientnet-lite0+head-1", ["aa", "bb", "cc"]) == {
        "aa": {"invert": True, "p": 0.9}, "bb": {"invert": False},
    }
    assert store.get_decisions("efficientnet-lite0+head-2", ["aa"]) == {}  # a new head misses
    store.put_decisions("efficientnet-lite0+head-1", {"aa": {"invert": False}})
    assert store.get_decisions("efficientnet-lite0+head-1", ["aa"]) == {"aa": {"invert": False}}


def test_many_keys_are_chunked(store: EmbeddingStore):
    sha1s = sha1s_for(1500)
    store.put_decisions("v", {s: {"i": i} for i, s in enumerate(sha1s)})
    got = store.get_decisions("v", sha1s)
    assert len(got) == 1500 and got[sha1s[1234]] == {"i": 1234}


def test_vectors_round_trip_skips_duplicates(store: EmbeddingStore):
    vectors = unit_vectors(30)
    sha1s = sha1s_for(30)
    assert store.vector_count(EMB) == 0 and store.embedder_dim(EMB) is None
    assert store.add_vectors(EMB, sha1s[:20], vectors[:20]) == 20
    # 10..19 are known, 25 twice within the call: the first copy wins, known vectors are untouched
    batch = sha1s[10:30] + [sha1s[25]]
    assert store.add_vectors(EMB, batch, np.vstack([-vectors[10:20], vectors[20:30], -vectors[25:26]])) == 10
    assert store.vector_count(EMB) == 30 and store.embedder_dim(EMB) == DIM
    got = store.get_vectors(EMB, sha1s + ["missing"])
    assert set(got) == set(sha1s)
    for sha1, vector in zip(sha1s, vectors):
        assert got[sha1].dtype == np.float32
        np.testing.assert_allclose(got[sha1], vector, atol=1e-3)  # kept as float16
    order, matrix = store.vectors_matrix(EMB)
    assert order == sha1s and matrix.shape == (30, DIM)
    np.testing.assert_allclose(matrix, vectors, atol=1e-3)
    assert store.get_vectors("other-embedder", sha1s) == {}
    assert store.embedded(EMB, sha1s[25:] + ["missing"]) == set(sha1s[25:])
    assert store.embedded("other-embedder", sha1s) == set()
    assert store.vectors_matrix("other-embedder")[1].shape == (0, 0)


def test_search_finds_the_nearest(store: EmbeddingStore):
    vectors = unit_vectors(50)
    sha1s = sha1s_for(50)
    store.add_vectors(EMB, sha1s, vectors)
    noisy = vectors[[7, 42]] + 0.05 * unit_vectors(2, seed=9)
    results = store.search(EMB, noisy, k=3)
    assert [r[0][0] for r in results] == [sha1s[7], sha1s[42]]
    for row, query in zip(results, noisy):
        assert len(row) == 3 and row[0][1] >= row[1][1] >= row[2][1]
        np.testing.assert_allclose(row[0][1], float(query @ vectors[sha1s.index(row[0][0])]), atol=5e-3)
    assert len(store.search(EMB, vectors[0], k=500)[0]) == 50  # a single row, k above the size
    assert store.search("unknown-embedder", vectors[:2], k=3) == [[], []]


def test_large_store_switches_to_an_approximate_index_once_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """Past FLAT_MAX vectors the index is rebuilt as IVF (8-bit vectors), and again when it grows 4x."""
    monkeypatch.setattr(faiss_index, "FLAT_MAX", 200)  # the real steps are 16k, 64k, 256k, 1M vectors
    monkeypatch.setattr(faiss_index, "IVF_NLIST_MIN", 4)
    vectors, sha1s = unit_vectors(1000, seed=7), sha1s_for(1000)
    kind = lambda s: _index_kind(s._indexes[EMB].index)  # noqa: E731
    with open_store(tmp_path) as s:
        s.add_vectors(EMB, sha1s[:200], vectors[:200])
        assert kind(s) == ("flat", 0)
        s.add_vectors(EMB, sha1s[200:300], vectors[200:300])
        assert kind(s) == ("ivf", 4)
    assert _index_kind(faiss.read_index(str(tmp_path / f"index-{embedder_slug(EMB)}.faiss"))) == ("ivf", 4)
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path) as s:  # the file is adopted: its 8-bit vectors pass the spot check
        assert [r[0][0] for r in s.search(EMB, vectors[:300], k=1)] == sha1s[:300]
        s.add_vectors(EMB, sha1s[300:700], vectors[300:700])
        assert kind(s) == ("ivf", 4)  # appended: 700 is below the next step (4 x 200)
        s.add_vectors(EMB, sha1s[700:], vectors[700:])
        assert kind(s) == ("ivf", 16)
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
    assert not warnings_of(caplog)


def test_large_index_file_is_written_every_sixteenth_and_at_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(faiss_index, "FLAT_MAX", 200)
    monkeypatch.setattr(faiss_index, "IVF_NLIST_MIN", 4)
    vectors, sha1s = unit_vectors(330, seed=3), sha1s_for(330)
    on_disk = lambda: faiss.read_index(str(tmp_path / f"index-{embedder_slug(EMB)}.faiss")).ntotal  # noqa: E731
    with open_store(tmp_path) as s:
        s.add_vectors(EMB, sha1s[:300], vectors[:300])
        assert on_disk() == 300
        s.add_vectors(EMB, sha1s[300:310], vectors[300:310])  # 10 of 310: less than 1/16 new
        assert on_disk() == 300
        with open_store(tmp_path) as reader:  # a lagging file is caught up from SQLite, quietly
            assert [r[0][0] for r in reader.search(EMB, vectors[:310], k=1)] == sha1s[:310]
        s.add_vectors(EMB, sha1s[310:], vectors[310:])  # 30 of 330 new: written
        assert on_disk() == 330
        s.add_vectors(EMB, ["x"], unit_vectors(1, seed=9))
        assert on_disk() == 330
    assert on_disk() == 331  # close() flushed it


def test_embedders_are_kept_apart(store: EmbeddingStore):
    store.add_vectors("a", ["x"], unit_vectors(1, 8))
    store.add_vectors("b", ["x"], unit_vectors(1, 16))
    assert store.embedder_dim("a") == 8 and store.embedder_dim("b") == 16
    assert store.index_path("a") != store.index_path("b")
    assert store.index_path("a").is_file() and store.index_path("b").is_file()
    manifest = json.loads((store.root / "store.json").read_text())
    assert manifest["embedders"]["b"] == {
        "dim": 16, "index": store.index_path("b").name, "metric": "inner_product",
        "normalised": "l2", "vector_dtype": "float16",
    }


def test_wrong_dimensions_raise(store: EmbeddingStore):
    store.add_vectors(EMB, ["a"], unit_vectors(1))
    with pytest.raises(StoreError, match=r"dimension 16.*dimension 32"):
        store.add_vectors(EMB, ["b"], unit_vectors(1, 16))
    with pytest.raises(StoreError, match="2 sha1s"):
        store.add_vectors(EMB, ["b", "c"], unit_vectors(3))
    with pytest.raises(StoreError, match="float16"):
        store.add_vectors(EMB, ["b"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(StoreError, match="dimension 16"):
        store.search(EMB, unit_vectors(1, 16), k=1)
    assert store.vector_count(EMB) == 1


def test_reopened_store_searches_from_its_file(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    vectors, sha1s = unit_vectors(40), sha1s_for(40)
    with open_store(tmp_path) as s:
        s.add_vectors(EMB, sha1s, vectors)
    index = faiss.read_index(str(tmp_path / f"index-{embedder_slug(EMB)}.faiss"))
    assert index.ntotal == 40 and index.d == DIM
    caplog.set_level(logging.DEBUG, LOGGER.name)
    with open_store(tmp_path) as s:
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
    assert not warnings_of(caplog)


def test_warm_reads_do_not_import_faiss(tmp_path: Path):
    with open_store(tmp_path) as s:
        s.add_vectors(EMB, ["a"], unit_vectors(1))
        s.put_decisions("v", {"a": {"invert": True}})
        s.remember_files([("/a.png", 1, 2, "a")])
    code = (
        "import sys; from invertornot_ssg.store import EmbeddingStore\n"
        f"s = EmbeddingStore({str(tmp_path)!r})\n"
        "assert s.known_sha1('/a.png', 1, 2) == 'a'\n"
        "assert s.get_decisions('v', ['a']) == {'a': {'invert': True}}\n"
        "assert len(s.get_vectors(%r, ['a'])) == 1\n"
        "assert 'faiss' not in sys.modules, 'a warm read imported faiss'\n" % EMB
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- concurrency -----------------------------------------------------------------------------------

PER_WORKER, BATCH = 200, 10


def _add_in_batches(root: str, worker: int, barrier) -> None:
    """Child process: open the shared store and add this worker's vectors in small batches."""
    store = EmbeddingStore(Path(root))
    vectors, sha1s = unit_vectors(PER_WORKER, seed=100 + worker), sha1s_for(PER_WORKER, f"w{worker}-")
    barrier.wait(timeout=60)
    for start in range(0, PER_WORKER, BATCH):
        store.add_vectors(EMB, sha1s[start : start + BATCH], vectors[start : start + BATCH])
    store.close()


def _open_new_stores(roots: list[str], barrier) -> None:
    """Child process: open each new store at the same moment as the other children."""
    for root in roots:
        barrier.wait(timeout=60)
        EmbeddingStore(Path(root)).close()


def test_processes_opening_the_same_new_store_at_once(tmp_path: Path):
    """Both switch the new file to WAL; SQLite answers one of them "database is locked" without
    waiting unless the switch is serialised (it failed about one time in ten before)."""
    roots = [str(tmp_path / f"store-{i}") for i in range(12)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_open_new_stores, args=(roots, barrier)) for _ in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=240)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    for root in roots:
        db = sqlite3.connect(Path(root) / "store.sqlite")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_two_processes_add_concurrently(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    root = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_add_in_batches, args=(str(root), w, barrier)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]

    expected_sha1s = sha1s_for(PER_WORKER, "w0-") + sha1s_for(PER_WORKER, "w1-")
    expected = np.vstack([unit_vectors(PER_WORKER, seed=100), unit_vectors(PER_WORKER, seed=101)])
    db = sqlite3.connect(root / "store.sqlite")
    sql_ids = [r[0] for r in db.execute("SELECT id FROM vectors ORDER BY id")]
    assert len(sql_ids) == 400
    db.close()
    index = faiss.read_index(str(root / f"index-{embedder_slug(EMB)}.faiss"))  # the file the last writer left
    assert index.ntotal == 400
    assert sorted(faiss.vector_to_array(index.id_map).tolist()) == sql_ids

    caplog.set_level(logging.DEBUG, LOGGER.name)
    with open_store(root) as s:
        assert s.vector_count(EMB) == 400
        assert [r[0][0] for r in s.search(EMB, expected, k=1)] == expected_sha1s
    assert not warnings_of(caplog)


# -- corruption ------------------------------------------------------------------------------------


def _filled_store(root: Path, n: int = 60) -> tuple[np.ndarray, list[str], Path]:
    vectors, sha1s = unit_vectors(n), sha1s_for(n)
    with open_store(root) as s:
        s.add_vectors(EMB, sha1s, vectors)
        return vectors, sha1s, s.index_path(EMB)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_index_is_moved_aside_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
):
    vectors, sha1s, index_path = _filled_store(tmp_path)
    data = index_path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"\x13garbage" * 64, "empty": b""}[damage]
    index_path.write_bytes(damaged)
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path) as s:
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
    (warning,) = warnings_of(caplog)
    assert "moved it aside" in warning and str(index_path) in warning
    (aside,) = tmp_path.glob(index_path.name + ".corrupt-*")
    assert aside.read_bytes() == damaged
    assert faiss.read_index(str(index_path)).ntotal == len(sha1s)  # written back


def test_index_of_another_dimension_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    vectors, sha1s, index_path = _filled_store(tmp_path)
    other = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    other.add_with_ids(unit_vectors(len(sha1s), 8), np.arange(1, len(sha1s) + 1, dtype=np.int64))
    faiss.write_index(other, str(index_path))
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path) as s:
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
    assert any("dimension 8" in w for w in warnings_of(caplog))
    assert faiss.read_index(str(index_path)).d == DIM


def test_index_behind_sqlite_is_caught_up_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """An index file missing the newest rows (a writer died between commit and save) is appended to."""
    vectors, sha1s = unit_vectors(30), sha1s_for(30)
    with open_store(tmp_path) as s:
        s.add_vectors(EMB, sha1s[:20], vectors[:20])
        old = s.index_path(EMB).read_bytes()
        s.add_vectors(EMB, sha1s[20:], vectors[20:])
        s.index_path(EMB).write_bytes(old)
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path) as s:
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
        s.add_vectors(EMB, ["new"], unit_vectors(1, seed=5))  # the next write saves the full index
    assert not warnings_of(caplog)
    assert faiss.read_index(str(tmp_path / f"index-{embedder_slug(EMB)}.faiss")).ntotal == 31


def test_index_from_another_database_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Same ids, different vectors (an index left from an older store.sqlite): caught and rebuilt."""
    vectors, sha1s, index_path = _filled_store(tmp_path / "a", n=20)
    with open_store(tmp_path / "b") as other:
        other.add_vectors(EMB, sha1s_for(20, "other"), unit_vectors(20, seed=3))
        shutil.copyfile(other.index_path(EMB), index_path)
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path / "a") as s:
        assert [r[0][0] for r in s.search(EMB, vectors, k=1)] == sha1s
    assert any("rebuilding" in w for w in warnings_of(caplog))


def test_deleted_database_drops_stale_indexes(tmp_path: Path):
    vectors, sha1s, index_path = _filled_store(tmp_path)
    for name in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with open_store(tmp_path) as s:
        assert not index_path.exists()
        assert s.search(EMB, vectors[:1], k=1) == [[]]
        s.add_vectors(EMB, ["z"], vectors[:1])
        assert s.search(EMB, vectors[:1], k=1)[0][0][0] == "z"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_database_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str):
    vectors, sha1s, index_path = _filled_store(tmp_path, n=300)
    db_path = tmp_path / "store.sqlite"
    if damage == "garbage":
        db_path.write_bytes(os.urandom(20_000))
    else:
        os.truncate(db_path, db_path.stat().st_size // 2)
    caplog.set_level(logging.WARNING, LOGGER.name)
    with open_store(tmp_path) as s:
        assert s.vector_count(EMB) == 0 and s.search(EMB, vectors[:1], k=1) == [[]]
        s.add_vectors(EMB, sha1s[:5], vectors[:5])
        s.remember_files([("/a.png", 1, 2, sha1s[0])])
        assert s.known_sha1("/a.png", 1, 2) == sha1s[0]
        assert s.search(EMB, vectors[3], k=1)[0][0][0] == sha1s[3]
    (warning,) = warnings_of(caplog)
    assert "corrupt" in warning and str(db_path) in warning
    assert len(list(tmp_path.glob("store.sqlite.corrupt-*"))) == 1
    assert sqlite3.connect(db_path).execute("PRAGMA quick_check").fetchone() == ("ok",)


# -- schema versions -------------------------------------------------------------------------------


def test_newer_manifest_refuses(tmp_path: Path):
    open_store(tmp_path).close()
    (tmp_path / "store.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade invertornot-ssg") as info:
        open_store(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "store.json").write_text(json.dumps({"schema_version": "one"}))
    with pytest.raises(StoreError, match="unknown schema_version"):
        open_store(tmp_path)


def test_newer_database_refuses(tmp_path: Path):
    open_store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(StoreError, match=r"store\.sqlite has schema version 7"):
        open_store(tmp_path)


def test_unreadable_manifest_is_rewritten(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    open_store(tmp_path).close()
    (tmp_path / "store.json").write_text("{not json")
    caplog.set_level(logging.WARNING, LOGGER.name)
    open_store(tmp_path).close()
    assert any("not valid JSON" in w for w in warnings_of(caplog))
    assert json.loads((tmp_path / "store.json").read_text())["schema_version"] == 1


# -- disk errors -----------------------------------------------------------------------------------


def test_full_database_raises_store_error(store: EmbeddingStore):
    store._db.execute("PRAGMA max_page_count = 12")  # SQLite reports SQLITE_FULL, as on a full disk
    with pytest.raises(StoreError, match="disk is full") as info:
        store.put_decisions("v", {f"{i:040x}": {"why": "x" * 200} for i in range(2000)})
    assert str(store.root / "store.sqlite") in str(info.value)


def test_full_disk_while_saving_the_index(store: EmbeddingStore, monkeypatch: pytest.MonkeyPatch):
    vectors, sha1s = unit_vectors(20), sha1s_for(20)
    store.add_vectors(EMB, sha1s[:10], vectors[:10])
    before = store.index_path(EMB).read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreError, match="disk is full") as info:
        store.add_vectors(EMB, sha1s[10:], vectors[10:])
    monkeypatch.undo()
    assert str(store.index_path(EMB)) in str(info.value)
    assert store.index_path(EMB).read_bytes() == before  # the old file is intact
    assert not list(store.root.glob(".*.tmp"))
    assert [r[0][0] for r in store.search(EMB, vectors, k=1)] == sha1s  # SQLite had them


def test_root_that_is_a_file_raises(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="file"):
        open_store(tmp_path / "file")


@contextlib.contextmanager
def read_only(directory: Path):
    """Make `directory` unwritable: chmod for a normal user; root ignores that, so chattr +i."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(directory)]).returncode:
        pytest.skip("running as root without chattr +i: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.parametrize("existing", [False, True])
def test_read_only_directory_raises(tmp_path: Path, existing: bool):
    root = tmp_path / "ro"
    if existing:
        _filled_store(root, n=3)
    else:
        (root / "heads").mkdir(parents=True)
    with read_only(root):
        with pytest.raises(StoreError, match="not writable") as info:
            open_store(root)
    assert str(root) in str(info.value)
