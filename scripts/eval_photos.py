#!/usr/bin/env python3
"""Photographs inside screenshots and product photographs on white (#28): labeled groups, the
photo-region step's tile weights, and its figures held out by source.

    python scripts/bootstrap/build_set.py --cache C/bootstrap   # the bootstrap images first
    python scripts/eval_photos.py build   --bootstrap C/bootstrap --out C/photos   # the groups (~1 min)
    python scripts/eval_photos.py train   --bootstrap C/bootstrap --out C/photos   # weights for photoregions.py
    python scripts/eval_photos.py measure --bootstrap C/bootstrap --out C/photos   # the figures (~10 min)
    python scripts/eval_photos.py cost [--images 100]   # cold classify of benchmarks/sitegen.py's site, on/off

`build` writes C/photos/manifest.csv and its images:
- composite-large: a real photograph of the bootstrap set (a face, a photo grid, a photo) pasted
  into a real light screenshot of the bootstrap set (label invert) over 20-60% of its area: keep.
- composite-small: the same screenshot with a photograph over 3-9% of it: invert, the
  screenshot's own label, to show what the step costs.
- product: photographs of laboratory equipment from Debian's kalzium-data (toolpics) whose
  border is light (mean luminance >= 0.5), an object on a light backdrop, and GIMP's manual's
  photograph of a mouse on white: keep.
- real: screenshots of GIMP's manual (gimp-help-en) showing a photograph, labeled by looking.
Each composite pairs a screenshot and a photograph whose sources fall in the same test fold of
GroupKFold(5) over the bootstrap set's sources (the folds of scripts/train_default_head.py), so
the fold's head, kNN and tile weights saw neither.

`measure` runs the shipped decision path (decisions.decide_auto: near-duplicate, head with the
unsure band, kNN, keep) held out by source, then the photo-region step for a grid of shares, on
the whole bootstrap set and on the groups.
"""
from __future__ import annotations

import argparse
import csv
import glob
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from invertornot_ssg import photoregions  # noqa: E402
from invertornot_ssg.decisions import LabeledSet, Thresholds, decide_auto  # noqa: E402
from invertornot_ssg.embedders import id_slug  # noqa: E402
from invertornot_ssg.images import load_image  # noqa: E402
from train_default_head import EMBEDDER, EMBEDDER_ID, FOLDS, PHOTO_CATEGORIES  # noqa: E402

log = logging.getLogger("eval_photos")
SIDE = photoregions.SIDE  # --side
TILE = photoregions.TILE  # --tile
PHOTO_SOURCES_CATEGORIES = {"photo", "person"}
DRAWN = {"screenshot", "diagram", "plot", "lineart", "text", "music", "dark"}  # tiles: drawn
SHARES = (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3)
FIELDS = ["file", "label", "group", "source", "fold", "screenshot", "photo", "area"]
GIMP_TUTORIALS = "usr/share/gimp/2.0/help/en/images/tutorials"
REAL = {  # gimp-help-en screenshots, labeled by looking (docs/src/labeling.md)
    "quickie-crop-step1.png": "keep",  # the GIMP window, a photograph of a duck over most of it
    "quickie-crop-step2.png": "keep",
    "quickie-scale-menu.png": "keep",  # a menu over a photograph of a castle
    "quickie-info-menu.png": "keep",  # a menu over a photograph of sky
    "quickie-export-image-dialog-file-type.png": "invert",  # a file dialog, a small preview of a car
}


# -- the bootstrap set ---------------------------------------------------------------------------

def bootstrap(args) -> dict:
    rows = {r["sha1"]: r for r in csv.DictReader((REPO / "models/bootstrap/manifest.csv").open(encoding="utf-8"))}
    with np.load(REPO / "models" / f"bootstrap-{id_slug(EMBEDDER_ID)}.npz") as z:
        manifest = [rows[s] for s in z["sha1"]]
        data = {"V": z["vectors"].astype(np.float32), "S": z["stats"].astype(np.float32), "y": z["invert"],
                "groups": z["source"], "sha1": list(z["sha1"]), "phash": list(z["phash"])}
    data["rows"] = manifest
    data["category"] = np.array([r["category"] for r in manifest])
    data["debatable"] = np.array([r["debatable"] == "1" for r in manifest])
    data["paths"] = [args.bootstrap / r["file"] for r in manifest]
    from sklearn.model_selection import GroupKFold

    data["fold"] = np.zeros(len(manifest), dtype=int)
    data["splits"] = list(GroupKFold(n_splits=FOLDS).split(data["V"], data["y"], data["groups"]))
    for k, (_, test) in enumerate(data["splits"]):
        data["fold"][test] = k
    data["fold_of_source"] = dict(zip(data["groups"], data["fold"]))
    return data


