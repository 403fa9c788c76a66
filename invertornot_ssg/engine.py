"""Composes images, store, embedder, head and decisions for a batch of images: what plugins and CLI call."""
from __future__ import annotations

import collections
import logging
import os
import stat
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from . import contrast
from ._lazy import np
from .classifying import Classifying
from .cpus import usable_cpus
from .decisions import LabeledSet, Thresholds
from .embedders import PROGRESS_MIN_IMAGES, Embedder, get_embedder, input_side
from .embedders import embedder_id as canonical_embedder_id
from .head import Head, HeadInfo
from .headchoice import HeadChoice
from .images import (
    STAT_NAMES,
    ImageError,
    LoadedImage,
    file_sha1,
    image_stats,
    load_image,
    parse_color,
    perceptual_hash,
)
from .lending import LabelLending, is_current
from .overrides import Overrides
from .recording import Recording
from .results import SITE_LABEL_METHODS, ImageRequest, ImageResult
from .settings import Settings
from .store import EmbeddingStore, ImageRecord

# Engine's other jobs are its parts (classifying, lending, headchoice, recording); callers import
# these names from here.
__all__ = ["Engine", "ImageRequest", "ImageResult", "SITE_LABEL_METHODS", "is_current"]

EMBED_BATCH = 32  # images per model batch and per store write, once the model threads are busy
EMBED_BATCH_SMALLEST = 8  # the first batches, and those that share out the last images


