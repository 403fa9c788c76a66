"""The decision order, method by method, on hand-made embeddings."""
import numpy as np
import pytest

from invertornot_ssg.decisions import LabeledSet, Thresholds, cannot_be_photograph, decide_auto, decide_human, knn_vote
from invertornot_ssg.images import STAT_NAMES

T = Thresholds()


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def labeled_set(rows, labels, phashes=None):
    vectors = np.vstack([unit(r) for r in rows])
    return LabeledSet([f"s{i}" for i in range(len(rows))], np.array(labels, dtype=bool), vectors,
                      phashes or [None] * len(rows))


@pytest.mark.parametrize(
    "explicit, front, override, dup, expected",
    [
        ("keep", "invert", "invert", True, ("explicit", False)),
        (None, "invert", "keep", False, ("front-matter", True)),
        (None, None, "keep", True, ("override", False)),
        (None, None, None, True, ("duplicate", True)),
    ],
)
def test_human_precedence(explicit, front, override, dup, expected):
    d = decide_human(explicit, front, override, dup)
    assert (d.method, d.invert) == expected
    assert d.human and d.confidence == 1.0


def test_nobody_said_anything():
    assert decide_human(None, None, None, None) is None


def test_near_duplicate_needs_cosine_phash_and_tones():
    ls = labeled_set([[1, 0, 0], [0, 1, 0]], [True, False], ["ffff0000ffff0000", "0000ffff0000ffff"])
    ls.stats = np.full((2, len(STAT_NAMES)), 0.5, dtype=np.float32)
    stats = np.full(len(STAT_NAMES), 0.52, dtype=np.float32)
    close = unit([1, 0.01, 0])
    d = decide_auto(close, "ffff0000ffff0001", 0.1, ls, T, stats=stats)
    assert (d.method, d.invert) == ("near-duplicate", True)
    # Same embedding neighbourhood but a different picture by phash: the head decides.
    d = decide_auto(close, "0000ffff0000ffff", 0.1, ls, T, stats=stats)
    assert (d.method, d.invert) == ("head", False)
    # Same picture by embedding and phash, other tones (a dark variant): the head decides.
    d = decide_auto(close, "ffff0000ffff0001", 0.1, ls, T, stats=stats + 0.2)
    assert (d.method, d.invert) == ("head", False)


def test_the_band_is_narrower_where_an_image_cannot_be_a_photograph():
    drawn = np.zeros(len(STAT_NAMES), dtype=np.float32)  # no fine steps, no colour: line art
    photo = drawn.copy()
    photo[STAT_NAMES.index("native_fine_steps")] = 0.3  # sensor noise at the file's resolution
    assert cannot_be_photograph(drawn) and not cannot_be_photograph(photo)
    empty = LabeledSet.empty(3)
    query = unit([1, 0, 0])
    assert decide_auto(query, None, 0.6, empty, T, stats=drawn).method == "head"  # outside the 0.05 band
    assert decide_auto(query, None, 0.6, empty, T, stats=drawn).invert is True
    assert decide_auto(query, None, 0.6, empty, T, stats=photo).method == "default"  # inside the 0.2 band
    assert decide_auto(query, None, 0.53, empty, T, stats=drawn).method == "default"
    # A band the user set narrower than drawn_unsure holds for drawn images too.
    assert decide_auto(query, None, 0.53, empty, Thresholds(unsure=0.02), stats=drawn).method == "head"


def test_head_when_sure_knn_when_unsure_default_when_both_unsure():
    rows = [[1, 0.2 * i, 0] for i in range(5)] + [[0, 1, 0.2 * i] for i in range(5)]
    ls = labeled_set(rows, [True] * 5 + [False] * 5)
    query = unit([1, 0.3, 0.05])
    assert decide_auto(query, None, 0.9, ls, T).method == "head"
    d = decide_auto(query, None, 0.55, ls, T)  # head unsure, invert-side neighbours agree
    assert (d.method, d.invert) == ("knn", True)
    far = unit([0, 0, 1])  # no labeled neighbour is close enough to vote
    d = decide_auto(far, None, 0.55, ls, T)
    assert (d.method, d.invert) == ("default", False)


def test_no_head_no_labels_keeps():
    d = decide_auto(unit([1, 0]), None, None, LabeledSet.empty(2), T)
    assert (d.method, d.invert, d.p_invert) == ("default", False, None)


def test_threshold_setting_moves_the_line():
    ls = LabeledSet.empty(2)
    strict = Thresholds(threshold=0.8, unsure=0.05)
    assert decide_auto(unit([1, 0]), None, 0.7, ls, strict).invert is False
    assert decide_auto(unit([1, 0]), None, 0.9, ls, strict).invert is True


def knn_p(sims, labels, t=T):
    """The vote of neighbours at these cosines with these labels (best first, as the index gives them)."""
    return knn_vote(np.array(sims, dtype=np.float32), np.arange(len(sims)), np.array(labels, dtype=bool), t)


def sure(p):
    return p is not None and abs(p - T.threshold) >= T.unsure


