#!/usr/bin/env python3
"""Held-out experiments on the shipped bootstrap set: the README's "things tried" that need no
rebuild of the images, only models/bootstrap-efficientnet-lite0.prep2.npz and the manifest.

    python scripts/explore_heldout.py forest      # forest settings, four seeds (~3 min)
    python scripts/explore_heldout.py ensemble    # forest averaged with boosting and an SVM (~3 min)
    python scripts/explore_heldout.py sources     # a random share of the sources per training fold (~2 min)
    python scripts/explore_heldout.py weights     # debatable images weighted less in training (~2 min)
    python scripts/explore_heldout.py debatable   # the issue's wider "debatable" (seconds)
    python scripts/explore_heldout.py splits [--baseline OLD_MANIFEST]  # random splits by source (~4 min)
    python scripts/explore_heldout.py knn         # the kNN vote's prior and edge, before/after (~1 min)
    python scripts/explore_heldout.py shipped [--write]  # the shipped configuration's figures (~6 min)
    python scripts/explore_heldout.py band        # the unsure band narrowed where no photograph can be (~2 min)
    python scripts/explore_heldout.py neardup     # near-duplicate pairs across sources and their labels (~1 min)
    python scripts/explore_heldout.py novelty     # the novelty cut-off: what it catches and costs (~2 min)

Same folds as train_default_head.py (GroupKFold(5) over sources), decision at p >= 0.5; clear-cut
accuracy leaves out the manifest's debatable images. Nothing here is shipped.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from invertornot_ssg.embedders import id_slug  # noqa: E402
from invertornot_ssg.images import STAT_NAMES  # noqa: E402
from invertornot_ssg.training import new_model  # noqa: E402
from train_default_head import EMBEDDER_ID, FOLDS, PHOTO_CATEGORIES  # noqa: E402  (beside this script)

SEEDS = range(4)


def load() -> dict:
    rows = {row["sha1"]: row for row in csv.DictReader((REPO / "models/bootstrap/manifest.csv").open(encoding="utf-8"))}
    with np.load(REPO / "models" / f"bootstrap-{id_slug(EMBEDDER_ID)}.npz") as z:
        manifest = [rows[sha1] for sha1 in z["sha1"]]
        vectors, stats = z["vectors"].astype(np.float32), z["stats"]
        return {"X": np.hstack([vectors, stats]), "dim": vectors.shape[1], "stats": stats, "y": z["invert"],
                "groups": z["source"], "sha1": z["sha1"], "phash": z["phash"],
                "debatable": np.array([row["debatable"] == "1" for row in manifest]),
                "category": np.array([row["category"] for row in manifest])}


def heldout(data, make_model, seed: int, sources_kept: float = 1.0, debatable_weight: float = 1.0,
            folds=None) -> np.ndarray:
    """p_invert of every image from a model that never saw its source (optionally trained on a
    random share of the other sources, or with the debatable images weighted less). The folds are
    the table's GroupKFold(5) unless given."""
    from sklearn.model_selection import GroupKFold

    X, y, groups = data["X"], data["y"], data["groups"]
    rng, p = np.random.default_rng(seed), np.zeros(len(y))
    folds = folds if folds is not None else GroupKFold(n_splits=FOLDS).split(X, y, groups)
    for train, test in folds:
        if sources_kept < 1.0:
            sources = np.unique(groups[train])
            kept = rng.choice(sources, max(1, round(sources_kept * len(sources))), replace=False)
            train = train[np.isin(groups[train], kept)]
        model = make_model(seed)
        if debatable_weight == 1.0:
            model.fit(X[train], y[train])
        else:
            weights = np.where(data["debatable"][train], debatable_weight, 1.0)
            model.fit(X[train], y[train], randomforestclassifier__sample_weight=weights)
        p[test] = model.predict_proba(X[test])[:, 1]
    return p


def clear_cut(data, p: np.ndarray, debatable=None) -> float:
    clear = ~(data["debatable"] if debatable is None else debatable)
    return float(((p >= 0.5) == data["y"])[clear].mean())


def photos_inverted(data, p: np.ndarray) -> int:
    return int((p[np.isin(data["category"], list(PHOTO_CATEGORIES))] >= 0.5).sum())


