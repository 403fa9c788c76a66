"""What the package ships in models/: the default head and the bootstrap labeled set, per embedder."""
from __future__ import annotations

import csv
from pathlib import Path

from ._lazy import np

from .decisions import LabeledSet
from .embedders import id_slug

_HERE = Path(__file__).resolve().parent


def models_dir() -> Path:
    """models/ inside the installed package, or at the repository root in a source checkout."""
    for candidate in (_HERE / "models", _HERE.parent / "models"):
        if candidate.is_dir():
            return candidate
    return _HERE / "models"


def default_head_path(embedder_id: str) -> Path:
    return models_dir() / f"head-{id_slug(embedder_id)}.skops"


def bootstrap_path(embedder_id: str) -> Path:
    return models_dir() / f"bootstrap-{id_slug(embedder_id)}.npz"


def load_bootstrap_training(embedder_id: str) -> dict[str, np.ndarray] | None:
    """All columns of the shipped set (sha1, invert, source, vectors, stats, phash), or None."""
    path = bootstrap_path(embedder_id)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def manifest_path() -> Path:
    return models_dir() / "bootstrap" / "manifest.csv"


def load_bootstrap_labels(embedder_id: str) -> dict[str, bool] | None:
    """sha1 -> invert of the shipped set, or None when none ships for the embedder. Read from the
    manifest, not the .npz: a warm build needs only these labels, and loading the .npz means
    importing numpy (~90 ms of every build)."""
    if not bootstrap_path(embedder_id).is_file():
        return None
    try:
        with manifest_path().open(encoding="utf-8", newline="") as f:
            return {row["sha1"]: row["label"] == "invert" for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):  # a damaged install: decide without exact-duplicate reuse
        return {}


def load_bootstrap(embedder_id: str) -> LabeledSet | None:
    """The shipped labeled set in this embedder's space, or None when none ships for it."""
    path = bootstrap_path(embedder_id)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:  # only the columns lookups need (not the augmented copies)
        data = {name: npz[name] for name in ("sha1", "invert", "vectors", "phash", "stats")}
    return LabeledSet(
        sha1s=[str(s) for s in data["sha1"]],
        invert=data["invert"].astype(bool),
        vectors=data["vectors"].astype(np.float32),
        phashes=[str(p) or None for p in data["phash"]],
        stats=data["stats"].astype(np.float32),  # the near-duplicate check compares tones
    )


def save_bootstrap(path: Path, sha1s, invert, sources, vectors, stats, phashes,
                   augmented_vectors=None, augmented_stats=None) -> None:
    """Write the labeled set compactly (float16 vectors) for shipping, keyed by the manifest's sha1 column;
    with one augmented copy of each image (what `retrain` trains on beside the originals)."""
    extra = {}
    if augmented_vectors is not None:
        extra = {"augmented_vectors": np.asarray(augmented_vectors, dtype=np.float16),
                 "augmented_stats": np.asarray(augmented_stats, dtype=np.float32)}
    np.savez_compressed(
        path,
        sha1=np.array(sha1s),
        invert=np.asarray(invert, dtype=bool),
        source=np.array(sources),
        vectors=np.asarray(vectors, dtype=np.float16),
        stats=np.asarray(stats, dtype=np.float32),
        phash=np.array([p or "" for p in phashes]),
        **extra,
    )
