"""The overrides YAML: human labels (the site's training set) + the last automatic decisions.

One file per site, keyed by site-relative posix path. Builds write through
`record_decisions`, the only writer: under a file lock it re-reads the file, changes
nothing but `sha1` and `auto` (and `label` only when the review tool asks), and replaces
the file atomically. A human label is never overwritten or dropped.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from .errors import OverridesError
from .fileio import read_cache, write_cache

__all__ = [
    "AutoRecord",
    "Entry",
    "FORMAT_VERSION",
    "HEADER",
    "LABELS",
    "LabelConflict",
    "Overrides",
    "record_decisions",
]

FORMAT_VERSION = 1
LABELS = ("invert", "keep")
HEADER = (
    "# invertornot-ssg overrides: the training set of this site.\n"
    "# Set `label: invert` or `label: keep` on an entry to decide an image yourself;\n"
    "# builds rewrite only the `auto:` part and never touch `label` or `note`.\n"
    "# Comments are not kept when a build rewrites this file: write remarks in `note:`.\n"
)
# A recorded p_invert stays while a new build's is this close and decides the same (see AutoRecord.recorded_in).
P_INVERT_TOLERANCE = 0.05
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class AutoRecord:
    """One automatic decision, as a build records it (`auto:` plus the entry's `sha1`)."""

    sha1: str | None
    invert: bool | None
    p_invert: float | None
    confidence: float | None
    method: str
    version: str
    novelty: float | None = None  # novelty.py's score; written only when there is one

    def as_yaml(self) -> dict[str, Any]:
        """The `auto:` mapping: plain Python types, floats rounded to 2 decimals."""
        return {
            "invert": None if self.invert is None else bool(self.invert),
            "p_invert": _round(self.p_invert),
            "confidence": _round(self.confidence),
            "method": str(self.method),
            **({} if self.novelty is None else {"novelty": _round(self.novelty)}),
            "version": str(self.version),
        }

    def recorded_in(self, auto: Mapping[str, Any] | None) -> bool:
        """Whether `auto` (an entry's recorded mapping) already says this: the same decision, method
        and version, and p_invert within P_INVERT_TOLERANCE. Rebuilding a store from scratch can move
        p_invert by a hundredth or two (SVG rendering, float16 embeddings) without changing any
        decision; the committed file then stays byte for byte as it was."""
        if not isinstance(auto, Mapping):
            return False
        mine = self.as_yaml()
        if auto == mine:
            return True
        if any(auto.get(k) != mine[k] for k in ("invert", "method", "version")):
            return False
        old, new = auto.get("p_invert"), mine["p_invert"]
        if old is None or new is None:
            return old is new
        return isinstance(old, (int, float)) and abs(float(old) - new) <= P_INVERT_TOLERANCE


@dataclass(frozen=True)
class Entry:
    """One image's entry. `label`/`note`/`extra` belong to people; `sha1`/`auto` to builds.
    Treat `auto` and `extra` as read-only."""

    label: str | None = None
    note: str | None = None
    sha1: str | None = None
    auto: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return self.label is None and self.note is None and self.sha1 is None and self.auto is None and not self.extra


@dataclass(frozen=True)
class LabelConflict:
    """Entries with the same content (sha1) but different human labels; `keep` wins."""

    sha1: str
    invert_paths: tuple[str, ...]
    keep_paths: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"sha1 {self.sha1} is labeled invert at {', '.join(self.invert_paths)} "
            f"and keep at {', '.join(self.keep_paths)}; using keep"
        )


