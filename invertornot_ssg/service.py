"""The decisions behind `serve` (no HTTP here): one engine, batched across concurrent requests.

The engine is not thread-safe and its passes are batched inside (decode threads, model
threads), so every engine call runs in one worker thread. A request queues its images and
awaits them; the batching task waits `batch_window` after the first one for others, then runs
one `Engine.classify` over all of them. Answers are also kept in memory by sha1 while the
files they depend on (the overrides file, the head and its sidecar) keep their size and mtime:
the engine's own version and label fingerprints follow those files, so a repeated question is
answered without the engine, and never under a model version that has since changed.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .engine import Engine, ImageRequest, ImageResult
from .fileio import atomic_write, file_signature, write_error_detail
from .errors import StoreError
from .overrides import AutoRecord, Overrides, record_decisions
from .settings import Settings

SERVED_DIR = "served"  # uploaded images, by sha1, inside the store
MEMORY_ENTRIES = 200_000  # answers kept in memory (a few hundred bytes each)
NOT_FOUND = "No image found with the provided SHA1 hash"  # InvertOrNot's words: clients may match them


@dataclass(frozen=True)
class Outcome:
    """One answer, in InvertOrNot's shape plus what this project knows about the decision."""

    invert: bool | None
    sha1: str = ""
    error: str = ""
    url: str | None = None
    p_invert: float | None = None
    confidence: float | None = None
    method: str = "error"
    version: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"invert": -1 if self.invert is None else int(self.invert), "sha1": self.sha1,
                               "error": self.error}
        if self.url is not None:
            out["url"] = self.url
        out.update(p_invert=_rounded(self.p_invert), confidence=_rounded(self.confidence),
                   method=self.method, version=self.version)
        return out

    def at(self, url: str | None) -> Outcome:
        return Outcome(self.invert, self.sha1, self.error, url, self.p_invert, self.confidence,
                       self.method, self.version)


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)  # as `classify --json` writes them


def served_key(sha1: str) -> str:
    """The overrides key of an image known only by its content (an upload, a sha1 question)."""
    return f"{SERVED_DIR}/{sha1}"