def light(stats: np.ndarray) -> bool:
    from invertornot_ssg.images import STAT_NAMES

    names = list(STAT_NAMES)
    return stats[names.index("border_luminance")] > 0.8 and stats[names.index("mean_luminance")] > 0.7


# -- build ---------------------------------------------------------------------------------------

def build(args) -> int:
    from PIL import Image

    data = bootstrap(args)
    rng = np.random.default_rng(0)
    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    ok = [p.is_file() for p in data["paths"]]
    screens = [i for i in range(len(ok)) if ok[i] and data["category"][i] == "screenshot" and data["y"][i]
               and not data["debatable"][i] and light(data["S"][i])]
    photos = [i for i in range(len(ok)) if ok[i] and data["category"][i] in PHOTO_SOURCES_CATEGORIES
              and not data["y"][i] and not data["debatable"][i]]
    for k in range(FOLDS):
        fold_screens = [i for i in screens if data["fold"][i] == k]
        fold_photos = [i for i in photos if data["fold"][i] == k]
        people = [i for i in fold_photos if data["category"][i] == "person"]
        log.info("fold %d: %d light screenshots, %d photographs (%d of people)", k, len(fold_screens),
                 len(fold_photos), len(people))
        if not fold_photos:
            continue
        chosen = rng.permutation(fold_screens)[:args.per_fold]
        for n, s in enumerate(chosen):
            screen = Image.open(data["paths"][s]).convert("RGB")
            if min(screen.size) < 120:
                continue
            for kind, low, high, label in (("composite-large", 0.2, 0.6, "keep"), ("composite-small", 0.03, 0.09, "invert")):
                pool = people if people and rng.random() < 0.4 else fold_photos
                p = int(rng.choice(pool))
                photo = Image.open(data["paths"][p]).convert("RGB")
                area = rng.uniform(low, high)
                image = paste(screen, photo, area, rng)
                name = f"images/{kind}/{k}-{n:03d}.png"
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                image.save(out / name)
                rows.append({"file": name, "label": label, "group": kind,
                             "source": f"{data['groups'][s]}+{data['groups'][p]}", "fold": k,
                             "screenshot": data["rows"][s]["file"], "photo": data["rows"][p]["file"],
                             "area": f"{area:.3f}"})
    rows += debian_groups(args, out)
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    log.info("wrote %d images: %s", len(rows), ", ".join(
        f"{g} {sum(r['group'] == g for r in rows)}" for g in dict.fromkeys(r["group"] for r in rows)))
    return 0


def paste(screen, photo, area: float, rng):
    """The screenshot with the photograph scaled to `area` of it (aspect kept, inside it) at a random place."""
    from PIL import Image

    image = screen.copy()
    width, height = image.size
    aspect = photo.width / photo.height
    h = (area * width * height / aspect) ** 0.5
    w = h * aspect
    if w > width or h > height:  # too wide or tall for the screenshot: as large as fits
        fit = min(width / w, height / h)
        w, h = w * fit, h * fit
    w, h = max(8, int(w)), max(8, int(h))
    resized = photo.resize((w, h), Image.LANCZOS)
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    image.paste(resized, (x, y))
    return image


