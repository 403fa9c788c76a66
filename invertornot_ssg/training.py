"""Training the head: gather human labels (overrides files + bootstrap set), fit, cross-validate, save."""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import shipped
from .engine import Engine, ImageRequest
from .head import Head, save_head
from .images import STAT_NAMES
from .overrides import Overrides

SITE_WEIGHT = 5.0
EMBEDDING_COMPONENTS = 16  # PCA components of the embedding the forest sees (measured: 16, 32, 64 alike)  # a site's own labels count more than the generic bootstrap set
HUMAN_AUTO_METHODS = ("explicit", "front-matter")  # decisions a person made on the page itself


@dataclass
class TrainingSet:
    sha1s: list[str] = field(default_factory=list)
    invert: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # source, for held-out-by-source validation
    vectors: list[np.ndarray] = field(default_factory=list)
    stats: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    def add(self, sha1: str, invert: bool, group: str, vector: np.ndarray, stats: np.ndarray, weight: float) -> None:
        self.sha1s.append(sha1)
        self.invert.append(invert)
        self.groups.append(group)
        self.vectors.append(np.asarray(vector, dtype=np.float32))
        self.stats.append(np.asarray(stats, dtype=np.float32))
        self.weights.append(weight)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.vstack(self.vectors), np.vstack(self.stats), np.array(self.invert, dtype=bool),
            np.array(self.groups), np.array(self.weights, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.sha1s)


def site_labels(overrides_files: Sequence[Path]) -> dict[str, tuple[bool, str]]:
    """sha1 -> (invert, overrides file) for every image a person labeled; keep wins on disagreement."""
    labels: dict[str, tuple[bool, str]] = {}
    for path in overrides_files:
        overrides = Overrides.load(path)
        found: list[tuple[str, str]] = [(sha1, label) for label, sha1 in overrides.human_labels().values() if sha1]
        for entry in overrides.entries.values():
            auto = entry.auto or {}
            if entry.label is None and entry.sha1 and auto.get("method") in HUMAN_AUTO_METHODS:
                found.append((entry.sha1, "invert" if auto.get("invert") else "keep"))
        for sha1, label in found:
            invert = label == "invert"
            if sha1 in labels:
                invert = invert and labels[sha1][0]
            labels[sha1] = (invert, str(path))
    return labels


def gather(engine: Engine, overrides_files: Sequence[Path], bootstrap: bool, log: logging.Logger) -> TrainingSet:
    """The training set: site labels (embedded now if the store lacks them) plus the bootstrap set."""
    labels = site_labels(overrides_files)
    vectors = engine.store.get_vectors(engine.embedder_id, list(labels))
    lacking = [sha1 for sha1 in labels if sha1 not in vectors]
    if lacking:
        paths = engine.store.paths_for(lacking)
        requests = [ImageRequest(Path(paths[s]), paths[s]) for s in lacking if s in paths]
        if requests:
            engine.classify(requests)  # embeds and describes them in the store
            vectors.update(engine.store.get_vectors(engine.embedder_id, lacking))
        for sha1 in lacking:
            if sha1 not in vectors:
                log.warning("label of image %s (%s) skipped: the store has never seen its file; build the site first",
                            sha1[:10], labels[sha1][1])
    records = engine.store.get_images(list(vectors))
    data = TrainingSet()
    for sha1, vector in vectors.items():
        if sha1 in records:
            data.add(sha1, labels[sha1][0], "site", vector, records[sha1].stats, SITE_WEIGHT)
    if bootstrap:
        boot = shipped.load_bootstrap_training(engine.embedder_id)
        if boot is None:
            log.warning("no bootstrap set ships for %s: training on the site's labels alone", engine.embedder_id)
        else:
            for j, sha1 in enumerate(boot["sha1"]):
                if sha1 not in labels:
                    data.add(sha1, bool(boot["invert"][j]), str(boot["source"][j]), boot["vectors"][j],
                             boot["stats"][j], 1.0)
    return data