def report(name: str, data, runs: list[np.ndarray]) -> None:
    accuracy = [clear_cut(data, p) for p in runs]
    print(f"{name}: clear-cut {np.mean(accuracy):.2%} (" + ", ".join(f"{a:.2%}" for a in accuracy)
          + "); photographs inverted " + ", ".join(str(photos_inverted(data, p)) for p in runs), flush=True)


def shipped_model(data, **forest):
    """The shipped head's estimator (training.new_model), with forest settings changed."""
    def make(seed):
        model = new_model(data["dim"], 1_000_000, seed)
        model.set_params(**{f"randomforestclassifier__{k}": v for k, v in forest.items()})
        return model
    return make


def squeezed(data, estimator):
    """Another estimator in the forest's place, on the shipped head's features (training.new_model's
    PCA components of the embedding beside the statistics)."""
    return lambda seed: new_model(data["dim"], 1_000_000, seed).set_params(randomforestclassifier=estimator(seed))


def forest(data) -> None:
    for name, settings in [("shipped (300 trees, gini, balanced_subsample)", {}), ("1,000 trees", {"n_estimators": 1000}),
                           ("entropy", {"criterion": "entropy"}), ("class_weight=balanced", {"class_weight": "balanced"})]:
        report(name, data, [heldout(data, shipped_model(data, **settings), seed) for seed in SEEDS])


def ensemble(data) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    models = {
        "forest": shipped_model(data),
        "boosting": squeezed(data, lambda seed: HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.05, class_weight="balanced", random_state=seed)),
        "svm": squeezed(data, lambda seed: make_pipeline(StandardScaler(), CalibratedClassifierCV(
            SVC(C=3, class_weight="balanced", random_state=seed), ensemble=False))),
    }
    runs = {name: [heldout(data, make, seed) for seed in SEEDS[:2]] for name, make in models.items()}
    for name, p in runs.items():
        report(name, data, p)
    report("mean of the three", data, [np.mean([runs[n][i] for n in runs], axis=0) for i in range(len(SEEDS[:2]))])


def sources(data) -> None:
    for share in (0.25, 0.5, 0.75, 1.0):
        report(f"{share:.0%} of the other sources", data,
               [heldout(data, shipped_model(data), seed, share) for seed in range(3)])


def weights(data) -> None:
    """Debatable images ("both answers look acceptable") weighted less in training."""
    for weight in (1.0, 0.5, 0.0):
        runs = [heldout(data, shipped_model(data), seed, debatable_weight=weight) for seed in SEEDS]
        overall = np.mean([((p >= 0.5) == data["y"]).mean() for p in runs])
        report(f"debatable images weighted {weight:g} (overall {overall:.2%})", data, runs)


def debatable(data) -> None:
    """The issue counts colourful diagrams, mixed screenshots and shaded clipart as debatable."""
    p = heldout(data, shipped_model(data), 0)
    category, colourful = data["category"], data["stats"][:, STAT_NAMES.index("colorfulness")]
    mixed_screenshots = (category == "screenshot") & (data["groups"] == "deb:gimp-help-photos")
    print(f"the manifest's flag ({int(data['debatable'].sum())} images): clear-cut {clear_cut(data, p):.2%}")
    for threshold in (0.1, 0.15, 0.2, 0.3):
        wider = data["debatable"] | (category == "clipart") | mixed_screenshots | (
            (category == "diagram") & (colourful > threshold))
        print(f"... or clipart, mixed screenshots, diagrams of colourfulness > {threshold} ({int(wider.sum())} images):"
              f" clear-cut {clear_cut(data, p, wider):.2%}")


