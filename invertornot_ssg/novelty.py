"""How unlike the labeled set an image is: a density model over the labeled images' embeddings.

A density over the embeddings of the images the head was trained on (the site's labels and the
bootstrap set): a Gaussian mixture over their main PCA components, times an isotropic Gaussian
over what those components leave out (the PCA's residual, at its noise variance, as in
probabilistic PCA). The residual is what tells a photograph from a set of plots: projected on
the few directions in which plots differ, a photograph looks like an ordinary plot (measured:
seven photographs scored as typical as new plots without it; 24 to 29 with it, new plots under
1.1). The novelty score puts an image's log-density on the labeled set's own scale:

    novelty = (median - log_density) / (median - 1st percentile)

over the labeled images' log-densities: 0 is a typical labeled image, 1 as unusual as the 1%
least typical of them, above 1 further out than almost anything labeled. Above the cut-off
(CUTOFF, chosen held out by source: docs/src/quality.md) the head is not trusted with the image
and the decision takes the head's unsure path (kNN, else keep; decisions.decide_auto).

The model is saved beside the head it was fitted with (`<head>.novelty.skops` + `.json`), and
loaded with the head's safety (head.load_skops, head.read_head_info).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._lazy import np

from .head import HeadError, HeadInfo, load_skops, read_head_info, save_skops

SUFFIX = ".novelty.skops"  # replaces the head's .skops: head-x.skops -> head-x.novelty.skops
VERSION_PREFIX = "nv"
PCA_COMPONENTS = 32
MIXTURE_COMPONENTS = 8
MIN_SAMPLES = 50  # fewer labeled images than this describe no density worth trusting: no model
# The cut-off, in the score's units. Chosen held out by source on the bootstrap set
# (`python scripts/explore_heldout.py novelty`; figures in docs/src/quality.md).
CUTOFF = 4.0


@dataclass
class NoveltyModel:
    """A fitted density model (PCA, then a Gaussian mixture) and the labeled set's scale."""

    model: Any  # a fitted scikit-learn pipeline: PCA, then GaussianMixture (see new_model)
    embedder_id: str
    typical: float  # median log-density of the labeled images
    spread: float  # median less the 1st percentile of their log-densities
    cutoff: float = CUTOFF
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str = "unsaved"
    path: Path | None = None

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """The novelty score of each embedding (see the module's docstring)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        if len(vectors) == 0:
            return np.zeros(0)
        expected = getattr(self.model, "n_features_in_", None)
        if expected is not None and vectors.shape[1] != expected:
            raise HeadError(f"{self.path or 'the novelty model'}: takes embeddings of {expected} dimensions, not"
                            f" {vectors.shape[1]}; train it again with `retrain`")
        return (self.typical - log_density(self.model, vectors)) / self.spread

    def novel(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.cutoff


def novelty_path(head_path: Path) -> Path:
    """Where the novelty model of a head lives: beside it, named after it."""
    return Path(head_path).with_suffix(SUFFIX)


def new_model(n_samples: int, dim: int, seed: int = 0):
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import make_pipeline

    # A few labeled images describe few directions: with fewer than ten per component, images
    # like them would score as novel as foreign ones.
    components = max(1, min(PCA_COMPONENTS, dim, n_samples // 10))
    # Whitened components: every direction on the same scale, so one regularisation fits all.
    return make_pipeline(
        PCA(components, whiten=True, random_state=seed),
        GaussianMixture(min(MIXTURE_COMPONENTS, max(1, n_samples // 200)), covariance_type="full",
                        reg_covar=1e-3, random_state=seed),
    )


def fit_novelty(vectors: np.ndarray, embedder_id: str, counts: dict[str, int] | None = None,
                cutoff: float = CUTOFF, seed: int = 0) -> NoveltyModel | None:
    """The density model of these labeled embeddings; None with fewer than MIN_SAMPLES.
    `counts`: what it was fitted on (e.g. site and bootstrap images), kept in the sidecar."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < MIN_SAMPLES:
        return None
    import sklearn

    model = new_model(len(vectors), vectors.shape[1], seed).fit(vectors)
    typical, spread = scale(log_density(model, vectors))
    return NoveltyModel(model, embedder_id, typical, spread, cutoff,
                        {"fitted_on": {**(counts or {}), "total": int(len(vectors))},
                         "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__}})


def log_density(model, vectors: np.ndarray) -> np.ndarray:
    """log p(x) up to a constant: the mixture over the PCA components plus the residual's
    isotropic Gaussian (variance: the PCA's noise_variance_, the mean of the left-out variances)."""
    pca, mixture = model[0], model[-1]
    vectors = np.asarray(vectors, dtype=np.float64)
    components = pca.transform(vectors)
    residual = ((vectors - pca.inverse_transform(components)) ** 2).sum(axis=1)
    return mixture.score_samples(components) - 0.5 * residual / max(float(pca.noise_variance_), 1e-12)


def scale(log_densities: np.ndarray) -> tuple[float, float]:
    """(median, median less the 1st percentile) of the labeled images' log-densities."""
    typical, low = np.percentile(log_densities, [50, 1])
    return float(typical), float(max(typical - low, 1e-9))


def save_novelty(novelty: NoveltyModel, path: Path) -> NoveltyModel:
    """Write `path` (.novelty.skops) and its .json sidecar; returns the model with its version."""
    novelty.version = save_skops(novelty.model, path, VERSION_PREFIX, lambda version: {
        "version": version, "embedder": novelty.embedder_id, "dim": int(novelty.model.n_features_in_),
        "typical": novelty.typical, "spread": novelty.spread, "cutoff": novelty.cutoff,
        "score": "(median - log_density) / (median - 1st percentile) of the labeled images' log-densities",
        **novelty.metadata,
    })
    novelty.path = Path(path)
    return novelty


def read_novelty_info(path: Path, cache_dir: Path | None = None) -> HeadInfo:
    """The sidecar, checked against the file's digest (cheap: no scikit-learn)."""
    return read_head_info(path, cache_dir, VERSION_PREFIX, "novelty model")


def load_novelty(path: Path | HeadInfo) -> NoveltyModel:
    """Load a novelty model with the head's safety, then check that it is one."""
    info = path if isinstance(path, HeadInfo) else read_novelty_info(path)
    model = load_skops(info.path)
    sidecar = info.sidecar
    numbers = {name: sidecar.get(name) for name in ("typical", "spread", "cutoff", "dim")}
    bad = [name for name, value in numbers.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value)]
    if bad or numbers["spread"] <= 0:
        raise HeadError(f"{info.path.with_suffix('.json')}: not a novelty sidecar ({', '.join(bad) or 'spread'}"
                        " missing or not a number)")
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from sklearn.pipeline import Pipeline

    steps = [type(step) for _, step in model.steps] if isinstance(model, Pipeline) else [type(model)]
    if steps != [PCA, GaussianMixture]:
        raise HeadError(f"{info.path}: holds a {type(model).__module__}.{type(model).__qualname__}"
                        f" ({', '.join(t.__name__ for t in steps)}), not a PCA and a GaussianMixture")
    features = getattr(model, "n_features_in_", None)
    if features != numbers["dim"]:
        raise HeadError(f"{info.path}: takes {features} features, not the {numbers['dim']} its sidecar names")
    metadata = {k: v for k, v in sidecar.items() if k not in ("version", "embedder", *numbers)}
    return NoveltyModel(model, info.embedder_id, float(numbers["typical"]), float(numbers["spread"]),
                        float(numbers["cutoff"]), metadata, info.version, info.path)