class Overrides:
    """A parsed overrides file. Read-only: write through `record_decisions`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        entries: Mapping[str, Entry] | None = None,
        extra: Mapping[str, Any] | None = None,
        digest: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.digest = digest  # SHA-1 of the bytes this was parsed from (load_cached sets it)
        self._entries = dict(sorted((entries or {}).items()))
        self._extra = dict(extra or {})  # unknown top-level keys, kept as they are
        by_sha1: dict[str, dict[str, list[str]]] = {}
        for key, entry in self._entries.items():
            if entry.label is not None and entry.sha1 is not None:
                by_sha1.setdefault(entry.sha1, {}).setdefault(entry.label, []).append(key)
        self._by_sha1 = by_sha1

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Overrides":
        """Read `path`; a missing file is an empty set. Raises OverridesError naming file and line."""
        path = Path(path)
        return _parse(path, _read_bytes(path))

    @property
    def entries(self) -> Mapping[str, Entry]:
        return MappingProxyType(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def label_for(self, sha1: str | None, path: str) -> tuple[str, str] | None:
        """The human label for an image and how it matched: ('invert'|'keep', 'sha1'|'path').
        By content first (any labeled entry with this sha1; `keep` if they disagree), then by path."""
        if sha1 is not None:
            labels = self._by_sha1.get(sha1.lower())
            if labels:
                return ("keep" if "keep" in labels else "invert", "sha1")
        entry = self._entries.get(path)
        if entry is not None and entry.label is not None:
            return (entry.label, "path")
        return None

    def conflicts(self) -> list[LabelConflict]:
        """Content labeled both ways (at different paths), sorted by sha1."""
        return [
            LabelConflict(sha1, tuple(labels["invert"]), tuple(labels["keep"]))
            for sha1, labels in sorted(self._by_sha1.items())
            if len(labels) > 1
        ]

    def human_labels(self) -> dict[str, tuple[str, str | None]]:
        """path -> (label, sha1) for every labeled entry: the training set."""
        return {key: (e.label, e.sha1) for key, e in self._entries.items() if e.label is not None}

    def to_yaml(self) -> str:
        """The canonical text: header, `version`, entries sorted by path, fixed key order."""
        fast = None if self._extra else _fast_body(self._entries)
        return HEADER + (fast if fast is not None else self._dump_body())

    def _dump_body(self) -> str:
        """The reference serialisation; `_fast_body` writes the same bytes for common entries."""
        images = {key: _entry_yaml(entry) for key, entry in self._entries.items()}
        document: dict[str, Any] = {"version": FORMAT_VERSION, "images": images}
        document.update(self._extra)
        return yaml.dump(document, Dumper=_Dumper, **_DUMP_OPTIONS)

    def merged(
        self,
        decisions: Mapping[str, AutoRecord],
        labels: Mapping[str, str | None] | None = None,
    ) -> "Overrides":
        """A copy with `sha1`/`auto` set from `decisions` and, only for the paths in `labels`,
        the label set (a string) or cleared (None). Nothing else changes; no entry is dropped
        except one that clearing its label leaves empty."""
        entries = dict(self._entries)
        for key, record in decisions.items():
            _check_key(key)
            if not isinstance(record, AutoRecord):
                raise TypeError(f"decisions[{key!r}]: expected an AutoRecord, got {type(record).__name__}")
            old = entries.get(key, Entry())
            # An unreadable image has no sha1: keep the old one, which ties a human label to its content.
            sha1 = record.sha1.lower() if record.sha1 else old.sha1
            same = sha1 == old.sha1 and record.recorded_in(old.auto)
            entries[key] = replace(old, sha1=sha1, auto=old.auto if same else record.as_yaml())
        for key, label in (labels or {}).items():
            _check_key(key)
            if label is not None and label not in LABELS:
                raise ValueError(f"labels[{key!r}]: expected 'invert', 'keep' or None, got {label!r}")
            entry = replace(entries.get(key, Entry()), label=label)
            if entry.is_empty():
                entries.pop(key, None)
            else:
                entries[key] = entry
        return Overrides(self.path, entries, self._extra)


def record_decisions(
    path: str | os.PathLike[str],
    decisions: Mapping[str, AutoRecord],
    labels: Mapping[str, str | None] | None = None,
    lock_timeout: float = 30,
) -> bool:
    """Merge automatic decisions (and, for the review tool only, `labels`) into the file at
    `path`; the only writer. Returns True if the file was written, False if nothing changed.

    Under `<path>.lock`: re-reads the file from disk, merges (never touching `label`, `note`
    or unknown keys of other paths), and replaces it atomically (temp file in the same
    directory, fsync, os.replace, fsync of the directory). A malformed file raises
    OverridesError (file and line) and nothing is written; so does a failed write, which
    leaves the old file intact. Entries of images no longer seen are kept.
    """
    from filelock import FileLock, Timeout  # ~15 ms to import: only builds that write need it

    shown = Path(path)  # named in messages; `target` is where it really lives (a symlink stays a symlink)
    target = Path(os.path.realpath(os.fspath(path)))
    lock = FileLock(f"{target}.lock", timeout=lock_timeout)
    try:
        lock.acquire()
    except Timeout:
        raise OverridesError(
            f"{shown}: could not lock {target}.lock within {lock_timeout} s; is another build writing it?"
        ) from None
    except OSError as exc:
        raise OverridesError(f"{shown}: cannot create the lock file {target}.lock: {exc.strerror or exc}") from exc
    try:
        _remove_stale_temp_files(target)
        old_bytes = _read_bytes(target)
        current = _parse(shown, old_bytes)
        new = current.merged(decisions, labels)
        if old_bytes is None and not len(new):
            return False  # nothing to record, and no file to create
        new_bytes = new.to_yaml().encode("utf-8")
        if new_bytes == old_bytes:
            return False
        try:
            _atomic_write(target, new_bytes)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            reason = "the disk is full" if full else (exc.strerror or str(exc))
            raise OverridesError(f"{shown}: could not write the overrides file ({reason}); the previous file is intact") from exc
        return True
    finally:
        lock.release()


# --- reading -----------------------------------------------------------------------------

_CACHE_FORMAT = 1


def load_cached(path: str | os.PathLike[str], cache_dir: Path) -> Overrides:
    """`Overrides.load` through a JSON copy of the parsed file in `cache_dir`, keyed by the file's
    content (SHA-1 of its bytes, so any edit is seen): a warm build of a 1,000-image site parsed
    its YAML in ~75 ms on every build. The file stays the truth: any problem with the copy means
    parsing the file; a file JSON cannot hold exactly (a YAML date, a number as a key) is not copied."""
    path = Path(path)
    data = _read_bytes(path)
    if data is None:
        return Overrides(path)
    digest = hashlib.sha1(data).hexdigest()
    cache = Path(cache_dir) / f"overrides-{hashlib.sha1(os.fsencode(os.path.abspath(path))).hexdigest()[:16]}.json"
    copy = read_cache(cache)
    try:
        if copy["format"] == _CACHE_FORMAT and copy["sha1"] == digest:
            return Overrides(path, {key: Entry(**e) for key, e in copy["entries"].items()}, copy["extra"], digest)
    except (TypeError, KeyError, AttributeError):
        pass  # none yet, another file's, or damaged: parse
    overrides = _parse(path, data)
    overrides.digest = digest
    document = {"format": _CACHE_FORMAT, "sha1": digest,
                "entries": {key: dataclasses.asdict(e) for key, e in overrides.entries.items()},
                "extra": overrides._extra}
    try:
        text = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError):
        return overrides  # not JSON-able (a YAML date, ...): the next build parses again
    if json.loads(text) == document:  # else JSON would change a value (a number as a key, ...)
        write_cache(cache, text.encode("utf-8"))
    return overrides


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OverridesError(f"{path}: cannot read the overrides file: {exc.strerror or exc}") from exc


def _parse(path: Path, data: bytes | None) -> Overrides:
    if data is None:
        return Overrides(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise OverridesError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        return _document(path, root, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise OverridesError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise OverridesError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _fail(path: Path, node: yaml.Node, message: str) -> OverridesError:
    return OverridesError(f"{path}:{node.start_mark.line + 1}: {message}")


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _pairs(path: Path, node: yaml.MappingNode, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping whose keys must be distinct text."""
    seen: dict[str, yaml.Node] = {}
    pairs = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            raise _fail(path, key_node, f"{what}: merge keys (<<) are not supported; write the keys out")
        if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node) or not key_node.value:
            raise _fail(path, key_node, f"{what}: every key must be plain text")
        key = key_node.value
        if key in seen:
            first = seen[key].start_mark.line + 1
            raise _fail(path, key_node, f"{what}: {key!r} appears twice (first at line {first}); merge the two")
        seen[key] = key_node
        pairs.append((key, key_node, value_node))
    return pairs


