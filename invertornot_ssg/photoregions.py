"""Would inverting this image turn a photograph inside it into a negative?

The head looks at the whole image: a light screenshot with a face in a third of it is mostly light
and flat, and it inverts it. Here the image, decoded at most SIDE pixels long, is cut into tiles
of TILE pixels, and each tile that is not blank is scored as photographed or drawn by a small
neural network over its neighbour steps and colours: photographs change a little everywhere
(shading, texture, sensor noise), drawings are flat areas with sharp steps. A photographed tile
counts when at least NEIGHBOURS of its eight neighbours are photographed too: a photograph is a
block of tiles, a drawing's false alarms are scattered. When the tiles that count cover at least
`photo_region` of the image, an automatic decision to invert is turned to keep (METHOD): a dimmed
screenshot is readable, a negative face is not.

At SIDE, not the model's 224 pixels: there, small text blurs into something like texture. The
network's weights (models/photo-tiles.json) come from `python scripts/eval_photos.py train`,
fitted on tiles of the bootstrap set's photographs against its screenshots, diagrams and plots;
the same script measures the step held out by source (docs/src/quality.md).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from ._lazy import np
from .cpus import usable_cpus
from .images import STAT_NAMES

METHOD = "photo-region"  # an automatic invert turned to keep: a photograph in it would become a negative
SIDE = 512  # the copy the tiles are cut from, at most this long
TILE = 32
NEIGHBOURS = 3
BLANK = 0.95  # a tile whose neighbours differ by at most 2 levels this often shows nothing: drawn
FEATURES = ("flat", "near_flat", "fine_steps", "soft_steps", "hard_steps", "lum_spread", "mean_luminance",
            "mean_saturation", "log_colors")
WEIGHTS_FILE = "photo-tiles.json"


# Whole-image statistics (images.STAT_NAMES) outside which no image of the bootstrap set or the
# groups had photographed tiles over 0.2 of it (scripts/eval_photos.py): the image is not decoded
# again. Margins below the lowest (entropy, soft steps) and above the highest (flat) seen.
NO_PHOTO = {"lum_entropy": 0.25, "soft_steps": 0.04}  # below either
ALL_FLAT = 0.8  # `flat` above this


_SVG, _FLAT = STAT_NAMES.index("is_svg"), STAT_NAMES.index("flat")
_NO_PHOTO = [(STAT_NAMES.index(name), low) for name, low in NO_PHOTO.items()]


def may_hold_photo(stats) -> bool:
    """Whether an image with these statistics (a row of images.STAT_NAMES) can hold a photograph
    large enough to matter: an SVG is drawn; a flat, low-entropy image has no shading."""
    if stats[_SVG]:
        return False
    if any(stats[i] < low for i, low in _NO_PHOTO):
        return False
    return bool(stats[_FLAT] <= ALL_FLAT)


def file_share(path, background=(255, 255, 255)) -> float | None:
    """photo_share of an image file; None when it cannot be decoded. An SVG is drawn: 0."""
    from .images import ImageError, load_image

    loaded = load_image(path, background, max_side=SIDE)
    if isinstance(loaded, ImageError):
        return None
    return 0.0 if loaded.format == "SVG" else photo_share(loaded.image)


def file_shares(paths: dict, background=(255, 255, 255)) -> dict:
    """key -> file_share of each path, decoded in threads (Pillow and numpy release the GIL; at
    decision time the model threads are done and the cores idle)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) < 2:
        return {key: file_share(path, background) for key, path in paths.items()}
    with ThreadPoolExecutor(max_workers=max(1, min(8, usable_cpus())), thread_name_prefix="invertornot-photo") as pool:
        return dict(zip(paths, pool.map(lambda path: file_share(path, background), paths.values())))


def photo_share(image, weights: dict | None = None, tile: int = TILE, neighbours: int = NEIGHBOURS) -> float:
    """The share of the image's tiles that are photographed and count (see the module's doc); 0 for
    an image smaller than two tiles a side."""
    if max(image.size) > SIDE:
        image = image.copy()
        image.thumbnail((SIDE, SIDE))
    features, blank = tile_features(image, tile)
    return share_of(features, blank, weights, neighbours)