def source_folds(groups: np.ndarray, fold_of_source: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    fold = np.array([fold_of_source[g] for g in groups])
    return [(np.where(fold != k)[0], np.where(fold == k)[0]) for k in range(FOLDS)]


def subset(data, keep: np.ndarray) -> dict:
    return {k: (v[keep] if isinstance(v, np.ndarray) and len(v) == len(keep) else v) for k, v in data.items()}


def splits(data, baseline: Path | None = None) -> None:
    """GroupKFold balances its folds by size, so which sources share a fold is fixed, and that alone
    moves the held-out figure by up to a point. Here each source goes to one of five folds at random
    (four draws, two forest seeds each). With --baseline (an older manifest), the same draws are
    repeated with only that manifest's images, and both are scored on them: whether the sources
    added since helped the images that were there before."""
    sources = np.unique(data["groups"])
    draws = [dict(zip(sources, np.random.default_rng(100 + d).integers(0, FOLDS, len(sources)))) for d in range(4)]
    runs = [heldout(data, shipped_model(data), seed, folds=source_folds(data["groups"], draw))
            for draw in draws for seed in range(2)]
    report(f"random splits by source, all {len(data['y'])} images", data, runs)
    if baseline is None:
        return
    before = {row["sha1"] for row in csv.DictReader(baseline.open(encoding="utf-8"))}
    old = np.isin(data["sha1"], list(before))
    old_data = subset(data, old)
    report(f"  the same runs scored on the {int(old.sum())} images of {baseline.name}", old_data, [p[old] for p in runs])
    report("  trained on those images only", old_data,
           [heldout(old_data, shipped_model(old_data), seed, folds=source_folds(old_data["groups"], draw))
            for draw in draws for seed in range(2)])


def knn(data) -> None:
    """The kNN vote as the product runs it (decisions.knn_vote, k 7), neighbours from other sources
    only, on all images and on those the held-out head (seed 0) leaves in the unsure band. The
    vote's edge cosine and prior are chosen on the other four folds' unsure images (GroupKFold(5) by
    source, the head's folds) and scored on the fifth: no figure comes from the images it was tuned on."""
    from sklearn.model_selection import GroupKFold

    from invertornot_ssg.decisions import Thresholds, knn_vote

    y, groups, shipped = data["y"], data["groups"], Thresholds()
    V = data["X"][:, :data["dim"]]
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    sims = V @ V.T
    sims[groups[:, None] == groups[None, :]] = -1.0  # the product never sees the image's own source
    rows = np.argsort(-sims, axis=1)[:, :shipped.knn_k]
    near = np.take_along_axis(sims, rows, axis=1)
    p_head = heldout(data, shipped_model(data), 0)
    unsure = np.abs(p_head - shipped.threshold) < shipped.unsure
    photo = np.isin(data["category"], list(PHOTO_CATEGORIES))

    def before(s, r):  # the vote up to this release: similarity-weighted share of >= 3 neighbours at cosine >= 0.6
        close = s >= 0.6
        return None if close.sum() < 3 else float((s[close] * y[r[close]]).sum() / s[close].sum())

    def votes(vote) -> np.ndarray:  # p of a sure vote, NaN where kNN does not vote or is unsure
        p = np.array([np.nan if (v := vote(s, r)) is None else v for s, r in zip(near, rows)])
        return np.where(np.abs(p - shipped.threshold) >= shipped.unsure, p, np.nan)

    grid = {(edge, prior): votes(lambda s, r, t=Thresholds(knn_min_cosine=edge, knn_prior=prior): knn_vote(s, r, y, t))
            for edge in (0.5, 0.6, 0.7) for prior in (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)}
    grid["off"] = np.full(len(y), np.nan)  # kNN defers: the default keeps

    def correct(p: np.ndarray) -> np.ndarray:  # the decision behind an unsure head: kNN when sure, else keep
        return np.where(np.isnan(p), False, p >= shipped.threshold) == y

    # Only kNN's inversions change the decision (a keep vote is the default). A wrong inversion costs
    # what the unsure band implies (the head inverts from p 0.7: 0.7 / 0.3 = 2.33 right ones), so the
    # choice is by right inversions less 2.33 x wrong ones, not by accuracy.
    cost = (shipped.threshold + shipped.unsure) / (1 - shipped.threshold - shipped.unsure)

    def gain(p: np.ndarray, idx: np.ndarray) -> float:
        inverted = p[idx] >= shipped.threshold
        return float((inverted & y[idx]).sum() - cost * (inverted & ~y[idx]).sum())

    nested, chosen = np.full(len(y), np.nan), []
    for train, test in GroupKFold(n_splits=FOLDS).split(V, y, groups):
        fit = train[unsure[train]]
        best = max(grid, key=lambda c: (gain(grid[c], fit), -int((grid[c][fit][photo[fit]] >= 0.5).sum())))
        chosen.append(best)
        nested[test] = grid[best][test]
    print("chosen per fold (edge cosine, prior): " + ", ".join(map(str, chosen)))

    def line(name: str, p: np.ndarray) -> None:
        for where, mask in (("all", np.ones(len(y), bool)), ("head unsure", unsure)):
            q, t, sure = p[mask], y[mask], ~np.isnan(p[mask])
            acc = f"{((q[sure] >= 0.5) == t[sure]).mean():.1%}" if sure.any() else "-"
            print(f"{name:32} {where:12} {int(mask.sum()):5} images: votes on {sure.mean():6.1%}, right where it votes "
                  f"{acc:>6}, inverts {int((q >= 0.5).sum()):4} ({int(((q >= 0.5) & ~t).sum())} wrong, "
                  f"{int((q[photo[mask]] >= 0.5).sum())} photographs); decision (kNN, else keep) "
                  f"{correct(p)[mask].mean():.1%} against keep {(~t).mean():.1%}; gain {gain(p, np.where(mask)[0]):.1f}")

    line("before (cosine >= 0.6, >= 3)", votes(before))
    line("after, chosen per fold", nested)
    line(f"shipped: edge {shipped.knn_min_cosine}, prior {shipped.knn_prior:g}", grid[(shipped.knn_min_cosine, shipped.knn_prior)])
    for config in grid:
        p = grid[config]
        print(f"  {str(config):12} unsure images: votes {(~np.isnan(p[unsure])).mean():6.1%}, decision {correct(p)[unsure].mean():.1%}, "
              f"gain {gain(p, np.where(unsure)[0]):6.1f}, inverts {int((p[unsure] >= 0.5).sum())} ({int((p[unsure & ~y] >= 0.5).sum())} wrong), "
              f"photographs inverted {int((p[unsure & photo] >= 0.5).sum())}")


def shipped_decisions(data, p_head: np.ndarray, folds, thresholds=None, drawn=None) -> tuple[np.ndarray, np.ndarray]:
    """What the product decides for every image (decisions.decide_auto: near-duplicate > head with
    its unsure band > kNN > keep) when its source was left out: the head's held-out p, and as the
    labeled set the training folds (the images that head learned from), as the shipped set is for
    the shipped head. `drawn`: which images cannot be photographs (decisions.cannot_be_photograph
    unless given). Returns (invert, method) per image."""
    from invertornot_ssg.decisions import LabeledSet, Thresholds, cannot_be_photograph, decide_auto

    th = thresholds or Thresholds()
    stats = data["stats"]
    if drawn is None:
        drawn = np.array([cannot_be_photograph(s) for s in stats])
    V = data["X"][:, :data["dim"]]
    V = (V / np.linalg.norm(V, axis=1, keepdims=True)).astype(np.float32)
    phash = [str(h) or None for h in data["phash"]]
    invert, method = np.zeros(len(V), bool), np.empty(len(V), dtype=object)
    for train, test in folds:
        labeled = LabeledSet([str(s) for s in data["sha1"][train]], data["y"][train], V[train],
                             [phash[i] for i in train], stats[train])
        sims, rows = labeled.neighbours(V[test], th.knn_k)
        for j, i in enumerate(test):
            d = decide_auto(V[i], phash[i], float(p_head[i]), labeled, th, (sims[j], rows[j]), stats[i], bool(drawn[i]))
            invert[i], method[i] = d.invert, d.method
    return invert, method


def shipped_figures(data, invert: np.ndarray) -> dict:
    """The issue's figures for one set of decisions."""
    y, clear = data["y"], ~data["debatable"]
    photo, people = np.isin(data["category"], list(PHOTO_CATEGORIES)), data["category"] == "person"
    return {"clear-cut": float((invert == y)[clear].mean()), "overall": float((invert == y).mean()),
            "photographs inverted": (int(invert[photo].sum()), int(photo.sum())),
            "people inverted": (int(invert[people].sum()), int(people.sum())),
            "keep inverted": (int(invert[~y].sum()), int((~y).sum()))}


def figures_line(f: dict) -> str:
    def share(pair):
        return f"{pair[0] / pair[1]:.1%} ({pair[0]}/{pair[1]})"
    return (f"clear-cut {f['clear-cut']:.1%}, overall {f['overall']:.1%}, photographs inverted "
            f"{share(f['photographs inverted'])}, people {f['people inverted'][0]}/{f['people inverted'][1]}, "
            f"images to keep inverted {share(f['keep inverted'])}")


SHIPPED_HEADING = "## Shipped configuration, held out by source"


def shipped_report(data, seeds=SEEDS) -> list[str]:
    """The shipped configuration held out by source (GroupKFold(5), train_default_head.py's folds;
    forest seeds 0-3), then over random source groupings (the draws of `splits`, seed 0), then the
    head alone at p >= 0.5: the figures README and docs/src/quality.md lead with, as Markdown."""
    from sklearn.model_selection import GroupKFold

    from invertornot_ssg.decisions import Thresholds

    th = Thresholds()
    folds = list(GroupKFold(n_splits=FOLDS).split(data["X"], data["y"], data["groups"]))
    heads = [heldout(data, shipped_model(data), seed, folds=folds) for seed in seeds]
    runs = [shipped_decisions(data, p, folds) for p in heads]
    figures = [shipped_figures(data, invert) for invert, _ in runs]
    sources = np.unique(data["groups"])
    random = []
    for d in range(4):  # the draws of `splits`
        draw = dict(zip(sources, np.random.default_rng(100 + d).integers(0, FOLDS, len(sources))))
        split = source_folds(data["groups"], draw)
        p = heldout(data, shipped_model(data), 0, folds=split)
        random.append(shipped_figures(data, shipped_decisions(data, p, split)[0]))
    alone = [shipped_figures(data, p >= th.threshold) for p in heads]

    def row(name: str, runs: list[dict]) -> str:
        def mean(key):
            return np.mean([f[key] for f in runs])

        def count(key):
            values = [f[key][0] for f in runs]
            total = runs[0][key][1]
            spread = f" ({min(values)}-{max(values)})" if len(runs) > 1 and min(values) != max(values) else ""
            return f"{np.mean(values) / total:.1%}, {np.mean(values):.3g} of {total}{spread}"

        acc = [f"{mean(k):.1%}" + (f" ({min(f[k] for f in runs):.1%}-{max(f[k] for f in runs):.1%})"
                                   if len(runs) > 1 else "") for k in ("clear-cut", "overall")]
        return (f"| {name} | " + " | ".join(acc) + f" | {count('photographs inverted')} | "
                f"{count('people inverted')} | {count('keep inverted')} |")

    methods = runs[0][1]
    by_method = ", ".join(f"{name} {(methods == name).mean():.1%} (right on {(runs[0][0] == data['y'])[methods == name].mean():.1%})"
                          for name in ("near-duplicate", "head", "knn", "default") if (methods == name).any())
    return [SHIPPED_HEADING, "",
            "What a build decides (decisions.decide_auto: near-duplicate, then the head with its unsure band "
            f"({th.unsure} around {th.threshold}; {th.drawn_unsure} where decisions.cannot_be_photograph holds), then "
            "the calibrated kNN vote, then keep), for every image with its source left out: the head trained on the "
            "other folds, and those folds as the labeled set. Clear-cut leaves out the debatable images. "
            "Reproduce: `python scripts/explore_heldout.py shipped --write`.", "",
            "| folds | accuracy, clear-cut | accuracy | photographs inverted | people inverted | images to keep inverted |",
            "| --- | --- | --- | --- | --- | --- |",
            row(f"GroupKFold({FOLDS}) by source, forest seeds {seeds[0]}-{seeds[-1]}", figures),
            row(f"4 random groupings of the sources into {FOLDS} folds, seed 0", random),
            row(f"the head alone at p >= {th.threshold}, GroupKFold({FOLDS}), seeds {seeds[0]}-{seeds[-1]}", alone),
            "", f"Decided by (GroupKFold({FOLDS}), seed {seeds[0]}): {by_method}.", ""]


def shipped(data, write: bool = False) -> None:
    """Print the shipped configuration's figures; with `write`, replace its section and the kNN
    table (train_default_head.knn_table, on the shipped set's vectors) in EVALUATION.md, the rest
    of which train_default_head.py writes."""
    from train_default_head import knn_table

    lines = shipped_report(data)
    print("\n".join(lines))
    if not write:
        return
    V = data["X"][:, :data["dim"]]
    knn = knn_table({"V": V / np.linalg.norm(V, axis=1, keepdims=True), "y": data["y"], "groups": data["groups"]})
    path = REPO / "models" / "bootstrap" / "EVALUATION.md"
    text = path.read_text(encoding="utf-8")
    text = replace_section(text, SHIPPED_HEADING, lines)
    text = replace_section(text, knn[0], knn)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)}")


