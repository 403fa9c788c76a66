"""Near-duplicate label reuse on real images: edited copies of a labeled picture take its label;
a sibling with other content, or the same figure on a page of another shade, does not."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from invertornot_ssg.decisions import TONE_STATS, LabeledSet, Thresholds, decide_auto
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.images import STAT_NAMES
from invertornot_ssg.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "sample_site" / "mkdocs" / "docs" / "img"


def _classify(tmp_path, labels: dict[str, str], names: list[str], thresholds=None) -> dict:
    (tmp_path / "invertornot.yml").write_text(
        "version: 1\nimages:\n" + "".join(f"  img/{n}:\n    label: {label}\n" for n, label in labels.items()))
    engine = Engine(Settings(store="store", overrides="invertornot.yml"), tmp_path)
    if thresholds is not None:
        engine.thresholds = thresholds
    try:
        results = engine.classify([ImageRequest(tmp_path / "img" / n, f"img/{n}") for n in names])
    finally:
        engine.store.close()
    return {r.request.key.removeprefix("img/"): r for r in results}


def test_edited_copies_of_real_images_take_the_labeled_originals_label(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    plot, scan = Image.open(SAMPLE / "line-plot.png"), Image.open(SAMPLE / "scan.png")
    plot.save(img / "line-plot.png")
    scan.save(img / "scan.png")
    plot.save(img / "plot-copy.webp", quality=80)  # re-saved as WebP
    plot.resize((plot.width * 4 // 5, plot.height * 4 // 5), Image.Resampling.LANCZOS).save(img / "plot-small.png")
    w, h = plot.size  # cropped by 6% across and 6% down
    plot.crop((w * 4 // 100, h * 3 // 100, w - w * 2 // 100, h - h * 3 // 100)).save(img / "plot-crop.png")
    scan.convert("RGB").save(img / "scan-copy.jpg", quality=70)  # recompressed as JPEG
    # The line plot labeled keep, which the head would not say of a plot on white: only reuse gives it.
    copies = {"plot-copy.webp": "line-plot.png", "plot-small.png": "line-plot.png", "plot-crop.png": "line-plot.png",
              "scan-copy.jpg": "scan.png"}
    labels = {"line-plot.png": "keep", "scan.png": "invert"}
    results = _classify(tmp_path, labels, [*labels, *copies])
    for copy, original in copies.items():
        r = results[copy]
        assert (r.method, r.invert) == ("near-duplicate", labels[original] == "invert"), copy


def test_a_sibling_plot_of_one_script_with_other_data_is_not_a_near_duplicate(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = tmp_path / "img"
    img.mkdir()
    for name, seed in (("run-1.png", 0), ("run-2.png", 5)):  # one script, two runs: same axes, other curves
        rng = np.random.default_rng(seed)
        with matplotlib.rc_context(matplotlib.rcParamsDefault):  # not a style another test left behind
            fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
            x = np.linspace(0, 10, 200)
            for k in range(3):
                ax.plot(x, np.sin(x * (1 + k * 0.3)) + rng.normal(0, 0.3, 200).cumsum() * 0.1, lw=2)
            ax.set_title("Signal")
            fig.savefig(img / name)
            plt.close(fig)
    results = _classify(tmp_path, {"run-1.png": "keep"}, ["run-1.png", "run-2.png"])
    assert results["run-2.png"].method != "near-duplicate"


def test_the_same_line_art_on_a_light_and_a_dark_page_is_refused_by_its_tones(tmp_path):
    """Real line art on a light grey and a dark grey page: one shape, the same perceptual hash
    (a shade shift leaves it alone), opposite labels (invert on the light page, keep on the dark).
    With the embedding gate lowered until the pair passes it, only the tone check refuses it."""
    img = tmp_path / "img"
    img.mkdir()
    art = Image.open(SAMPLE / "line-art.png").convert("RGBA")
    for name, shade in (("light.png", 235), ("dark.png", 60)):
        page = Image.new("RGBA", art.size, (shade, shade, shade, 255))
        page.alpha_composite(art)
        page.convert("RGB").save(img / name)
    loose = replace(Thresholds(), near_duplicate_cosine=0.85)
    without_tones = replace(loose, near_duplicate_tones=float("inf"))
    before = _classify(tmp_path, {"light.png": "invert"}, ["light.png", "dark.png"], without_tones)
    assert (before["dark.png"].method, before["dark.png"].invert) == ("near-duplicate", True)  # the old rule's mistake
    after = _classify(tmp_path, {"light.png": "invert"}, ["light.png", "dark.png"], loose)
    assert after["dark.png"].method != "near-duplicate" and after["dark.png"].invert is False


def test_tones_are_compared_only_where_both_are_known():
    vectors = np.array([[1.0, 0.0]], dtype=np.float32)
    stats = np.full((1, len(STAT_NAMES)), 0.5, dtype=np.float32)
    labeled = LabeledSet(["a"], np.array([True]), vectors, ["ffff0000ffff0000"], stats)
    same = stats[0].copy()
    d = decide_auto(vectors[0], "ffff0000ffff0000", 0.1, labeled, Thresholds(), stats=same)
    assert (d.method, d.invert) == ("near-duplicate", True)
    darker = same.copy()
    darker[STAT_NAMES.index(TONE_STATS[2])] -= 0.3  # mean luminance
    assert decide_auto(vectors[0], "ffff0000ffff0000", 0.1, labeled, Thresholds(), stats=darker).method == "head"
    assert decide_auto(vectors[0], "ffff0000ffff0000", 0.1, labeled, Thresholds()).method == "head"  # unknown: no reuse
    unknown = LabeledSet(["a"], np.array([True]), vectors, ["ffff0000ffff0000"], np.full_like(stats, np.nan))
    assert decide_auto(vectors[0], "ffff0000ffff0000", 0.1, unknown, Thresholds(), stats=same).method == "head"