def _document(path: Path, root: yaml.Node | None, loader: Any) -> Overrides:
    if root is None or _is_null(root):
        return Overrides(path)
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "expected a mapping with `version:` and `images:`")
    entries: dict[str, Entry] = {}
    extra: dict[str, Any] = {}
    for key, _, value in _pairs(path, root, "top level"):
        if key == "version":
            version = loader.construct_object(value, deep=True)
            if type(version) is not int or version < 1:
                raise _fail(path, value, f"version: expected {FORMAT_VERSION}, got {version!r}")
            if version > FORMAT_VERSION:
                raise _fail(path, value, f"version {version}: written by a newer invertornot-ssg; upgrade it")
        elif key == "images":
            if _is_null(value):
                continue
            if not isinstance(value, yaml.MappingNode):
                raise _fail(path, value, "images: expected a mapping of image path -> entry")
            for image, _, entry_node in _pairs(path, value, "images"):
                entries[image] = _entry(path, image, entry_node, loader)
        else:
            extra[key] = loader.construct_object(value, deep=True)
    return Overrides(path, entries, extra)


def _entry(path: Path, image: str, node: yaml.Node, loader: Any) -> Entry:
    if _is_null(node):
        return Entry()
    if isinstance(node, yaml.ScalarNode):  # short form: `img/x.png: keep`
        return Entry(label=_label(path, image, node))
    if not isinstance(node, yaml.MappingNode):
        raise _fail(path, node, f"{image}: expected `invert`, `keep` or a mapping such as {{label: keep}}")
    fields_: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, _, value in _pairs(path, node, image):
        if key == "label":
            fields_["label"] = _label(path, image, value)
        elif key in ("note", "sha1"):
            if not isinstance(value, yaml.ScalarNode):
                raise _fail(path, value, f"{image}: {key} must be text")
            if not _is_null(value):
                fields_[key] = value.value.strip().lower() if key == "sha1" else value.value
        elif key == "auto":
            if _is_null(value):
                continue
            if not isinstance(value, yaml.MappingNode):
                raise _fail(path, value, f"{image}: auto must be a mapping")
            fields_["auto"] = _auto(value, loader)
        else:
            extra[key] = loader.construct_object(value, deep=True)
    return Entry(extra=extra, **fields_)


