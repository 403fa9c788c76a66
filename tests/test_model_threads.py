"""The engine embeds with several model threads side by side: every vector lands under its own image."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from invertornot_ssg import engine as engine_module
from invertornot_ssg.embedders import get_embedder
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.images import load_image
from invertornot_ssg.settings import Settings

pytestmark = pytest.mark.slow


def distinct_images(folder, count):
    """Figures that differ in shape, place and colour, so their embeddings differ."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    paths = []
    for i in range(count):
        image = Image.new("RGB", (200 + i, 150), tuple(int(c) for c in rng.integers(150, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = int(rng.integers(0, 150)), int(rng.integers(0, 100))
            box = (x, y, x + int(rng.integers(20, 60)), y + int(rng.integers(20, 60)))
            fill = tuple(int(c) for c in rng.integers(0, 150, 3))
            (draw.ellipse if i % 2 else draw.rectangle)(box, fill=fill)
        path = folder / f"figure{i:02d}.png"
        image.save(path)
        paths.append(path)
    return paths


def test_a_light_model_runs_one_single_threaded_forward_per_core(monkeypatch):
    lite0 = get_embedder("efficientnet-lite0")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(engine_module, "usable_cpus", lambda: 3)
    assert Engine._model_workers(lite0) == (3, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's choice wins: one forward, torch's threads
    assert Engine._model_workers(lite0) == (1, None)
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(engine_module, "MODEL_THREADS", 2)
    assert Engine._model_workers(lite0) == (1, 2)


def test_vectors_from_several_model_threads_land_under_their_own_images(tmp_path, monkeypatch):
    paths = distinct_images(tmp_path / "img", 3 * engine_module.EMBED_BATCH + 5)  # batches in flight at once
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(engine_module, "usable_cpus", lambda: 3)  # three model threads, even on fewer cores
    engine = Engine(Settings(store=str(tmp_path / "store"), overrides="", write_overrides=False), tmp_path)
    results = engine.classify([ImageRequest(path=p, key=p.name) for p in paths])
    assert engine.embedded == len(paths) and not [r for r in results if r.error]

    stored = engine.store.get_vectors(engine.embedder_id, [r.sha1 for r in results])
    embedder = engine.load_embedder()
    expected = embedder.embed([load_image(p, engine.background, max_side=engine.work_side).image for p in paths])
    got = np.vstack([stored[r.sha1] for r in results])
    assert np.allclose(got, expected, atol=2e-2)  # stored as float16
    # Each stored vector is nearest to its own image's, not a neighbour's from another batch.
    similarity = got @ expected.T / np.outer(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1))
    assert (similarity.argmax(axis=1) == np.arange(len(paths))).all()


@pytest.mark.parametrize("images,workers", [(1, 2), (10, 2), (100, 2), (1000, 2), (1000, 13)])
def test_model_batches_start_small_reach_full_size_and_share_out_the_last_images(images, workers):
    sizes, submitted = [], 0
    while submitted < images:
        size = min(images - submitted, engine_module._next_batch_size(submitted, images - submitted, workers))
        sizes.append(size)
        submitted += size
    assert sizes[0] == min(images, engine_module.EMBED_BATCH_SMALLEST)
    assert max(sizes) <= engine_module.EMBED_BATCH
    if images >= 1000:
        assert sizes.count(engine_module.EMBED_BATCH) >= images // engine_module.EMBED_BATCH // 2
        # The last batch of each model thread is small: none of them finishes a full one alone.
        assert max(sizes[-workers:]) <= engine_module.EMBED_BATCH // 2
