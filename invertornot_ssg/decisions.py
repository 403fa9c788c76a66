"""The decision order for one image, from what a person said to the safe default.

explicit > front-matter > override > duplicate > near-duplicate > head > knn > default (keep).
The first three are handled by `decide_human`; the rest by `decide_auto`.
"""
from __future__ import annotations

from dataclasses import dataclass
from ._lazy import np

from .images import phash_distance

HUMAN_METHODS = ("explicit", "front-matter", "override", "duplicate")
LABELS = ("invert", "keep")


@dataclass(frozen=True)
class Thresholds:
    """Where the automatic methods draw their lines (see README, "Fallback thresholds")."""

    threshold: float = 0.5  # p_invert at or above inverts
    unsure: float = 0.2  # |p - threshold| below this: the head is unsure
    near_duplicate_cosine: float = 0.95  # embedding cosine to a labeled image ...
    near_duplicate_phash: int = 10  # ... and perceptual-hash distance, both within
    knn_k: int = 7
    knn_min_cosine: float = 0.6  # neighbours further away than this do not vote
    knn_prior: float = 2.0  # pseudo-votes at p 0.5 in the kNN vote (see knn_vote); chosen held out by source
    photo_region: float = 0.0  # photographed share of the image from which an invert turns to keep (photoregions)


@dataclass(frozen=True)
class Decision:
    invert: bool
    p_invert: float | None
    confidence: float | None
    method: str

    @property
    def human(self) -> bool:
        return self.method in HUMAN_METHODS


@dataclass
class LabeledSet:
    """Images whose label a person decided, in embedding space: the site's and the bootstrap set."""

    sha1s: list[str]
    invert: np.ndarray  # bool per row
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    phashes: list[str | None]

    def __post_init__(self) -> None:
        self._index = None

    @classmethod
    def empty(cls, dim: int) -> "LabeledSet":
        return cls([], np.zeros(0, dtype=bool), np.zeros((0, dim), dtype=np.float32), [])

    def __len__(self) -> int:
        return len(self.sha1s)

    def neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and rows of the k nearest labeled images, best first (-1 rows pad)."""
        import faiss

        if self._index is None:
            self._index = faiss.IndexFlatIP(self.vectors.shape[1])
            if len(self):
                self._index.add(np.ascontiguousarray(self.vectors, dtype=np.float32))
        k = max(1, min(k, len(self))) if len(self) else 1
        return self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)


def decide_human(
    explicit: str | None, front_matter: str | None, override: str | None, labeled_duplicate: bool | None
) -> Decision | None:
    """What a person said, in order of precedence; None when nobody said anything."""
    for label, method in ((explicit, "explicit"), (front_matter, "front-matter"), (override, "override")):
        if label is not None:
            invert = label == "invert"
            return Decision(invert, 1.0 if invert else 0.0, 1.0, method)
    if labeled_duplicate is not None:
        return Decision(labeled_duplicate, 1.0 if labeled_duplicate else 0.0, 1.0, "duplicate")
    return None


def decide_auto(
    vector: np.ndarray,
    phash: str | None,
    p_head: float | None,
    labeled: LabeledSet,
    thresholds: Thresholds,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> Decision:
    """near-duplicate > head > knn > default, for one embedded image.

    `neighbours` is this image's row of `labeled.neighbours(...)`, precomputed in a batch.
    """
    if neighbours is None and len(labeled):
        sims, rows = labeled.neighbours(vector[None, :], thresholds.knn_k)
        neighbours = (sims[0], rows[0])

    if neighbours is not None:
        sims, rows = neighbours
        for sim, row in zip(sims, rows):
            if row < 0 or sim < thresholds.near_duplicate_cosine:
                break
            other = labeled.phashes[row]
            if phash and other and phash_distance(phash, other) <= thresholds.near_duplicate_phash:
                invert = bool(labeled.invert[row])
                return Decision(invert, 1.0 if invert else 0.0, float(sim), "near-duplicate")

    if p_head is not None and abs(p_head - thresholds.threshold) >= thresholds.unsure:
        invert = p_head >= thresholds.threshold
        return Decision(invert, float(p_head), _confidence(p_head, invert), "head")

    if neighbours is not None:
        p_knn = knn_vote(neighbours[0], neighbours[1], labeled.invert, thresholds)
        if p_knn is not None and abs(p_knn - thresholds.threshold) >= thresholds.unsure:
            invert = p_knn >= thresholds.threshold
            return Decision(invert, p_knn, _confidence(p_knn, invert), "knn")

    # Never invert when unsure: a dimmed diagram is readable, an inverted face is not.
    p = None if p_head is None else float(p_head)
    return Decision(False, p, None if p is None else _confidence(p, False), "default")


def knn_vote(sims: np.ndarray, rows: np.ndarray, invert: np.ndarray, thresholds: Thresholds) -> float | None:
    """The labeled neighbours' vote as a calibrated p_invert; None when none is close enough to vote.

    Each neighbour at cosine s >= c (knn_min_cosine) votes with weight w = (s - c) / (1 - c): 0 at the
    edge of the neighbourhood, 1 for the same picture. A Beta prior of `a` (knn_prior) pseudo-votes at
    0.5 pulls the share toward unsure:

        p = (sum(w * invert) + a / 2) / (sum(w) + a)

    so seven close unanimous neighbours (cosine 0.95, w 0.875) give p 0.88 (sure), while far ones
    (cosine 0.65) or a split vote stay inside the unsure band and fall to the default (keep).
    """
    edge = thresholds.knn_min_cosine
    close = [(float(s), int(r)) for s, r in zip(sims, rows) if r >= 0 and s >= edge]
    if not close:
        return None
    weights = np.array([(s - edge) / (1.0 - edge) for s, _ in close])
    votes = np.array([float(invert[r]) for _, r in close])
    prior = thresholds.knn_prior
    return float(((weights * votes).sum() + prior / 2) / (weights.sum() + prior))


def _confidence(p: float, invert: bool) -> float:
    return float(p if invert else 1.0 - p)

