"""The decision order for one image, from what a person said to the safe default.

explicit > front-matter > override > duplicate > near-duplicate > head > knn > default (keep).
The first three are handled by `decide_human`; the rest by `decide_auto`. An image unlike the
labeled set (novelty.py) skips the head, as if it were unsure of it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from ._lazy import np

from .images import STAT_NAMES, phash_distance

HUMAN_METHODS = ("explicit", "front-matter", "override", "duplicate")
LABELS = ("invert", "keep")

# What a label is about: how light, dark and colourful the picture is. Resizing, recompressing and
# re-saving move these by a few hundredths; a light and a dark variant of one template, which the
# embedding and the perceptual hash both take for the same picture, differ by 0.19 or more
# (scripts/neardup_pairs.py).
TONE_STATS = ("near_white", "near_black", "mean_luminance", "mean_saturation", "colorfulness",
              *(f"lum_hist_{i}" for i in range(8)))
_TONES = [STAT_NAMES.index(name) for name in TONE_STATS]
_JPEG, _FINE_STEPS, _COLOURFULNESS = (STAT_NAMES.index(name) for name in ("is_jpeg", "native_fine_steps", "colorfulness"))


@dataclass(frozen=True)
class Thresholds:
    """Where the automatic methods draw their lines (see README, "Fallback thresholds")."""

    threshold: float = 0.5  # p_invert at or above inverts
    unsure: float = 0.2  # |p - threshold| below this: the head is unsure
    near_duplicate_cosine: float = 0.95  # embedding cosine to a labeled image ...
    near_duplicate_phash: int = 10  # ... and perceptual-hash distance, both within ...
    near_duplicate_tones: float = 0.1  # ... and every tone statistic (TONE_STATS) within this
    knn_k: int = 7
    knn_min_cosine: float = 0.6  # neighbours further away than this do not vote
    knn_prior: float = 2.0  # pseudo-votes at p 0.5 in the kNN vote (see knn_vote); chosen held out by source
    drawn_unsure: float = 0.05  # the head's band for an image that cannot be a photograph (cannot_be_photograph)
    photo_region: float = 0.0  # photographed share of the image from which an invert turns to keep (photoregions)


@dataclass(frozen=True)
class Decision:
    invert: bool
    p_invert: float | None
    confidence: float | None
    method: str
    novelty: float | None = None  # novelty.NoveltyModel.scores; None without a novelty model
    novel: bool = False  # above the novelty cut-off: the head was not trusted with it

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
    stats: np.ndarray | None = None  # (n, len(STAT_NAMES)); NaN rows where unknown

    def __post_init__(self) -> None:
        self._index = None

    @classmethod
    def empty(cls, dim: int) -> "LabeledSet":
        return cls([], np.zeros(0, dtype=bool), np.zeros((0, dim), dtype=np.float32), [])

    def same_tones(self, row: int, stats: np.ndarray | None, limit: float) -> bool:
        """Whether labeled row `row` and an image with these statistics agree on every TONE_STATS
        within `limit`; False when either is unknown (a record from an older version)."""
        if stats is None or self.stats is None or len(stats) != len(STAT_NAMES):
            return False
        return bool(np.all(np.abs(self.stats[row, _TONES] - np.asarray(stats)[_TONES]) <= limit))

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
    stats: np.ndarray | None = None,
    drawn: bool | None = None,
    novelty: float | None = None,
    novel: bool = False,
) -> Decision:
    """near-duplicate > head > knn > default, for one embedded image.

    `neighbours` is this image's row of `labeled.neighbours(...)`, precomputed in a batch; `stats`
    its images.STAT_NAMES (without them it is nobody's near-duplicate). `drawn`: it cannot be a
    photograph, so the head's band is drawn_unsure (cannot_be_photograph(stats) unless given).
    `novel`: the image is unlike the labeled set (its `novelty` score above the cut-off): the
    head, which learned from that set, is treated as unsure; a near-duplicate still decides.
    """
    if drawn is None:
        drawn = stats is not None and len(stats) == len(STAT_NAMES) and cannot_be_photograph(stats)
    decision = _decide_auto(vector, phash, p_head, labeled, thresholds, neighbours, stats, drawn, novel)
    # `novel` says the head was passed over: not so when a labeled near-duplicate decided.
    return replace(decision, novelty=novelty, novel=novel and decision.method != "near-duplicate")


def _decide_auto(vector, phash, p_head, labeled: LabeledSet, thresholds: Thresholds, neighbours,
                 stats, drawn: bool, novel: bool) -> Decision:
    if neighbours is None and len(labeled):
        sims, rows = labeled.neighbours(vector[None, :], thresholds.knn_k)
        neighbours = (sims[0], rows[0])

    if neighbours is not None:
        sims, rows = neighbours
        for sim, row in zip(sims, rows):
            if row < 0 or sim < thresholds.near_duplicate_cosine:
                break
            other = labeled.phashes[row]
            # Two screenshots of one application, or a light and a dark variant of one picture, can be
            # as close as this in embedding and phash: the tones must agree too (a label is about them).
            if (phash and other and phash_distance(phash, other) <= thresholds.near_duplicate_phash
                    and labeled.same_tones(int(row), stats, thresholds.near_duplicate_tones)):
                invert = bool(labeled.invert[row])
                return Decision(invert, 1.0 if invert else 0.0, float(sim), "near-duplicate")

    unsure = min(thresholds.drawn_unsure, thresholds.unsure) if drawn else thresholds.unsure
    if p_head is not None and not novel and abs(p_head - thresholds.threshold) >= unsure:
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


def cannot_be_photograph(stats: np.ndarray) -> bool:
    """Whether an image's statistics rule out a photograph: not a JPEG (what cameras write), at the
    file's own resolution almost no neighbouring pixels differ by 1 to 3 levels (sensor noise and
    a painting's texture make such steps), and little colour. Where this holds the head's unsure
    band is narrower (Thresholds.drawn_unsure): keeping line art, plots and light UI that the head
    leans to invert costs accuracy, and no photograph is at stake. Measured held out by source
    (`python scripts/explore_heldout.py band`)."""
    return bool(stats[_JPEG] < 0.5 and stats[_FINE_STEPS] <= 0.03 and stats[_COLOURFULNESS] <= 0.15)


def _confidence(p: float, invert: bool) -> float:
    return float(p if invert else 1.0 - p)

