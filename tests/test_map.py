"""`invertornot-ssg map` and the review server's map: a real store from a real `apply` build (default
embedder, shipped head) of a site with groups of sibling images: plots drawn by one matplotlib script
with different data, and crops of one scikit-image photograph (one shoot)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from invertornot_ssg import cli, mapimage
from invertornot_ssg.embedders import embedder_id
from invertornot_ssg.maplayout import SiteMapCache, assign_to_grid, category, grid_layout, grid_shape, site_map
from invertornot_ssg.overrides import Overrides, record_decisions
from invertornot_ssg.reviewsite import ReviewSite
from invertornot_ssg.settings import Settings
from invertornot_ssg.store import EmbeddingStore

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

PER_GROUP = 6
EMBEDDER = embedder_id(Settings().model)


def _plot(kind: str, rng: np.random.Generator) -> Image.Image:
    """One figure of a plotting script, its data drawn from `rng`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=60)
    x = np.linspace(0, 10, 200)
    if kind == "lines":
        for _ in range(2):
            ax.plot(x, rng.uniform(0.5, 2) * np.sin(rng.uniform(0.5, 3) * x + rng.uniform(0, 6)))
        ax.set_xlabel("time (s)")
        ax.grid(True)
    elif kind == "bars":
        ax.bar(list("ABCDEF"), rng.uniform(1, 10, 6), color="tab:orange")
        ax.set_title("count by group")
    else:  # "contours": a filled contour plot of a few random bumps
        yy, xx = np.mgrid[-3:3:100j, -3:3:100j]
        z = sum(np.exp(-((xx - rng.uniform(-2, 2)) ** 2 + (yy - rng.uniform(-2, 2)) ** 2)) for _ in range(3))
        ax.contourf(xx, yy, z, levels=8, cmap="viridis")
    fig.tight_layout()
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    plt.close(fig)
    return image


