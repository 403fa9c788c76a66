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
