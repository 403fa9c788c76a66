"""Test doubles shared by several test files (conftest.py makes `fake_embedder` a fixture)."""
import numpy as np

from invertornot_ssg.embedders import embedder_id

FAKE_MODEL = "clip:ViT-B-32"  # an id without shipped head or bootstrap set: the fake stands in for it


class FakeEmbedder:
    """Deterministic embeddings from a 4x4 thumbnail: fast, no torch."""

    id, dim = embedder_id(FAKE_MODEL), 49

    def embed(self, images) -> np.ndarray:
        rows = [np.append(np.asarray(i.convert("RGB").resize((4, 4)), np.float32).ravel() / 255, 1.0) for i in images]
        vectors = np.vstack(rows).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