class Decider:
    """The engine, its worker thread, the batching task and the answers kept in memory."""

    def __init__(self, settings: Settings, base_dir: Path, options, log: logging.Logger):
        self.engine = Engine(settings, base_dir, logger=log)
        self.options = options
        self.log = log
        self.served_dir = self.engine.store_dir / SERVED_DIR
        self.version = ""  # the engine's, as of its last pass (for answers that never reached it)
        self.passes = 0  # engine passes run: tests and the benchmark see the batching through it
        self.images = 0  # images those passes classified
        self._fetcher = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="invertornot-serve")
        self._queue: asyncio.Queue | None = None
        self._batching: asyncio.Task | None = None
        self._memory: collections.OrderedDict[str, Outcome] = collections.OrderedDict()
        self._memory_token: tuple | None = None
        self._watched: list[Path] = []

    # -- life ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Open the store, load the head and the model (once: the engine keeps them). Raises
        InvertOrNotError (ConfigError, StoreError, ModelUnavailableError) when one cannot be."""
        engine = self.engine
        engine.store  # noqa: B018  (opens it)
        engine.head  # noqa: B018  (loads it; importing scikit-learn takes seconds)
        engine.load_embedder()
        # What the engine's version and label fingerprints are read from: cheap to stat.
        heads = [p for path in engine._head_candidates() for p in (path, path.with_suffix(".json"))]
        self._watched = [p for p in [engine.overrides_path, *heads] if p is not None]
        self.version = engine.version

    async def start(self) -> None:
        """Before the first request: load (if `serve` did not already), start batching."""
        await self._in_engine(self.load)
        self._queue = asyncio.Queue()
        self._batching = asyncio.create_task(self._batch_forever())

    async def stop(self) -> None:
        if self._batching is not None:
            self._batching.cancel()
            try:
                await self._batching
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)
        self.engine.store.close()

    async def _in_engine(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- what the routes call -----------------------------------------------------------------

    async def classify_bytes(self, contents: Sequence[tuple[bytes, str]]) -> list[Outcome]:
        """Uploaded files, each kept in the store under its sha1, then classified."""
        out: list[Outcome | None] = [None] * len(contents)
        new: dict[str, bytes] = {}
        todo: list[tuple[int, str]] = []
        remembered = self._remembered()
        for i, (data, _content_type) in enumerate(contents):
            if not data:
                out[i] = self._error("No image provided")
                continue
            sha1 = hashlib.sha1(data).hexdigest()
            out[i] = remembered.get(sha1)
            if out[i] is None:
                new[sha1] = data
                todo.append((i, sha1))
        paths = await asyncio.to_thread(self._keep, new) if new else {}
        for (i, _), outcome in zip(todo, await self._classify([(paths[sha1], served_key(sha1)) for _, sha1 in todo])):
            out[i] = outcome
        return out  # type: ignore[return-value]

    async def classify_urls(self, urls: Sequence[str]) -> list[Outcome]:
        """Remote images, fetched through remote.RemoteFetcher (SSRF guard, size and time limits)."""
        from .remote import normalize_url

        normal = [normalize_url(url) for url in urls]
        fetched = await asyncio.to_thread(self.fetcher.fetch_all, [u for u in normal if u])
        out: list[Outcome | None] = [None] * len(urls)
        todo: list[tuple[int, Path, str]] = []
        remembered = self._remembered()
        for i, (url, target) in enumerate(zip(urls, normal)):
            if target is None:
                out[i] = self._error("not an http(s) URL", url=url)
                continue
            result = fetched[target]
            if result.path is None:
                problem = (result.problem or "").removeprefix("was not fetched: ")
                out[i] = self._error(f"Failed to fetch image from URL ({problem})", url=url)
                continue
            known = remembered.get(result.path.stem)  # the cache names files by their sha1
            if known is not None:
                out[i] = known.at(url)
            else:
                todo.append((i, result.path, target))
        for (i, _, _), outcome in zip(todo, await self._classify([(path, url) for _, path, url in todo])):
            out[i] = outcome.at(urls[i])
        return out  # type: ignore[return-value]

    async def look_up(self, sha1s: Sequence[str]) -> list[Outcome]:
        """Images known by content: from memory, else classified again from the store's file."""
        out: list[Outcome | None] = [None] * len(sha1s)
        misses: dict[str, list[int]] = {}
        remembered = self._remembered()
        for i, given in enumerate(sha1s):
            sha1 = given.strip().lower()
            if len(sha1) != 40 or any(c not in "0123456789abcdef" for c in sha1):
                out[i] = self._error("not a SHA-1 hash (40 hexadecimal digits)", sha1=given)
            else:
                out[i] = remembered.get(sha1)
                if out[i] is None:
                    misses.setdefault(sha1, []).append(i)
        if misses:
            paths = await self._in_engine(self.engine.store.paths_for, list(misses))
            found = [s for s in misses if s in paths]
            for sha1, outcome in zip(found, await self._classify([(Path(paths[s]), served_key(s)) for s in found])):
                if outcome.sha1 != sha1:  # the file changed since the store saw it
                    outcome = self._error(NOT_FOUND, sha1=sha1)
                for i in misses[sha1]:
                    out[i] = outcome
            for sha1 in misses.keys() - set(found):
                for i in misses[sha1]:
                    out[i] = self._error(NOT_FOUND, sha1=sha1)
        return out  # type: ignore[return-value]

    async def correct(self, sha1: str, invert: bool, url: str | None) -> Outcome | None:
        """Write a person's label for a known image into the overrides file; None if unknown."""
        outcome = await self._in_engine(self._write_label, sha1, invert, url)
        self._memory.clear()
        return outcome

    # -- engine thread ------------------------------------------------------------------------

    def _write_label(self, sha1: str, invert: bool, url: str | None) -> Outcome | None:
        from .remote import normalize_url

        engine = self.engine
        path = engine.store.paths_for([sha1]).get(sha1)
        if path is None or engine.overrides_path is None:
            return None
        overrides = Overrides.load(engine.overrides_path)
        # The entry a build or review already keeps for this image, else the key a build gives a URL.
        known = sorted(key for key, entry in overrides.entries.items() if entry.sha1 == sha1)
        key = known[0] if known else (url and normalize_url(url)) or served_key(sha1)
        [before] = engine.classify([ImageRequest(Path(path), key)])
        if before.sha1 != sha1 or before.invert is None:
            return None
        record = AutoRecord(before.sha1, before.invert, before.p_invert, before.confidence, before.method,
                            before.version, before.novelty)
        record_decisions(engine.overrides_path, {key: record}, labels={key: "invert" if invert else "keep"})
        self.log.info("correction: %s (%s) labeled %s in %s", key, sha1, "invert" if invert else "keep",
                      engine.overrides_path)
        [after] = engine.classify([ImageRequest(Path(path), key)])
        return self._outcome(after)

    def _keep(self, uploads: dict[str, bytes]) -> dict[str, Path]:
        """Save uploaded bytes once, under their sha1: the engine reads files, and the store's
        records, `review` and `retrain` need one for each image."""
        paths = {}
        try:
            self.served_dir.mkdir(parents=True, exist_ok=True)
            for sha1, data in uploads.items():
                path = paths[sha1] = self.served_dir / sha1
                if not (path.is_file() and path.stat().st_size == len(data)):
                    atomic_write(path, data)
        except OSError as exc:
            detail = write_error_detail(exc)
            raise StoreError(f"cannot keep uploaded images in {self.served_dir}: {detail} ({exc})") from exc
        return paths

    @property
    def fetcher(self):
        if self._fetcher is None:
            from .remote import REMOTE_DIR, RemoteFetcher

            settings = self.engine.settings
            self._fetcher = RemoteFetcher(
                self.engine.store_dir / REMOTE_DIR, timeout=settings.remote_timeout,
                allow_private=settings.remote_allow_private, trusted=self.options.trusted_networks, logger=self.log)
        return self._fetcher

    # -- batching -----------------------------------------------------------------------------

    async def _classify(self, items: list[tuple[Path, str]]) -> list[Outcome]:
        """Queue (path, key) items for the next engine pass and wait for their outcomes."""
        if not items:
            return []
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(([ImageRequest(path, key) for path, key in items], future, self._token()))
        return await future

    async def _batch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            deadline = loop.time() + self.options.batch_window
            while (left := deadline - loop.time()) > 0:
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            requests = [request for job, _, _ in jobs for request in job]
            try:
                results = await self._in_engine(self._pass, requests)
            except Exception as exc:  # the store or overrides file failed: every waiting request hears it
                for _, future, _ in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for job, future, token in jobs:
                outcomes = [self._outcome(r) for r in results[start:start + len(job)]]
                start += len(job)
                self._remember(outcomes, token)
                if not future.done():  # a client that went away
                    future.set_result(outcomes)

    def _pass(self, requests: list[ImageRequest]) -> list[ImageResult]:
        results = self.engine.classify(requests)
        self.version = self.engine.version
        self.passes += 1
        self.images += len(requests)
        return results

    # -- answers ------------------------------------------------------------------------------

    def _outcome(self, result: ImageResult) -> Outcome:
        error = result.error or ""
        if error:  # the engine names the file; the client knows it by its key, not our disk
            error = error.replace(os.fspath(result.request.path), result.request.key)
        return Outcome(result.invert, result.sha1 or "", error, None, result.p_invert, result.confidence,
                       result.method, result.version)

    def _error(self, message: str, sha1: str = "", url: str | None = None) -> Outcome:
        return Outcome(None, sha1, message, url, version=self.version)

    def _token(self) -> tuple:
        """Size and mtime of every file the engine's decisions depend on but the store does not hold."""
        return tuple(file_signature(path) for path in self._watched)

    def _remembered(self) -> collections.OrderedDict[str, Outcome]:
        """The answers kept by sha1, emptied first if a file they depend on changed (once a request)."""
        token = self._token()
        if token != self._memory_token:
            self._memory.clear()
            self._memory_token = token
        return self._memory

    def _remember(self, outcomes: list[Outcome], token: tuple) -> None:
        """Keep decided outcomes, if the files they were decided under are still those of now."""
        if token != self._token():
            return  # a label or the head changed during the pass: the next question asks again
        if token != self._memory_token:
            self._memory.clear()
            self._memory_token = token
        for outcome in outcomes:
            if outcome.invert is not None and outcome.sha1:
                self._memory[outcome.sha1] = outcome
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

