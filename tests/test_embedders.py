"""Embedders with the real models: ImageNet sanity of the EfficientNet-Lite0 weights, vector hygiene,
open_clip loading (random, checkpoint file, cached tag) and the errors that say how to get weights."""
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data

from invertornot_ssg import embedders
from invertornot_ssg.embedders import (
    PREPARATION,
    EfficientNetLite0Embedder,
    _letterbox,
    _map_by_order,
    embedder_id,
    get_embedder,
    id_slug,
)
from invertornot_ssg.errors import ModelUnavailableError

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup
LAION_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def photos() -> list[Image.Image]:
    return [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee()), Image.fromarray(data.astronaut())]


def diagram(size=(300, 120)) -> Image.Image:
    image = Image.new("RGB", size, (255, 255, 255))
    pixels = np.asarray(image).copy()
    pixels[size[1] // 2, :, :] = 0  # a horizontal rule
    pixels[:, 10:16, :] = (200, 0, 0)  # a red bar near the left edge
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0Embedder:
    return get_embedder("efficientnet-lite0", progress=False)


@pytest.fixture(scope="module")
def clip_random():
    pytest.importorskip("open_clip")
    return get_embedder("clip:ViT-B-32", progress=False)


@pytest.fixture(scope="module")
def perturbed_checkpoint(clip_random, tmp_path_factory):
    """(path, vectors of photos()): a ViT-B-32 state dict that differs from the seeded random init in
    the last layers, saved once for the module, and what encode_image gives with it."""
    import copy

    import torch

    generator = torch.Generator().manual_seed(1)
    state = clip_random.model.state_dict()
    for key in ("visual.ln_post.weight", "visual.ln_post.bias", "visual.proj"):
        state[key] = state[key] + 0.5 * torch.randn(state[key].shape, generator=generator)
    path = tmp_path_factory.mktemp("ckpt") / "vit-b-32.pt"
    torch.save(state, path)
    model = copy.deepcopy(clip_random.model)
    model.load_state_dict(state)
    with torch.inference_mode():
        features = model.eval().encode_image(clip_random.preprocess(photos()))
    return path, torch.nn.functional.normalize(features, dim=1).numpy()


# -- ids, no model --------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = (
        "import invertornot_ssg.embedders as e, sys; "
        "e.embedder_id('clip:ViT-B-32/openai'); e.id_slug('efficientnet-lite0'); "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'open_clip' not in sys.modules and 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("efficientnet-lite0", "efficientnet-lite0"),
        (" EfficientNet-Lite0 ", "efficientnet-lite0"),
        ("clip:ViT-B-32/laion2b_s34b_b79k", "clip:ViT-B-32/laion2b_s34b_b79k"),
        ("clip:ViT-B-32/LAION2B-S34B-B79K", "clip:ViT-B-32/laion2b_s34b_b79k"),  # as open_clip reads tags
        ("clip:ViT-B-32", "clip:ViT-B-32"),
    ],
)
def test_embedder_id_is_canonical(given, canonical):
    assert embedder_id(given) == f"{canonical}.prep{PREPARATION}"


def test_a_new_preparation_is_a_new_id(monkeypatch):
    # Vectors of an older preparation must never be looked up as if they were current ones.
    before = embedder_id("efficientnet-lite0")
    monkeypatch.setattr(embedders, "PREPARATION", PREPARATION + 1)
    assert embedder_id("efficientnet-lite0") != before
    assert embedder_id("efficientnet-lite0") == f"efficientnet-lite0.prep{PREPARATION + 1}"


def test_checkpoint_id_names_the_absolute_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path.resolve() / "weights" / "x.pt"
    assert embedder_id("clip:ViT-B-32@weights/x.pt") == f"clip:ViT-B-32@{checkpoint}.prep{PREPARATION}"


@pytest.mark.parametrize("bad", ["resnet50", "clip:", "clip:/openai", "clip:ViT-B-32/", "clip:ViT-B-32@", ""])
def test_unknown_ids_list_the_valid_forms(bad):
    with pytest.raises(ModelUnavailableError, match="valid forms") as info:
        get_embedder(bad)
    assert "clip:<arch>/<pretrained-tag>" in str(info.value) and "efficientnet-lite0" in str(info.value)


