"""One batched pass over a build's images: human labels, embedding, automatic decisions, the build memo."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from . import buildmemo, contrast, shipped
from .decisions import decide_human
from .fileio import file_signature
from .results import ImageRequest, ImageResult, SITE_LABEL_METHODS


class Classifying:
    """Engine's classify(): human labels, embedding, automatic decisions in one pass; the build memo."""

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
        results = [ImageResult(req, sha1, invert, p, confidence, method, version, cached, error, ink, novelty, novel)
                   for req, sha1, invert, p, confidence, method, cached, error, ink, novelty, novel
                   in zip(requests, *columns)]
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
                results.append(ImageResult(req, sha1, invert, d["p_invert"], d["confidence"], method, version, cached,
                                           None, ink, d.get("novelty"), bool(d.get("novel"))))
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
