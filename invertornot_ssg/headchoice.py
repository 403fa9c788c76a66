"""Which head an engine uses (the site's, one named in the settings, or the shipped one), loaded lazily."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import shipped
from .embedders import id_slug
from .errors import ConfigError
from .fileio import file_signature
from .head import Head, HeadError, HeadInfo, load_head, read_head_info
from .novelty import SUFFIX as NOVELTY_SUFFIX
from .novelty import NoveltyModel, load_novelty, novelty_path, read_novelty_info
from .store import HEADS_DIR


class HeadChoice:
    """Engine's head: the site's, one named in the settings, or the shipped one; loaded lazily."""

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
    def novelty_info(self) -> HeadInfo | None:
        """The novelty model beside the head in use (novelty.py), from its sidecar; None without
        one (a head trained before novelty existed: decisions as before) or when it is unusable,
        with one warning naming the file."""
        head = self.head_info
        path = novelty_path(head.path) if head else None
        signature = (path, file_signature(path), file_signature(path.with_suffix(".json")) if path else None)
        if self._novelty_info is False or signature != self._novelty_signature:
            self._novelty_info, self._novelty, self._novelty_signature = None, False, signature
            if path is not None and (signature[1] or signature[2]):
                try:
                    info = read_novelty_info(path, self.cache_dir)
                    if info.embedder_id != self.embedder_id:
                        raise HeadError(f"{path}: made for {info.embedder_id}, not {self.embedder_id}")
                    self._novelty_info = info
                except HeadError as exc:
                    self.log.warning("%s; deciding without novelty", exc)
        return self._novelty_info  # type: ignore[return-value]

    @property
    def novelty(self) -> NoveltyModel | None:
        """The novelty model, loaded on first use; None without a usable one (warned once)."""
        info = self.novelty_info
        if self._novelty is False:
            try:
                self._novelty = load_novelty(info) if info else None
            except HeadError as exc:
                self.log.warning("%s; deciding without novelty", exc)
                self._novelty = None
        return self._novelty  # type: ignore[return-value]

    @property
    def version(self) -> str:
        """Recorded with each automatic decision; cached decisions and the build memo key on it."""
        info, novelty = self.head_info, self.novelty_info
        return f"{self.embedder_id}+{info.version if info else 'no-head'}" + (f"+{novelty.version}" if novelty else "")

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
            others = sorted(n for n in os.listdir(site_head.parent) if n.startswith(prefix) and n.endswith(suffix)
                            and not n.endswith(NOVELTY_SUFFIX))
        except OSError:
            return
        if others:
            self.log.warning(
                "this site's head %s was trained for another model or image preparation, not %s, so it"
                " is not used; run `invertornot-ssg retrain` to train one for %s",
                site_head.parent / others[-1], self.embedder_id, self.embedder_id)