def test_id_slug_is_safe_and_distinct():
    ids = ["efficientnet-lite0.prep2", "clip:ViT-B-32/openai", "clip:vit-b-32/openai", "clip:ViT-B-32@/a/b c.pt",
           "clip:ViT-B-32@/a/b_c.pt", "clip:ViT-B-32"]
    slugs = [id_slug(i) for i in ids]
    assert slugs[0] == "efficientnet-lite0.prep2"
    assert len({s.lower() for s in slugs}) == len(ids)
    for slug in slugs:
        assert all(c.isalnum() or c in "._-" for c in slug) and not slug.startswith(".") and len(slug) <= 64
    assert id_slug(ids[1]) == slugs[1]  # stable


def test_map_by_order_renames_and_checks_shapes():
    import torch

    source = {"_stem.w": torch.zeros(4, 3), "_bn.b": torch.ones(4)}
    mapped = _map_by_order(source, {"stem.weight": torch.empty(4, 3), "bn.bias": torch.empty(4)}, "w.pth")
    assert list(mapped) == ["stem.weight", "bn.bias"] and mapped["bn.bias"] is source["_bn.b"]
    with pytest.raises(ModelUnavailableError, match=r"#1 '_bn.b' has shape \(4,\) but timm's 'bn.bias' has \(5,\)"):
        _map_by_order(source, {"stem.weight": torch.empty(4, 3), "bn.bias": torch.empty(5)}, "w.pth")
    with pytest.raises(ModelUnavailableError, match="hold 2 tensors"):
        _map_by_order(source, {"stem.weight": torch.empty(4, 3)}, "w.pth")


def test_letterbox_keeps_the_whole_image_and_pads_with_its_background():
    wide = diagram((400, 100))
    fitted = np.asarray(_letterbox(wide, (224, 224), Image.Resampling.BICUBIC))
    assert fitted.shape == (224, 224, 3)
    assert (fitted[:80] == 255).all() and (fitted[-80:] == 255).all()  # padding = the white border
    content = fitted[84:140]  # 400x100 -> 224x56, centred
    assert (content.min(axis=(0, 2)) < 200).all()  # the rule still spans the full width: nothing cropped
    assert content[:20, 4:8, 1].min() < 120 and content[:20, 4:8, 0].min() > 150  # the red bar by the left edge
    dark = Image.new("RGB", (50, 200), (20, 30, 40))
    assert tuple(np.asarray(_letterbox(dark, (224, 224), Image.Resampling.BICUBIC))[0, 0]) == (20, 30, 40)


# -- EfficientNet-Lite0 ---------------------------------------------------------------------


@pytest.mark.slow
def test_lite0_weights_classify_imagenet(lite0):
    top1 = lite0.classify_imagenet([Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]).argmax(1)
    assert top1[0] in CAT_CLASSES, top1
    assert top1[1] in CUP_CLASSES, top1


@pytest.mark.slow
def test_lite0_vectors_are_normalised_float32(lite0):
    images = photos() + [diagram(), Image.new("RGB", (1, 1), (0, 0, 0)), Image.new("L", (64, 64), 128)]
    vectors = lite0.embed(images)
    assert lite0.id == embedder_id("efficientnet-lite0") and lite0.dim == 1280
    assert vectors.shape == (len(images), 1280) and vectors.dtype == np.float32 and vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert lite0.embed([]).shape == (0, 1280)
    assert (vectors @ vectors.T)[np.triu_indices(len(images), 1)].max() < 0.99  # all different