def debian_groups(args, out: Path) -> list[dict]:
    """Product photographs (kalzium-data's toolpics) and real GIMP screenshots, from the debs
    build_set.py downloaded."""
    from PIL import Image

    raw = out / "raw"
    rows = []
    for package in ("kalzium-data", "gimp-help-en"):
        debs = sorted(glob.glob(str(args.bootstrap / "debs" / f"{package}_*.deb")))
        if not debs:
            log.warning("no %s deb under %s/debs: its group is left out", package, args.bootstrap)
            continue
        if not (raw / package).is_dir():
            subprocess.run(["dpkg-deb", "-x", debs[-1], str(raw / package)], check=True)
    tools = sorted((raw / "kalzium-data/usr/share/kalzium/data/toolpics").glob("*.jpg"))
    for path in tools:
        im = Image.open(path).convert("L")
        pixels = np.asarray(im, dtype=np.float32) / 255
        side = max(1, min(pixels.shape) // 20)
        ring = np.concatenate([pixels[:side].ravel(), pixels[-side:].ravel(), pixels[:, :side].ravel(), pixels[:, -side:].ravel()])
        if ring.mean() >= args.backdrop:  # an object on a light backdrop
            rows.append({"file": str(path.relative_to(out)), "label": "keep", "group": "product",
                         "source": "deb:kalzium-toolpics", "fold": -1, "screenshot": "", "photo": "", "area": ""})
    mouse = raw / "gimp-help-en" / GIMP_TUTORIALS / "straight-lines-1b.png"  # a photograph of a mouse on white
    if mouse.is_file():
        rows.append({"file": str(mouse.relative_to(out)), "label": "keep", "group": "product",
                     "source": "deb:gimp-help-photos", "fold": -1, "screenshot": "", "photo": "", "area": ""})
    for name, label in REAL.items():
        path = raw / "gimp-help-en" / GIMP_TUTORIALS / name
        if path.is_file():
            # The photographs in them are the bootstrap set's gimp-help-photos: held out from both sources.
            rows.append({"file": str(path.relative_to(out)), "label": label, "group": "real",
                         "source": "deb:gimp-help-ui+deb:gimp-help-photos", "fold": -1, "screenshot": "", "photo": "", "area": ""})
    return rows


# -- tiles ---------------------------------------------------------------------------------------

def tiles_of(paths: list[Path], cache: Path) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """tile_features of each image decoded at SIDE (cached by path list)."""
    key = cache.parent / f"{cache.name}-{SIDE}-{TILE}.npz"
    if key.is_file():
        with np.load(key, allow_pickle=True) as z:
            if list(z["paths"]) == [str(p) for p in paths]:
                return list(z["tiles"])
    found = []
    for n, path in enumerate(paths):
        if n % 500 == 0:
            log.info("tiles: %d of %d", n, len(paths))
        loaded = load_image(path, max_side=SIDE) if path.is_file() else None
        found.append(None if loaded is None or not hasattr(loaded, "image") else photoregions.tile_features(loaded.image, TILE))
    stored = np.empty(len(found), dtype=object)
    stored[:] = found
    np.savez(key, paths=np.array([str(p) for p in paths]), tiles=stored)
    return found


def tile_training(data, tiles, index: np.ndarray, per_image: int = 48, seed: int = 0):
    """Tiles of photographs (1) and of drawn images (0), blank tiles left out, at most per_image each."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in index:
        t = tiles[i]
        if t is None or data["debatable"][i]:
            continue
        category = data["category"][i]
        if category in PHOTO_CATEGORIES and not data["y"][i]:
            label = 1
        elif category in DRAWN:
            label = 0
        else:
            continue
        features, blank = t
        rows = features[~blank]
        if len(rows) > per_image:
            rows = rows[rng.choice(len(rows), per_image, replace=False)]
        X.append(rows)
        y.append(np.full(len(rows), label))
    return np.vstack(X), np.concatenate(y)


def fit_tiles(X, y, seed: int = 0) -> dict:
    """photoregions' network (JSON form): standardised features, 16 ReLU units, a logistic output,
    fitted by scikit-learn's MLPClassifier on as many drawn tiles as photographed ones."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    photo, drawn = np.where(y == 1)[0], np.where(y == 0)[0]
    n = min(len(photo), len(drawn))
    rows = np.concatenate([rng.choice(photo, n, replace=False), rng.choice(drawn, n, replace=False)])
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=seed).fit((X[rows] - mean) / scale, y[rows])
    return {"mean": mean.tolist(), "scale": scale.tolist(), "hidden": model.coefs_[0].tolist(),
            "hidden_bias": model.intercepts_[0].tolist(), "output": model.coefs_[1][:, 0].tolist(),
            "output_bias": float(model.intercepts_[1][0])}


def share_of(t, weights: dict, neighbours: int = photoregions.NEIGHBOURS) -> float:
    return 0.0 if t is None else photoregions.share_of(t[0], t[1], photoregions.weights_from(weights), neighbours)


