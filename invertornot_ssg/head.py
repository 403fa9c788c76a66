"""The random-forest head: features, prediction, and safe persistence (skops + JSON sidecar)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._lazy import np

from .errors import InvertOrNotError
from .fileio import atomic_write, file_signature, read_cache, write_cache
from .images import STAT_NAMES

# skops refuses to load any type not on this list; a RandomForest needs only sklearn's Tree.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
HEAD_SUFFIX = ".skops"
# A head is a zip that skops inflates whole into memory: refuse one that would expand past this
# (the shipped head expands to 15 MB). Checked from the zip's directory before skops reads it.
MAX_HEAD_BYTES = 512 * 2**20
MAX_HEAD_MEMBERS = 100_000


class HeadError(InvertOrNotError):
    """A head file is missing, unsafe, or made for another embedder."""


@dataclass
class Head:
    """A fitted classifier over [embedding, image statistics] with what built it."""

    model: Any  # a fitted scikit-learn classifier with predict_proba and classes_ [False, True]
    embedder_id: str
    use_embedding: bool = True
    stat_names: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str = "unsaved"
    path: Path | None = None  # the file it was loaded from, for messages

    def features(self, vectors: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """`stats` has a column per images.STAT_NAMES; the head takes the ones it was trained on
        (a head trained before a statistic was added still works)."""
        if self.stat_names and tuple(self.stat_names) != STAT_NAMES:
            stats = np.asarray(stats)[:, stat_columns(self.stat_names)]
        return build_features(vectors, stats, self.use_embedding, bool(self.stat_names))

    def p_invert(self, vectors: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """Probability that each image should be inverted."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float64)
        features = self.features(vectors, stats)
        expected = getattr(self.model, "n_features_in_", None)
        if expected is not None and features.shape[1] != expected:
            # Checked here, where the embedding's size is known: a head trained on another
            # embedder's vectors would otherwise fail inside scikit-learn with a bare traceback.
            raise HeadError(
                f"{self.path or 'the head'}: takes {expected} features, but {self.embedder_id} and the"
                f" statistics give {features.shape[1]}; train it again with `retrain`"
            )
        proba = self.model.predict_proba(features)
        column = list(self.model.classes_).index(True)
        return proba[:, column]


def stat_columns(names) -> list[int]:
    unknown = [name for name in names if name not in STAT_NAMES]
    if unknown:
        raise HeadError(f"the head uses image statistics this invertornot-ssg does not compute: "
                        f"{', '.join(unknown)} (made by a newer version?)")
    return [STAT_NAMES.index(name) for name in names]


def build_features(vectors: np.ndarray, stats: np.ndarray, use_embedding: bool, use_stats: bool) -> np.ndarray:
    parts = []
    if use_embedding:
        parts.append(np.asarray(vectors, dtype=np.float32))
    if use_stats:
        parts.append(np.asarray(stats, dtype=np.float32))
    if not parts:
        raise ValueError("a head needs the embedding, the statistics, or both")
    return np.hstack(parts)


def save_head(head: Head, path: Path) -> Head:
    """Write `path` (.skops) and `path.json` atomically; returns the head with its content version."""
    head.version = save_skops(head.model, path, "rf", lambda version: {
        "version": version,
        "embedder": head.embedder_id,
        "use_embedding": head.use_embedding,
        "stat_names": list(head.stat_names),
        **head.metadata,
    })
    return head


def save_skops(model: Any, path: Path, prefix: str, sidecar) -> str:
    """Write a scikit-learn model to `path` (.skops) and `sidecar(version)` to `path.json`,
    atomically; returns the content version (`prefix`-digest). Heads and novelty models alike."""
    import skops.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        skops.io.dump(model, tmp)
        version = content_version(Path(tmp).read_bytes(), prefix)
        atomic_write(path.with_suffix(".json"), (json.dumps(sidecar(version), indent=2, sort_keys=True) + "\n").encode())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model is shipped and shared like any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return version


@dataclass(frozen=True)
class HeadInfo:
    """What a head's sidecar says, checked against the .skops file, without loading the model."""

    path: Path
    embedder_id: str
    version: str
    sidecar: dict[str, Any]


def content_version(data: bytes, prefix: str = "rf") -> str:
    """A head's version: a digest of its .skops bytes, so a replaced file is a new version."""
    return f"{prefix}-{hashlib.sha1(data).hexdigest()[:10]}"


def read_head_info(path: Path, cache_dir: Path | None = None, prefix: str = "rf", what: str = "head") -> HeadInfo:
    """The sidecar of a head, checked against the file's digest; cheap (no scikit-learn, no skops).
    `cache_dir`: where the digest is remembered by the file's inode, size and mtime. `prefix` and
    `what`: of another kind of model saved by save_skops (novelty.py)."""
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeadError(f"{sidecar_path}: missing; a {what} is the .skops file plus its .json sidecar") from None
    except (OSError, ValueError) as exc:
        raise HeadError(f"{sidecar_path}: unreadable ({exc})") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("embedder"), str):
        raise HeadError(f"{sidecar_path}: not a {what} sidecar (no `embedder`)")
    try:
        version = _file_version(path, cache_dir, prefix)
    except OSError as exc:
        raise HeadError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if sidecar.get("version") != version:
        # Cached decisions are keyed on the version: a .skops file swapped under an old sidecar
        # would silently reuse decisions made by another model.
        raise HeadError(
            f"{path}: does not match its sidecar {sidecar_path.name} (version {sidecar.get('version')!r},"
            f" file is {version}); copy a {what}'s .skops and .json together"
        )
    return HeadInfo(path, sidecar["embedder"], version, sidecar)