@pytest.mark.slow
def test_lite0_batches_match_singles_and_are_deterministic(lite0, monkeypatch):
    assert lite0.batch_size == type(lite0).forward_batch  # the model's own batch when none is given
    images = photos()
    monkeypatch.setattr(lite0, "batch_size", 2)
    together = lite0.embed(images)  # batches of 2 and 1
    alone = np.vstack([lite0.embed([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_array_equal(lite0.embed(images), lite0.embed(images))


@pytest.mark.slow
def test_preprocess_and_forward_compose_to_embed(lite0):
    images = photos()
    prepared = [lite0.prepare(image) for image in images]  # what worker threads run
    assert all(p.shape == (224, 224, 3) and p.dtype == np.uint8 for p in prepared)
    batch = lite0.batch(prepared)
    np.testing.assert_array_equal(batch.numpy(), lite0.preprocess(images).numpy())
    assert tuple(batch.shape) == (3, 3, 224, 224) and str(batch.dtype) == "torch.float32"
    assert -1.0 <= float(batch.min()) and float(batch.max()) <= 1.0  # mean = std = 0.5
    np.testing.assert_array_equal(lite0.forward(batch), lite0.embed(images))


@pytest.mark.slow
def test_progress_bar_on_a_terminal_above_a_handful(lite0, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(lite0, "progress", True)
    for stream, count, shown in [(Terminal(), 3, False), (Terminal(), 10, True), (io.StringIO(), 10, False)]:
        monkeypatch.setattr(sys, "stderr", stream)  # CI logs are not terminals: no bar there
        lite0.embed([diagram((32, 32))] * count)
        assert (f"embedding ({lite0.id})" in stream.getvalue()) == shown, (count, stream)
    monkeypatch.setattr(lite0, "progress", False)
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    lite0.embed([diagram((32, 32))] * 10)
    assert stream.getvalue() == ""


# -- open_clip ------------------------------------------------------------------------------


@pytest.mark.slow
def test_clip_random_weights(clip_random):
    vectors = clip_random.embed(photos())
    assert clip_random.id == embedder_id("clip:ViT-B-32") and clip_random.dim == 512
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_clip_random_weights_are_the_same_in_every_load(clip_random, caplog):
    again = get_embedder("clip:ViT-B-32", progress=False, batch_size=3)
    assert "random weights" in caplog.text
    assert (clip_random.batch_size, again.batch_size) == (embedders.FORWARD_BATCH, 3)
    np.testing.assert_array_equal(again.embed(photos()[:1]), clip_random.embed(photos()[:1]))


@pytest.mark.slow
def test_clip_bogus_tag_lists_the_tags(clip_random):
    with pytest.raises(ModelUnavailableError, match="not a pretrained tag of ViT-B-32") as info:
        get_embedder("clip:ViT-B-32/no_such_tag")
    assert "laion2b_s34b_b79k" in str(info.value) and "openai" in str(info.value)
    with pytest.raises(ModelUnavailableError, match="no architecture 'ViT-B-33'.*ViT-B-32"):
        get_embedder("clip:ViT-B-33/openai")


@pytest.mark.slow
def test_clip_tag_offline_says_how_to_provide_the_weights(clip_random, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never download 600 MB, even where there is a network
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        get_embedder("clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "clip:ViT-B-32@/path/to/" in message and f"hf download {LAION_REPO}" in message
    assert str(tmp_path) in message and "HF_HUB_OFFLINE" in message


@pytest.mark.slow
def test_clip_checkpoint_file(clip_random, perturbed_checkpoint):
    path, expected = perturbed_checkpoint
    loaded = get_embedder(f"clip:ViT-B-32@{path}", progress=False)
    assert loaded.id == embedder_id(f"clip:ViT-B-32@{path.resolve()}") and loaded.dim == 512
    vectors = loaded.embed(photos())
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not np.allclose(vectors, clip_random.embed(photos()), atol=1e-3)  # the file's weights, not the init


@pytest.mark.slow
def test_clip_bad_checkpoint_files(clip_random, tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        get_embedder(f"clip:ViT-B-32@{tmp_path / 'missing.pt'}")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    # open_clip builds the model before it reads the file: a small architecture keeps this quick
    with pytest.raises(ModelUnavailableError, match="cannot load checkpoint .*junk.pt as ViT-S-32-alt"):
        get_embedder(f"clip:ViT-S-32-alt@{tmp_path / 'junk.pt'}")


@pytest.mark.slow
def test_clip_tag_loads_from_the_cache_without_network(clip_random, perturbed_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, expected = perturbed_checkpoint
    revision = "0" * 40
    repo_dir = tmp_path / ("models--" + LAION_REPO.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    os.symlink(path, snapshot / "open_clip_pytorch_model.bin")
    cached = get_embedder("clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path, progress=False)
    assert cached.id == embedder_id("clip:ViT-B-32/laion2b_s34b_b79k")
    np.testing.assert_allclose(cached.embed(photos()), expected, atol=1e-5)


def test_missing_open_clip_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` now raises ImportError
    with pytest.raises(ModelUnavailableError, match=r"pip install 'invertornot-ssg\[clip\]'"):
        get_embedder("clip:ViT-B-32")
