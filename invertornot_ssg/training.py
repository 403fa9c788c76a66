"""Training the head: gather human labels (overrides files + bootstrap set), fit, cross-validate, save."""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ._lazy import np

from . import shipped
from .engine import Engine, ImageRequest, is_current
from .head import Head, save_head
from .images import STAT_NAMES, LoadedImage, image_stats, load_image
from .overrides import Overrides

SITE_WEIGHT = 5.0  # a site's own labels count more than the generic bootstrap set
EMBEDDING_COMPONENTS = 16  # PCA components of the embedding the forest sees (measured: 16, 32, 64 alike)
HUMAN_AUTO_METHODS = ("explicit", "front-matter")  # decisions a person made on the page itself
# Whether one label-keeping edit of each labeled image joins the training set. Held out by source
# on the bootstrap set it is no more accurate beyond noise (96.4% with, 96.2% without, clear-cut) and
# inverts more photographs (12 of 404 against 11; models/bootstrap/EVALUATION.md), the costlier
# error, so it is off by default.
AUGMENT_DEFAULT = False


@dataclass
class TrainingSet:
    sha1s: list[str] = field(default_factory=list)
    invert: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # source, for held-out-by-source validation
    vectors: list[np.ndarray] = field(default_factory=list)
    stats: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    # An augmented copy of a row (label-keeping edit): row index -> (vector, stats). Copies train
    # beside their original and are never in a test fold.
    augmented: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, sha1: str, invert: bool, group: str, vector: np.ndarray, stats: np.ndarray, weight: float) -> int:
        self.sha1s.append(sha1)
        self.invert.append(invert)
        self.groups.append(group)
        self.vectors.append(np.asarray(vector, dtype=np.float32))
        self.stats.append(np.asarray(stats, dtype=np.float32))
        self.weights.append(weight)
        return len(self.sha1s) - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.vstack(self.vectors), np.vstack(self.stats), np.array(self.invert, dtype=bool),
            np.array(self.groups), np.array(self.weights, dtype=np.float64),
        )

    def training_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """vectors, stats, labels and weights of these rows plus their augmented copies."""
        vectors, stats, y, _groups, weights = self.arrays()
        copies = [i for i in rows if i in self.augmented]
        if not copies:
            return vectors[rows], stats[rows], y[rows], weights[rows]
        return (
            np.vstack([vectors[rows], *(self.augmented[i][0][None] for i in copies)]),
            np.vstack([stats[rows], *(self.augmented[i][1][None] for i in copies)]),
            np.concatenate([y[rows], y[copies]]),
            np.concatenate([weights[rows], weights[copies]]),
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


def label_keeping_edit(image, rng: np.random.Generator):
    """One label-keeping edit of a composited RGB image: a flip, a quarter turn, a crop, or a small
    colour tint. None of them turns an image that should be inverted into one that should not."""
    from PIL import Image, ImageEnhance, ImageOps

    choice = rng.integers(4)
    if choice == 0:
        return ImageOps.mirror(image)
    if choice == 1:
        return image.rotate(90, expand=True)
    if choice == 2:
        w, h = image.size
        f = rng.uniform(0.75, 0.9)
        x, y = int(rng.uniform(0, w * (1 - f))), int(rng.uniform(0, h * (1 - f)))
        return image.crop((x, y, max(x + 1, x + int(w * f)), max(y + 1, y + int(h * f))))
    tint = Image.new("RGB", image.size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    return ImageEnhance.Brightness(Image.blend(image, tint, 0.08)).enhance(rng.uniform(0.95, 1.05))


def augmented_copies(engine: Engine, paths: Sequence[Path], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """(vector, stats) of one augmented copy of each image, decoded as the engine decodes it;
    None where the file cannot be read any more."""
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(paths)
    for start in range(0, len(paths), 64):  # a chunk of edited images in memory at a time
        edited = []
        for i in range(start, min(start + 64, len(paths))):
            loaded = load_image(paths[i], engine.background, max_side=engine.work_side)
            if isinstance(loaded, LoadedImage):
                image = label_keeping_edit(loaded.image, rng)
                # What was measured on the file (transparency, ink, native texture, soft alpha)
                # stays the original's: the edits keep what the file draws and its grain (a tint
                # moves them slightly). The file's size scaled as the decoded copy was cropped or turned.
                stats = image_stats(replace(loaded, image=image,
                                            width=round(loaded.width * image.width / loaded.image.width),
                                            height=round(loaded.height * image.height / loaded.image.height)))
                edited.append((i, image, stats))
        if edited:
            vectors = engine.load_embedder().embed([image for _, image, _ in edited])
            for (i, _, stats), vector in zip(edited, vectors):
                out[i] = (np.asarray(vector, dtype=np.float32), stats)
    return out


def gather(engine: Engine, overrides_files: Sequence[Path], bootstrap: bool, log: logging.Logger,
           augment: bool = AUGMENT_DEFAULT) -> TrainingSet:
    """The training set: site labels (embedded now if the store lacks them) plus the bootstrap set,
    each row with an augmented copy when `augment` (site images are edited and embedded now; the
    bootstrap set ships its copies)."""
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
    paths = {sha1: Path(p) for sha1, p in engine.store.paths_for(list(vectors)).items()}
    records = engine.current_records(list(vectors), paths)
    data = TrainingSet()
    site_rows = {}
    for sha1, vector in vectors.items():
        if sha1 in records and not is_current(records[sha1]):
            log.warning("label of image %s (%s) skipped: its statistics predate this version and its file is gone",
                        sha1[:10], labels[sha1][1])
        elif sha1 in records:
            site_rows[sha1] = data.add(sha1, labels[sha1][0], "site", vector, records[sha1].stats, SITE_WEIGHT)
    if augment and site_rows:
        found = [sha1 for sha1 in site_rows if sha1 in paths]
        for sha1, copy in zip(found, augmented_copies(engine, [paths[s] for s in found])):
            if copy is not None:
                data.augmented[site_rows[sha1]] = copy
    if bootstrap:
        boot = shipped.load_bootstrap_training(engine.embedder_id)
        if boot is None:
            log.warning("no bootstrap set ships for %s: training on the site's labels alone", engine.embedder_id)
        else:
            has_copies = augment and "augmented_vectors" in boot
            for j, sha1 in enumerate(boot["sha1"]):
                if sha1 not in labels:
                    row = data.add(sha1, bool(boot["invert"][j]), str(boot["source"][j]), boot["vectors"][j],
                                   boot["stats"][j], 1.0)
                    if has_copies:
                        data.augmented[row] = (boot["augmented_vectors"][j].astype(np.float32),
                                               boot["augmented_stats"][j].astype(np.float32))
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
             use_stats: bool = True, seed: int = 0) -> Head:
    model = new_model(embedding_dim if use_embedding else 0, n_samples, seed)
    return Head(model, embedder_id, use_embedding, tuple(STAT_NAMES) if use_stats else ())


def fit_head(data: TrainingSet, embedder_id: str, use_embedding: bool = True, use_stats: bool = True) -> Head:
    vectors, stats, y, weights = data.training_rows(np.arange(len(data)))
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
        v, s, labels, w = data.training_rows(train)
        head = new_head(embedder_id, vectors.shape[1], len(labels), use_embedding, use_stats)
        head.model.fit(head.features(v, s), labels, **_weights(head, w))
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
            log: logging.Logger, augment: bool = AUGMENT_DEFAULT) -> tuple[Head, dict]:
    """Gather, cross-validate, fit on everything, check training accuracy, save. Returns (head, report)."""
    import sklearn

    data = gather(engine, overrides_files, bootstrap, log, augment)
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
        "augmented_copies": len(data.augmented),
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
    path = Path(output or engine.site_head_path())
    save_head(head, path)
    report["novelty"] = save_novelty_beside(path, vectors, engine.embedder_id,
                                            {"site": report["site_samples"], "bootstrap": report["bootstrap_samples"]})
    return head, report


def save_novelty_beside(head_path: Path, vectors: np.ndarray, embedder_id: str, counts: dict[str, int]) -> dict | None:
    """Fit the novelty model (novelty.py) over the head's training embeddings and save it beside
    the head; None, and no file there, when there are too few labeled images for one."""
    from . import novelty

    path = novelty.novelty_path(head_path)
    model = novelty.fit_novelty(vectors, embedder_id, counts)
    if model is None:
        for stale in (path, path.with_suffix(".json")):  # an older one would pair with this head
            stale.unlink(missing_ok=True)
        return None
    novelty.save_novelty(model, path)
    return {"path": str(path), "version": model.version, "cutoff": model.cutoff, **model.metadata}


def report_lines(report: dict) -> list[str]:
    """What `retrain` prints (the CLI and the review page alike), before where the head went."""
    cv, train, site = report["cv"], report["training"], report["training_site"]
    return [
        f"samples: {report['samples']} ({report['site_samples']} from the site, "
        f"{report['bootstrap_samples']} bootstrap; {report['augmented_copies']} augmented copies)",
        f"cross-validated ({cv['scheme']}): accuracy {_pct(cv['accuracy'])}, "
        f"recall invert {_pct(cv['recall_invert'])}, recall keep {_pct(cv['recall_keep'])}",
        f"training accuracy: {_pct(train['accuracy'])} (site labels: {_pct(site['accuracy'])})",
        _novelty_line(report.get("novelty")),
    ]


def _novelty_line(novelty: dict | None) -> str:
    if novelty is None:
        from .novelty import MIN_SAMPLES

        return f"novelty: no model (fewer than {MIN_SAMPLES} labeled images); the head decides every image it is sure of"
    return (f"novelty: model {novelty['version']} over {novelty['fitted_on']['total']} labeled images; "
            f"images scoring above {novelty['cutoff']:g} take the unsure path")


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.1%}"