def new_model(embedding_dim: int = 0, n_samples: int = 1_000_000, seed: int = 0):
    """The head's estimator. With an embedding, PCA squeezes it to a few components beside the
    statistics: a forest over 1,280 raw dimensions rarely splits on the statistics and did worse
    held out by source than either part alone (see models/bootstrap/EVALUATION.md)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    # Balanced class weights: a site is often mostly one kind of image.
    forest = RandomForestClassifier(
        n_estimators=300, class_weight="balanced_subsample", min_samples_leaf=1, n_jobs=-1, random_state=seed
    )
    if not embedding_dim:
        return forest
    squeeze = ColumnTransformer(
        [("embedding", PCA(min(EMBEDDING_COMPONENTS, n_samples, embedding_dim), random_state=seed),
          slice(0, embedding_dim))],
        remainder="passthrough",
    )
    return make_pipeline(squeeze, forest)


def new_head(embedder_id: str, embedding_dim: int, n_samples: int, use_embedding: bool = True,
             use_stats: bool = True) -> Head:
    model = new_model(embedding_dim if use_embedding else 0, n_samples)
    return Head(model, embedder_id, use_embedding, tuple(STAT_NAMES) if use_stats else ())


def fit_head(data: TrainingSet, embedder_id: str, use_embedding: bool = True, use_stats: bool = True) -> Head:
    vectors, stats, y, _groups, weights = data.arrays()
    head = new_head(embedder_id, vectors.shape[1], len(y), use_embedding, use_stats)
    head.model.fit(head.features(vectors, stats), y, **_weights(head, weights))
    return head


def _weights(head: Head, weights: np.ndarray) -> dict:
    """sample_weight goes to the forest, which is the last step when the model is a pipeline."""
    name = head.model.steps[-1][0] + "__sample_weight" if hasattr(head.model, "steps") else "sample_weight"
    return {name: weights}


def cross_validate(data: TrainingSet, embedder_id: str, folds: int = 5, use_embedding=True, use_stats=True) -> dict:
    """Accuracy and recall per class on folds held out by source group (random folds if one group)."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    vectors, stats, y, groups, weights = data.arrays()
    n_groups = len(set(groups))
    if n_groups >= folds:
        splits = GroupKFold(n_splits=folds).split(vectors, y, groups)
        scheme = f"{folds} folds held out by source ({n_groups} sources)"
    else:
        k = max(2, min(folds, int(min(y.sum(), (~y).sum()))))
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=0).split(vectors, y)
        scheme = f"{k} stratified random folds"
    predicted = np.zeros_like(y)
    for train, test in splits:
        head = new_head(embedder_id, vectors.shape[1], len(train), use_embedding, use_stats)
        head.model.fit(head.features(vectors[train], stats[train]), y[train], **_weights(head, weights[train]))
        predicted[test] = head.p_invert(vectors[test], stats[test]) >= 0.5
    return {"scheme": scheme, **scores(y, predicted)}


def scores(y: np.ndarray, predicted: np.ndarray) -> dict:
    y, predicted = np.asarray(y, dtype=bool), np.asarray(predicted, dtype=bool)
    return {
        "accuracy": float((y == predicted).mean()) if len(y) else float("nan"),
        "recall_invert": float(predicted[y].mean()) if y.any() else float("nan"),
        "recall_keep": float((~predicted[~y]).mean()) if (~y).any() else float("nan"),
        "n": int(len(y)),
    }


def retrain(engine: Engine, overrides_files: Sequence[Path], bootstrap: bool, output: Path | None,
            log: logging.Logger) -> tuple[Head, dict]:
    """Gather, cross-validate, fit on everything, check training accuracy, save. Returns (head, report)."""
    import sklearn

    data = gather(engine, overrides_files, bootstrap, log)
    vectors, stats, y, groups, _ = data.arrays() if len(data) else (None,) * 5
    if len(data) < 4 or y.all() or not y.any():
        from .errors import InvertOrNotError

        raise InvertOrNotError(
            f"retrain needs labeled images of both kinds; found {len(data)} "
            f"({int(y.sum()) if len(data) else 0} invert). Label images in the overrides file (label: invert|keep)."
        )
    cv = cross_validate(data, engine.embedder_id)
    head = fit_head(data, engine.embedder_id)
    training = scores(y, head.p_invert(vectors, stats) >= 0.5)
    site_mask = groups == "site"
    report = {
        "samples": len(data),
        "site_samples": int(site_mask.sum()),
        "bootstrap_samples": int((~site_mask).sum()),
        "cv": cv,
        "training": training,
        "training_site": scores(y[site_mask], head.p_invert(vectors[site_mask], stats[site_mask]) >= 0.5),
    }
    head.metadata = {
        **report,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "overrides": [str(p) for p in overrides_files],
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
    }
    save_head(head, output or engine.site_head_path())
    return head, report