_SCALAR_CONSTRUCTORS = {
    _STR_TAG: lambda loader, node: node.value,
    _NULL_TAG: lambda loader, node: None,
    "tag:yaml.org,2002:bool": lambda loader, node: loader.bool_values[node.value.lower()],
    "tag:yaml.org,2002:int": lambda loader, node: loader.construct_yaml_int(node),
    "tag:yaml.org,2002:float": lambda loader, node: loader.construct_yaml_float(node),
}


def _auto(node: yaml.MappingNode, loader: Any) -> dict[str, Any]:
    """The `auto:` mapping: flat scalars built directly (a third of the load time on large
    sites), anything else through PyYAML's constructor."""
    auto: dict[str, Any] = {}
    for key_node, value_node in node.value:
        build = _SCALAR_CONSTRUCTORS.get(value_node.tag) if isinstance(value_node, yaml.ScalarNode) else None
        if build is None or key_node.tag != _STR_TAG or not isinstance(key_node, yaml.ScalarNode):
            return loader.construct_object(node, deep=True)
        auto[key_node.value] = build(loader, value_node)
    return auto


def _label(path: Path, image: str, node: yaml.Node) -> str | None:
    if _is_null(node):
        return None
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if value not in LABELS:
        shown = repr(value) if value is not None else "a collection"
        raise _fail(path, node, f"{image}: label must be `invert` or `keep`, got {shown}")
    return value


# --- writing -----------------------------------------------------------------------------


class _Flow(dict):
    """A mapping written on one line: `{invert: true, p_invert: 0.93, ...}`."""


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    pass