def _next_batch_size(submitted: int, unsubmitted: int, workers: int) -> int:
    """Images in the next model batch: small at first, so that the model threads start while the
    decode thread is still filling its window, growing to EMBED_BATCH; small again at the end, so
    that the last images are shared out among the model threads instead of one of them finishing
    a full batch while the others idle. On the 100-image benchmark site (two cores): 35.2 against
    32.3 img/s with EMBED_BATCH throughout; the 1,000-image one is unchanged (benchmarks/README.md)."""
    growing = max(EMBED_BATCH_SMALLEST, submitted // 2)
    sharing = max(EMBED_BATCH_SMALLEST, -(-unsubmitted // max(workers, 1)))
    return min(EMBED_BATCH, growing, sharing)


# Threads that decode and prepare images for the model, beside the model's (Engine._model_workers):
# on a CPU, preparing an image costs about as much as a light model's forward pass
# (benchmarks/README.md has the measurements behind this split).
DECODE_THREADS = max(1, min(4, usable_cpus() // 2))
MODEL_THREADS: int | None = None  # threads of a single model thread's forward; None: see Engine._model_workers


@dataclass
class _Prepared:
    """An image decoded and described in a worker thread, ready for the model."""

    loaded: LoadedImage
    pixels: np.ndarray | None  # the embedder's input (prepare), None if it was not loaded yet
    phash: str
    stats: np.ndarray


@dataclass
class _ModelThreads:
    """Threads that embed batches of prepared images, `workers` at a time."""

    pool: ThreadPoolExecutor
    workers: int
    embedder: object
    threads_before: int | None  # the embedder's thread count, restored when done; None: left alone

    def embed(self, batch: list[tuple[str, _Prepared]]) -> Future:
        return self.pool.submit(_embed_batch, batch, self.embedder)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.threads_before is not None:
            self.embedder.set_threads(self.threads_before)


def _embed_batch(batch: list[tuple[str, _Prepared]], embedder) -> np.ndarray:
    """The vectors of a batch (runs in a model thread)."""
    if not isinstance(embedder, Embedder):  # any object with embed(images) (tests use small fakes)
        return embedder.embed([p.loaded.image for _, p in batch])
    pixels = [p.pixels if p.pixels is not None else embedder.prepare(p.loaded.image) for _, p in batch]
    step = embedder.batch_size
    return np.vstack([
        embedder.forward(embedder.batch(pixels[start:start + step]))
        for start in range(0, len(pixels), step)
    ])


def _record(sha1: str, p: _Prepared) -> ImageRecord:
    loaded = p.loaded
    return ImageRecord(sha1=sha1, width=loaded.width, height=loaded.height, format=loaded.format,
                       phash=p.phash, stats=p.stats)


class Engine(Classifying, LabelLending, HeadChoice, Recording):
    """Lives as long as the plugin: the store, head and model are opened once and only when needed."""

    def __init__(self, settings: Settings, base_dir: Path, logger: logging.Logger | None = None):
        self.settings = settings
        self.base_dir = Path(base_dir).resolve()
        self.log = logger or logging.getLogger("invertornot_ssg")
        self.store_dir = self.resolve(settings.store)
        self.cache_dir = self.store_dir / "cache"  # what only saves time: build memo, page scans, JSON copies
        self.overrides_path = self.resolve(settings.overrides) if settings.overrides else None
        self.background = parse_color(settings.background)
        self.embedder_id = canonical_embedder_id(settings.model)
        # Images are decoded straight to the model's input side (embedders.PREPARATION): decoding
        # is most of a cold build's CPU, and the statistics and hash need no more pixels.
        self.work_side = input_side(settings.model)
        self.thresholds = Thresholds(threshold=settings.threshold, unsure=settings.unsure,
                                     photo_region=settings.photo_region)
        self._store: EmbeddingStore | None = None
        self._embedder = None
        self._head_info: HeadInfo | None | bool = False  # False: not looked for yet
        self._head_signature: tuple = ()  # of the head files when head_info was read
        self._head: Head | None | bool = False  # False: not loaded yet
        self._novelty_info = self._novelty = False  # the head's novelty model (headchoice), not looked for yet
        self._novelty_signature: tuple = ()
        self._bootstrap: LabeledSet | None | bool = False
        self._bootstrap_labels: dict[str, bool] | None | bool = False
        self._loaded_overrides: tuple[tuple[int, int, int] | None, Overrides] | None = None  # see record
        self.embedded = 0  # images embedded by the last classify()
        self.memo_hit = False  # whether the last classify() reused the last build's results
        self._memo_signature: tuple[int, int, int] | None = None  # of the overrides file it was checked against
        # The theme's dark page (themes.DarkMode.background, set by the plugin): an automatic
        # decision to invert an image whose inverted ink would vanish on it is turned to keep.
        self.dark_page = contrast.DEFAULT_DARK_PAGE

    def resolve(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else self.base_dir / p

    @property
    def store(self) -> EmbeddingStore:
        if self._store is None:
            self._store = EmbeddingStore(self.store_dir, logger=self.log)
        return self._store

    def ensure_embedded(self, paths: Sequence[Path]) -> dict[Path, tuple[str | None, str | None]]:
        """Hash, describe and embed files the store lacks (training, evaluation); path -> (sha1, error)."""
        identified = {path: self._identify(path)[:2] for path in paths}
        known = self.store.embedded(self.embedder_id, [s for s, _ in identified.values() if s])
        missing = [(sha1, path) for path, (sha1, _) in identified.items() if sha1 and sha1 not in known]
        errors = self._embed_missing(missing)
        return {path: (sha1, error or errors.get(sha1)) for path, (sha1, error) in identified.items()}

    def _identify(self, path: Path) -> tuple[str | None, str | None, tuple[int, int] | None]:
        """(sha1, error, (size, mtime_ns)) of the file, re-hashing only when size or mtime changed."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, "image file not found", None
        except OSError as exc:
            return None, f"cannot read the file ({exc.strerror or exc})", None
        signature = (st.st_size, st.st_mtime_ns)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file", signature
        key = os.fsdecode(os.path.abspath(path))
        # A name that is not valid UTF-8 cannot be a SQLite key: hash it every time instead.
        cacheable = _encodable(key)
        sha1 = self.store.known_sha1(key, st.st_size, st.st_mtime_ns) if cacheable else None
        if sha1 is None:
            try:
                sha1 = file_sha1(path)
            except OSError as exc:
                return None, f"cannot read the file ({exc.strerror or exc})", signature
            if cacheable:
                self.store.remember_files([(key, st.st_size, st.st_mtime_ns, sha1)])
        return sha1, None, signature

    def _inks(self, paths: dict[str, Path]) -> dict[str, object]:
        """sha1 -> images.ink_palette (None: opaque) of embedded images, from the store; images
        it has none for (stored by an earlier version) are decoded again, unless their statistics
        say they are opaque."""
        if not paths:
            return {}
        inks = self.store.get_ink(list(paths))
        missing = [s for s in paths if s not in inks]
        if missing:
            transparency = STAT_NAMES.index("transparency")
            records = self.store.get_images(missing)
            fresh = {s: None for s in missing if s in records and is_current(records[s]) and records[s].stats[transparency] == 0}
            again = [(s, paths[s]) for s in missing if s not in fresh and self._identify(paths[s])[0] == s]
            for sha1, prepared in self._decoded(again, fit=False, threads=max(1, min(8, usable_cpus()))):
                if not isinstance(prepared, ImageError):
                    fresh[sha1] = prepared.loaded.ink_palette
            self.store.put_ink(fresh)
            inks.update(fresh)
        return inks

    def current_records(self, sha1s: Sequence[str], paths: dict[str, Path]) -> dict[str, ImageRecord]:
        """The store's records of these images, described again (decoded, not embedded) where an
        older version wrote fewer statistics than images.STAT_NAMES and a file is at hand."""
        records = self.store.get_images(list(sha1s))
        stale = [(sha1, paths[sha1]) for sha1, record in records.items()
                 if not is_current(record) and sha1 in paths and self._identify(paths[sha1])[0] == sha1]
        if stale:
            self.log.info("describing %d images again: their statistics predate this version", len(stale))
            fresh = []
            with self._progress(len(stale), "describing again") as bar:
                # No model runs meanwhile: every core decodes.
                for sha1, prepared in self._decoded(stale, fit=False, threads=max(1, min(8, usable_cpus()))):
                    if not isinstance(prepared, ImageError):
                        fresh.append(_record(sha1, prepared))
                    bar.update(1)
            self.store.put_images(fresh)
            records.update((r.sha1, r) for r in fresh)
        return records

    def _embed_missing(self, items: list[tuple[str, Path]]) -> dict[str, str]:
        """Decode, describe and embed images the store lacks; returns sha1 -> error for the bad ones.

        Worker threads decode, composite, describe (phash, statistics) and fit each image to the
        model input a window ahead; model threads embed full batches (see _model_workers) while
        this thread writes finished ones to the store, in order. The model, then the head, load in
        the background while the first images decode.
        """
        items = list(dict(items).items())  # one path per sha1
        if not items:
            return {}
        errors: dict[str, str] = {}
        loader = loading = model = None
        running: collections.deque = collections.deque()  # (batch, future vectors), oldest first
        try:
            with self._progress(len(items), f"embedding ({self.embedder_id})") as bar:
                batch: list[tuple[str, _Prepared]] = []
                submitted = 0
                for sha1, prepared in self._decoded(items, window=(1 + usable_cpus()) * EMBED_BATCH):
                    if isinstance(prepared, ImageError):
                        errors[sha1] = prepared.detail
                        bar.update(1)
                        continue
                    if loader is None and self._embedder is None:
                        # Only once an image decodes: a build whose only new files are broken
                        # must not pay for torch and the model on every run.
                        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="invertornot-load")
                        loading = loader.submit(self.load_embedder)
                        if self._head is False:  # needed next, and importing scikit-learn takes seconds
                            loader.submit(lambda: self.head)  # an error shows again when the head is used
                    batch.append((sha1, prepared))
                    unsubmitted = len(items) - len(errors) - submitted
                    if len(batch) >= _next_batch_size(submitted, unsubmitted, model.workers if model else 1):
                        model = model or self._model_threads(loading.result() if loading else self._embedder)
                        running.append((batch, model.embed(batch)))
                        submitted += len(batch)
                        batch = []
                        bar.update(self._store_finished(running, keep=model.workers - 1))
                if batch:
                    model = model or self._model_threads(loading.result() if loading else self._embedder)
                    running.append((batch, model.embed(batch)))
                bar.update(self._store_finished(running, keep=0))
            self.store.flush()  # a large store's index file is rewritten once, not per batch
        finally:
            for _, future in running:  # after an error: no model thread outlives the build
                future.cancel()
            if model is not None:
                model.close()
            if loader is not None:
                loader.shutdown(wait=True)
        return errors

    def _store_finished(self, running: collections.deque, keep: int) -> int:
        """Write the oldest batches to the store, waiting for them, until `keep` are left running;
        returns the number of images written."""
        written = 0
        while len(running) > keep:
            batch, future = running.popleft()
            vectors = future.result()
            self.store.put_images([_record(sha1, p) for sha1, p in batch])
            self.store.put_ink({sha1: p.loaded.ink_palette for sha1, p in batch})
            self.store.add_vectors(self.embedder_id, [sha1 for sha1, _ in batch], vectors)
            self.embedded += len(batch)
            written += len(batch)
        return written

    def _model_threads(self, embedder) -> _ModelThreads:
        """The threads that run the model: see _model_workers."""
        workers, threads = self._model_workers(embedder)
        if not isinstance(embedder, Embedder):  # a test's fake: no threads to set
            threads = None
        threads_before = embedder.threads() if threads is not None else None

        def set_threads():  # in each model thread: torch keeps thread counts per calling thread
            if threads is not None:
                embedder.set_threads(threads)

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="invertornot-model", initializer=set_threads)
        return _ModelThreads(pool, workers, embedder, threads_before)

    @staticmethod
    def _model_workers(embedder) -> tuple[int, int | None]:
        """(batches embedded side by side, threads for each forward; None: the runtime's default).

        A light model runs single-threaded forwards side by side, one per core the decode threads
        leave plus one, so that no core idles while a decode thread waits: its forward costs about
        what decoding an image does, and on a CPU several single-threaded forwards outrun one that
        spans the cores (on two cores: two forwards beside one decode thread). A costly model
        keeps the default of one thread per core in one forward. The user's OMP_NUM_THREADS
        always wins (benchmarks/README.md has the measurements)."""
        if MODEL_THREADS is not None:
            return 1, MODEL_THREADS
        if "OMP_NUM_THREADS" in os.environ or not getattr(embedder, "light", False):
            return 1, None
        cpus = usable_cpus()
        return min(cpus, max(1, cpus - DECODE_THREADS) + 1), 1

    def load_embedder(self):
        if self._embedder is None:
            self.log.debug("loading embedder %s", self.embedder_id)
            self._embedder = get_embedder(self.settings.model, cache_dir=self.store_dir / "models")
        return self._embedder

    def _progress(self, total: int, desc: str):
        """One progress bar for the whole pass (on stderr, above a handful of images)."""
        from tqdm.auto import tqdm

        show = getattr(self._embedder, "progress", True) and total > PROGRESS_MIN_IMAGES
        return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not show, leave=False)

    def _decoded(self, items: list[tuple[str, Path]], fit: bool = True,
                 threads: int = DECODE_THREADS,
                 window: int = 2 * EMBED_BATCH) -> Iterator[tuple[str, _Prepared | ImageError]]:
        """Prepare in worker threads (Pillow releases the GIL), a bounded window ahead of the model."""
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="invertornot-decode") as pool:
            pending: collections.deque = collections.deque()
            todo = iter(items)
            for sha1, path in todo:
                pending.append((sha1, pool.submit(self._prepare, path, fit)))
                if len(pending) >= window:
                    break
            while pending:
                sha1, future = pending.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt[0], pool.submit(self._prepare, nxt[1], fit)))
                yield sha1, future.result()

    def _prepare(self, path: Path, fit: bool = True) -> _Prepared | ImageError:
        """Everything an image needs before the model (runs in a worker thread); without `fit`,
        only its description (hash, statistics)."""
        loaded = load_image(path, self.background, max_side=self.work_side)
        if isinstance(loaded, ImageError):
            return loaded
        embedder = self._embedder  # None while the model loads: the batch then fits the image
        pixels = embedder.prepare(loaded.image) if fit and isinstance(embedder, Embedder) else None
        return _Prepared(loaded, pixels, perceptual_hash(loaded.image), image_stats(loaded))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
