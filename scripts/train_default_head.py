#!/usr/bin/env python3
"""Embed the bootstrap set, evaluate held out by source, measure the fallback thresholds,
then train and ship the default head.

    python scripts/bootstrap/build_set.py          # the images, into .cache/bootstrap/
    python scripts/train_default_head.py           # this script

Writes models/head-efficientnet-lite0.skops (+ .json), its novelty model beside it
(head-...novelty.skops + .json, invertornot_ssg/novelty.py), models/bootstrap-efficientnet-lite0.npz
(embeddings + labels, keyed by the sha1 column of models/bootstrap/manifest.csv) and
models/bootstrap/EVALUATION.md (the figures the README quotes).

    python scripts/train_default_head.py --novelty-only   # only the novelty model, from the shipped .npz
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from invertornot_ssg import shipped  # noqa: E402
from invertornot_ssg.decisions import TONE_STATS, Thresholds  # noqa: E402
from invertornot_ssg.embedders import embedder_id, get_embedder, id_slug  # noqa: E402
from invertornot_ssg.engine import Engine  # noqa: E402
from invertornot_ssg.evaluation import SATURATION_BASELINE, confusion  # noqa: E402
from invertornot_ssg.head import Head, save_head  # noqa: E402
from invertornot_ssg.images import STAT_NAMES, file_sha1, load_image, perceptual_hash, phash_distance  # noqa: E402
from invertornot_ssg.settings import Settings  # noqa: E402
from invertornot_ssg.training import EMBEDDING_COMPONENTS, augmented_copies, new_head  # noqa: E402

EMBEDDER = "efficientnet-lite0"
EMBEDDER_ID = embedder_id(EMBEDDER)  # the model and the preparation of its input (embedders.PREPARATION)
PHOTO_CATEGORIES = {"photo", "person", "painting", "art"}
FOLDS = 5  # GroupKFold over sources for the held-out table
log = logging.getLogger("train_default_head")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=REPO / ".cache" / "bootstrap", help="images from build_set.py")
    ap.add_argument("--store", type=Path, default=REPO / ".cache" / "bootstrap-store", help="embedding store")
    ap.add_argument("--manifest", type=Path, default=REPO / "models" / "bootstrap" / "manifest.csv")
    ap.add_argument("--folds", type=int, default=FOLDS)
    ap.add_argument("--no-save", action="store_true", help="evaluate only")
    ap.add_argument("--novelty-only", action="store_true",
                    help="fit and save only the novelty model, over the shipped bootstrap .npz (no images needed)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.time()
    if args.novelty_only:
        boot = shipped.load_bootstrap_training(EMBEDDER_ID)
        save_default_novelty(boot["vectors"].astype(np.float32))
        return 0

    data = load_set(args)
    report = [f"# Bootstrap evaluation ({EMBEDDER_ID})", "",
              "Reproduce: `python scripts/train_default_head.py` (after `python scripts/bootstrap/build_set.py`).", "",
              f"{len(data['y'])} images from {len(set(data['groups']))} sources; "
              f"{int(data['y'].sum())} invert, {int((~data['y']).sum())} keep; "
              f"{int(data['debatable'].sum())} marked debatable.", ""]

    lead = len(report)  # the shipped configuration's figures go here, once the set is saved
    aug = augmented(args, data)
    report += heldout_table(data, aug, args.folds)
    report += knn_table(data)
    report += near_duplicate_table(args, data)

    if not args.no_save:
        use_aug = CHOSEN["augment"]
        head = train_final(data, aug if use_aug else None)
        models = REPO / "models"
        save_head(head, shipped.default_head_path(EMBEDDER_ID))
        save_default_novelty(data["V"])
        shipped.save_bootstrap(shipped.bootstrap_path(EMBEDDER_ID), data["sha1s"], data["y"], data["groups"],
                               data["V"], data["S"], data["phash"], aug["V"], aug["S"])
        report += ["", f"Shipped head `{head.version}`: features {CHOSEN['features']}, augmentation "
                   f"{'on' if use_aug else 'off'}, trained on all {len(data['y'])} images.",
                   f"Files: {shipped.default_head_path(EMBEDDER_ID).relative_to(REPO)}, "
                   f"{shipped.bootstrap_path(EMBEDDER_ID).relative_to(REPO)}."]
        log.info("saved %s", models)
    # What a build decides, held out by source, leads (explore_heldout.py shipped, on the saved set).
    import explore_heldout  # beside this script

    report[lead:lead] = explore_heldout.shipped_report(explore_heldout.load())
    (REPO / "models" / "bootstrap" / "EVALUATION.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    log.info("done in %.0f s", time.time() - started)
    return 0


# -- the set -------------------------------------------------------------------------------------

def load_set(args) -> dict:
    rows = list(csv.DictReader(args.manifest.open(encoding="utf-8")))
    engine = Engine(Settings(store=str(args.store), overrides="", model=EMBEDDER), REPO, logger=log)
    absent = [row for row in rows if not (args.cache / row["file"]).is_file()]
    if len(absent) > len(rows) // 20:
        raise SystemExit(f"{len(absent)} images missing under {args.cache} (first: {absent[0]['file']}); "
                         "run scripts/bootstrap/build_set.py first")
    for row in absent:  # a package version that no longer ships a file: the rest still trains
        log.warning("missing, left out: %s", row["file"])
    rows = [row for row in rows if row not in absent]
    paths = [args.cache / row["file"] for row in rows]
    # The shipped .npz is keyed by sha1 beside the manifest's labels: images whose bytes differ from
    # their manifest row (a rebuild from other package versions) would ship under sha1s it lacks.
    changed = [row["file"] for row, path in zip(rows, paths) if file_sha1(path) != row["sha1"]]
    if changed:
        raise SystemExit(f"{len(changed)} images under {args.cache} differ from {args.manifest} (first: {changed[0]}): "
                         "they come from another build; run scripts/bootstrap/build_set.py, which rewrites both")
    log.info("embedding %d images (cached in %s)", len(paths), args.store)
    identified = engine.ensure_embedded(paths)
    keep_rows = [(row, identified[p][0]) for row, p in zip(rows, paths) if identified[p][0] and not identified[p][1]]
    for row, p in zip(rows, paths):
        if identified[p][1]:
            log.warning("skipped %s: %s", row["file"], identified[p][1])
    sha1s = [sha1 for _, sha1 in keep_rows]
    vectors = engine.store.get_vectors(EMBEDDER_ID, sha1s)
    records = engine.current_records(sha1s, {sha1: args.cache / row["file"] for row, sha1 in keep_rows})
    return {
        "rows": [row for row, _ in keep_rows],
        "paths": [args.cache / row["file"] for row, _ in keep_rows],
        "sha1s": sha1s,
        "V": np.vstack([vectors[s] for s in sha1s]).astype(np.float32),
        "S": np.vstack([records[s].stats for s in sha1s]).astype(np.float32),
        "phash": [records[s].phash for s in sha1s],
        "y": np.array([row["label"] == "invert" for row, _ in keep_rows]),
        "groups": np.array([row["source"] for row, _ in keep_rows]),
        "debatable": np.array([row["debatable"] == "1" for row, _ in keep_rows]),
        "category": np.array([row["category"] for row, _ in keep_rows]),
        "photo": np.array([row["category"] in PHOTO_CATEGORIES for row, _ in keep_rows]),
        "engine": engine,
    }


def augmented(args, data) -> dict:
    """One augmented copy per image (embedding + statistics), cached beside the store."""
    cache = args.store / f"augmented-{id_slug(EMBEDDER_ID)}-{len(data['sha1s'])}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            if list(z["sha1"]) == data["sha1s"] and z["S"].shape[1] == data["S"].shape[1]:
                return {"V": z["V"], "S": z["S"]}
    log.info("embedding one augmented copy of each image")
    copies = augmented_copies(data["engine"], data["paths"])
    missing = [str(data["paths"][i]) for i, c in enumerate(copies) if c is None]
    if missing:
        raise SystemExit(f"cannot read {len(missing)} images for augmentation (first: {missing[0]})")
    out = {"V": np.vstack([c[0] for c in copies]).astype(np.float32),
           "S": np.vstack([c[1] for c in copies]).astype(np.float32)}
    np.savez(cache, sha1=np.array(data["sha1s"]), **out)
    return out


# -- held out by source --------------------------------------------------------------------------

# The shipped head takes what `retrain` trains a site's head on (the embedding and the statistics),
# so that a site's own labels change the data, not the kind of model; the stats-only and
# embedding-only rows are there to show what each part brings. Augmentation is the choice left.
CHOSEN = {"features": "embedding+stats", "augment": False}
# Augmentation must beat the head without it by this much, and invert no more photographs:
# changing the forest's seed or a hyperparameter moves held-out accuracy by about half a point.
MARGIN = 0.005
FEATURES = {"stats": (False, True), "embedding": (True, False), "embedding+stats": (True, True)}


def heldout_predictions(data, aug, features, use_aug, folds, seed=0) -> np.ndarray:
    from sklearn.model_selection import GroupKFold

    use_emb, use_stats = FEATURES[features]
    p = np.zeros(len(data["y"]))
    for train, test in GroupKFold(n_splits=folds).split(data["V"], data["y"], data["groups"]):
        V, S, y = data["V"][train], data["S"][train], data["y"][train]
        if use_aug:
            V, S, y = np.vstack([V, aug["V"][train]]), np.vstack([S, aug["S"][train]]), np.concatenate([y, y])
        head = new_head(EMBEDDER_ID, V.shape[1], len(y), use_emb, use_stats, seed)
        head.model.fit(head.features(V, S), y)
        p[test] = head.p_invert(data["V"][test], data["S"][test])
    return p


def row_figures(data, predicted: np.ndarray) -> list[str]:
    y, clear = data["y"], ~data["debatable"]
    photos = data["photo"]
    people = data["category"] == "person"
    all_ = confusion(y, predicted)
    return [f"{all_['accuracy']:.1%}", f"{confusion(y[clear], predicted[clear])['accuracy']:.1%}",
            f"{all_['recall_invert']:.1%}", f"{all_['recall_keep']:.1%}",
            f"{predicted[photos].mean():.1%} ({int(predicted[photos].sum())}/{int(photos.sum())})",
            f"{int(predicted[people].sum())}/{int(people.sum())}"]


def heldout_table(data, aug, folds) -> list[str]:
    th = Thresholds()
    lines = ["## Held out by source", "",
             f"GroupKFold({folds}) over sources: no source is in both the training and the test fold. "
             "Decision at p_invert >= 0.5 (the head alone, no kNN or defaults). The embedding enters the "
             f"forest as {EMBEDDING_COMPONENTS} PCA components beside the {len(STAT_NAMES)} image statistics "
             f"({', '.join(STAT_NAMES)}).", "",
             "| method | accuracy | accuracy, clear-cut | recall invert | recall keep | photos inverted | people inverted |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    saturation = data["S"][:, list(STAT_NAMES).index("mean_saturation")]
    lines.append("| saturation <= 0.09 (baseline) | " + " | ".join(row_figures(data, saturation <= SATURATION_BASELINE)) + " |")
    best = None
    for features in FEATURES:
        for use_aug in (False, True):
            if use_aug and features != "embedding+stats":
                continue
            p = heldout_predictions(data, aug, features, use_aug, folds)
            acc = ((p >= 0.5) == data["y"]).mean()
            name = f"head: {features}" + (" + augmentation" if use_aug else "")
            lines.append(f"| {name} | " + " | ".join(row_figures(data, p >= 0.5)) + " |")
            log.info("%s: %.3f", name, acc)
            if features != CHOSEN["features"]:
                continue
            photos_inverted = int((p[data["photo"]] >= 0.5).sum())
            # An inverted photograph is the costly error (docs/src/labeling.md: prefer keep), so a row that
            # inverts more of them is not chosen for accuracy alone.
            if best is None or (acc > best[0] + MARGIN and photos_inverted <= best[3]):
                best = (acc, use_aug, p, photos_inverted)
    _, CHOSEN["augment"], p, _ = best
    # With the product's unsure band: unsure images go to kNN/keep, which only ever errs towards keep.
    sure = np.abs(p - th.threshold) >= th.unsure
    decided = np.where(sure, p >= th.threshold, False)
    lines += ["", f"Chosen: {CHOSEN['features']}, augmentation {'on' if CHOSEN['augment'] else 'off'}. "
              f"With the default unsure band ({th.unsure} around {th.threshold}) and unsure images kept: "
              f"{sure.mean():.1%} decided by the head; overall " + ", ".join(
                  f"{k} {v}" for k, v in zip(("accuracy", "clear-cut", "recall invert", "recall keep",
                                               "photos inverted", "people inverted"), row_figures(data, decided))),
              ""]
    lines += [seed_spread(data, aug, folds, p), ""]
    wrong = np.where((p >= 0.5) != data["y"])[0]
    by_source = Counter(data["groups"][i] for i in wrong)
    lines += ["Errors by source (held out): " + ", ".join(f"{s} {n}" for s, n in by_source.most_common(12)), ""]
    return lines


def seed_spread(data, aug, folds, p_seed0, seeds=4) -> str:
    """The chosen head's clear-cut accuracy and photographs inverted under other forest seeds: the
    noise that any difference between the rows above must clear."""
    clear, photos, people = ~data["debatable"], data["photo"], data["category"] == "person"
    runs = [p_seed0] + [heldout_predictions(data, aug, CHOSEN["features"], CHOSEN["augment"], folds, seed)
                        for seed in range(1, seeds)]
    accuracy = [((p >= 0.5) == data["y"])[clear].mean() for p in runs]
    inverted = [int((p[photos] >= 0.5).sum()) for p in runs]
    th = Thresholds()
    band = th.threshold + th.unsure  # what the product inverts: sure and above the threshold
    inverted_band = [f"{int((p[photos] >= band).sum())} ({int((p[people] >= band).sum())} people)" for p in runs]
    return (f"Forest seeds 0-{seeds - 1} for the chosen head: clear-cut accuracy "
            + ", ".join(f"{a:.1%}" for a in accuracy) + f" (mean {np.mean(accuracy):.1%}); photos inverted at "
            "p >= 0.5: " + ", ".join(map(str, inverted)) + f" of {int(photos.sum())}; with the unsure band: "
            + ", ".join(inverted_band) + ".")


# -- fallback thresholds -------------------------------------------------------------------------

def knn_table(data) -> list[str]:
    """Leave-source-out kNN, the calibrated vote as shipped (decisions.knn_vote, its prior) by k and
    edge cosine: neighbours come only from other sources; it votes where its p is outside the band."""
    from dataclasses import replace

    from invertornot_ssg.decisions import knn_vote

    V, y, groups, th = data["V"], data["y"], data["groups"], Thresholds()
    sims = V @ V.T
    sims[groups[:, None] == groups[None, :]] = -1.0
    order = np.argsort(-sims, axis=1)[:, :25]
    lines = ["## kNN fallback (neighbours from other sources only)", "",
             f"The calibrated vote (prior {th.knn_prior:g}; shipped: k {th.knn_k}, min cosine {th.knn_min_cosine}); "
             "coverage: images where its p is outside the unsure band.", "",
             "| k | min cosine | coverage | accuracy where it votes |", "| --- | --- | --- | --- |"]
    for k in (3, 7, 15):
        for min_cos in (0.3, 0.4, 0.5, 0.6, 0.7):
            t = replace(th, knn_k=k, knn_min_cosine=min_cos)
            nb = order[:, :k]
            near = np.take_along_axis(sims, nb, axis=1)
            p = np.array([np.nan if (v := knn_vote(s, r, y, t)) is None else v for s, r in zip(near, nb)])
            covered = np.abs(p - th.threshold) >= th.unsure  # NaN (no vote) compares False
            acc = ((p[covered] >= 0.5) == y[covered]).mean() if covered.any() else float("nan")
            lines.append(f"| {k} | {min_cos} | {covered.mean():.1%} | {acc:.1%} |")
    return lines + [""]


def near_duplicate_table(args, data) -> list[str]:
    """How close label-keeping edits stay to their original, against the closest *other* image."""
    rng = np.random.default_rng(1)
    sample = rng.choice(len(data["y"]), size=min(300, len(data["y"])), replace=False)
    embedder = get_embedder(EMBEDDER)
    edits = {
        "resize 50%": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2))),
        "JPEG q=60": lambda im: Image.open(_jpeg(im)).convert("RGB"),
        "crop 90%": lambda im: im.crop((im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)),
    }
    edit_cos, edit_ph = [], []
    for name, edit in edits.items():
        # Edit the image at (up to) 4x the decode size, then fit it as the engine decodes any file:
        # a copy resized or recompressed at full size looks like this to the engine.
        side = data["engine"].work_side  # the size the engine decodes any file to
        images = [_fit(edit(load_image(data["paths"][i], max_side=4 * side).image), side) for i in sample]
        vecs = embedder.embed(images)
        edit_cos += list((vecs * data["V"][sample]).sum(1))
        edit_ph += [phash_distance(perceptual_hash(im), data["phash"][i]) for im, i in zip(images, sample)]
    edit_cos, edit_ph = np.array(edit_cos), np.array(edit_ph)
    # The closest other image (different sha1) for every image: what a false match would be.
    sims = data["V"] @ data["V"].T
    np.fill_diagonal(sims, -1)
    nearest = sims.argmax(1)
    other_cos = sims[np.arange(len(nearest)), nearest]
    other_ph = np.array([phash_distance(data["phash"][i], data["phash"][j]) for i, j in enumerate(nearest)])
    same_label = data["y"] == data["y"][nearest]
    th = Thresholds()
    tones = [STAT_NAMES.index(name) for name in TONE_STATS]
    other_tones = np.abs(data["S"][:, tones] - data["S"][nearest][:, tones]).max(1) <= th.near_duplicate_tones
    lines = ["## Near-duplicate label reuse", "",
             "Edits (resize 50%, JPEG q=60, crop 90%, made at up to 4x the decode size) of 300 images against their original; false matches are "
             "each image's closest *other* image in the set passing both thresholds; the shipped rule also "
             f"wants every tone statistic within {th.near_duplicate_tones} (decisions.TONE_STATS; true and sibling "
             "pairs: scripts/neardup_pairs.py).", "",
             "| cosine >= | phash <= | edits matched | other images matched | of those, same label | of those, same tones |",
             "| --- | --- | --- | --- | --- | --- |"]
    for cos in (0.85, 0.9, 0.93, 0.95, 0.97):
        for ph in (6, 10, 14):
            hit = (edit_cos >= cos) & (edit_ph <= ph)
            false = (other_cos >= cos) & (other_ph <= ph)
            agree = f"{same_label[false].mean():.0%}" if false.any() else "-"
            lines.append(f"| {cos} | {ph} | {hit.mean():.1%} | {int(false.sum())} | {agree} | {int((false & other_tones).sum())} |")
    return lines + [""]


def _fit(im: Image.Image, side: int) -> Image.Image:
    im = im.copy()
    im.thumbnail((side, side), Image.Resampling.BICUBIC)
    return im


def _jpeg(im: Image.Image) -> io.BytesIO:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=60)
    buf.seek(0)
    return buf


def save_default_novelty(vectors: np.ndarray) -> None:
    """The novelty model over the bootstrap set's embeddings, beside the default head (what
    `retrain` fits beside a site's head; cut-off chosen by `scripts/explore_heldout.py novelty`)."""
    from invertornot_ssg.novelty import fit_novelty, novelty_path, save_novelty

    path = novelty_path(shipped.default_head_path(EMBEDDER_ID))
    model = save_novelty(fit_novelty(vectors, EMBEDDER_ID, {"site": 0, "bootstrap": len(vectors)}), path)
    log.info("saved novelty model %s (cut-off %g) to %s", model.version, model.cutoff, path)


def train_final(data, aug) -> Head:
    import sklearn

    use_emb, use_stats = FEATURES[CHOSEN["features"]]
    V, S, y = data["V"], data["S"], data["y"]
    if aug is not None:
        V, S, y = np.vstack([V, aug["V"]]), np.vstack([S, aug["S"]]), np.concatenate([y, y])
    head = new_head(EMBEDDER_ID, V.shape[1], len(y), use_emb, use_stats)
    head.model.fit(head.features(V, S), y)
    train_acc = ((head.p_invert(data["V"], data["S"]) >= 0.5) == data["y"]).mean()
    head.metadata = {"samples": int(len(data["y"])), "training": {"accuracy": float(train_acc)},
                     "trained_on": "bootstrap set (models/bootstrap/manifest.csv)",
                     "augmentation": aug is not None,
                     "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__}}
    log.info("training accuracy %.4f", train_acc)
    return head


if __name__ == "__main__":
    sys.exit(main())