def share_of(features: np.ndarray, blank: np.ndarray, weights: dict | None = None,
             neighbours: int = NEIGHBOURS) -> float:
    """photo_share from tile_features' output."""
    if features.shape[0] < 2 or features.shape[1] < 2:
        return 0.0
    photo = (tile_p_photo(features, weights) >= 0.5) & ~blank
    if neighbours:
        padded = np.pad(photo, 1).astype(np.int8)
        rows, cols = photo.shape
        around = sum(padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
        photo &= around >= neighbours
    return float(photo.mean())


def tile_features(image, tile: int = TILE) -> tuple[np.ndarray, np.ndarray]:
    """(features, blank) of each whole `tile` x `tile` tile of a PIL image, row by row: features is
    (rows, cols, len(FEATURES)), blank a (rows, cols) bool."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    rows, cols = pixels.shape[0] // tile, pixels.shape[1] // tile
    if not rows or not cols:  # thinner than a tile: nothing to score
        return np.zeros((rows, cols, len(FEATURES)), dtype=np.float32), np.ones((rows, cols), dtype=bool)
    tiles = pixels[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile, 3).transpose(0, 2, 1, 3, 4)
    steps = np.concatenate([  # the largest channel's step to the right and lower neighbour, in the tile
        _largest(np.abs(np.diff(tiles, axis=3))).reshape(rows, cols, -1),
        _largest(np.abs(np.diff(tiles, axis=2))).reshape(rows, cols, -1),
    ], axis=-1)
    rgb = tiles.reshape(rows, cols, -1, 3).astype(np.float32) / 255.0
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    high, low = _largest(rgb), np.minimum(np.minimum(red, green), blue)
    spread = high - low
    denominator = np.maximum(1 - np.abs(high + low - 1), 1e-6)  # HSL saturation, as images.statistics
    saturation = np.where(spread > 1e-6, spread / denominator, 0.0)
    codes = np.sort(((tiles >> 4) @ np.array([256, 16, 1], dtype=np.int16)).reshape(rows, cols, -1), axis=-1)
    colors = 1 + (np.diff(codes, axis=-1) != 0).sum(axis=-1)
    count = steps.shape[-1]

    def share(condition):  # count_nonzero: several times faster than a bool array's mean
        return np.count_nonzero(condition, axis=-1) / count

    flat, near_flat, fine = share(steps == 0), share(steps <= 2), share(steps <= 3)
    features = np.stack([
        flat, near_flat, fine - flat, share(steps <= 24) - near_flat, share(steps > 64),
        luminance.std(axis=-1), luminance.mean(axis=-1), saturation.mean(axis=-1),
        np.log2(colors) / 8.0,
    ], axis=-1)
    return features, near_flat >= BLANK


def _largest(values: np.ndarray) -> np.ndarray:
    """The largest of the last axis's three channels (faster than max(axis=-1))."""
    return np.maximum(np.maximum(values[..., 0], values[..., 1]), values[..., 2])


def tile_p_photo(features: np.ndarray, weights: dict | None = None) -> np.ndarray:
    """Probability that each tile is photographed: a one-hidden-layer network (ReLU, then a
    logistic output) over the standardised features."""
    w = weights or shipped_weights()
    x = (features - w["mean"]) / w["scale"]
    hidden = np.maximum(x @ w["hidden"] + w["hidden_bias"], 0.0)
    z = hidden @ w["output"] + w["output_bias"]
    return 1.0 / (1.0 + np.exp(-z))


def weights_from(fitted: dict) -> dict:
    """The arrays tile_p_photo takes, from the JSON form (lists of numbers)."""
    return {name: np.asarray(fitted[name], dtype=np.float64)
            for name in ("mean", "scale", "hidden", "hidden_bias", "output", "output_bias")}


@lru_cache(maxsize=1)
def shipped_weights() -> dict:
    from .shipped import models_dir

    return weights_from(json.loads((models_dir() / WEIGHTS_FILE).read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def weights_digest() -> str:
    """What cached decisions key on besides the head: new weights decide again."""
    from .shipped import models_dir

    return hashlib.sha1((models_dir() / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]


def keeps(share: float | None, photo_region: float) -> bool:
    """Whether an automatic invert must turn to keep; `photo_region` 0 turns the step off."""
    return bool(photo_region > 0 and share is not None and share >= photo_region)
