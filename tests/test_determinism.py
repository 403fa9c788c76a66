"""The same inputs give the same decisions and the same overrides file on every build (issue 34):
a first build on a fresh store, a second on the store the first left, and a build from scratch.

The site labels 8 images by hand (by path, with no sha1, as people write them) and shows a near
copy of each beside it. Before the fix the first build decided the 8 copies with the head and
the second as near-duplicates of the labels: the first build lent only labels that carried a
sha1, and the file it wrote gave them one. A label whose image has left the site lent its vector
only where an earlier build had stored it: decisions then depended on the store, not the inputs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow


def chart(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(20, 220), (20, 20)], fill="black", width=2)
    draw.line([(20, 220), (300, 220)], fill="black", width=2)
    points = [(20 + i * 28, int(220 - rng.random() * 180)) for i in range(11)]
    draw.line(points, fill=tuple(int(c) for c in rng.integers(0, 200, 3)), width=3)
    return image


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320]
    base = np.stack([x * 255 / 320, y * 255 / 240, (x + y) * 127 / 560], -1) * rng.random(3)
    return Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))


def make_site(root: Path, labeled: range = range(8)) -> Path:
    """Charts labeled keep and photos labeled invert (against what the head says, so that a
    label lent to its near copy shows), each beside an unlabeled near copy."""
    img = root / "docs" / "img"
    img.mkdir(parents=True)
    lines = ["# Determinism", ""]
    for i in labeled:
        original = chart(i) if i % 2 == 0 else photo(i)
        original.save(img / f"l{i}.png")
        original.resize((318, 239)).resize((320, 240)).save(img / f"u{i}.png")
        lines += [f"![l{i}](img/l{i}.png)", f"![u{i}](img/u{i}.png)"]
    (root / "docs" / "index.md").write_text("\n".join(lines) + "\n")
    (root / "mkdocs.yml").write_text("site_name: determinism\nplugins:\n  - invertornot:\n      store: store\n")
    return root


LABELS = "version: 1\nimages:\n" + "".join(
    f"  img/l{i}.png:\n    label: {'keep' if i % 2 == 0 else 'invert'}\n" for i in range(8))


def build(root: Path) -> tuple[bytes, dict[str, str]]:
    """A real `mkdocs build` in its own process: the overrides file and each image's classes."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", "site"], cwd=root,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    html = (root / "site" / "index.html").read_text()
    classes = {alt: cls for cls, alt in re.findall(r'<img\b[^>]*class="([^"]*)"[^>]*alt="([^"]*)"', html)}
    classes.update({alt: cls for alt, cls in re.findall(r'<img\b[^>]*alt="([^"]*)"[^>]*class="([^"]*)"', html)})
    return (root / "invertornot.yml").read_bytes(), classes


def methods(overrides: bytes) -> dict[str, str]:
    return {key: entry["auto"]["method"] for key, entry in yaml.safe_load(overrides)["images"].items()}


def fresh(root: Path, overrides: str | bytes) -> Path:
    """The site with this overrides file and no store."""
    shutil.rmtree(root / "store", ignore_errors=True)
    shutil.rmtree(root / "site", ignore_errors=True)
    target = root / "invertornot.yml"
    target.write_bytes(overrides.encode() if isinstance(overrides, str) else overrides)
    return root


def test_first_second_and_fresh_builds_decide_alike(tmp_path):
    root = make_site(tmp_path / "site")
    first, first_classes = build(fresh(root, LABELS))
    second, second_classes = build(root)  # warm: the store and the file the first build left
    third, _ = build(root)
    again, again_classes = build(fresh(root, LABELS))  # from scratch once more

    decided = methods(first)
    assert len(decided) == 16 and list(first_classes) and len(first_classes) == 16
    # The near copies take their label's side: the label is lent from the first build on.
    assert {decided[f"img/u{i}.png"] for i in range(8)} == {"near-duplicate"}, decided
    assert second == first and third == first and again == first
    assert second_classes == first_classes and again_classes == first_classes