def _crop(photo: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A shot from one session: a crop of the photograph at another framing, resized for the web."""
    h, w = photo.shape[:2]
    ch, cw = int(h * rng.uniform(0.55, 0.8)), int(w * rng.uniform(0.55, 0.8))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return Image.fromarray(photo[y:y + ch, x:x + cw]).convert("RGB").resize((200, 150))


def sibling_images() -> dict[str, list[Image.Image]]:
    rng = np.random.default_rng(7)
    groups = {kind: [_plot(kind, rng) for _ in range(PER_GROUP)] for kind in ("lines", "bars", "contours")}
    for name in ("astronaut", "coffee", "chelsea"):
        photo = getattr(skdata, name)()
        groups[name] = [_crop(photo, rng) for _ in range(PER_GROUP)]
    return groups


@dataclass
class BuiltSite:
    root: Path
    store_dir: Path
    overrides: Path
    group: dict[str, str]  # key -> sibling group

    def args(self, overrides: Path | None = None) -> list[str]:
        return ["--store", str(self.store_dir), "--overrides", str(overrides or self.overrides)]


def build(root: Path) -> BuiltSite:
    """The images under site/img/, one page showing them all, and `invertornot-ssg apply` over it."""
    site = root / "site"
    (site / "img").mkdir(parents=True)
    group = {}
    tags = []
    for name, images in sibling_images().items():
        for i, image in enumerate(images):
            suffix = ".png" if name in ("lines", "bars", "contours") else ".jpg"
            key = f"img/{name}-{i}{suffix}"
            image.save(site / key, **({"quality": 88} if suffix == ".jpg" else {}))
            group[key] = name
            tags.append(f'<img src="{key}" alt="{name} {i}">')
    (site / "index.html").write_text("<!doctype html><html><head><title>siblings</title></head><body>\n"
                                     + "\n".join(tags) + "\n</body></html>\n")
    built = BuiltSite(root, root / "store", root / "invertornot.yml", group)
    assert cli.main(["apply", str(site), *built.args()]) == 0
    return built


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> BuiltSite:
    return build(tmp_path_factory.mktemp("map-site"))


def load_map(built: BuiltSite, overrides: Path | None = None):
    with EmbeddingStore(built.store_dir) as store:
        site = ReviewSite(overrides or built.overrides, store)
        items = site.items()
        return site_map(items, store.get_vectors(EMBEDDER, {item.sha1 for item in items}))


def within_group_distance(cells: np.ndarray, groups: list[str]) -> float:
    """Mean grid distance (in cells) between two images of the same group."""
    pairs = [(i, j) for i, j in itertools.combinations(range(len(groups)), 2) if groups[i] == groups[j]]
    return float(np.mean([np.linalg.norm(cells[i] - cells[j]) for i, j in pairs]))


# -- layout -------------------------------------------------------------------------------------


def test_siblings_lie_closer_on_the_grid_than_chance(built):
    smap = load_map(built)
    assert sorted(item.key for item in smap.items) == sorted(built.group) and not smap.unembedded
    cells = smap.layout.cells
    assert len({tuple(c) for c in cells}) == len(cells)  # one image per cell
    assert (cells >= 0).all() and (cells[:, 0] < smap.layout.cols).all() and (cells[:, 1] < smap.layout.rows).all()
    groups = [built.group[item.key] for item in smap.items]
    observed = within_group_distance(cells, groups)
    rng = np.random.default_rng(0)
    baseline = [within_group_distance(cells, list(rng.permutation(groups))) for _ in range(500)]
    # Siblings are closer than under any of 500 random regroupings (p < 0.002), and by a wide margin.
    assert observed < min(baseline)
    assert observed < 0.6 * float(np.mean(baseline)), (observed, float(np.mean(baseline)))


def test_layout_is_deterministic_and_independent_of_the_files_order(built):
    first = load_map(built)
    again = load_map(built)
    assert [i.key for i in first.items] == [i.key for i in again.items]
    assert np.array_equal(first.layout.cells, again.layout.cells)


def test_grid_shapes_and_tiny_inputs():
    assert grid_shape(0) == (0, 0) and grid_shape(1) == (1, 1)
    assert grid_shape(10) == (3, 4) and grid_shape(3000, 1.6) == (69, 44)
    for n in (1, 2, 4, 7):
        layout = grid_layout(np.random.default_rng(n).normal(size=(n, 16)))
        assert len({tuple(c) for c in layout.cells}) == n
    # The assignment is exact: points already on the cell centres stay there.
    centres = np.array([[(c + 0.5) / 3, (r + 0.5) / 2] for r in range(2) for c in range(3)])
    order = np.random.default_rng(1).permutation(6)
    cells = assign_to_grid(centres[order], 3, 2)
    assert [tuple(x) for x in cells] == [(i % 3, i // 3) for i in order]


# -- the PNG --------------------------------------------------------------------------------------


def tile_pixels(picture: Image.Image, cell, tile: int = mapimage.TILE) -> np.ndarray:
    """The inner square of a cell's tile (inside its frame), as an RGB array."""
    x = mapimage.GAP + int(cell[0]) * (tile + mapimage.GAP) + mapimage.FRAME
    y = mapimage.GAP + int(cell[1]) * (tile + mapimage.GAP) + mapimage.FRAME
    inner = tile - 2 * mapimage.FRAME
    return np.asarray(picture.convert("RGB"), dtype=np.float64)[y:y + inner, x:x + inner]


def frame_colour(picture: Image.Image, cell, tile: int = mapimage.TILE) -> tuple:
    x = mapimage.GAP + int(cell[0]) * (tile + mapimage.GAP) + 1
    y = mapimage.GAP + int(cell[1]) * (tile + mapimage.GAP) + 1
    return picture.convert("RGB").getpixel((x, y))


def original_grey(built: BuiltSite, key: str, side: int) -> np.ndarray:
    """The original image's luminance, fitted and centred on a side-px square as the tile is (NaN around)."""
    image = Image.open(built.root / "site" / key).convert("L")
    image.thumbnail((side, side))
    out = np.full((side, side), np.nan)
    x, y = (side - image.width) // 2, (side - image.height) // 2
    out[y:y + image.height, x:x + image.width] = np.asarray(image, dtype=np.float64)
    return out


def correlation(tile: np.ndarray, grey: np.ndarray) -> float:
    shown = tile.mean(axis=2)
    mask = ~np.isnan(grey)
    return float(np.corrcoef(shown[mask], grey[mask])[0, 1])


def test_the_png_shows_inverted_images_inverted_and_frames_each_decision(built, tmp_path, capsys):
    overrides = tmp_path / "invertornot.yml"
    shutil.copy(built.overrides, overrides)
    entries = Overrides.load(overrides).entries
    inverted = sorted(k for k, e in entries.items() if e.auto["invert"] and built.group[k] in ("lines", "bars"))
    kept = sorted(k for k, e in entries.items() if not e.auto["invert"] and built.group[k] == "coffee")
    assert len(inverted) >= 3 and kept, "the shipped head inverts white plots and keeps photos"
    relabeled = inverted.pop()  # a person says: keep this plot as it is
    record_decisions(overrides, {}, labels={relabeled: "keep"})
    output = tmp_path / "map.png"
    assert cli.main(["map", *built.args(overrides), "--output", str(output)]) == 0
    assert f"map of {len(built.group)} images" in capsys.readouterr().out
    picture = Image.open(output)
    smap = load_map(built, overrides)
    cells = {item.key: cell for item, cell in zip(smap.items, smap.layout.cells)}
    side = mapimage.TILE - 2 * mapimage.FRAME
    for key in inverted:  # white plots shown inverted: dark, their light and dark swapped
        tile = tile_pixels(picture, cells[key])
        assert np.median(tile) < 60, key
        assert correlation(tile, original_grey(built, key, side)) < -0.8, key
    for key in [*kept, relabeled]:  # kept: dimmed, light stays light
        tile = tile_pixels(picture, cells[key])
        assert correlation(tile, original_grey(built, key, side)) > 0.8, key
    assert np.median(tile_pixels(picture, cells[relabeled])) > 150
    # Each frame in its decision's colour; the person's label wins over the model's invert.
    for item in smap.items:
        assert frame_colour(picture, cells[item.key]) == mapimage.COLOURS[category(item, 0.5, 0.2)], item.key
    assert frame_colour(picture, cells[relabeled]) == mapimage.COLOURS["human"]
    assert frame_colour(picture, cells[inverted[0]]) == mapimage.COLOURS["invert"]
    # The legend sits under the grid, on the dark page.
    grid_height = mapimage.GAP + smap.layout.rows * (mapimage.TILE + mapimage.GAP)
    assert picture.height > grid_height + 20


def test_a_novel_image_stands_out_where_the_build_recorded_it(built, tmp_path):
    """A build records each decision's novelty score (`auto: novelty:`); an image above the cut-off
    whose decision went down the unsure path is novel, and the map frames it in its colour."""
    import yaml

    overrides = tmp_path / "invertornot.yml"
    data = yaml.safe_load(built.overrides.read_text())
    key = sorted(data["images"])[0]
    data["images"][key]["auto"].update(novelty=99.0, method="default")
    overrides.write_text(yaml.safe_dump(data))
    smap = load_map(built, overrides)
    novel = [item for item in smap.items if item.novel]
    assert [item.key for item in novel] == [key] and category(novel[0], 0.5, 0.2) == "novel"
    assert not any(item.novel for item in smap.items if item.key != key)
    output = tmp_path / "map.png"
    assert cli.main(["map", *built.args(overrides), "--output", str(output)]) == 0
    cell = smap.layout.cells[smap.items.index(novel[0])]
    assert frame_colour(Image.open(output), cell) == mapimage.COLOURS["novel"]


def test_the_png_is_the_same_every_run(built, tmp_path):
    outputs = [tmp_path / "a.png", tmp_path / "b.png"]
    for output in outputs:
        assert cli.main(["map", *built.args(), "--output", str(output), "--tile", "32"]) == 0
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in outputs}
    assert len(digests) == 1


