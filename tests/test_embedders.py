"""Embedders with the real models: ImageNet sanity of the EfficientNet-Lite0 weights, the shipped ONNX
model against the PyTorch one it is exported from, vector hygiene, open_clip loading (random,
checkpoint file, cached tag) and the errors that say how to get weights."""
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from invertornot_ssg import embedders
from invertornot_ssg.embedders import (
    PREPARATION,
    EfficientNetLite0Embedder,
    EfficientNetLite0TorchEmbedder,
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
def lite0_torch() -> EfficientNetLite0TorchEmbedder:
    """The PyTorch model the ONNX file is exported from ([export] extra, which the test extra has)."""
    pytest.importorskip("timm")
    return EfficientNetLite0TorchEmbedder(progress=False)


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
def test_lite0_weights_classify_imagenet(lite0_torch):
    top1 = lite0_torch.classify_imagenet([Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]).argmax(1)
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
    np.testing.assert_array_equal(batch, lite0.preprocess(images))
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32 and batch.flags.c_contiguous  # NCHW
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


# -- the shipped ONNX model against PyTorch ---------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = REPO / "sample_site" / "mkdocs" / "docs" / "img"


def sample_site_images() -> list[Image.Image]:
    """The sample site's photos, plots, scans and SVG diagrams, decoded as a build decodes them."""
    from invertornot_ssg.images import ImageError, load_image

    loaded = [load_image(path, (255, 255, 255), max_side=512) for path in sorted(SAMPLE_IMAGES.iterdir())]
    return [item.image for item in loaded if not isinstance(item, ImageError)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_onnx_model_gives_the_pytorch_vectors_on_real_images(lite0, lite0_torch):
    images = photos() + sample_site_images() + [diagram()]
    assert len(images) >= 15
    onnx, torch_ = lite0.embed(images), lite0_torch.embed(images)
    # The same vectors up to float rounding: the id (and every stored vector, the shipped head and
    # bootstrap set) is the PyTorch model's.
    assert cosines(onnx, torch_).min() >= 0.9999
    assert np.abs(onnx - torch_).max() < 1e-3
    assert lite0.id == lite0_torch.id == embedder_id("efficientnet-lite0") and lite0.dim == lite0_torch.dim == 1280


def test_the_shipped_onnx_file_is_the_one_its_sidecar_describes():
    import hashlib
    import json
    from importlib import metadata

    path = embedders.onnx_model_path()
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    assert path.stat().st_size == meta["bytes"]
    assert meta["embedder_id"] == embedder_id("efficientnet-lite0")
    assert meta["input"]["size"] == 224 and meta["input"]["layout"] == "NCHW"
    assert meta["input"]["mean"] == meta["input"]["std"] == [0.5, 0.5, 0.5]
    assert meta["check_against_pytorch"]["min_cosine"] >= 0.9999
    try:  # exported from the weights that are installed here (the test extra has the package)
        assert meta["source"]["version"] == metadata.version(meta["source"]["package"])
    except metadata.PackageNotFoundError:
        pass


@pytest.mark.slow
def test_export_script_rebuilds_the_shipped_model(lite0, tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("onnx")
    out = tmp_path / "efficientnet-lite0.onnx"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["check_against_pytorch"]["images"] >= 15 and meta["check_against_pytorch"]["min_cosine"] >= 0.9999
    rebuilt = EfficientNetLite0Embedder(path=out, progress=False)  # its sidecar fits, or this raises
    images = photos() + sample_site_images()
    assert cosines(rebuilt.embed(images), lite0.embed(images)).min() >= 0.9999
    shipped = json.loads(lite0.path.with_name(lite0.path.name + ".json").read_text())
    if meta["exported_with"] == shipped["exported_with"]:  # the export is deterministic: the same bytes
        assert meta["sha256"] == shipped["sha256"]


def test_a_damaged_or_foreign_onnx_file_is_refused_with_what_to_do(tmp_path):
    import json
    import shutil

    shipped = embedders.onnx_model_path()
    path = tmp_path / shipped.name
    with pytest.raises(ModelUnavailableError, match="is missing; reinstall"):
        EfficientNetLite0Embedder(path=path)
    shutil.copy(shipped.with_name(shipped.name + ".json"), tmp_path)
    path.write_bytes(shipped.read_bytes()[: 1 << 20])  # a truncated copy
    with pytest.raises(ModelUnavailableError, match="the sidecar says"):
        EfficientNetLite0Embedder(path=path)
    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text())
    meta["bytes"] = path.stat().st_size
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailableError, match="cannot load"):
        EfficientNetLite0Embedder(path=path)
    meta["input"]["mean"] = [0.485, 0.456, 0.406]  # a model exported for ImageNet's usual input
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailableError, match="its input is"):
        EfficientNetLite0Embedder(path=path)


@pytest.mark.slow
def test_onnx_threads_are_per_calling_thread_and_change_nothing_but_speed(lite0):
    import threading

    images = photos()
    default = lite0.embed(images)
    seen = {}

    def single_threaded():
        lite0.set_threads(1)
        seen["threads"] = lite0.threads()
        seen["vectors"] = lite0.embed(images)

    worker = threading.Thread(target=single_threaded)
    worker.start()
    worker.join()
    assert seen["threads"] == 1 and lite0.threads() == embedders._default_threads()  # this thread's unchanged
    np.testing.assert_allclose(seen["vectors"], default, atol=1e-5)


@pytest.mark.slow
def test_a_build_with_the_default_embedder_needs_no_pytorch(tmp_path):
    # As in the user's install: importing torch, timm or open_clip fails. (Where torch is installed,
    # skops imports it anyway when it loads the head, through scikit-learn's list of estimators.)
    code = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm", "open_clip"):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
from pathlib import Path
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.settings import Settings
engine = Engine(Settings(store=sys.argv[1], overrides=""), Path(sys.argv[1]))
paths = sorted(Path({str(SAMPLE_IMAGES)!r}).iterdir())
results = engine.classify([ImageRequest(path=p, key=p.name) for p in paths])
assert engine.embedded >= 15, engine.embedded
assert sum(r.method == "head" for r in results) >= 5, [r.method for r in results]
assert "onnxruntime" in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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