def train(args) -> int:
    """Fit the network on the tiles of the whole bootstrap set and write models/photo-tiles.json."""
    import json

    data = bootstrap(args)
    tiles = tiles_of(data["paths"], args.out / "bootstrap-tiles")
    X, y = tile_training(data, tiles, np.arange(len(tiles)))
    fitted = fit_tiles(X, y)
    fitted = {"side": SIDE, "tile": TILE, "features": list(photoregions.FEATURES),
              "trained_on": f"{len(y)} tiles ({int(y.sum())} photographed) of {len(data['y'])} bootstrap images",
              **{k: np.round(np.asarray(v), 5).tolist() for k, v in fitted.items()}}
    path = REPO / "models" / photoregions.WEIGHTS_FILE
    path.write_text(json.dumps(fitted, separators=(",", ":")) + "\n", encoding="utf-8")
    log.info("%s: %s", path.relative_to(REPO), fitted["trained_on"])
    return 0


# -- measure -------------------------------------------------------------------------------------

def groups_data(args) -> dict:
    """The groups' vectors, statistics and hashes from an embedding store under --out."""
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.settings import Settings

    rows = list(csv.DictReader((args.out / "manifest.csv").open(encoding="utf-8")))
    paths = [args.out / r["file"] for r in rows]
    engine = Engine(Settings(store=str(args.out / "store"), overrides="", model=EMBEDDER), REPO, logger=log)
    identified = engine.ensure_embedded(paths)
    sha1s = [identified[p][0] for p in paths]
    vectors = engine.store.get_vectors(EMBEDDER_ID, sha1s)
    records = engine.current_records(sha1s, dict(zip(sha1s, paths)))
    return {"rows": rows, "paths": paths, "V": np.vstack([vectors[s] for s in sha1s]).astype(np.float32),
            "S": np.vstack([records[s].stats for s in sha1s]).astype(np.float32),
            "phash": [records[s].phash for s in sha1s], "y": np.array([r["label"] == "invert" for r in rows]),
            "group": np.array([r["group"] for r in rows]), "fold": np.array([int(r["fold"]) for r in rows])}


def shipped_decisions(V, S, phash, fold_models, folds: np.ndarray, th: Thresholds):
    """decide_auto for each image with its fold's head and labeled set: (invert, method, p_head)."""
    invert, method, p_all = np.zeros(len(V), bool), np.empty(len(V), dtype=object), np.zeros(len(V))
    for k, (head, labeled) in fold_models.items():
        idx = np.array([i for i, f in enumerate(folds) if f == k], dtype=int)
        if not len(idx):
            continue
        p = head.p_invert(V[idx], S[idx])
        unit = V[idx] / np.linalg.norm(V[idx], axis=1, keepdims=True)
        sims, rows = labeled.neighbours(unit, th.knn_k)
        for j, i in enumerate(idx):
            d = decide_auto(unit[j], phash[i], float(p[j]), labeled, th, (sims[j], rows[j]), S[i])
            invert[i], method[i], p_all[i] = d.invert, d.method, p[j]
    return invert, method, p_all


def training_sets(data, group_rows) -> dict:
    """key -> training rows of the bootstrap set: each fold's (0-4), and for a group image outside
    the folds, the whole set less the bootstrap sources it shares (a frozenset of them)."""
    sets = {k: train for k, (train, _) in enumerate(data["splits"])}
    for r in group_rows:
        if int(r["fold"]) < 0:
            key = frozenset(s for s in r["source"].split("+") if s in data["fold_of_source"])
            sets[key] = np.where(~np.isin(data["groups"], list(key)))[0]
    return sets


def model_key(row, data):
    return int(row["fold"]) if int(row["fold"]) >= 0 else frozenset(
        s for s in row["source"].split("+") if s in data["fold_of_source"])


def fold_models(data, sets: dict) -> dict:
    """Per training set: the head trained as shipped and the labeled set."""
    from invertornot_ssg.training import new_head

    unit = data["V"] / np.linalg.norm(data["V"], axis=1, keepdims=True)
    models = {}
    for k, train in sets.items():
        log.info("head without %s", k)
        head = new_head(EMBEDDER_ID, data["V"].shape[1], len(train))
        head.model.fit(head.features(data["V"][train], data["S"][train]), data["y"][train])
        labeled = LabeledSet([data["sha1"][i] for i in train], data["y"][train], unit[train],
                             [data["phash"][i] for i in train], data["S"][train])
        models[k] = (head, labeled)
    return models


