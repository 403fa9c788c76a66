"""Where each image goes on the map: a gridded t-SNE of the embeddings.

As Clarifai's gridded t-SNE: PCA to PCA_DIMS, t-SNE to two dimensions (fixed seed, PCA
initialisation), then a linear assignment (scipy's linear_sum_assignment) of the points onto
a regular grid that minimises the total squared distance: every image gets one cell, and
neighbours on the grid are neighbours in embedding space. `site_map` lays out a review site's
images (reviewsite.ReviewItem) and says how each was decided; the `map` command (mapimage.py)
and the review page's map view (reviewserver.py) both draw it.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from ._lazy import np

SEED = 0
ASPECT = 1.6  # width / height of the grid: a screen's, for the PNG and the review page alike
PCA_DIMS = 50
# benchmarks/bench_map.py, on 1,000 of the shipped bootstrap set's real embeddings: images of one
# source lie at 0.56 of chance's grid distance after 500 iterations and after 1,000, 0.75 after 250.
TSNE_MAX_ITER = 500
# How an image was decided, as the map frames it; the order of the legend.
CATEGORIES = ("invert", "keep", "human", "unsure", "novel")


@dataclass(frozen=True)
class GridLayout:
    cols: int
    rows: int
    cells: np.ndarray  # (n, 2) int: the column and row of each image
    points: np.ndarray  # (n, 2) float in [0, 1]: its t-SNE position, scaled to the grid's shape


def grid_shape(n: int, aspect: float = 1.0) -> tuple[int, int]:
    """(cols, rows) of the smallest grid near `aspect` (width / height) with room for n images."""
    if n <= 0:
        return 0, 0
    cols = max(1, min(n, round(math.sqrt(n * aspect))))
    return cols, math.ceil(n / cols)


def embed_2d(vectors: np.ndarray, seed: int = SEED, max_iter: int = TSNE_MAX_ITER) -> np.ndarray:
    """(n, 2) positions in [0, 1]: t-SNE of the vectors after PCA; deterministic for a seed."""
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    # One thread: on two busy cores, OpenMP's and BLAS's threads spent 3x the CPU time waiting for
    # each other (3,000 images: 28 s of CPU against 9; benchmarks/bench_map.py).
    with threadpool_limits(limits=1):
        return _embed_2d(vectors, seed, max_iter)


def _embed_2d(vectors: np.ndarray, seed: int, max_iter: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n < 2:
        return np.full((n, 2), 0.5)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # cosine geometry, as the store's
    dims = min(PCA_DIMS, n, x.shape[1])
    x = PCA(n_components=dims, svd_solver="full" if n <= 1000 else "randomized", random_state=seed).fit_transform(x)
    if n < 5:  # too few for t-SNE's perplexity: the first two principal components
        y = x[:, :2] if x.shape[1] >= 2 else np.hstack([x[:, :1], np.zeros((n, 1))])
    else:
        perplexity = float(min(30.0, (n - 1) / 3))
        y = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter,
                 learning_rate="auto").fit_transform(x.astype(np.float32))
    low, high = y.min(axis=0), y.max(axis=0)
    return (y - low) / np.where(high > low, high - low, 1.0)


def assign_to_grid(points: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """(n, 2) int cells (column, row), one per point, minimising the total squared distance
    between each point (in [0, 1]^2) and its cell's centre."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    n = len(points)
    if n == 0:
        return np.zeros((0, 2), dtype=int)
    col, row = np.meshgrid(np.arange(cols), np.arange(rows))
    cells = np.column_stack([col.ravel(), row.ravel()])  # row-major
    centres = (cells + 0.5) / np.array([cols, rows], dtype=np.float64)
    cost = cdist(np.asarray(points, dtype=np.float64), centres, "sqeuclidean")
    point_rows, cell_cols = linear_sum_assignment(cost)
    out = np.zeros((n, 2), dtype=int)
    out[point_rows] = cells[cell_cols]
    return out