def test_an_unreadable_image_is_a_grey_tile(built, tmp_path, caplog):
    smap = load_map(built)
    key = smap.items[0].key
    path = built.root / "site" / key
    saved, st = path.read_bytes(), path.stat()
    try:
        path.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
        output = tmp_path / "map.png"
        assert cli.main(["map", *built.args(), "--output", str(output)]) == 0
    finally:
        path.write_bytes(saved)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    tile = tile_pixels(Image.open(output), smap.layout.cells[0])
    assert (tile == mapimage.UNREADABLE).all()
    assert f"{key}: cannot read the image" in caplog.text


def test_errors_say_what_is_missing_and_fail(built, tmp_path, capsys):
    output = tmp_path / "map.png"
    assert cli.main(["map", "--store", str(tmp_path / "nowhere"), "--overrides", str(built.overrides),
                     "--output", str(output)]) == 2
    assert "no embedding store" in capsys.readouterr().err
    assert cli.main(["map", "--store", str(built.store_dir), "--overrides", str(tmp_path / "none.yml"),
                     "--output", str(output)]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.yml"
    empty.write_text("# no images yet\n")
    assert cli.main(["map", *built.args(empty), "--output", str(output)]) == 1
    assert "no images to map" in capsys.readouterr().err
    assert cli.main(["map", *built.args(), "--output", str(output), "--tile", "4"]) == 2
    assert "--tile" in capsys.readouterr().err
    assert cli.main(["map", *built.args(), "--output", str(output), "--dark-page", "not-a-colour"]) == 2
    assert not output.exists()
    assert cli.main(["map", *built.args(), "--output", str(tmp_path / "no" / "dir" / "map.png")]) == 2
    assert "cannot write" in capsys.readouterr().err


# -- the review server's map ----------------------------------------------------------------------


def test_review_server_serves_the_same_map_and_small_tiles(built, tmp_path):
    from test_review import Running

    overrides = tmp_path / "invertornot.yml"
    shutil.copy(built.overrides, overrides)
    running = Running(dataclasses.replace(built, overrides=overrides), embedder=EMBEDDER)
    try:
        assert running.request("GET", "/api/map", token=False).status == 403
        response = running.request("GET", "/api/map")
        assert response.status == 200
        payload = json.loads(response.body)
        assert (payload["cols"], payload["rows"]) == grid_shape(len(built.group), 1.6)
        assert set(payload["cells"]) == set(built.group) and payload["unembedded"] == []
        assert len({(c["col"], c["row"]) for c in payload["cells"].values()}) == len(built.group)
        smap = load_map(built, overrides)  # the same map as `invertornot-ssg map` draws
        assert {k: (c["col"], c["row"]) for k, c in payload["cells"].items()} == {
            item.key: (int(col), int(row)) for item, (col, row) in zip(smap.items, smap.layout.cells)}
        items = {item.key: item for item in running.site.items()}
        for key, cell in payload["cells"].items():
            assert cell["category"] == category(items[key], 0.5, 0.2)
            assert 0 <= cell["x"] <= 1 and 0 <= cell["y"] <= 1
        sha1 = items[next(iter(items))].sha1
        mini = running.request("GET", f"/mini/{sha1}")
        assert mini.status == 200
        assert max(Image.open(io.BytesIO(mini.body)).size) <= 64
        assert running.request("GET", f"/mini/{sha1}", token=False).status == 403
        assert running.request("POST", "/api/map", b"{}").status == 405
    finally:
        running.close()