def replace_section(text: str, heading: str, lines: list[str]) -> str:
    """`text` with the section under `heading` (to the next "## ") replaced by `lines`; a new
    section goes before the first one."""
    body = "\n".join(lines).rstrip("\n") + "\n\n"
    if heading in text:
        before, rest = text.split(heading, 1)
        return before + body + (rest[rest.index("\n## ") + 1:] if "\n## " in rest else "")
    head, _, tail = text.partition("\n## ")
    return head + "\n" + body + "## " + tail


def band(data) -> None:
    """Where the unsure band costs accuracy: the shipped configuration with the head's band narrowed
    (Thresholds.drawn_unsure) only for images that cannot be photographs, held out by source
    (GroupKFold(5), forest seed 0). A rule is: not a JPEG, native_fine_steps <= f (no sensor noise
    at the file's resolution) and colorfulness <= c, with band w there; it is chosen on the other
    four folds (the best clear-cut accuracy that inverts no more images to keep and no more
    photographs than the band everywhere) and scored on the fifth."""
    import itertools
    from dataclasses import replace

    from sklearn.model_selection import GroupKFold

    from invertornot_ssg.decisions import Thresholds, cannot_be_photograph

    th, y, clear = Thresholds(), data["y"], ~data["debatable"]
    folds = list(GroupKFold(n_splits=FOLDS).split(data["X"], y, data["groups"]))
    p_head = heldout(data, shipped_model(data), 0, folds=folds)
    stat = {name: data["stats"][:, i] for i, name in enumerate(STAT_NAMES)}
    photo = np.isin(data["category"], list(PHOTO_CATEGORIES))
    # Decisions are per image: the band everywhere, or narrowed everywhere; a rule picks per image.
    wide = shipped_decisions(data, p_head, folds, th, np.zeros(len(y), bool))[0]
    narrowed = {w: shipped_decisions(data, p_head, folds, replace(th, drawn_unsure=w), np.ones(len(y), bool))[0]
                for w in (0.1, 0.05, 0.0)}
    print(f"band {th.unsure} everywhere: {figures_line(shipped_figures(data, wide))}")
    rules = {}
    not_jpeg = stat["is_jpeg"] < 0.5
    for f, c, w in itertools.product((0.01, 0.02, 0.03, 0.05, 0.1), (0.05, 0.1, 0.15, 0.2, 1.0), narrowed):
        mask = not_jpeg & (stat["native_fine_steps"] <= f) & (stat["colorfulness"] <= c)
        rules[(f, c, w)] = np.where(mask, narrowed[w], wide)
    for key in [(f, 1.0, w) for f in (0.01, 0.03, 0.05, 0.1) for w in (0.1, 0.05)] + [(0.03, 0.15, 0.05)]:
        mask = not_jpeg & (stat["native_fine_steps"] <= key[0]) & (stat["colorfulness"] <= key[1])
        print(f"  not JPEG, fine steps <= {key[0]}, colourfulness <= {key[1]} ({int(mask.sum())} images, {int(photo[mask].sum())} "
              f"photographs), band {key[2]} there: {figures_line(shipped_figures(data, rules[key]))}")

    def allowed(key, idx) -> bool:
        inv = rules[key][idx]
        return (inv & ~y[idx]).sum() <= (wide[idx] & ~y[idx]).sum() and (inv & photo[idx]).sum() <= (wide[idx] & photo[idx]).sum()

    nested, chosen = wide.copy(), []
    for train, test in folds:
        best = max((k for k in rules if allowed(k, train)), key=lambda k: (rules[k][train] == y[train])[clear[train]].mean())
        chosen.append(best)
        nested[test] = rules[best][test]
    print("chosen per fold (fine steps, colourfulness, band): " + ", ".join(map(str, chosen)))
    print(f"narrowed as chosen per fold: {figures_line(shipped_figures(data, nested))}")
    drawn = np.array([cannot_be_photograph(s) for s in data["stats"]])
    shipped_rule = shipped_decisions(data, p_head, folds, th, drawn)[0]
    print(f"as shipped (decisions.cannot_be_photograph on {int(drawn.sum())} images, {int(photo[drawn].sum())} photographs; "
          f"band {th.drawn_unsure} there): {figures_line(shipped_figures(data, shipped_rule))}")


