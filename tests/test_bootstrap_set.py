"""The bootstrap set's manifest, the shipped files built from it, and the script that rebuilds it."""
from __future__ import annotations

import csv
import importlib.util
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from invertornot_ssg import shipped
from invertornot_ssg.embedders import DEFAULT_MODEL, embedder_id

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build_set():
    spec = importlib.util.spec_from_file_location("build_set", REPO / "scripts" / "bootstrap" / "build_set.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts scripts/bootstrap on sys.path for its own imports
    yield module
    sys.path.remove(str(REPO / "scripts" / "bootstrap"))


def test_manifest_and_shipped_set_agree():
    """Exact-duplicate reuse reads labels from the manifest, everything else from the .npz: one
    image must carry the same label in both."""
    with shipped.manifest_path().open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest = {row["sha1"]: row["label"] == "invert" for row in rows}
    with np.load(shipped.bootstrap_path(embedder_id(DEFAULT_MODEL))) as npz:
        npz_labels = dict(zip((str(s) for s in npz["sha1"]), (bool(v) for v in npz["invert"])))
    assert len(manifest) == len(rows) >= 1500
    assert npz_labels == manifest
    assert [row["file"] for row in rows] == sorted(row["file"] for row in rows)  # small, stable diffs


def test_file_names_do_not_carry_the_package_version(build_set, tmp_path: Path):
    """A Debian point release (or an epoch, 'pkg=8:6.9.11...') must not rename every image."""
    def stem(origin: str) -> Path:
        candidate = build_set.Candidate(source="deb:imagemagick-doc", origin=origin, licence="", loader=None)
        return build_set._dest_stem(tmp_path, candidate)

    path = "/usr/share/doc/imagemagick-6-common/html/images/affine.png"
    assert stem(f"imagemagick-6-doc=8:6.9.11.60+dfsg-1.6+deb12u11:{path}") == \
        stem(f"imagemagick-6-doc=8:6.9.11.60+dfsg-1.6+deb12u15:{path}")
    assert stem(f"inkscape-tutorials=1.2.2-2:{path}") == stem(f"inkscape-tutorials=1.2.2-2+deb12u1:{path}")
    assert stem(f"imagemagick-6-doc=8:6.9.11.60:{path}") != stem(f"imagemagick-6-doc=8:6.9.11.60:{path}.gif")


def test_a_missing_tool_stops_the_build_before_the_manifest_is_touched(build_set, tmp_path: Path, monkeypatch,
                                                                        caplog: pytest.LogCaptureFixture):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,sha1\n", encoding="utf-8")
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "dot" else real_which(tool))

    assert build_set.main(["--cache", str(tmp_path / "cache"), "--manifest", str(manifest), "--no-deb"]) == 2

    assert "dot (apt-get install graphviz)" in caplog.text
    assert manifest.read_text(encoding="utf-8") == "file,sha1\n"
    assert not (tmp_path / "cache").exists()


def test_training_refuses_images_that_differ_from_their_manifest_row(tmp_path: Path):
    """A set rebuilt from other package versions must not ship embeddings under sha1s that the
    shipped manifest does not label."""
    from PIL import Image

    spec = importlib.util.spec_from_file_location("train_default_head", REPO / "scripts" / "train_default_head.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), "white").save(cache / "images" / "a.png")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,sha1,label\nimages/a.png," + "0" * 40 + ",invert\n", encoding="utf-8")
    args = SimpleNamespace(cache=cache, store=tmp_path / "store", manifest=manifest)

    with pytest.raises(SystemExit, match=r"1 images under .* differ from .*manifest\.csv \(first: images/a\.png\)"):
        script.load_set(args)
    assert not (tmp_path / "store").exists()  # refused before anything was embedded