def figures(y, decided, photo, people, clear) -> str:
    keep = ~y
    return (f"clear-cut {((decided == y)[clear]).mean():.1%}, overall {(decided == y).mean():.1%}, "
            f"photographs inverted {int(decided[photo].sum())}/{int(photo.sum())} "
            f"(people {int(decided[people].sum())}), to-keep inverted {(decided & keep).mean() / max(keep.mean(), 1e-9):.1%} "
            f"({int((decided & keep).sum())}/{int(keep.sum())}), invert recall {decided[y].mean():.1%}")


def measure(args) -> int:
    th = Thresholds()
    data = bootstrap(args)
    g = groups_data(args)
    sets = training_sets(data, g["rows"])
    g["key"] = [model_key(r, data) for r in g["rows"]]
    tiles = tiles_of(data["paths"], args.out / "bootstrap-tiles")
    weights = {k: fit_tiles(*tile_training(data, tiles, train)) for k, train in sets.items()}
    cached = args.out / "decisions.npz"  # the shipped path's decisions: the slow part (eight forests)
    if cached.is_file() and not args.fresh:
        with np.load(cached, allow_pickle=True) as z:
            invert, method, p, g_invert, g_method, g_p = (z[n] for n in ("invert", "method", "p", "g_invert", "g_method", "g_p"))
    else:
        models = fold_models(data, sets)
        invert, method, p = shipped_decisions(data["V"], data["S"], data["phash"], models, list(data["fold"]), th)
        g_invert, g_method, g_p = shipped_decisions(g["V"], g["S"], g["phash"], models, g["key"], th)
        np.savez(cached, invert=invert, method=method, p=p, g_invert=g_invert, g_method=g_method, g_p=g_p)
    photo = np.isin(data["category"], list(PHOTO_CATEGORIES))
    people, clear = data["category"] == "person", ~data["debatable"]
    g_tiles = tiles_of(g["paths"], args.out / "groups-tiles")
    # What the step looks at: automatic inversions whose statistics may hold a photograph.
    automatic = np.isin(method, ["head", "knn"]) & np.array([photoregions.may_hold_photo(row) for row in data["S"]])
    g_automatic = np.isin(g_method, ["head", "knn"]) & np.array([photoregions.may_hold_photo(row) for row in g["S"]])
    print(f"Inverted automatically: {int((np.isin(method, ['head', 'knn']) & invert).sum())} bootstrap images, "
          f"{int((automatic & invert).sum())} of them decoded again (photoregions.may_hold_photo)")
    names = list(dict.fromkeys(g["group"]))

    def groups_line(decided) -> str:
        return ", ".join(f"{name} {int((decided[g['group'] == name] == g['y'][g['group'] == name]).sum())}/"
                         f"{int((g['group'] == name).sum())}" for name in names)

    print(f"Tiles of {TILE} px on a copy at most {SIDE} px long. Bootstrap set, {len(data['y'])} images, the shipped "
          f"path held out by source (GroupKFold({FOLDS})); groups right (composites by fold, the others without "
          "the bootstrap sources they share):")
    print(f"  {'as shipped':26} " + figures(data["y"], invert, photo, people, clear) + " | " + groups_line(g_invert))
    for neighbours in args.neighbours:
        share = np.array([share_of(tiles[i], weights[data["fold"][i]], neighbours) for i in range(len(tiles))])
        g_share = np.array([share_of(t, weights[k], neighbours) for t, k in zip(g_tiles, g["key"])])
        np.savez(args.out / f"shares-n{neighbours}.npz", share=share, g_share=g_share, p=p, g_p=g_p, invert=invert,
                 g_invert=g_invert, automatic=automatic, g_automatic=g_automatic, y=data["y"], g_y=g["y"],
                 group=g["group"], category=data["category"])  # for analyses beyond this report
        for t in SHARES:
            kept = automatic & invert & (share >= t)
            g_decided = g_invert & ~(g_automatic & (g_share >= t))
            print(f"  {f'share >= {t:.2f}, neighbours {neighbours}':26} " + figures(data["y"], invert & ~kept, photo, people, clear)
                  + f"; kept {int(kept.sum())} ({int((kept & data['y']).sum())} invert) | " + groups_line(g_decided))
        from collections import Counter

        from invertornot_ssg.settings import Settings

        kept = automatic & invert & data["y"] & (share >= Settings().photo_region)
        print(f"  neighbours {neighbours}, shipped share {Settings().photo_region}: images that should invert kept, by category: "
              + ", ".join(f"{c} {n}" for c, n in Counter(data["category"][kept]).most_common())
              + "; by source: " + ", ".join(f"{c} {n}" for c, n in Counter(data["groups"][kept]).most_common(8)))
        drawn_inverted = automatic & invert & data["y"]
        print(f"  neighbours {neighbours}: photographed share of the bootstrap images the path inverts rightly: "
              + ", ".join(f"p{q} {np.percentile(share[drawn_inverted], q):.2f}" for q in (50, 90, 95, 99))
              + "; of composite-large: " + ", ".join(f"p{q} {np.percentile(g_share[g['group'] == 'composite-large'], q):.2f}" for q in (10, 25, 50)))
    for name in names:
        m = g["group"] == name
        print(f"  {name}: methods " + ", ".join(f"{x} {int((g_method[m] == x).sum())}" for x in sorted(set(g_method[m])))
              + f"; p_head median {np.median(g_p[m]):.2f}")
    return 0