def _represent_flow(dumper: Any, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(_Flow, _represent_flow)


def _entry_yaml(entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.label is not None:
        out["label"] = entry.label
    if entry.note is not None:
        out["note"] = entry.note
    if entry.sha1 is not None:
        out["sha1"] = entry.sha1
    if entry.auto is not None:
        out["auto"] = _Flow(entry.auto)
    out.update(entry.extra)
    # A person's short entry stays short until a build adds automatic data to it.
    return out if entry.auto is not None else _Flow(out)


_DUMP_OPTIONS: dict[str, Any] = {"sort_keys": False, "default_flow_style": False, "allow_unicode": True, "width": 1 << 16}
# Text PyYAML writes unquoted: no indicators, no ': ', no ' #', no leading/trailing space, no line breaks.
_PLAIN_TEXT = re.compile(r"[\w./()+](?:[\w./()+@ -]*[\w./()+@-])?")
_resolver = yaml.resolver.Resolver()
_plain_cache: dict[str, bool] = {}


def _is_plain(text: str) -> bool:
    """True when PyYAML would write `text` as a plain scalar (and read it back as text)."""
    known = _plain_cache.get(text)
    if known is None:
        known = (
            not text.startswith("...")  # a document marker
            # libyaml quotes anything outside the Basic Multilingual Plane
            and (text.isascii() or all(ch < "\U00010000" and ch.isprintable() for ch in text))
            and _PLAIN_TEXT.fullmatch(text) is not None
            and _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG
        )
        if len(_plain_cache) < 100_000:
            _plain_cache[text] = known
    return known


def _fast_scalar(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return value if _is_plain(value) else None
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is int:
        return str(value)
    if kind is float and value - value == 0:  # finite
        text = repr(value).lower()
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    return None


def _fast_body(entries: Mapping[str, Entry]) -> str | None:
    """The bytes `yaml.dump` writes for this document, written directly (5-10x faster on
    large sites); None if an entry holds anything beyond plain text, numbers and booleans."""
    lines = ["version: 1\n", "images:" + ("\n" if entries else " {}\n")]
    for key, entry in entries.items():
        if entry.extra or len(key) >= 128 or not _is_plain(key):
            return None
        fields_ = []
        for name, value in (("label", entry.label), ("note", entry.note), ("sha1", entry.sha1)):
            if value is not None:
                text = _fast_scalar(value)
                if text is None or type(value) is not str:
                    return None
                fields_.append((name, text))
        if entry.auto is not None:
            auto_parts = []
            for name, value in entry.auto.items():
                name_text, value_text = _fast_scalar(name), _fast_scalar(value)
                if name_text is None or value_text is None or type(name) is not str:
                    return None
                auto_parts.append(f"{name_text}: {value_text}")
            lines.append(f"  {key}:\n")
            lines.extend(f"    {name}: {text}\n" for name, text in fields_)
            lines.append("    auto: {" + ", ".join(auto_parts) + "}\n")
        else:
            lines.append(f"  {key}: {{" + ", ".join(f"{name}: {text}" for name, text in fields_) + "}\n")
    return "".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"image keys must be non-empty site-relative paths, got {key!r}")


def _temp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{target.name}.") + r"[0-9a-f]{16}\.tmp")


def _remove_stale_temp_files(target: Path) -> None:
    """Temp files exist only while a writer holds the lock: any seen under the lock is a
    leftover of a writer that was killed."""
    pattern = _temp_pattern(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return  # the write that follows reports the real problem
    for name in names:
        if pattern.fullmatch(name):
            try:
                os.unlink(target.parent / name)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # harmless leftover; the write that follows reports a real problem


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: 0o666 less the umask, like any other file the user creates
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already gone, or the next writer removes it
        raise
    _fsync_directory(target)


def _fsync_directory(target: Path) -> None:
    """Make the rename itself durable (POSIX; Windows has no directory handles)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OverridesError(
            f"{target}: written, but its directory could not be synced to disk: {exc.strerror or exc}"
        ) from exc
