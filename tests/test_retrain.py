"""`retrain` and `eval` end to end: labels in an overrides file -> a head in the store -> decisions."""
import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from invertornot_ssg.cli import main
from invertornot_ssg.overrides import AutoRecord, record_decisions

pytestmark = pytest.mark.slow


def make_images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    names = {}
    for i, array in enumerate(photos):
        Image.fromarray(array).save(folder / f"photo{i}.jpg")
        names[f"photo{i}.jpg"] = "keep"
    for i in range(5):
        plot = Image.new("RGB", (320, 240), "white")
        draw = ImageDraw.Draw(plot)
        draw.line([(30, 210), (30, 10), (30, 210), (310, 210)], fill="black", width=2)
        ys = np.cumsum(rng.normal(size=28)) * 6 + 110
        draw.line([(30 + 10 * j, float(y)) for j, y in enumerate(ys)], fill=(40, 40 + 40 * i, 200), width=2)
        draw.text((120, 220), f"figure {i}", fill="black")
        plot.save(folder / f"plot{i}.png")
        names[f"plot{i}.png"] = "invert"
    return names


def labeled_site(tmp_path, capsys, monkeypatch):
    """A folder of photos (keep) and plots (invert), classified into a store, labeled in an
    overrides file: (labels, store, overrides file, classify rows)."""
    monkeypatch.chdir(tmp_path)
    labels = make_images(tmp_path / "img")
    store = str(tmp_path / "store")
    assert main(["classify", "--json", "--store", store, "img"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    overrides = tmp_path / "invertornot.yml"
    decisions = {os.path.basename(r["path"]): AutoRecord(r["sha1"], r["invert"], r["p_invert"], r["confidence"],
                                                        r["method"], r["version"]) for r in rows}
    record_decisions(overrides, decisions, labels=labels)
    return labels, store, overrides, rows


def test_retrain_from_labels_then_classify_uses_the_new_head(tmp_path, capsys, monkeypatch):
    labels, store, overrides, rows = labeled_site(tmp_path, capsys, monkeypatch)

    assert main(["retrain", "--store", store, "--overrides", str(overrides), "--no-bootstrap", "--augment"]) == 0
    out = capsys.readouterr().out
    assert "samples: 10 (10 from the site, 0 bootstrap; 10 augmented copies)" in out
    assert "training accuracy: 100.0%" in out
    # The head lives beside the labels it came from, to be committed with them; the store holds
    # only what can be regenerated.
    heads = list(tmp_path.glob("*.skops"))
    assert len(heads) == 1 and heads[0].name.startswith("invertornot.head-efficientnet-lite0")
    assert heads[0].with_suffix(".json").is_file() and not list((tmp_path / "store").rglob("*.skops"))
    assert f"to {heads[0]}" in out
    assert json.loads(heads[0].with_suffix(".json").read_text())["augmented_copies"] == 10

    # The site's head is picked up for this overrides file; labels still win by sha1.
    assert main(["classify", "--json", "--store", store, "--overrides", str(overrides), "img"]) == 0
    after = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["method"] for r in after} == {"override"}
    assert all(r["invert"] == (labels[os.path.basename(r["path"])] == "invert") for r in after)
    assert all("+rf-" in r["version"] for r in after)


def test_retrain_needs_both_kinds(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "invertornot.yml").write_text("version: 1\nimages:\n  a.png: keep\n")
    assert main(["retrain", "--store", str(tmp_path / "s"), "--no-bootstrap"]) == 2
    assert "both kinds" in capsys.readouterr().err


def test_eval_prints_ours_beside_the_baseline(tmp_path, capsys):
    labels = make_images(tmp_path / "img")
    for kind in ("invert", "keep"):
        (tmp_path / "set" / kind).mkdir(parents=True)
    for name, label in labels.items():
        os.link(tmp_path / "img" / name, tmp_path / "set" / label / name)
    assert main(["eval", "--store", str(tmp_path / "s"), str(tmp_path / "set")]) == 0
    out = capsys.readouterr().out
    assert "10 images" in out and "saturation<=0.09" in out
    assert "accuracy" in out and "confusion (ours)" in out and "confusion (baseline)" in out


def test_retrain_without_augmentation_and_with_the_bootstrap_copies(tmp_path, capsys, monkeypatch):
    labels, store, overrides, rows = labeled_site(tmp_path, capsys, monkeypatch)
    (tmp_path / "img" / "photo0.jpg").unlink()  # a labeled file gone since: no copy, no failure

    assert main(["retrain", "--store", store, "--overrides", str(overrides), "--no-bootstrap"]) == 0
    assert "(10 from the site, 0 bootstrap; 0 augmented copies)" in capsys.readouterr().out  # off by default

    # With the shipped set: its rows come with the augmented copies it ships.
    assert main(["retrain", "--store", store, "--overrides", str(overrides), "--output", "h.skops", "--augment"]) == 0
    out = capsys.readouterr().out
    from invertornot_ssg import shipped
    from invertornot_ssg.embedders import embedder_id

    boot = shipped.load_bootstrap_training(embedder_id("efficientnet-lite0"))
    n_boot = len(set(boot["sha1"]) - {r["sha1"] for r in rows})
    assert f"{n_boot} bootstrap; {n_boot + 9} augmented copies" in out
    assert "(site labels: 100.0%)" in out


def test_records_of_an_older_version_are_described_again_not_embedded_again(tmp_path, capsys, monkeypatch):
    """A store written before the ink statistics existed: the next build that must decide (a new
    head version invalidates cached decisions) decodes those images again and keeps their
    embeddings; retrain skips a label whose record is old and whose file is gone."""
    import dataclasses
    import sqlite3

    from invertornot_ssg.images import STAT_NAMES
    from invertornot_ssg.store import EmbeddingStore

    labels, store, overrides, rows = labeled_site(tmp_path, capsys, monkeypatch)
    with EmbeddingStore(store) as opened:
        current = opened.get_images([r["sha1"] for r in rows])
        opened.put_images(dataclasses.replace(r, stats=r.stats[:15]) for r in current.values())
    with sqlite3.connect(tmp_path / "store" / "store.sqlite") as db:
        db.execute("DELETE FROM decisions")  # as after an upgrade that ships a new head

    # --overrides '': as first classified, before the labels (run here, classify would use them).
    assert main(["classify", "--json", "--store", store, "--overrides", "", "img"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["cached"] for r in again)  # not embedded again
    assert [(r["invert"], r["method"]) for r in again] == [(r["invert"], r["method"]) for r in rows]
    with EmbeddingStore(store) as opened:
        described = opened.get_images(current)
    for sha1, record in current.items():
        assert len(described[sha1].stats) == len(STAT_NAMES)
        np.testing.assert_allclose(described[sha1].stats, record.stats, atol=1e-6)

    gone = next(r for r in rows if r["path"].endswith("photo0.jpg"))
    with EmbeddingStore(store) as opened:
        opened.put_images([dataclasses.replace(current[gone["sha1"]], stats=current[gone["sha1"]].stats[:15])])
    (tmp_path / "img" / "photo0.jpg").unlink()
    assert main(["retrain", "--store", store, "--overrides", str(overrides), "--no-bootstrap", "--no-augment"]) == 0
    captured = capsys.readouterr()
    assert "(9 from the site, 0 bootstrap; 0 augmented copies)" in captured.out
    assert "statistics predate this version and its file is gone" in captured.err


def test_augmented_copies_keep_the_file_size_in_their_statistics(tmp_path):
    """An augmented copy is edited from the decoded image (224 px), but its statistics describe the
    file it stands for: a copy of a large photograph must not look like a small icon."""
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.images import STAT_NAMES, image_stats, load_image
    from invertornot_ssg.settings import Settings
    from invertornot_ssg.training import augmented_copies

    path = tmp_path / "wide.jpg"
    Image.fromarray(data.astronaut()).resize((1536, 1024)).save(path)
    engine = Engine(Settings(store=str(tmp_path / "store"), overrides=""), tmp_path)
    original = dict(zip(STAT_NAMES, image_stats(load_image(path, max_side=engine.work_side))))
    for seed in range(4):  # crops, turns, flips and tints
        (vector, stats), = augmented_copies(engine, [path], seed=seed)
        copy = dict(zip(STAT_NAMES, stats))
        assert copy["log_pixels"] == pytest.approx(original["log_pixels"], abs=0.04)
        assert abs(copy["log_aspect"]) == pytest.approx(abs(original["log_aspect"]), abs=0.5)
        assert copy["is_jpeg"] == 1.0