# -- cost ----------------------------------------------------------------------------------------

def cost(args) -> int:
    """Cold classify of benchmarks/sitegen.py's site into a fresh store, the step on (the default
    photo_region) against off (0: the path as before it), alternating, model and head loaded once."""
    import shutil
    import tempfile
    import time

    sys.path.insert(0, str(REPO / "benchmarks"))
    from sitegen import make_site

    from invertornot_ssg.engine import Engine, ImageRequest
    from invertornot_ssg.settings import Settings

    data_dir = REPO / "benchmarks" / ".data"
    paths = make_site(data_dir / f"site-{args.images}", args.images)
    loader = Engine(Settings(store=str(data_dir / "head-lookup"), overrides=""), data_dir)
    embedder, head = loader.load_embedder(), loader.head
    times: dict[float, list[float]] = {0.0: [], Settings().photo_region: []}
    for run in range(args.runs):
        for photo_region in times:
            store = Path(tempfile.mkdtemp(prefix="photo-cost-", dir=data_dir))
            try:
                engine = Engine(Settings(store=str(store), overrides="", write_overrides=False,
                                         photo_region=photo_region), store)
                engine._embedder, _ = embedder, engine.head_info
                engine._head = head
                start = time.perf_counter()
                results = engine.classify([ImageRequest(path=p, key=p.name) for p in paths])
                times[photo_region].append(time.perf_counter() - start)
            finally:
                shutil.rmtree(store, ignore_errors=True)
            methods = {m: sum(r.method == m for r in results) for m in sorted({r.method for r in results})}
            log.info("run %d, photo_region %.2f: %.1f s; %s", run, photo_region, times[photo_region][-1], methods)
    off, on = (float(np.median(t)) for t in times.values())
    print(f"{len(paths)} images, median of {args.runs} cold classifies: off {off:.1f} s, on {on:.1f} s, ratio {on / off:.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("build", "train", "measure", "cost"))
    ap.add_argument("--bootstrap", type=Path, default=REPO / ".cache" / "bootstrap", help="build_set.py's --cache")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "photos")
    ap.add_argument("--per-fold", type=int, default=40, help="screenshots per fold for the composites")
    ap.add_argument("--fresh", action="store_true", help="measure: decide again (else the cached decisions.npz)")
    ap.add_argument("--backdrop", type=float, default=0.5, help="border luminance of a light backdrop")
    ap.add_argument("--neighbours", type=int, nargs="+", default=[photoregions.NEIGHBOURS], help="measure: photographed neighbours a tile needs")
    ap.add_argument("--images", type=int, default=100, help="cost: images of the generated site")
    ap.add_argument("--runs", type=int, default=3, help="cost: runs of each side")
    ap.add_argument("--side", type=int, default=SIDE, help="decode images this large for the tiles")
    ap.add_argument("--tile", type=int, default=TILE, help="tile side in pixels")
    args = ap.parse_args()
    globals().update(SIDE=args.side, TILE=args.tile)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    return {"build": build, "train": train, "measure": measure, "cost": cost}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
