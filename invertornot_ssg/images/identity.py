"""Identity of an image: file sha1 and perceptual hash (with the distance between two)."""
from __future__ import annotations

import hashlib

from .loaded import Image, PathArg



def file_sha1(path: PathArg) -> str:
    """SHA-1 hex digest of the file's bytes, read in chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """imagehash's DCT perceptual hash, as hex (16 characters)."""
    import imagehash  # imported when an image is described, not by every build

    return str(imagehash.phash(image))


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two perceptual hashes in hex."""
    if len(a) != len(b):
        raise ValueError(f"perceptual hashes differ in length: {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