def test_knn_vote_formula():
    # w = (cos - 0.6) / 0.4; p = (sum(w * invert) + 1) / (sum(w) + 2) with the shipped prior of 2
    w = (0.9 - 0.6) / 0.4
    assert knn_p([0.9, 0.9, 0.9], [True, False, True]) == pytest.approx((2 * w + 1) / (3 * w + 2))
    assert knn_p([0.9, 0.5, 0.1], [True, True, True]) == pytest.approx((w + 1) / (w + 2))  # only 0.9 votes
    assert knn_p([0.59, 0.3], [True, True]) is None  # nobody close enough to vote


def test_close_unanimous_neighbours_are_sure():
    assert sure(p := knn_p([0.97] * 7, [True] * 7)) and p > 0.85
    assert sure(p := knn_p([0.97] * 7, [False] * 7)) and p < 0.15


def test_far_unanimous_neighbours_are_unsure():
    # Before, seven agreeing neighbours at cosine 0.65 voted p 1.0, confidence 1.00.
    assert not sure(p := knn_p([0.65] * 7, [True] * 7)) and 0.5 < p < 0.7
    assert not sure(knn_p([0.7] * 3, [False] * 3))


def test_split_or_few_neighbours_are_unsure():
    assert not sure(knn_p([0.95] * 7, [True] * 4 + [False] * 3))
    assert not sure(knn_p([0.95] * 7, [True] * 5 + [False] * 2))
    assert not sure(knn_p([0.99], [True]))  # one neighbour, however close, is one vote
    assert not sure(knn_p([0.99, 0.99], [True, False]))


def test_more_prior_pulls_harder_toward_unsure():
    loose, strict = Thresholds(knn_prior=0.5), Thresholds(knn_prior=6.0)
    assert knn_p([0.8] * 5, [True] * 5, loose) > knn_p([0.8] * 5, [True] * 5) > knn_p([0.8] * 5, [True] * 5, strict) > 0.5


def test_a_far_unanimous_neighbourhood_falls_to_keep_and_a_close_one_decides_with_its_p():
    # Seven labeled "invert" images around the x axis; the head is unsure (0.55).
    rows = [[1, 0.05 * i, 0.05 * (i % 2)] for i in range(7)]
    ls = labeled_set(rows, [True] * 7)
    close = unit([1, 0.1, 0.02])
    d = decide_auto(close, None, 0.55, ls, T)
    sims, idx = ls.neighbours(close[None, :], T.knn_k)
    expected = knn_vote(sims[0], idx[0], ls.invert, T)
    assert (d.method, d.invert) == ("knn", True)
    assert d.p_invert == pytest.approx(expected) and 0.7 <= d.p_invert < 1.0
    assert d.confidence == pytest.approx(d.p_invert)
    far = unit([1, 0.2, 1.2])  # cosine ~0.65 to all seven: they agree, but from afar (before: p 1.0)
    assert 0.6 < float((ls.vectors @ far).min()) and float((ls.vectors @ far).max()) < 0.7
    d = decide_auto(far, None, 0.55, ls, T)
    assert (d.method, d.invert, d.p_invert) == ("default", False, 0.55)


def test_an_engine_decision_by_knn_carries_the_calibrated_p_and_confidence(tmp_path, fake_embedder):
    """A real Engine with the site's own labels only (the fake model has no head or bootstrap set):
    the unlabeled image is decided by kNN, with the vote's p and confidence, not 1.0."""
    from fakes import FakeEmbedder
    from PIL import Image

    from invertornot_ssg.engine import Engine, ImageRequest
    from invertornot_ssg.images import load_image, perceptual_hash, phash_distance
    from invertornot_ssg.settings import Settings

    rng = np.random.default_rng(7)
    img = tmp_path / "img"
    img.mkdir()
    names = [f"l{i}" for i in range(7)] + ["u"]
    for name in names:  # light pages with different dark speckles: close in the fake's 4x4 embedding, not the same picture
        pixels = np.full((96, 96, 3), 235, np.uint8)
        pixels[rng.random((96, 96)) < 0.08] = 20
        Image.fromarray(pixels).save(img / f"{name}.png")
    (tmp_path / "invertornot.yml").write_text(
        "version: 1\nimages:\n" + "".join(f"  img/l{i}.png:\n    label: invert\n" for i in range(7)))
    images = [load_image(img / f"{n}.png").image for n in names]
    assert min(phash_distance(perceptual_hash(images[-1]), perceptual_hash(im)) for im in images[:-1]) > T.near_duplicate_phash
    vectors = FakeEmbedder().embed(images)
    sims = np.sort(vectors[:-1] @ vectors[-1])[::-1]
    expected = knn_vote(sims, np.arange(7), np.ones(7, dtype=bool), T)

    engine = Engine(Settings(store="store", overrides="invertornot.yml", model="clip:ViT-B-32"), tmp_path)
    ordered = engine.classify([ImageRequest(img / f"{n}.png", f"img/{n}.png") for n in names])
    results = {r.request.key: r for r in ordered}
    engine.store.close()
    # The build line counts a sure kNN vote as decided, not unsure: nothing here fell to the default.
    assert "0 unsure" in engine.summary(ordered) and "knn 1" in engine.summary(ordered)
    u = results["img/u.png"]
    assert (u.method, u.invert) == ("knn", True)
    assert u.p_invert == pytest.approx(expected, abs=1e-4) and u.p_invert < 1.0
    assert u.confidence == pytest.approx(u.p_invert, abs=1e-4)