def neardup(data) -> None:
    """Near-duplicate pairs in the bootstrap set across sources (what reuse would lend when an image's
    own source is left out): pairs each rule takes for the same picture, and how many disagree on
    the label. The tone check is decisions.LabeledSet.same_tones."""
    from invertornot_ssg.decisions import LabeledSet, Thresholds
    from invertornot_ssg.images import phash_distance

    th, y, groups = Thresholds(), data["y"], data["groups"]
    V = data["X"][:, :data["dim"]]
    V = (V / np.linalg.norm(V, axis=1, keepdims=True)).astype(np.float32)
    labeled = LabeledSet([str(s) for s in data["sha1"]], y, V, [str(h) or None for h in data["phash"]], data["stats"])
    sims = V @ V.T
    pairs = [(i, j) for i, j in zip(*np.where(np.triu(sims >= 0.9, 1))) if groups[i] != groups[j]]
    rules = {"cosine >= 0.95, phash <= 10 (before)": (0.95, 10, None), "cosine >= 0.93, phash <= 10": (0.93, 10, None),
             f"cosine >= 0.95, phash <= 10, tones <= {th.near_duplicate_tones} (shipped)": (0.95, 10, th.near_duplicate_tones)}
    for name, (cosine, phash, tones) in rules.items():
        taken = [(i, j) for i, j in pairs if sims[i, j] >= cosine and labeled.phashes[i] and labeled.phashes[j]
                 and phash_distance(labeled.phashes[i], labeled.phashes[j]) <= phash
                 and (tones is None or labeled.same_tones(int(j), data["stats"][i], tones))]
        differ = [(i, j) for i, j in taken if y[i] != y[j]]
        print(f"{name}: {len(taken)} pairs across sources, {len(differ)} with different labels"
              + "".join(f"\n  {data['sha1'][i][:10]} ({groups[i]}) ~ {data['sha1'][j][:10]} ({groups[j]})" for i, j in differ))
