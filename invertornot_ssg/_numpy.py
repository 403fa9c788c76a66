"""numpy, imported on first use.

A warm build (every decision cached) never touches an array, and importing numpy is ~90 ms of
every build. Modules here write `from ._numpy import np` instead of `import numpy as np`. The
first attribute read imports numpy through the import system, whose module locks make that safe
from the decode threads (importlib's LazyLoader is not thread-safe before Python 3.12); the
proxy then holds numpy's names itself, so later reads cost what a module attribute costs.
"""
from __future__ import annotations

import importlib
from typing import Any


class _Numpy:
    def __getattr__(self, name: str) -> Any:  # only for names not (yet) copied here
        numpy = importlib.import_module("numpy")
        self.__dict__.update(vars(numpy))
        return getattr(numpy, name)

    def __repr__(self) -> str:
        return "<numpy, imported on first use>"


np: Any = _Numpy()
