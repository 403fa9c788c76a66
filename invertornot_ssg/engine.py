"""Composes images, store, embedder, head and decisions for a batch of images: what plugins and CLI call."""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import stat
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ._lazy import np

from . import buildmemo, contrast, shipped
from .decisions import LabeledSet, Thresholds, decide_auto, decide_human
from .embedders import PROGRESS_MIN_IMAGES, Embedder, get_embedder, id_slug, input_side
from .embedders import embedder_id as canonical_embedder_id
from .errors import ConfigError
from .fileio import file_signature
from .head import Head, HeadError, HeadInfo, load_head, read_head_info
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
from .overrides import AutoRecord, Overrides, load_cached, record_decisions
from .settings import Settings
from .store import HEADS_DIR, EmbeddingStore, ImageRecord

SITE_LABEL_METHODS = ("explicit", "front-matter", "override")  # what a person said of this site's image
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


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a container's or taskset's share, not the host's
    except AttributeError:
        return os.cpu_count() or 1


# Threads that decode and prepare images for the model, beside the model's (Engine._model_workers):
# on a CPU, preparing an image costs about as much as a light model's forward pass
# (benchmarks/README.md has the measurements behind this split).
DECODE_THREADS = max(1, min(4, _usable_cpus() // 2))
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


def is_current(record: ImageRecord) -> bool:
    """Whether a record has every statistic this version computes (older versions wrote fewer)."""
    return len(record.stats) == len(STAT_NAMES)


@dataclass(frozen=True)
class ImageRequest:
    path: Path  # absolute path of the image file
    key: str  # site-relative posix path: overrides-file key and display name
    label: str | None = None  # 'invert' | 'keep' said by the author
    label_source: str | None = None  # 'explicit' (class on the tag) | 'front-matter'


@dataclass(frozen=True)
class ImageResult:
    request: ImageRequest
    sha1: str | None
    invert: bool | None  # None on error with no human label
    p_invert: float | None
    confidence: float | None
    method: str
    version: str
    cached: bool
    error: str | None
    ink: tuple | list | None = None  # images.ink_palette of a transparent image (contrast.py); None if opaque

    @property
    def human(self) -> bool:
        return self.method in ("explicit", "front-matter", "override", "duplicate")

    def as_json(self, path_as_given: str | None = None) -> dict:
        return {
            "path": path_as_given if path_as_given is not None else self.request.key,
            "sha1": self.sha1,
            "invert": self.invert,
            "p_invert": None if self.p_invert is None else round(self.p_invert, 4),
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "method": self.method,
            "version": self.version,
            "cached": self.cached,
            "error": self.error,
        }


class Engine:
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
        self.thresholds = Thresholds(threshold=settings.threshold, unsure=settings.unsure)
        self._store: EmbeddingStore | None = None
        self._embedder = None
        self._head_info: HeadInfo | None | bool = False  # False: not looked for yet
        self._head_signature: tuple = ()  # of the head files when head_info was read
        self._head: Head | None | bool = False  # False: not loaded yet
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

    @property
    def head_info(self) -> HeadInfo | None:
        """The head this site uses, from its sidecar: cheap, so a warm build never loads a model.

        Looked up again when a candidate file changed, so `retrain` during `mkdocs serve` takes
        effect on the next rebuild."""
        signature = tuple(file_signature(p) for p in self._head_candidates() for p in (p, p.with_suffix(".json")))
        if self._head_info is False or signature != self._head_signature:
            self._head_info = self._find_head_info()
            self._head_signature = signature
            if isinstance(self._head, Head) and (self._head_info is None or self._head.version != self._head_info.version):
                self._head = False
        return self._head_info  # type: ignore[return-value]

    def _head_candidates(self) -> list[Path]:
        if self.settings.head:
            return [self.resolve(self.settings.head)]
        return [self.site_head_path(), shipped.default_head_path(self.embedder_id)]

    @property
    def head(self) -> Head | None:
        """The head's model, loaded on first use (importing skops and scikit-learn takes seconds)."""
        if self._head is False:
            info = self.head_info
            try:
                self._head = load_head(info) if info else None
            except HeadError as exc:
                if self.settings.head:
                    raise ConfigError(f"head: {exc}") from None
                self.log.warning("%s; deciding without it", exc)
                self._head = None
        return self._head  # type: ignore[return-value]

    @property
    def version(self) -> str:
        info = self.head_info
        return f"{self.embedder_id}+{info.version if info else 'no-head'}"

    def site_head_path(self) -> Path:
        """Where `retrain` saves this site's head: beside the overrides file it was trained from
        (`invertornot.head-<model>.skops`), to be committed with those labels, since the store holds
        only what can be regenerated. A site without an overrides file keeps it in the store."""
        if self.overrides_path is not None:
            return self.overrides_path.with_name(f"{self._site_head_prefix()}{id_slug(self.embedder_id)}.skops")
        return self.store_dir / HEADS_DIR / f"head-{id_slug(self.embedder_id)}-{self._site_id()}.skops"

    def _site_head_prefix(self) -> str:
        assert self.overrides_path is not None
        return f"{self.overrides_path.stem}.head-"

    def _site_id(self) -> str:
        """Names this site's files in a store shared by several sites."""
        return hashlib.sha1(str(self.overrides_path or self.base_dir).encode()).hexdigest()[:8]

    def _find_head_info(self) -> HeadInfo | None:
        if self.settings.head:
            path = self.resolve(self.settings.head)
            try:
                info = read_head_info(path, self.cache_dir)
            except HeadError as exc:
                raise ConfigError(f"head: {exc}") from None
            if info.embedder_id != self.embedder_id:
                raise ConfigError(
                    f"head: {path} was trained for {info.embedder_id}, not {self.embedder_id} (an id also"
                    " names how images are prepared for the model: train it again with `retrain`)"
                )
            return info
        site_head = self.site_head_path()
        if not site_head.is_file():
            self._warn_of_other_site_heads(site_head)
        for path in self._head_candidates():
            if path.is_file():
                try:
                    info = read_head_info(path, self.cache_dir)
                except HeadError as exc:
                    self.log.warning("%s; deciding without it", exc)
                    continue
                if info.embedder_id == self.embedder_id:
                    return info
        return None

    def _warn_of_other_site_heads(self, site_head: Path) -> None:
        """This site's head for another embedder id is no use to this one, and the shipped head
        (or, without one, the fallbacks) would then decide silently: after an upgrade that changed how images are prepared
        (a new id), a user would otherwise not learn that their labels need `retrain` again."""
        if self.overrides_path is not None:
            prefix, suffix = self._site_head_prefix(), ".skops"
        else:
            prefix, suffix = "head-", f"-{self._site_id()}.skops"
        try:
            others = sorted(n for n in os.listdir(site_head.parent) if n.startswith(prefix) and n.endswith(suffix))
        except OSError:
            return
        if others:
            self.log.warning(
                "this site's head %s was trained for another model or image preparation, not %s, so it"
                " is not used; run `invertornot-ssg retrain` to train one for %s",
                site_head.parent / others[-1], self.embedder_id, self.embedder_id)

    def bootstrap(self) -> LabeledSet | None:
        if self._bootstrap is False:
            self._bootstrap = shipped.load_bootstrap(self.embedder_id)
        return self._bootstrap  # type: ignore[return-value]

    def load_overrides(self) -> Overrides:
        if self.overrides_path is None:
            return Overrides(os.devnull)  # no overrides file: nobody labeled anything
        signature = file_signature(self.overrides_path)  # before reading: a later change shows
        overrides = load_cached(self.overrides_path, self.cache_dir)
        self._loaded_overrides = (signature, overrides)
        return overrides

    # -- classify -----------------------------------------------------------------------------

    def classify(self, requests: Sequence[ImageRequest], memo: bool = False,
                 whole_site: bool = False) -> list[ImageResult]:
        """Decide every image in one batched pass. Bad images give error results; nothing raises per image.

        `memo`: reuse the last build's results when nothing they depend on changed (see buildmemo);
        for site builds, which repeat the same requests. `whole_site`: the requests are every image
        of the site (a build), so only their labels lend; otherwise (classify, serve) the site's
        other labeled images lend too, where the store holds their vectors, as in the site's build."""
        self.embedded = 0
        self.memo_hit = False
        found = self._from_memo(requests) if memo else None
        results, warnings = found if found is not None else self._classify(requests, memo, whole_site=whole_site)
        for warning in warnings:
            self.log.warning("%s: %s", self.overrides_path, warning)
        for result in results:
            if result.error:
                self.log.warning("%s: %s", result.request.key, result.error)
        return results

    def site_cache_path(self, kind: str) -> Path:
        """A cache file of this site's in the (shared) store: `build` (the build memo), `pages` (scans)."""
        return self.cache_dir / f"{kind}-{self._site_id()}.json"

    def _fingerprint(self, version: str, overrides_digest: str | None) -> str:
        return buildmemo.fingerprint(
            version, self.settings, self.base_dir, self.overrides_path, overrides_digest,
            file_signature(shipped.manifest_path()), self.dark_page,
        )

    def _from_memo(self, requests: Sequence[ImageRequest]) -> tuple[list[ImageResult], list[str]] | None:
        signature = file_signature(self.overrides_path) if self.overrides_path else None
        version = self.version
        expected = self._fingerprint(version, buildmemo.file_digest(self.overrides_path))
        found = buildmemo.load(self.site_cache_path("build"), expected, buildmemo.request_columns(requests))
        if found is None:
            return None
        saved, warnings = found
        self.memo_hit, self._memo_signature = True, signature  # see record()
        columns = [saved[name] for name in buildmemo.RESULT_COLUMNS]
        results = [ImageResult(req, sha1, invert, p, confidence, method, version, cached, error, ink)
                   for req, sha1, invert, p, confidence, method, cached, error, ink in zip(requests, *columns)]
        # An error may pass without the file changing (permissions, I/O): those images are always
        # tried again. Images that failed have no label to lend, so the others' results stand.
        retry = [i for i, result in enumerate(results) if result.error]
        if retry:
            # The build's other labeled images lend to them as in a full build.
            lenders = {r.sha1: bool(r.invert) for r in results if r.sha1 and r.method in SITE_LABEL_METHODS}
            again, _ = self._classify([requests[i] for i in retry], memo=False, lenders=lenders)
            for i, result in zip(retry, again):
                results[i] = result
            if any(result.error is None for result in again):
                self.memo_hit = False  # a new decision for record() to write
        return results, warnings

    def _classify(self, requests: Sequence[ImageRequest], memo: bool,
                  lenders: Mapping[str, bool] | None = None,
                  whole_site: bool = True) -> tuple[list[ImageResult], list[str]]:
        """The full path: (results, warnings about the overrides file). `lenders`: images of the
        build besides `requests` labeled by a person (sha1 -> invert), for near-duplicates and kNN."""
        overrides = self.load_overrides()
        conflicts = [str(conflict) for conflict in overrides.conflicts()]
        version = self.version
        sha1s: list[str | None] = []
        signatures: list[tuple[int, int] | None] = []
        errors: dict[int, str] = {}
        for i, req in enumerate(requests):
            sha1, error, signature = self._identify(req.path)
            sha1s.append(sha1)
            signatures.append(signature)
            if error:
                errors[i] = error

        # What people said. Site labels also feed near-duplicate and kNN lookups.
        site_labels = self._site_labels(overrides, requests, sha1s)
        human: dict[int, object] = {}
        for i, req in enumerate(requests):
            override = overrides.label_for(sha1s[i], req.key)
            decision = decide_human(
                req.label if req.label_source == "explicit" else None,
                req.label if req.label_source == "front-matter" else None,
                override[0] if override else None,
                self._duplicate_label(sha1s[i], site_labels),
            )
            if decision is not None:
                human[i] = decision

        # Everything loadable gets an embedding once (the store is shared; retrain needs them).
        known = [s for s in dict.fromkeys(s for s in sha1s if s)]
        embedded = self.store.embedded(self.embedder_id, known)  # vectors load only for what is decided
        missing = [(i, sha1s[i]) for i in range(len(requests)) if sha1s[i] and sha1s[i] not in embedded]
        load_errors = self._embed_missing([(sha1, requests[i].path) for i, sha1 in missing])
        for i, sha1 in missing:
            if sha1 in load_errors:
                errors.setdefault(i, load_errors[sha1])
        fresh = {sha1 for _, sha1 in missing if sha1 not in load_errors}
        embedded |= fresh

        undecided = {s: requests[i].path for i, s in enumerate(sha1s) if s and i not in human and s in embedded}
        # Only this build's labeled images lend their vectors (near-duplicates, kNN): a label whose
        # image the store saw in an earlier build would make the decisions depend on the store.
        lending = {**(lenders or {}), **{s: label for s, label in site_labels.items() if s in embedded}}
        if not whole_site:  # a few of the site's images: its other labeled images lend as in its build
            others = [s for s in site_labels if s not in lending]
            lending.update({s: site_labels[s] for s in self.store.embedded(self.embedder_id, others)})
        auto = self._decide_auto(undecided, lending, version)
        inks = self._inks({s: requests[i].path for i, s in enumerate(sha1s) if s and s in embedded})

        results = []
        for i, req in enumerate(requests):
            sha1, error = sha1s[i], errors.get(i)
            cached = bool(sha1 and sha1 in embedded and sha1 not in fresh)
            ink = inks.get(sha1) if sha1 else None
            if i in human:
                d = human[i]
                results.append(ImageResult(req, sha1, d.invert, d.p_invert, d.confidence, d.method, version, cached, error, ink))
            elif sha1 in auto:
                d = auto[sha1]
                invert, method = d["invert"], d["method"]
                if invert and contrast.inversion_vanishes(ink, self.dark_page):
                    invert, method = False, contrast.METHOD  # light ink on transparency: inverted it turns dark
                results.append(ImageResult(req, sha1, invert, d["p_invert"], d["confidence"], method, version, cached, None, ink))
            else:
                results.append(ImageResult(req, sha1, None, None, None, "error", version, False, error or "not classified"))
        if memo and not self._would_record(results, overrides):
            # Only a build whose decisions the overrides file already holds leaves a memo: a build
            # that writes them would change the file the memo's fingerprint is taken of.
            columns = {name: [getattr(r, name) for r in results] for name in buildmemo.RESULT_COLUMNS}
            columns["cached"] = [bool(r.sha1 and r.sha1 in embedded) for r in results]  # all are, next time
            buildmemo.save(self.site_cache_path("build"), self._fingerprint(version, overrides.digest),
                           buildmemo.request_columns(requests), signatures, columns, conflicts)
        return results, conflicts

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

    def _site_labels(
        self, overrides: Overrides, requests: Sequence[ImageRequest], sha1s: Sequence[str | None]
    ) -> dict[str, bool]:
        """sha1 -> label of every image a person labeled. An entry for an image of this build
        counts with the content the build found, not the sha1 an earlier build recorded (an
        entry written by hand has none): the first build must lend the same labels as the next."""
        labels: dict[str, bool] = {}
        found = {req.key: sha1 for req, sha1 in zip(requests, sha1s)}
        for path, (label, recorded) in overrides.human_labels().items():
            sha1 = found.get(path, recorded)
            if sha1:  # two entries of one image that disagree: keep wins, the safe side
                labels[sha1] = labels.get(sha1, True) and label == "invert"
        for req, sha1 in zip(requests, sha1s):
            if sha1 and req.label in ("invert", "keep") and sha1 not in labels:
                labels[sha1] = req.label == "invert"
        return labels

    def _duplicate_label(self, sha1: str | None, site_labels: dict[str, bool]) -> bool | None:
        """The label of the same bytes labeled elsewhere (this site first, then the bootstrap set)."""
        if not sha1:
            return None
        if sha1 in site_labels:
            return site_labels[sha1]
        return (self.bootstrap_labels() or {}).get(sha1)

    def bootstrap_labels(self) -> dict[str, bool] | None:
        """The bootstrap set's labels by sha1, without its vectors (all a warm build needs)."""
        if self._bootstrap_labels is False:
            self._bootstrap_labels = shipped.load_bootstrap_labels(self.embedder_id)
        return self._bootstrap_labels  # type: ignore[return-value]

    def _labels_fingerprint(self, site_labels: dict[str, bool]) -> str:
        """Changes whenever a label changes: cached automatic decisions key on it."""
        boot = b"+bootstrap" if self.bootstrap_labels() is not None else b""
        return hashlib.sha1(json.dumps(sorted(site_labels.items())).encode() + boot).hexdigest()[:12]

    def _labeled_set(self, site_labels: dict[str, bool]) -> LabeledSet:
        """Bootstrap set plus the site's own labels (which win on the same sha1)."""
        boot = self.bootstrap()
        vectors = self.store.get_vectors(self.embedder_id, list(site_labels)) if site_labels else {}
        records = self.store.get_images(list(vectors)) if vectors else {}
        sha1s, invert, rows, phashes = [], [], [], []
        for sha1, vec in vectors.items():
            sha1s.append(sha1)
            invert.append(site_labels[sha1])
            rows.append(vec)
            phashes.append(records[sha1].phash if sha1 in records else None)
        if boot is not None:
            for j, sha1 in enumerate(boot.sha1s):
                if sha1 not in site_labels:
                    sha1s.append(sha1)
                    invert.append(bool(boot.invert[j]))
                    rows.append(boot.vectors[j])
                    phashes.append(boot.phashes[j])
        if not sha1s:
            return LabeledSet.empty(1)
        return LabeledSet(sha1s, np.array(invert, dtype=bool), np.vstack(rows).astype(np.float32), phashes)

    def _decide_auto(self, paths: dict[str, Path], site_labels: dict[str, bool], version: str) -> dict[str, dict]:
        """near-duplicate > head > knn > default, with decisions cached per (version, labels, thresholds).
        `paths`: sha1 -> a file with that content, to describe an image again if its record is old.
        The labeled set (bootstrap vectors included) is built only when something is not cached."""
        sha1s = list(paths)
        if not sha1s:
            return {}
        cache_key = hashlib.sha1(
            f"{version}|{self._labels_fingerprint(site_labels)}|{self.thresholds}".encode()
        ).hexdigest()[:16]
        decided = self.store.get_decisions(cache_key, sha1s)
        todo = [s for s in sha1s if s not in decided]
        if todo:
            labeled = self._labeled_set(site_labels)
            vectors = self.store.get_vectors(self.embedder_id, todo)
            matrix = np.vstack([vectors[s] for s in todo]).astype(np.float32)
            records = self.current_records(todo, paths)
            head = self.head
            p_head: list[float | None] = [None] * len(todo)
            described = [j for j, s in enumerate(todo) if is_current(records[s])]  # a file gone since: no head
            if head is not None and described:
                stats = np.vstack([records[todo[j]].stats for j in described])
                try:
                    for j, p in zip(described, head.p_invert(matrix[described], stats)):
                        p_head[j] = float(p)
                except HeadError as exc:  # made for vectors of another size: as if it failed to load
                    if self.settings.head:
                        raise ConfigError(f"head: {exc}") from None
                    self.log.warning("%s; deciding without it", exc)
                    self._head = head = None
            if len(labeled):
                sims, rows = labeled.neighbours(matrix, self.thresholds.knn_k)
            new = {}
            for j, sha1 in enumerate(todo):
                nb = (sims[j], rows[j]) if len(labeled) else None
                d = decide_auto(matrix[j], records[sha1].phash, p_head[j], labeled, self.thresholds, nb)
                new[sha1] = {"invert": d.invert, "p_invert": d.p_invert, "confidence": d.confidence, "method": d.method}
            if head is not None or self.head_info is None:  # not when a head failed to load: retry next build
                self.store.put_decisions(cache_key, new)
            decided.update(new)
        return decided

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
            for sha1, prepared in self._decoded(again, fit=False, threads=max(1, min(8, _usable_cpus()))):
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
                for sha1, prepared in self._decoded(stale, fit=False, threads=max(1, min(8, _usable_cpus()))):
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
                for sha1, prepared in self._decoded(items, window=(1 + _usable_cpus()) * EMBED_BATCH):
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
        cpus = _usable_cpus()
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

    # -- after the build ----------------------------------------------------------------------

    def record(self, results: Sequence[ImageResult]) -> None:
        """Write this build's decisions into the overrides YAML (human labels are never touched)."""
        if self.overrides_path is None or not self.settings.write_overrides:
            return
        decisions = _decisions(results)
        if not decisions:
            return
        if self.memo_hit and self._memo_signature == file_signature(self.overrides_path):
            return  # the memo's results: only a build that found these decisions recorded leaves one
        if not self._recorded_already(decisions):
            record_decisions(self.overrides_path, decisions)

    def _would_record(self, results: Sequence[ImageResult], overrides: Overrides) -> bool:
        """Whether record(results) would write the overrides file as read for this build."""
        if self.overrides_path is None or not self.settings.write_overrides:
            return False
        decisions = _decisions(results)
        return bool(decisions) and not _holds(overrides, decisions)

    def _recorded_already(self, decisions: dict[str, AutoRecord]) -> bool:
        """Whether the overrides file, unchanged since this engine read it, holds exactly these
        decisions: a warm build then skips the lock, the second parse and the dump."""
        signature, overrides = self._loaded_overrides or (None, None)
        if overrides is None or signature is None or signature != file_signature(self.overrides_path):
            return False
        return _holds(overrides, decisions)

    def summary(self, results: Sequence[ImageResult]) -> str:
        """The one line a build logs."""
        methods = collections.Counter(r.method for r in results)
        errors = sum(1 for r in results if r.error)
        unsure = methods.get("knn", 0) + methods.get("default", 0)
        inverted = sum(1 for r in results if r.invert)
        cached = sum(1 for r in results if r.cached)
        per_method = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        return (
            f"{len(results)} images: {inverted} inverted, {self.embedded} embedded, {cached} cached, "
            f"{errors} errors, {unsure} unsure; by method: {per_method or 'none'}"
            + ("; nothing changed since the last build" if self.memo_hit else "")
        )


def _decisions(results: Sequence[ImageResult]) -> dict[str, AutoRecord]:
    """What record() writes: each decided image's automatic part, by key."""
    return {
        r.request.key: AutoRecord(
            sha1=r.sha1, invert=r.invert, p_invert=r.p_invert, confidence=r.confidence,
            method=r.method, version=r.version,
        )
        for r in results
        if r.sha1 and r.invert is not None
    }


def _holds(overrides: Overrides, decisions: dict[str, AutoRecord]) -> bool:
    """Whether the overrides file holds exactly these decisions already."""
    entries = overrides.entries
    for key, record in decisions.items():
        entry = entries.get(key)
        if entry is None or not record.recorded_in(entry.auto) or entry.sha1 != (record.sha1 or "").lower():
            return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