def novelty(data) -> None:
    """The novelty cut-off (novelty.py) in the shipped configuration: per GroupKFold(5) fold by
    source, the head, the labeled set (near-duplicates, kNN) and the density model see only the
    other four folds, and decisions.decide_auto decides each held-out image with and without the
    novelty step. For each cut-off: accuracy on the images it calls novel against the rest, the
    errors it catches, the right decisions it turns unsure and the overall figures. The cut-off
    is also chosen per fold on the other four folds' images (nested): no figure of that row comes
    from the images it was chosen on. Choice by cost: a wrong inversion counts what the unsure
    band implies (the head inverts from p 0.7: 0.7 / 0.3 = 2.33 wrong keeps), as in `knn`."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    from invertornot_ssg import novelty as nv
    from invertornot_ssg.decisions import LabeledSet, Thresholds, decide_auto

    y, groups, th = data["y"], data["groups"], Thresholds()
    with np.load(REPO / "models" / f"bootstrap-{id_slug(EMBEDDER_ID)}.npz") as z:
        phashes = [str(p) or None for p in z["phash"]]
    V = data["X"][:, :data["dim"]]
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    p_head = heldout(data, shipped_model(data), 0)
    folds = list(GroupKFold(n_splits=FOLDS).split(V, y, groups))
    score = np.zeros(len(y))
    before, after = np.zeros(len(y), bool), np.zeros(len(y), bool)  # decided invert, without / with novelty
    method_before, method_after = np.empty(len(y), object), np.empty(len(y), object)
    for train, test in folds:
        score[test] = nv.fit_novelty(V[train], EMBEDDER_ID).scores(V[test])
        labeled = LabeledSet([str(i) for i in train], y[train], V[train], [phashes[i] for i in train], data["stats"][train])
        sims, rows = labeled.neighbours(V[test], th.knn_k)
        for j, i in enumerate(test):
            for novel, invert, method in ((False, before, method_before), (True, after, method_after)):
                d = decide_auto(V[i], phashes[i], p_head[i], labeled, th, (sims[j], rows[j]), data["stats"][i], novel=novel)
                invert[i], method[i] = d.invert, d.method
    photo, clear = np.isin(data["category"], list(PHOTO_CATEGORIES)), ~data["debatable"]
    cost = (th.threshold + th.unsure) / (1 - th.threshold - th.unsure)

    def decided(cutoff: float) -> np.ndarray:
        return np.where(score > cutoff, after, before)

    def loss(decision: np.ndarray, idx) -> float:
        return float(((~decision & y)[idx]).sum() + cost * ((decision & ~y)[idx]).sum())

    def figures(decision: np.ndarray) -> str:
        right = decision == y
        return (f"accuracy {right.mean():.2%}, clear-cut {right[clear].mean():.2%}, wrong inversions "
                f"{int((decision & ~y).sum())} ({int((decision & photo).sum())} photographs), wrong keeps "
                f"{int((~decision & y).sum())}, loss {loss(decision, slice(None)):.0f}")

    wrong = before != y
    print(f"{len(y)} images, {FOLDS} folds by source; held-out novelty score: median {np.median(score):.2f}, "
          f"90th percentile {np.percentile(score, 90):.2f}, 99th {np.percentile(score, 99):.2f}, max {score.max():.1f}")
    print(f"how well the score ranks the shipped configuration's errors (ROC AUC, 0.5 = chance): "
          f"{roc_auc_score(wrong, score):.3f}; the head's unsure band alone (|p - 0.5|): "
          f"{roc_auc_score(wrong, -np.abs(p_head - th.threshold)):.3f}")
    print(f"before (no novelty): {figures(before)}")
    cutoffs = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
    for cutoff in cutoffs:
        novel = score > cutoff
        now = decided(cutoff)
        turned = novel & (method_before == "head")  # sure decisions the cut-off sends down the unsure path
        acc = f"{(before == y)[novel].mean():.1%}" if novel.any() else "-"
        print(f"cut-off {cutoff:>4}: novel {int(novel.sum()):4} ({novel.mean():5.1%}); accuracy before on novel {acc:>6}"
              f" against {(before == y)[~novel].mean():.1%} on the rest; head decisions turned unsure {int(turned.sum())}: "
              f"errors caught {int((turned & wrong & (now == y)).sum())}, right ones made wrong "
              f"{int((turned & ~wrong & (now != y)).sum())}; after: {figures(now)}")
    nested, chosen = before.copy(), []
    for train, test in folds:
        best = min(cutoffs[::-1] + (np.inf,), key=lambda c: loss(decided(c), train))  # ties: the higher cut-off
        chosen.append(best)
        nested[test] = decided(best)[test]
    print("chosen per fold on the other four folds: " + ", ".join(map(str, chosen)))
    print(f"after, chosen per fold (nested): {figures(nested)}")
    shipped = decided(nv.CUTOFF)
    print(f"shipped cut-off {nv.CUTOFF}: {figures(shipped)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["forest", "ensemble", "sources", "weights", "debatable", "splits", "knn",
                                                   "shipped", "band", "neardup", "novelty"])
    parser.add_argument("--write", action="store_true", help="shipped: write its section of models/bootstrap/EVALUATION.md")
    parser.add_argument("--baseline", type=Path, help="splits: an older manifest.csv to compare with "
                        "(e.g. git show 2c63e0d:models/bootstrap/manifest.csv > old.csv)")
    args = parser.parse_args()
    {"forest": forest, "ensemble": ensemble, "sources": sources, "weights": weights, "debatable": debatable, "knn": knn,
     "shipped": lambda data: shipped(data, args.write), "band": band, "neardup": neardup, "novelty": novelty,
     "splits": lambda data: splits(data, args.baseline)}[args.experiment](load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
