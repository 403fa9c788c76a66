"""The decision order, method by method, on hand-made embeddings."""
import numpy as np
import pytest

from invertornot_ssg.decisions import LabeledSet, Thresholds, decide_auto, decide_human, knn_vote

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


def test_near_duplicate_needs_both_cosine_and_phash():
    ls = labeled_set([[1, 0, 0], [0, 1, 0]], [True, False], ["ffff0000ffff0000", "0000ffff0000ffff"])
    close = unit([1, 0.01, 0])
    d = decide_auto(close, "ffff0000ffff0001", 0.1, ls, T)
    assert (d.method, d.invert) == ("near-duplicate", True)
    # Same embedding neighbourhood but a different picture by phash: the head decides.
    d = decide_auto(close, "0000ffff0000ffff", 0.1, ls, T)
    assert (d.method, d.invert) == ("head", False)


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


def test_knn_vote_weighting_and_minimum():
    invert = np.array([True, False, True])
    assert knn_vote(np.array([0.9, 0.9, 0.9]), np.array([0, 1, 2]), invert, T) == pytest.approx(2 / 3)
    assert knn_vote(np.array([0.9, 0.1, 0.1]), np.array([0, 1, 2]), invert, T) is None