def grid_layout(vectors: np.ndarray, slots: int | None = None, aspect: float = 1.0, seed: int = SEED,
                max_iter: int = TSNE_MAX_ITER) -> GridLayout:
    """Every vector on its own cell of a grid with room for `slots` images (default: as many as vectors)."""
    n = len(vectors)
    cols, rows = grid_shape(max(n, slots or 0), aspect)
    points = embed_2d(vectors, seed, max_iter)
    return GridLayout(cols, rows, assign_to_grid(points, cols, rows), points)


def category(item: Any, threshold: float, unsure: float) -> str:
    """How the map frames an image (one of CATEGORIES): a person's decision; else novel (unlike the
    labeled images, when the build says so), unsure (the review page's "uncertain": p_invert
    within `unsure` of the threshold, or none), or the automatic decision."""
    if item.human:
        return "human"
    if getattr(item, "novel", None):
        return "novel"
    if item.invert is None or item.uncertain(threshold, unsure):
        return "unsure"
    return "invert" if item.invert else "keep"


def shows_inverted(item: Any) -> bool:
    """What the next build does: the human label if any, else the last automatic decision."""
    return item.label == "invert" if item.label is not None else bool(item.invert)


@dataclass(frozen=True)
class SiteMap:
    """A site's images on the grid: items[i] (reviewsite.ReviewItem) is at cells[i]; images the store
    has no embedding of (built with another model) fill the last cells, in path order."""

    items: list
    layout: GridLayout
    unembedded: list[str]  # keys of the images without an embedding

    def as_json(self, threshold: float, unsure: float) -> dict[str, Any]:
        return {
            "cols": self.layout.cols, "rows": self.layout.rows, "unembedded": self.unembedded,
            "cells": {
                item.key: {"col": int(c), "row": int(r), "x": round(float(x), 4), "y": round(float(y), 4),
                           "category": category(item, threshold, unsure)}
                for item, (c, r), (x, y) in zip(self.items, self.layout.cells, self.layout.points)
            },
        }


def site_map(items: Sequence[Any], vectors: dict[str, np.ndarray], aspect: float = ASPECT,
             logger: logging.Logger | None = None, max_iter: int = TSNE_MAX_ITER) -> SiteMap:
    """Lay out `items` by their `vectors` (sha1 -> embedding), sorted by key first so that the map
    depends on the images alone, not on the order the overrides file lists them."""
    ordered = sorted(items, key=lambda item: item.key)
    embedded = [item for item in ordered if item.sha1 in vectors]
    others = [item for item in ordered if item.sha1 not in vectors]
    if others and logger:
        logger.warning("map: %d image(s) have no embedding in the store for this model (built with another"
                       " --model?); they fill the last cells", len(others))
    matrix = np.stack([vectors[item.sha1] for item in embedded]) if embedded else np.zeros((0, 1))
    layout = grid_layout(matrix, slots=len(ordered), aspect=aspect, max_iter=max_iter)
    taken = {(int(c), int(r)) for c, r in layout.cells}
    free = [(c, r) for r in range(layout.rows) for c in range(layout.cols) if (c, r) not in taken]
    cells = np.vstack([layout.cells, np.array(free[:len(others)], dtype=int).reshape(-1, 2)])
    points = np.vstack([layout.points, (cells[len(embedded):] + 0.5) / np.array([layout.cols, layout.rows])])
    return SiteMap(embedded + others, GridLayout(layout.cols, layout.rows, cells, points),
                   [item.key for item in others])


class SiteMapCache:
    """The review server's map: laid out on first request and again only when the site's images change."""

    def __init__(self, site: Any, embedder_id: str, logger: logging.Logger | None = None) -> None:
        self.site = site
        self.embedder_id = embedder_id
        self.log = logger or logging.getLogger("invertornot_ssg")
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._map: SiteMap | None = None

    def get(self) -> SiteMap:
        items = self.site.items()
        key = tuple(sorted((item.key, item.sha1) for item in items))
        with self._lock:
            if self._map is None or key != self._key:
                vectors = self.site.store.get_vectors(self.embedder_id, {item.sha1 for item in items})
                self._map, self._key = site_map(items, vectors, logger=self.log), key
            # The layout stays; each item's decision is today's.
            by_key = {item.key: item for item in items}
            return SiteMap([by_key[item.key] for item in self._map.items], self._map.layout, self._map.unembedded)