def _file_version(path: Path, cache_dir: Path | None, prefix: str = "rf") -> str:
    """content_version of the file. Hashing a 12 MB head took ~30 ms of every warm build, so the
    result is kept in `cache_dir` under the file's (inode, size, mtime): a replaced file is hashed again."""
    signature = file_signature(path)
    cache = Path(cache_dir) / "head-versions.json" if cache_dir is not None and signature else None
    key = os.fsdecode(os.path.abspath(path))
    known = read_cache(cache) if cache is not None else None
    known = known if isinstance(known, dict) else {}
    entry = known.get(key)
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == list(signature):
        return entry[1]
    version = content_version(path.read_bytes(), prefix)
    if cache is not None and file_signature(path) == signature:  # not replaced while being read
        write_cache(cache, json.dumps({**known, key: [list(signature), version]}).encode())
    return version


def load_head(path: Path | HeadInfo) -> Head:
    """Load a head without running code from the file: unknown types are refused."""
    info = path if isinstance(path, HeadInfo) else read_head_info(path)
    path = info.path
    model = load_skops(path)
    sidecar = info.sidecar
    stat_names = sidecar.get("stat_names", ())
    if not isinstance(stat_names, list) or not all(isinstance(name, str) for name in stat_names):
        raise HeadError(f"{path.with_suffix('.json')}: `stat_names` is not a list of names")
    stat_columns(stat_names)  # refuse now, not at the first prediction
    _check_model(model, path, bool(sidecar.get("use_embedding", True)), len(stat_names))
    metadata = {k: v for k, v in sidecar.items() if k not in ("version", "embedder", "use_embedding", "stat_names")}
    return Head(
        model=model,
        embedder_id=info.embedder_id,
        use_embedding=bool(sidecar.get("use_embedding", True)),
        stat_names=tuple(sidecar.get("stat_names", ())),
        metadata=metadata,
        version=info.version,
        path=path,
    )


def load_skops(path: Path) -> Any:
    """What a .skops file holds, loaded without running code from it: the archive is checked
    before skops inflates it, and types off the allow-list are refused. Heads and novelty models."""
    import skops.io  # slow to import (several seconds): only when a model must actually run

    _check_archive(path)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises several types for a damaged zip
        raise HeadError(f"{path}: not a readable skops file ({exc})") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise HeadError(f"{path}: refusing to load types not on the allow-list: {', '.join(refused)}")
    try:
        return skops.io.load(path, trusted=list(untrusted))
    except Exception as exc:  # e.g. saved by an incompatible scikit-learn
        raise HeadError(f"{path}: cannot be loaded ({type(exc).__name__}: {exc})") from None


def _check_archive(path: Path) -> None:
    """Refuse a head whose zip would inflate past MAX_HEAD_BYTES, from its directory alone
    (zipfile never inflates a member past the size the directory gives)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise HeadError(f"{path}: not a readable skops file ({exc})") from None
    if len(members) > MAX_HEAD_MEMBERS:
        raise HeadError(f"{path}: refused, {len(members):,} files in the archive (at most {MAX_HEAD_MEMBERS:,})")
    total = sum(member.file_size for member in members)
    if total > MAX_HEAD_BYTES:
        raise HeadError(
            f"{path}: refused, it would expand to {total / 2**20:,.0f} MiB in memory, over the"
            f" {MAX_HEAD_BYTES // 2**20} MiB a head may take (a zip bomb?)"
        )


def _check_model(model: Any, path: Path, use_embedding: bool, stat_count: int) -> None:
    """Refuse what skops loaded unless it is a fitted binary classifier the features fit."""
    from sklearn.base import BaseEstimator, is_classifier

    estimator = isinstance(model, BaseEstimator) and is_classifier(model)
    if not estimator or not callable(getattr(model, "predict_proba", None)):
        raise HeadError(f"{path}: holds a {type(model).__module__}.{type(model).__qualname__}, not a"
                        " scikit-learn classifier with predict_proba")
    classes = getattr(model, "classes_", None)
    try:
        binary = classes is not None and len(classes) == 2 and set(classes.tolist()) == {False, True}
    except (AttributeError, TypeError):
        binary = False
    if not binary:
        raise HeadError(f"{path}: classes are {classes!r}, not [False, True] (invert or not)")
    features = getattr(model, "n_features_in_", None)
    if not isinstance(features, (int, np.integer)):
        raise HeadError(f"{path}: the classifier is not fitted (no n_features_in_)")
    if use_embedding and features <= stat_count or not use_embedding and features != stat_count:
        what = "an embedding and " if use_embedding else ""
        raise HeadError(f"{path}: takes {features} features, which cannot be {what}the {stat_count}"
                        " statistics its sidecar names")
