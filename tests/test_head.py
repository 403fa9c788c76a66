"""Head persistence: skops round trip, version from content, refusal of unsafe or foreign files."""
import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from invertornot_ssg.head import Head, HeadError, content_version, load_head, read_head_info, save_head
from invertornot_ssg.images import STAT_NAMES

# A head trained on some of the statistics (as one saved before a statistic was added is).
USED = ("near_white", "mean_saturation", "ink_dark")


def fitted_head():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    stats = rng.random((60, len(STAT_NAMES))).astype(np.float32)  # every statistic, as the store keeps them
    y = stats[:, STAT_NAMES.index("ink_dark")] > 0.5
    used = stats[:, [STAT_NAMES.index(n) for n in USED]]
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(np.hstack([vectors, used]), y)
    return Head(model, "efficientnet-lite0", True, USED, {"samples": 60}), vectors, stats, y


def test_round_trip_keeps_predictions_and_metadata(tmp_path):
    head, vectors, stats, y = fitted_head()
    saved = save_head(head, tmp_path / "head.skops")
    assert saved.version.startswith("rf-")
    loaded = load_head(tmp_path / "head.skops")
    assert loaded.version == saved.version
    assert loaded.metadata["samples"] == 60
    assert loaded.stat_names == USED
    np.testing.assert_allclose(loaded.p_invert(vectors, stats), head.p_invert(vectors, stats))
    assert ((loaded.p_invert(vectors, stats) >= 0.5) == y).mean() > 0.95


def test_refuses_a_head_using_statistics_it_does_not_know(tmp_path):
    head, *_ = fitted_head()
    head.stat_names = ("near_white", "mean_saturation", "sharpness")  # from some newer version
    save_head(head, tmp_path / "new.skops")
    with pytest.raises(HeadError, match="sharpness"):
        load_head(tmp_path / "new.skops")


def test_each_saved_model_gets_its_own_version(tmp_path):
    head, *_ = fitted_head()
    v1 = save_head(head, tmp_path / "a.skops").version
    head.model.set_params(n_estimators=21)
    head.model.fit(np.random.default_rng(1).random((30, 11)), np.arange(30) % 2 == 0)
    v2 = save_head(head, tmp_path / "b.skops").version
    assert v1 != v2
    assert load_head(tmp_path / "a.skops").version == v1


def test_refuses_untrusted_types(tmp_path):
    import os

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "evil.skops"
    skops.io.dump(FunctionTransformer(func=os.system), path)  # would run a shell command if trusted
    sidecar = {"version": content_version(path.read_bytes()), "embedder": "e"}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(HeadError, match="allow-list"):
        load_head(path)


def test_missing_sidecar_and_damaged_file(tmp_path):
    head, *_ = fitted_head()
    save_head(head, tmp_path / "h.skops")
    (tmp_path / "h.json").unlink()
    with pytest.raises(HeadError, match="sidecar"):
        load_head(tmp_path / "h.skops")
    (tmp_path / "bad.skops").write_bytes(b"not a zip")
    sidecar = {"version": content_version(b"not a zip"), "embedder": "e"}
    (tmp_path / "bad.json").write_text(json.dumps(sidecar))
    with pytest.raises(HeadError, match="not a readable skops file"):
        load_head(tmp_path / "bad.skops")
    assert not zipfile.is_zipfile(tmp_path / "bad.skops")


@pytest.mark.parametrize("cached", [False, True])
def test_version_comes_from_the_sidecar_checked_against_the_file(tmp_path, cached):
    cache = tmp_path / "cache" if cached else None  # the digest remembered by (inode, size, mtime)
    head, *_ = fitted_head()
    saved = save_head(head, tmp_path / "h.skops")
    for _ in range(2):
        info = read_head_info(tmp_path / "h.skops", cache)
        assert (info.version, info.embedder_id) == (saved.version, "efficientnet-lite0")
    assert (cache / "head-versions.json").is_file() if cached else True
    # A .skops file copied over without its sidecar must not pass as the old version:
    # cached decisions are keyed on it.
    other_head = fitted_head()[0]
    other_head.model.set_params(n_estimators=5).fit(np.random.default_rng(2).random((30, 11)), np.arange(30) % 2 == 0)
    other = save_head(other_head, tmp_path / "other.skops")
    (tmp_path / "h.skops").write_bytes((tmp_path / "other.skops").read_bytes())
    assert other.version != saved.version
    with pytest.raises(HeadError, match="does not match its sidecar"):
        read_head_info(tmp_path / "h.skops", cache)
    with pytest.raises(HeadError, match="does not match its sidecar"):
        load_head(tmp_path / "h.skops")


def test_a_head_of_an_older_preparation_is_refused_with_the_way_out(tmp_path):
    # A head saved for the same model before images were prepared differently (an older embedder id).
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.errors import ConfigError
    from invertornot_ssg.settings import Settings

    head, *_ = fitted_head()  # trained for "efficientnet-lite0": no preparation revision in the id
    save_head(head, tmp_path / "old.skops")
    engine = Engine(Settings(store=str(tmp_path / "store"), overrides="", head=str(tmp_path / "old.skops")), tmp_path)
    with pytest.raises(ConfigError, match=r"trained for efficientnet-lite0, not efficientnet-lite0\.prep\d.*`retrain`"):
        engine.head_info