def test_a_label_whose_image_left_the_site_lends_nothing_warm_or_fresh(tmp_path):
    """The store has the vector of a labeled image no page shows any more only if an earlier
    build stored it: lending it would make a warm build decide otherwise than a fresh one."""
    root = make_site(tmp_path / "site")
    recorded, _ = build(fresh(root, LABELS))
    (root / "docs" / "index.md").write_text(
        (root / "docs" / "index.md").read_text().replace("![l0](img/l0.png)\n", ""))
    (root / "docs" / "img" / "l0.png").unlink()

    (root / "invertornot.yml").write_bytes(recorded)
    warm, warm_classes = build(root)  # the store holds l0's vector
    cold, cold_classes = build(fresh(root, recorded))
    assert warm == cold and warm_classes == cold_classes
    assert methods(warm)["img/u0.png"] != "near-duplicate"  # l0's label is in the file, its image is not


def test_an_image_retried_from_the_build_memo_borrows_as_in_a_full_build(tmp_path, monkeypatch, fake_embedder):
    """A warm build reuses the last build's results and tries only the images that failed again;
    one that now loads must be decided with the whole build's labels, not only its own."""
    from fakes import FAKE_MODEL

    from invertornot_ssg import engine as engine_module
    from invertornot_ssg.engine import Engine, ImageRequest
    from invertornot_ssg.images import ImageError
    from invertornot_ssg.settings import Settings

    make_site(tmp_path, labeled=range(4))
    img = tmp_path / "docs" / "img"
    requests = [ImageRequest(img / f"{kind}{i}.png", f"img/{kind}{i}.png") for i in range(4) for kind in "lu"]
    labels = "version: 1\nimages:\n" + "".join(
        f"  img/l{i}.png:\n    label: {'keep' if i % 2 == 0 else 'invert'}\n" for i in range(4))
    failing = {img / "u0.png"}  # fails to load without its file changing (an I/O error, say)
    real_load = engine_module.load_image
    monkeypatch.setattr(engine_module, "load_image", lambda path, *a, **k: ImageError(path, "unreadable", "I/O error")
                        if path in failing else real_load(path, *a, **k))
    retried = []
    real_classify = Engine._classify
    monkeypatch.setattr(Engine, "_classify", lambda self, reqs, *a, **k: retried.append(len(reqs)) or real_classify(self, reqs, *a, **k))

    def build(store: str) -> dict:
        engine = Engine(Settings(store=store, overrides="invertornot.yml", model=FAKE_MODEL), tmp_path)
        results = engine.classify(requests, memo=True)
        engine.record(results)
        engine.store.close()
        return {r.request.key: (r.method, r.invert) for r in results}

    (tmp_path / "invertornot.yml").write_text(labels)
    build("store")
    build("store")  # the same results: this one leaves a build memo
    failing.clear()
    retried.clear()
    after_retry = build("store")
    assert retried == [1]  # the memo's results, with u0 tried again alone

    (tmp_path / "invertornot.yml").write_text(labels)
    full = build("fresh-store")
    assert after_retry == full
    assert full["img/u0.png"] == ("near-duplicate", False)  # l0, a chart, is labeled keep


def test_classify_in_the_site_folder_decides_a_near_copy_as_the_build_did(tmp_path):
    """`classify` of one image is not a whole build: the site's other labeled images lend to it
    where the store holds their vectors, so it agrees with the build that stored them."""
    root = make_site(tmp_path / "site")
    recorded, _ = build(fresh(root, LABELS))
    built = yaml.safe_load(recorded)["images"]["img/u1.png"]["auto"]
    done = subprocess.run([sys.executable, "-m", "invertornot_ssg.cli", "classify", "--json", "--store", "store",
                           "docs/img/u1.png"], cwd=root, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    alone = json.loads(done.stdout.splitlines()[0])
    assert built["method"] == "near-duplicate"
    assert (alone["method"], alone["invert"]) == (built["method"], built["invert"])
