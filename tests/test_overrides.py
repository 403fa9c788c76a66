"""The overrides YAML: format, merge rules, and that no human label is ever lost
(malformed files, concurrent writers, writers killed mid-write, full disks)."""
from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from invertornot_ssg import overrides as ov
from invertornot_ssg.errors import OverridesError
from invertornot_ssg.overrides import HEADER, AutoRecord, Entry, Overrides, record_decisions


def sha(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def auto(name: str, invert: bool = True, p: float = 0.93, version: str = "efficientnet-lite0+rf-1") -> AutoRecord:
    return AutoRecord(sha(name), invert, p, abs(p - 0.5) * 2, "head", version)


def temp_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "invertornot.yml"


# --- format ------------------------------------------------------------------------------


def test_missing_file_is_empty(path: Path) -> None:
    overrides = Overrides.load(path)
    assert len(overrides) == 0 and overrides.label_for(None, "a.png") is None
    assert record_decisions(path, {}) is False
    assert not path.exists()


def test_canonical_layout_sorted_rounded_fixed_key_order(path: Path) -> None:
    path.write_text(
        "images:\n"
        "  img/z.png: {zz: [1, 2], note: debatable, label: invert}\n"
        "  img/x.png: keep\n",
        encoding="utf-8",
    )
    decisions = {
        "img/z.png": AutoRecord("A" * 40, True, 0.929876, 0.8601, "head", "efficientnet-lite0+rf-1a2b3c"),
        "img/a.png": AutoRecord("b" * 40, False, 0.04, 0.92, "head", "efficientnet-lite0+rf-1a2b3c"),
    }
    assert record_decisions(path, decisions) is True
    assert path.read_text(encoding="utf-8") == HEADER + (
        "version: 1\n"
        "images:\n"
        "  img/a.png:\n"
        f"    sha1: {'b' * 40}\n"
        "    auto: {invert: false, p_invert: 0.04, confidence: 0.92, method: head, version: efficientnet-lite0+rf-1a2b3c}\n"
        "  img/x.png: {label: keep}\n"
        "  img/z.png:\n"
        "    label: invert\n"
        "    note: debatable\n"
        f"    sha1: {'a' * 40}\n"
        "    auto: {invert: true, p_invert: 0.93, confidence: 0.86, method: head, version: efficientnet-lite0+rf-1a2b3c}\n"
        "    zz:\n"
        "    - 1\n"
        "    - 2\n"
    )


def test_a_rebuilt_store_jitter_leaves_the_file_byte_for_byte(path: Path) -> None:
    """Rebuilding a store can move p_invert by a hundredth or two without changing a decision
    (issue #29 saw 0.016 on SVGs): the committed file must not show a diff then."""
    record_decisions(path, {"a.svg": auto("a", p=0.8449), "b.svg": auto("b", False, 0.1349)})
    before = path.read_bytes()
    assert "p_invert: 0.84," in before.decode() and "p_invert: 0.13," in before.decode()
    jittered = {"a.svg": auto("a", p=0.8449 + 0.016), "b.svg": auto("b", False, 0.1349 - 0.016)}
    assert record_decisions(path, jittered) is False
    assert path.read_bytes() == before
    # A change that is more than jitter, or another decision, method or version, is recorded.
    assert record_decisions(path, {"a.svg": auto("a", p=0.7)}) is True
    assert "p_invert: 0.7," in path.read_text()
    assert record_decisions(path, {"b.svg": auto("b", False, 0.13, version="efficientnet-lite0+rf-2")}) is True
    assert "rf-2" in path.read_text()
    assert record_decisions(path, {"a.svg": auto("a", False, 0.49)}) is True


def test_round_trip(path: Path) -> None:
    record_decisions(path, {"b.png": auto("b"), "a.png": auto("a", False, 0.1)}, labels={"c.svg": "keep"})
    loaded = Overrides.load(path)
    assert list(loaded.entries) == ["a.png", "b.png", "c.svg"]
    assert loaded.entries["a.png"] == Entry(
        sha1=sha("a"),
        auto={"invert": False, "p_invert": 0.1, "confidence": 0.8, "method": "head", "version": "efficientnet-lite0+rf-1"},
    )
    assert loaded.entries["c.svg"] == Entry(label="keep")
    assert Overrides(path, loaded.entries).to_yaml() == path.read_text(encoding="utf-8")


def test_same_data_twice_does_not_rewrite(path: Path) -> None:
    decisions = {f"img/{i}.png": auto(str(i)) for i in range(20)}
    assert record_decisions(path, decisions) is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()
    assert record_decisions(path, decisions) is False
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    # A different decision does rewrite.
    assert record_decisions(path, {"img/0.png": auto("0", p=0.5)}) is True


def test_short_forms_accepted_and_kept_short_until_auto_data(path: Path) -> None:
    path.write_text(
        "version: 1\n"
        "images:\n"
        "  img/a.png: keep\n"
        "  img/b.png: {label: invert}\n"
        "  img/c.png: invert\n"
        "  img/d.png:\n"  # a bare key: an empty entry
        "  img/e.png: {label: ~, note: later}\n",
        encoding="utf-8",
    )
    loaded = Overrides.load(path)
    assert loaded.label_for(None, "img/a.png") == ("keep", "path")
    assert loaded.label_for(None, "img/b.png") == ("invert", "path")
    assert loaded.entries["img/d.png"] == Entry()
    assert loaded.entries["img/e.png"] == Entry(note="later")
    assert loaded.human_labels() == {"img/a.png": ("keep", None), "img/b.png": ("invert", None), "img/c.png": ("invert", None)}

    record_decisions(path, {"img/c.png": auto("c", invert=False, p=0.2)})
    text = path.read_text(encoding="utf-8")
    assert "  img/a.png: {label: keep}\n" in text
    assert "  img/b.png: {label: invert}\n" in text
    assert "  img/c.png:\n    label: invert\n    sha1: " in text  # long form: it got automatic data
    assert Overrides.load(path).entries["img/c.png"].label == "invert"


def test_unknown_keys_are_preserved(path: Path) -> None:
    path.write_text(
        "version: 1\n"
        "reviewed_by: ana\n"
        "images:\n"
        "  a.png: {label: keep, reviewer: {name: ana, when: 2024-05-01}, tags: [x, y]}\n",
        encoding="utf-8",
    )
    record_decisions(path, {"a.png": auto("a")})
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["reviewed_by"] == "ana"
    assert list(data["images"]["a.png"]) == ["label", "sha1", "auto", "reviewer", "tags"]
    assert data["images"]["a.png"]["tags"] == ["x", "y"]
    assert str(data["images"]["a.png"]["reviewer"]["when"]) == "2024-05-01"


def test_load_cached_keeps_a_json_copy_keyed_by_content(path: Path, tmp_path: Path) -> None:
    import json

    cache_dir = tmp_path / "cache"
    record_decisions(path, {"a.png": auto("a"), "b.png": auto("b", invert=False, p=0.1)}, labels={"b.png": "keep"})
    parsed = Overrides.load(path)
    first = ov.load_cached(path, cache_dir)
    (copy,) = cache_dir.iterdir()
    assert first.entries == parsed.entries
    second = ov.load_cached(path, cache_dir)  # from the copy: the same entries, labels and conflicts
    assert second.entries == parsed.entries and second.human_labels() == parsed.human_labels()
    assert second.label_for(sha("b"), "elsewhere.png") == ("keep", "sha1")

    # The copy is what a warm build reads: change it behind the file's back and it shows ...
    data = json.loads(copy.read_text())
    data["entries"]["b.png"]["label"] = "invert"
    copy.write_text(json.dumps(data))
    assert ov.load_cached(path, cache_dir).entries["b.png"].label == "invert"
    # ... until the file changes: any edit, whatever its size or time, is new content.
    path.write_text(path.read_text().replace("label: keep", "label: keep "))
    assert ov.load_cached(path, cache_dir).entries["b.png"].label == "keep"
    copy.write_text("{not json")  # a damaged copy: parse the file
    assert ov.load_cached(path, cache_dir).entries == Overrides.load(path).entries


def test_load_cached_copies_nothing_json_cannot_hold(path: Path, tmp_path: Path) -> None:
    path.write_text("version: 1\nimages:\n  a.png: {label: keep, reviewed: 2024-05-01}\n", encoding="utf-8")
    loaded = ov.load_cached(path, tmp_path / "cache")
    assert loaded.entries == Overrides.load(path).entries
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    path.write_text("version: 1\nimages:\n  a.png: [keep\n", encoding="utf-8")
    with pytest.raises(OverridesError, match=r"invertornot\.yml:4: invalid YAML"):
        ov.load_cached(path, tmp_path / "cache")


# --- merge rules -------------------------------------------------------------------------


def test_record_never_touches_labels_or_notes_even_when_auto_changes(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a"), "b.png": auto("b")})
    cached = Overrides.load(path)
    # A person edits the file after the build read it: the writer must re-read from disk.
    text = path.read_text(encoding="utf-8").replace("  a.png:\n", "  a.png:\n    label: keep\n    note: a photo of a whiteboard\n")
    path.write_text(text, encoding="utf-8")
    assert cached.entries["a.png"].label is None

    assert record_decisions(path, {"a.png": auto("a", p=0.99, version="v2"), "b.png": auto("b", p=0.98, version="v2")})
    entry = Overrides.load(path).entries["a.png"]
    assert (entry.label, entry.note) == ("keep", "a photo of a whiteboard")
    assert entry.auto["version"] == "v2" and entry.auto["p_invert"] == 0.99


def test_labels_argument_sets_and_clears_exactly_the_given_entries(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a"), "b.png": auto("b")}, labels={"c.png": "keep", "d.png": "invert"})
    record_decisions(path, {}, labels={"a.png": "invert", "c.png": None, "d.png": "keep", "new.png": "keep"})
    loaded = Overrides.load(path)
    assert loaded.human_labels() == {"a.png": ("invert", sha("a")), "d.png": ("keep", None), "new.png": ("keep", None)}
    assert "c.png" not in loaded  # clearing its only content removes the entry
    assert loaded.entries["b.png"].label is None and loaded.entries["b.png"].auto is not None

    before = path.read_bytes()
    with pytest.raises(ValueError, match="maybe"):
        record_decisions(path, {}, labels={"b.png": "maybe"})
    assert path.read_bytes() == before


def test_entries_of_images_no_longer_seen_are_kept(path: Path) -> None:
    record_decisions(path, {"old.png": auto("old")}, labels={"old.png": "keep"})
    record_decisions(path, {"new.png": auto("new")})
    assert set(Overrides.load(path).entries) == {"old.png", "new.png"}


def test_missing_sha1_keeps_the_known_one(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a")}, labels={"a.png": "invert"})
    record_decisions(path, {"a.png": AutoRecord(None, None, None, None, "error", "v")})
    entry = Overrides.load(path).entries["a.png"]
    assert entry.sha1 == sha("a") and entry.label == "invert"
    assert entry.auto == {"invert": None, "p_invert": None, "confidence": None, "method": "error", "version": "v"}


def test_label_for_sha1_first_then_path_keep_wins_conflicts(path: Path) -> None:
    record_decisions(
        path,
        {"a.png": auto("same"), "copy/a.png": auto("same"), "b.png": auto("b"), "c.png": auto("c")},
        labels={"a.png": "invert", "copy/a.png": "keep", "b.png": "invert"},
    )
    loaded = Overrides.load(path)
    assert loaded.label_for(sha("same"), "elsewhere.png") == ("keep", "sha1")
    assert loaded.label_for(sha("b").upper(), "moved/b.png") == ("invert", "sha1")
    assert loaded.label_for(sha("new content"), "b.png") == ("invert", "path")
    assert loaded.label_for(None, "b.png") == ("invert", "path")
    assert loaded.label_for(sha("c"), "c.png") is None
    [conflict] = loaded.conflicts()
    assert (conflict.sha1, conflict.invert_paths, conflict.keep_paths) == (sha("same"), ("a.png",), ("copy/a.png",))
    assert "using keep" in str(conflict)


# --- malformed files ---------------------------------------------------------------------

MALFORMED = [
    pytest.param("version: 1\nimages:\n  a.png: {label: keep\n  b.png: keep\n", 4, "invalid YAML", id="unclosed-flow"),
    pytest.param("version: 1\nimages:\n  a.png:\n\tlabel: keep\n", 4, "invalid YAML", id="tab"),
    pytest.param("version: 1\nimages:\n  a.png:\n    sha1: x\n    label: maybe\n", 5, "maybe", id="label-maybe"),
    pytest.param("images:\n  a.png: keep\n  b.png: Invert\n", 3, "Invert", id="short-form-bad-label"),
    pytest.param("images:\n  a.png: {label: [keep]}\n", 2, "label", id="label-list"),
    pytest.param("images:\n  a.png: {label: keep}\n  b.png: x\n  a.png: {sha1: abc}\n", 4, "appears twice", id="duplicate-path"),
    pytest.param("images:\n  a.png:\n    label: keep\n    label: invert\n", 4, "appears twice", id="duplicate-key"),
    pytest.param("- a.png\n- b.png\n", 1, "expected a mapping", id="top-list"),
    pytest.param("version: 1\nimages:\n  - a.png\n", 3, "images", id="images-list"),
    pytest.param("images:\n  a.png: [keep]\n", 2, "a.png", id="entry-list"),
    pytest.param("images:\n  a.png:\n    note: {x: 1}\n", 3, "note must be text", id="note-mapping"),
    pytest.param("images:\n  a.png:\n    auto: fast\n", 3, "auto must be a mapping", id="auto-scalar"),
    pytest.param("version: 2\nimages: {}\n", 1, "newer", id="newer-version"),
    pytest.param("\n\nversion: one\n", 3, "version", id="version-text"),
    pytest.param("images:\n  a.png:\n    x: !!python/object/apply:os.system [echo]\n", 3, "invalid YAML", id="unsafe-tag"),
    pytest.param("images:\n  <<: {a.png: keep}\n", 2, "merge", id="merge-key"),
    pytest.param(b"images:\n  a.png: {note: caf\xe9}\n", 2, "UTF-8", id="not-utf8"),
]


@pytest.mark.parametrize(("content", "line", "words"), MALFORMED)
def test_malformed_file_names_file_and_line_and_is_never_overwritten(
    path: Path, content: str | bytes, line: int, words: str
) -> None:
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    path.write_bytes(data)
    with pytest.raises(OverridesError) as info:
        Overrides.load(path)
    message = str(info.value)
    assert f"{path}:{line}:" in message and words in message

    with pytest.raises(OverridesError) as info:
        record_decisions(path, {"a.png": auto("a"), "z.png": auto("z")}, labels={"a.png": "keep"})
    assert f"{path}:{line}:" in str(info.value)
    assert path.read_bytes() == data
    assert temp_files(path.parent) == []


def test_unreadable_file_is_an_overrides_error(tmp_path: Path) -> None:
    with pytest.raises(OverridesError, match="cannot read"):
        Overrides.load(tmp_path)  # a directory


def test_bad_arguments_write_nothing(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a")})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="AutoRecord"):
        record_decisions(path, {"b.png": {"invert": True}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty"):
        record_decisions(path, {"": auto("b")})
    assert path.read_bytes() == before


# --- durability --------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_full_disk_raises_and_leaves_old_file_intact(path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    record_decisions(path, {"a.png": auto("a")}, labels={"a.png": "keep"})
    before = path.read_bytes()

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ov.os, failing, no_space)
    with pytest.raises(OverridesError, match="disk is full.*previous file is intact"):
        record_decisions(path, {"a.png": auto("a", p=0.1), "b.png": auto("b")})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(path.parent) == []


def test_stale_temp_files_are_ignored_and_removed(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a")}, labels={"a.png": "keep"})
    stale = path.parent / f".{path.name}.0123456789abcdef.tmp"
    stale.write_text("images: {a.png: {label: inv", encoding="utf-8")  # half a file
    unrelated = path.parent / "notes.tmp"
    unrelated.write_text("mine", encoding="utf-8")
    assert Overrides.load(path).label_for(None, "a.png") == ("keep", "path")
    record_decisions(path, {"b.png": auto("b")})
    assert not stale.exists() and unrelated.exists()


def test_lock_timeout_is_an_overrides_error(path: Path) -> None:
    record_decisions(path, {"a.png": auto("a")})
    before = path.read_bytes()
    with FileLock(f"{path}.lock"):
        with pytest.raises(OverridesError, match="could not lock"):
            record_decisions(path, {"b.png": auto("b")}, lock_timeout=0.2)
    assert path.read_bytes() == before


def test_file_mode_and_symlink_are_preserved(tmp_path: Path) -> None:
    real = tmp_path / "shared" / "invertornot.yml"
    real.parent.mkdir()
    link = tmp_path / "invertornot.yml"
    link.symlink_to(real)
    record_decisions(link, {"a.png": auto("a")})
    os.chmod(real, 0o640)
    record_decisions(link, {"a.png": auto("a", p=0.2)})
    assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o640
    assert Overrides.load(link).entries["a.png"].auto["p_invert"] == 0.2


# --- round trip of arbitrary human text (quoting) ----------------------------------------

_TRICKY = [
    "...", "...x", "---", "yes", "No", "null", "~", "2021-01-01", "1.5", ".5", ".inf", "0x1F", "1_000", "12:30",
    "-", "-x", "x-", "a b", " a", "a ", "a  b", "a: b", "a:b", "a #b", "a#b", "@x", "x@", "(x)", "+1", "=", "<<",
    "é", "img/café.png", "图/图.png", "a\u00a0b", "a\u2028b", "a\nb", "a\n\nb", "'q'", '"q"', "{x}", "[x]", "a,b",
    "*a", "&a", "!x", "%x", "|", ">", "?", "? x", "a\tb", "\ufeff", "x" * 130,
]
_alphabet = st.sampled_from(list("abz09./-_ ()+@:#,'\"\n\té图\u00a0\u2028"))
_text = st.one_of(
    st.sampled_from(_TRICKY),
    st.text(_alphabet, max_size=12),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
_key = _text.filter(bool)
_plain = st.one_of(st.none(), st.booleans(), st.integers(), _text)
_extra_value = st.recursive(
    _plain, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=6
)
_entry = st.builds(
    Entry,
    label=st.sampled_from([None, "invert", "keep"]),
    note=st.none() | _text,
    sha1=st.none() | st.text("0123456789abcdef", min_size=40, max_size=40) | st.just("1" * 40),
    auto=st.none()
    | st.fixed_dictionaries(
        {
            "invert": st.none() | st.booleans(),
            "p_invert": st.none() | st.floats(0, 1).map(lambda x: round(x, 3)),
            "confidence": st.floats(allow_nan=False),
            "method": st.sampled_from(["head", "knn", "default"]),
            "version": _text,
        }
    ),
    extra=st.dictionaries(_key.filter(lambda k: k not in ("label", "note", "sha1", "auto")), _extra_value, max_size=2)
    | st.just({}),
)

# Entries the direct writer handles: words, finite numbers, booleans.
_plain_word = st.from_regex(r"[a-z_/é图][a-z0-9_./()+@ é图-]{0,8}[a-z0-9_./()+@é图-]", fullmatch=True)
_simple_entry = st.builds(
    Entry,
    label=st.sampled_from([None, "invert", "keep"]),
    note=st.none() | _plain_word,
    sha1=st.none() | st.text("0123456789abcdef", min_size=40, max_size=40),
    auto=st.none()
    | st.fixed_dictionaries(
        {
            "invert": st.booleans(),
            "p_invert": st.floats(0, 1).map(lambda x: round(x, 3)),
            "confidence": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
            "method": _plain_word,
            "version": _plain_word,
        }
    ),
)


def check_round_trip(path: Path, entries: dict[str, Entry]) -> None:
    overrides = Overrides(path, entries)
    text = overrides.to_yaml()
    assert text == HEADER + overrides._dump_body()  # the direct writer is byte-identical to yaml.dump
    path.write_text(text, encoding="utf-8")
    loaded = Overrides.load(path)
    assert dict(loaded.entries) == entries
    assert loaded.to_yaml() == text


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(_key, _entry, max_size=5))
def test_any_entries_round_trip(tmp_path: Path, entries: dict[str, Entry]) -> None:
    check_round_trip(tmp_path / "roundtrip.yml", entries)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(_plain_word, _simple_entry, min_size=1, max_size=5))
def test_direct_writer_matches_pyyaml(tmp_path: Path, entries: dict[str, Entry]) -> None:
    assume(ov._fast_body(entries) is not None)
    check_round_trip(tmp_path / "roundtrip.yml", entries)


def test_typical_file_is_written_without_pyyaml_dump(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record_decisions(path, {"img/a b.png": auto("a")}, labels={"img/é.png": "keep"})
    monkeypatch.setattr(Overrides, "_dump_body", lambda self: pytest.fail("took the slow path"))
    record_decisions(path, {f"img/{i}.png": auto(str(i), p=i / 7) for i in range(50)}, labels={"x.svg": "invert"})
    assert len(Overrides.load(path)) == 53


# --- real processes ----------------------------------------------------------------------

_WORKER = """
import sys, time
from pathlib import Path
from invertornot_ssg.overrides import AutoRecord, record_decisions
path, name, start = sys.argv[1], sys.argv[2], Path(sys.argv[3])
while not start.exists():
    time.sleep(0.005)
keys = [f"{name}/{i:02d}.png" for i in range(50)]
for first in range(0, 50, 5):
    batch = {k: AutoRecord(None, True, 0.75, 0.5, "head", name) for k in keys[first:first + 5]}
    record_decisions(path, batch, lock_timeout=60)
"""


def test_concurrent_writers_lose_no_entry(path: Path, tmp_path: Path) -> None:
    # Some existing entries, labeled by a person, including paths the workers record.
    labels = {f"w{w}/{i:02d}.png": ("keep" if i % 2 else "invert") for w in range(3) for i in range(0, 50, 7)}
    labels.update({f"human/{i}.png": "keep" for i in range(10)})
    background = {f"old/{i:03d}.png": auto(str(i)) for i in range(300)}
    record_decisions(path, background, labels=labels)

    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    start = tmp_path / "start"
    workers = [
        subprocess.Popen([sys.executable, str(script), str(path), f"w{w}", str(start)], cwd=tmp_path)
        for w in range(3)
    ]
    start.touch()
    assert [p.wait(timeout=60) for p in workers] == [0, 0, 0]

    loaded = Overrides.load(path)
    for w in range(3):
        for i in range(50):
            entry = loaded.entries[f"w{w}/{i:02d}.png"]
            assert entry.auto is not None and entry.auto["version"] == f"w{w}"
    assert {k: label for k, (label, _) in loaded.human_labels().items()} == labels
    assert len(loaded) == 300 + 150 + 10
    assert temp_files(path.parent) == []


_KILLED_WRITER = """
import hashlib, os, sys, time
from invertornot_ssg.overrides import AutoRecord, record_decisions
path, n = sys.argv[1], int(sys.argv[2])
real_write = os.write
announced = [False]


def slow_disk_write(fd, data):
    # A slow disk: the temp file fills in small chunks, so a kill can land mid-write.
    if not announced[0]:
        announced[0] = True
        print("writing", flush=True)
    time.sleep(0.003)
    return real_write(fd, bytes(data[:16384]))


os.write = slow_disk_write
keys = [f"img/{i:05d}.png" for i in range(n)]
sha = {k: hashlib.sha1(k.encode()).hexdigest() for k in keys}
print("ready", flush=True)
round_ = 0
while True:
    round_ += 1
    announced[0] = False
    record_decisions(path, {k: AutoRecord(sha[k], round_ % 2 == 0, (round_ % 997) / 997, 0.5, "head", f"r{round_}") for k in keys})
    print(round_, flush=True)
"""


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) != expected + "\n":
        assert line, f"the writer exited (code {proc.wait()}) before printing {expected!r}"


def test_writer_killed_at_random_moments_never_leaves_half_a_file(path: Path, tmp_path: Path) -> None:
    n = 1500
    keys = [f"img/{i:05d}.png" for i in range(n)]
    labels = {k: ("invert" if i % 3 else "keep") for i, k in enumerate(keys) if i % 10 == 0}
    labels.update({f"only-human/{i}.png": "keep" for i in range(20)})
    record_decisions(path, {k: auto(k, version="r0") for k in keys}, labels=labels)
    human = Overrides.load(path).human_labels()

    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER, encoding="utf-8")
    rng = random.Random(1234)
    versions, mid_write_kills = set(), 0
    for iteration in range(16):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(n)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        wait_for_line(proc, "ready")
        if iteration % 2 == 0:  # kill while the temp file is being written
            wait_for_line(proc, "writing")
        else:  # let one write complete, then kill at a random moment of the next one
            started = time.monotonic()
            wait_for_line(proc, "1")
            time.sleep(rng.uniform(0, time.monotonic() - started))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

        loaded = Overrides.load(path)  # parses: the previous complete version or the new one
        assert loaded.human_labels() == human
        assert len(loaded) == n + 20
        versions.add(loaded.entries[keys[0]].auto["version"])
        mid_write_kills += bool(temp_files(path.parent))
    assert versions - {"r0"}, "no write ever completed"
    assert mid_write_kills, "no kill landed mid-write"
    record_decisions(path, {keys[0]: auto(keys[0], version="final")})  # the next writer cleans up
    assert temp_files(path.parent) == []
    assert Overrides.load(path).human_labels() == human
    print(f"versions seen {sorted(versions)}, kills that left a temp file: {mid_write_kills}")
