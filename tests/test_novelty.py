"""Novelty (novelty.py): a density model over the labeled set's embeddings, on real images embedded
by the default model; a novel image takes the head's unsure path; retrain writes the model and a
MkDocs build uses it; a damaged file falls back to no novelty."""
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage import data

from invertornot_ssg import novelty
from invertornot_ssg.cli import main
from invertornot_ssg.decisions import LabeledSet, Thresholds, decide_auto
from invertornot_ssg.embedders import embedder_id, get_embedder
from invertornot_ssg.head import HeadError
from invertornot_ssg.images import STAT_NAMES
from invertornot_ssg.overrides import Overrides, record_decisions
from invertornot_ssg.reviewsite import ReviewSite
from invertornot_ssg.store import EmbeddingStore

PHOTOS = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea, "rocket": data.rocket,
          "cells": data.immunohistochemistry, "hubble": data.hubble_deep_field, "camera": data.camera}
EMBEDDER = embedder_id("efficientnet-lite0")


def plot(rng, dark: bool = False) -> Image.Image:
    """A line plot as a script draws one: axes, one to three random walks, a caption; on white
    (should invert) or on a dark background (should keep)."""
    w, h = int(rng.integers(280, 420)), int(rng.integers(200, 320))
    ink, paper = ("white", (24, 26, 30)) if dark else ("black", "white")
    image = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(image)
    draw.line([(30, h - 30), (30, 10), (30, h - 30), (w - 10, h - 30)], fill=ink, width=2)
    for _ in range(int(rng.integers(1, 4))):
        ys = np.cumsum(rng.normal(size=28)) * 6 + h / 2
        colour = tuple(int(c) for c in rng.integers(40 if dark else 0, 255 if dark else 200, 3))
        draw.line([(30 + (w - 40) / 28 * j, float(y)) for j, y in enumerate(ys)], fill=colour, width=2)
    draw.text((w // 3, h - 20), f"figure {int(rng.integers(100))}", fill=ink)
    return image


def photos() -> dict[str, Image.Image]:
    """scikit-image's photographs, each a mirrored corner of the original: the shipped bootstrap
    set holds the originals, and a near-duplicate of a labeled image is decided by its label."""
    def corner(array):
        h, w = array.shape[:2]
        return np.ascontiguousarray(array[: h * 3 // 5, w * 2 // 5:][:, ::-1])
    return {name: Image.fromarray(corner(make())).convert("RGB") for name, make in PHOTOS.items()}


def test_score_is_low_for_images_like_the_labeled_set_and_high_for_a_foreign_kind(tmp_path):
    rng = np.random.default_rng(0)
    embedder = get_embedder("efficientnet-lite0")
    labeled = embedder.embed([plot(rng, dark=i % 4 == 0) for i in range(60)])
    model = novelty.fit_novelty(labeled, EMBEDDER, {"site": 60})
    assert model is not None and model.metadata["fitted_on"] == {"site": 60, "total": 60}
    saved = novelty.load_novelty(novelty.save_novelty(model, tmp_path / "head.novelty.skops").path)
    assert saved.version.startswith("nv-") and saved.cutoff == model.cutoff
    assert np.allclose(saved.scores(labeled[:5]), model.scores(labeled[:5]))
    new_plots = model.scores(embedder.embed([plot(rng, dark=i % 4 == 0) for i in range(12)]))
    foreign = model.scores(embedder.embed(list(photos().values())))
    assert new_plots.max() < model.cutoff, new_plots
    assert foreign.min() > model.cutoff, foreign
    assert not model.novel(new_plots).any() and model.novel(foreign).all()
    # Too few labeled images describe no density: no model.
    assert novelty.fit_novelty(labeled[:novelty.MIN_SAMPLES - 1], EMBEDDER) is None


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_novel_image_skips_the_head_but_not_a_labeled_near_duplicate():
    labeled = LabeledSet(["a", "b"], np.array([True, False]), np.vstack([unit([1, 0, 0]), unit([0, 1, 0])]),
                         ["0" * 16, "f" * 16], np.zeros((2, len(STAT_NAMES)), dtype=np.float32))
    far = unit([0, 0, 1])  # no labeled neighbour votes: the unsure path ends at the default
    sure = decide_auto(far, None, 0.95, labeled, Thresholds(), novelty=0.4, novel=False)
    assert (sure.method, sure.invert, sure.novelty, sure.novel) == ("head", True, 0.4, False)
    novel = decide_auto(far, None, 0.95, labeled, Thresholds(), novelty=7.5, novel=True)
    assert (novel.method, novel.invert, novel.p_invert, novel.novelty, novel.novel) == ("default", False, 0.95, 7.5, True)
    tones = np.zeros(len(STAT_NAMES), dtype=np.float32)  # a near-duplicate agrees on tones too
    twin = decide_auto(unit([1, 0, 0]), "0" * 16, 0.1, labeled, Thresholds(), stats=tones, novelty=7.5, novel=True)
    assert (twin.method, twin.invert, twin.novel) == ("near-duplicate", True, False)


# --- retrain -> classify -> MkDocs, on one labeled site -------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A MkDocs site of 60 labeled plots (white ones invert, dark ones keep) and seven unlabeled
    photographs, built once (embedding everything), labeled, and retrained on its labels alone."""
    root = tmp_path_factory.mktemp("novelty-site")
    docs = root / "docs"
    (docs / "img").mkdir(parents=True)
    rng = np.random.default_rng(1)
    labels = {}
    for i in range(60):
        dark = i % 4 == 0
        plot(rng, dark).save(docs / "img" / f"plot{i}.png")
        labels[f"img/plot{i}.png"] = "keep" if dark else "invert"
    for name, image in photos().items():
        image.save(docs / "img" / f"{name}.jpg")
    images = sorted(p.name for p in (docs / "img").iterdir())
    (docs / "index.md").write_text("# Figures\n\n" + "\n\n".join(f"![{n}](img/{n})" for n in images) + "\n")
    (root / "mkdocs.yml").write_text("site_name: novelty\nplugins:\n  - invertornot\n")
    first = run_mkdocs(root, "site0")
    assert first.returncode == 0, first.stderr
    overrides = root / "invertornot.yml"
    record_decisions(overrides, {}, labels=labels)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["retrain", "--store", ".invertornot", "--overrides", "invertornot.yml", "--no-bootstrap"]) == 0
    finally:
        os.chdir(cwd)
    return root


def run_mkdocs(root, site_dir: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(root / "mkdocs.yml"), "-d",
                           str(root / site_dir)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TQDM_DISABLE": "1"})


def head_files(root):
    [head] = [p for p in root.glob("invertornot.head-*.skops") if not p.name.endswith(novelty.SUFFIX)]
    return head, novelty.novelty_path(head)


def classify(root, capsys) -> dict[str, dict]:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["classify", "--json", "--store", ".invertornot", "--overrides", "invertornot.yml",
                     "docs/img"]) == 0
    finally:
        os.chdir(cwd)
    return {os.path.basename(r["path"]): r for r in map(json.loads, capsys.readouterr().out.splitlines())}


def test_retrain_writes_a_novelty_model_that_a_following_build_uses(site, capsys):
    head, path = head_files(site)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["embedder"] == EMBEDDER and sidecar["cutoff"] == novelty.CUTOFF
    assert sidecar["fitted_on"] == {"site": 60, "bootstrap": 0, "total": 60}

    rows = classify(site, capsys)
    assert all("novelty" in r and "novel" in r for r in rows.values())
    assert all(r["method"] == "override" and r["novelty"] is None for n, r in rows.items() if n.startswith("plot"))
    for name in PHOTOS:
        r = rows[f"{name}.jpg"]
        assert r["novel"] and r["novelty"] > novelty.CUTOFF and r["method"] in ("knn", "default"), r
        assert r["version"].endswith("+" + sidecar["version"])

    # The real build: its summary counts them, and the overrides file records each score.
    build = run_mkdocs(site, "site1")
    assert build.returncode == 0, build.stderr
    assert f"{len(PHOTOS)} unsure ({len(PHOTOS)} novel); by method" in build.stderr, build.stderr
    recorded = Overrides.load(site / "invertornot.yml").entries
    assert all(recorded[f"img/{n}.jpg"].auto["novelty"] > novelty.CUTOFF for n in PHOTOS)

    # `review` lists them first, most novel first.
    items = ReviewSite(site / "invertornot.yml", EmbeddingStore(site / ".invertornot")).items()
    first = items[:len(PHOTOS)]
    assert {item.key for item in first} == {f"img/{n}.jpg" for n in PHOTOS} and all(item.novel for item in first)
    assert [item.novelty for item in first] == sorted((item.novelty for item in first), reverse=True)
    assert not any(item.novel for item in items[len(PHOTOS):])


def test_without_its_novelty_model_a_head_decides_as_before(site, capsys, tmp_path):
    head, path = head_files(site)
    kept = [shutil.copy2(p, tmp_path) for p in (path, path.with_suffix(".json"))]
    try:
        path.unlink()
        path.with_suffix(".json").unlink()
        rows = classify(site, capsys)
    finally:
        for copy in kept:
            shutil.copy2(copy, site)
    photo_rows = [rows[f"{n}.jpg"] for n in PHOTOS]
    assert all(r["novelty"] is None and not r["novel"] for r in photo_rows)
    # The head trained on plots alone is sure of some photographs: what novelty takes from it.
    assert any(r["method"] == "head" for r in photo_rows), photo_rows
    assert "+nv-" not in photo_rows[0]["version"]


def test_a_damaged_novelty_file_is_named_and_the_build_still_classifies(site, capsys, caplog, tmp_path):
    head, path = head_files(site)
    original = path.read_bytes()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    try:
        path.write_bytes(b"PK\x03\x04 not a zip at all")
        with caplog.at_level(logging.WARNING, logger="invertornot_ssg"):
            rows = classify(site, capsys)
        warnings = [r.getMessage() for r in caplog.records if "novelty" in r.getMessage()]
        assert len(warnings) == 1 and str(path) in warnings[0], warnings
        assert all(r["invert"] is not None and r["novelty"] is None for r in rows.values())

        # Bytes that match their sidecar but are no skops file: named when it loads.
        caplog.clear()
        from invertornot_ssg.head import content_version

        path.with_suffix(".json").write_text(json.dumps({**sidecar, "version": content_version(path.read_bytes(), "nv")}))
        with pytest.raises(HeadError, match="not a readable skops file"):
            novelty.load_novelty(path)
        with caplog.at_level(logging.WARNING, logger="invertornot_ssg"):
            rows = classify(site, capsys)
        warnings = [r.getMessage() for r in caplog.records if "novelty" in r.getMessage()]
        assert len(warnings) == 1 and str(path) in warnings[0] and "deciding without novelty" in warnings[0]
        assert all(r["invert"] is not None and not r["novel"] for r in rows.values())
    finally:
        path.write_bytes(original)
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
