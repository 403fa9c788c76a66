"""numpy and Pillow, imported on first use.

A warm build (every decision cached) never touches an array or decodes an image, and importing
numpy (~90 ms) and Pillow (~25 ms) would be paid by every build. Modules here write
`from ._lazy import np` instead of `import numpy as np`, and the image code reads Pillow's
modules the same way. The first attribute read imports the module through the import system,
whose module locks make that safe from the decode threads (importlib's LazyLoader is not
thread-safe before Python 3.12); the proxy then holds the module's names itself, so later reads
cost what a module attribute costs.
"""
from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, name: str) -> Any:  # only for names not (yet) copied here
        module = importlib.import_module(self._lazy_name)
        self.__dict__.update(vars(module))
        return getattr(module, name)

    def __repr__(self) -> str:
        return f"<{self._lazy_name}, imported on first use>"


np: Any = LazyModule("numpy")