def test_a_site_head_of_an_older_preparation_is_named_in_a_warning(tmp_path, caplog):
    """After an upgrade that changed the embedder id, this site's head (saved by `retrain` under the
    old id) no longer applies: the build says so instead of falling back to the shipped head quietly."""
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.settings import Settings

    settings = Settings(store=str(tmp_path / "store"), overrides="invertornot.yml")
    engine = Engine(settings, tmp_path)
    current = engine.site_head_path()
    old = current.with_name(current.name.replace(engine.embedder_id, "efficientnet-lite0"))
    other_site = current.with_name("head-efficientnet-lite0-0123abcd.skops")
    head, *_ = fitted_head()  # embedder id "efficientnet-lite0": the old one
    save_head(head, other_site)  # another site's head in the same shared store: not this site's

    assert engine.head_info.embedder_id == engine.embedder_id  # the shipped head
    assert "another model or image preparation" not in caplog.text

    save_head(head, old)
    engine = Engine(settings, tmp_path)
    assert engine.head_info.embedder_id == engine.embedder_id  # still the shipped head, now with a warning
    assert f"this site's head {old} was trained for another model or image preparation" in caplog.text
    assert "`invertornot-ssg retrain`" in caplog.text


# --- heads as untrusted input (issue 34): checked before they are used ------------------------


def save_as_head(model, path, stat_names=STAT_NAMES, embedder="efficientnet-lite0.prep2"):
    """Any object written as a head with a valid sidecar, as a pull request could add one."""
    import skops.io

    skops.io.dump(model, path)
    sidecar = {"version": content_version(path.read_bytes()), "embedder": embedder,
               "use_embedding": True, "stat_names": list(stat_names)}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def test_a_plain_list_is_refused_naming_the_file(tmp_path):
    path = save_as_head([0.1, 0.2, 0.3], tmp_path / "list.skops")
    with pytest.raises(HeadError, match=r"list\.skops: holds a builtins\.list, not a scikit-learn classifier"):
        load_head(path)


def test_a_classifier_with_too_few_features_for_its_statistics_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.random((40, 10)), np.arange(40) % 2 == 0)
    path = save_as_head(model, tmp_path / "narrow.skops")
    with pytest.raises(HeadError, match=rf"narrow\.skops: takes 10 features, which cannot be an embedding and the {len(STAT_NAMES)} statistics"):
        load_head(path)


def test_a_classifier_of_other_classes_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.random((60, 60)), np.arange(60) % 3)
    with pytest.raises(HeadError, match=r"three\.skops: classes are .*not \[False, True\]"):
        load_head(save_as_head(model, tmp_path / "three.skops"))


def test_a_head_for_vectors_of_another_size_fails_with_a_message_not_a_traceback(tmp_path):
    """It loads (the embedding's size is not known before the model runs); the first prediction
    names the file instead of scikit-learn's bare 'X has 1328 features'."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    width = 100 + len(STAT_NAMES)  # vectors of 100, not the embedder's 1280
    model = LogisticRegression().fit(rng.random((40, width)), np.arange(40) % 2 == 0)
    head = load_head(save_as_head(model, tmp_path / "wide.skops"))
    with pytest.raises(HeadError, match=rf"wide\.skops: takes {width} features, but .* give {1280 + len(STAT_NAMES)}"):
        head.p_invert(rng.random((3, 1280)).astype(np.float32), rng.random((3, len(STAT_NAMES))))


def deflate_bomb(path, gib=3):
    """A zip whose one member inflates to `gib` GiB of zeros from ~3 MB: the repeated deflate block
    of 16 MiB of zeros (identical after each full flush), written with a hand-made zip directory."""
    import struct
    import zlib

    chunk = bytes(16 * 2**20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    assert block == packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    stream = block * (gib * 64) + packer.flush()
    size, name = gib * 2**30, b"bomb.npy"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 33, 0, len(stream), size, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 33, 0, len(stream), size, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    path.write_bytes(local + stream + central + end)
    sidecar = {"version": content_version(path.read_bytes()), "embedder": "efficientnet-lite0.prep2"}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def test_a_deflate_bomb_is_refused_from_the_zip_directory(tmp_path):
    import tracemalloc

    path = deflate_bomb(tmp_path / "bomb.skops")
    assert path.stat().st_size < 4 * 2**20
    with zipfile.ZipFile(path) as archive:  # a well-formed zip that would inflate 3 GiB
        assert archive.infolist()[0].file_size == 3 * 2**30
    tracemalloc.start()
    try:
        with pytest.raises(HeadError, match=r"bomb\.skops: refused, it would expand to 3,072 MiB in memory"):
            load_head(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # nothing was inflated (the file alone is read once for its digest)


@pytest.mark.slow
@pytest.mark.parametrize("crafted", ["list", "wide", "bomb"])
def test_classify_with_a_crafted_head_fails_with_a_message_naming_it(tmp_path, crafted):
    """The `classify` command given each crafted head: an error naming the file, no traceback."""
    import subprocess
    import sys

    from PIL import Image
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    path = tmp_path / f"{crafted}.skops"
    if crafted == "list":
        save_as_head([1, 2, 3], path)
        expected = "holds a builtins.list"
    elif crafted == "wide":  # fits the statistics, but vectors of 100 where the embedder gives 1280
        save_as_head(LogisticRegression().fit(rng.random((40, 100 + len(STAT_NAMES))), np.arange(40) % 2 == 0), path)
        expected = f"takes {100 + len(STAT_NAMES)} features, but efficientnet-lite0.prep2 and the statistics give"
    else:
        deflate_bomb(path)
        expected = "refused, it would expand to 3,072 MiB"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    done = subprocess.run(
        [sys.executable, "-m", "invertornot_ssg.cli", "classify", str(tmp_path / "a.png"), "--head", str(path),
         "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert f"{path}: {expected}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
