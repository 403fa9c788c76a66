"""Per-image labels in a page's front matter (`invertornot: {invert: [...], keep: [...]}`)."""
from __future__ import annotations

import posixpath
from typing import Any, Iterable, Mapping
from urllib.parse import unquote

KEY = "invertornot"
LABELS = ("invert", "keep")


class FrontMatterError(ValueError):
    """A malformed `invertornot:` value; the message names the page and the key."""


def parse(meta: Mapping[str, Any], page: str) -> list[tuple[str, str]]:
    """`(label, path as written)` pairs from a page's metadata, in order; raises FrontMatterError.

    ```yaml
    invertornot:
      invert: [img/diagram.png]
      keep: [img/portrait.jpg]    # a single path may be written without the list
    ```
    """
    value = meta.get(KEY)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise FrontMatterError(
            f"{page}: front matter '{KEY}' must be a mapping with 'invert' and/or 'keep' lists "
            f"of image paths, got {value!r}"
        )
    for key in value:
        if key not in LABELS:
            raise FrontMatterError(f"{page}: front matter '{KEY}.{key}': unknown key; expected 'invert' or 'keep'")
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for label in LABELS:
        paths = value.get(label)
        if paths is None:
            continue
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
            raise FrontMatterError(
                f"{page}: front matter '{KEY}.{label}' must be a list of image paths, got {paths!r}"
            )
        for path in paths:
            path = path.strip()
            if seen.get(path, label) != label:
                raise FrontMatterError(f"{page}: front matter '{KEY}': {path!r} is listed under both invert and keep")
            if path not in seen:
                seen[path] = label
                pairs.append((label, path))
    return pairs


def candidates(path: str, page_src_uri: str) -> list[str]:
    """Site-relative keys that `path` may mean, in order: relative to the page's Markdown file,
    then relative to docs_dir (a leading '/' means docs_dir only). Keys leaving docs_dir are dropped."""
    page_dir = posixpath.dirname(page_src_uri)
    found: list[str] = []
    text = path.strip().replace("\\", "/")
    for variant in dict.fromkeys((text, unquote(text))):  # as written, and URL-decoded (`my%20chart.png`)
        if variant.startswith("/"):
            keys: Iterable[str] = [variant.lstrip("/")]
        else:
            keys = [posixpath.join(page_dir, variant), variant]
        for key in keys:
            key = posixpath.normpath(key) if key else "."
            if key != "." and key != ".." and not key.startswith("../") and key not in found:
                found.append(key)
    return found
