"""The documentation site's generated parts (docs/hooks.py, docs/tools/plots.py) and what the
repository cites. `make docs` builds the whole site with --strict (CI runs it)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from invertornot_ssg.cli import build_parser
from invertornot_ssg.settings import OPTION_HELP, Settings

REPO = Path(__file__).resolve().parents[1]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.parent / "tools"))  # hooks.py imports docs/tools/plots.py
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs")
    return load(REPO / "docs" / "hooks.py")


def test_configuration_reference_lists_every_option_with_its_default_and_help(hooks):
    page = hooks.configuration_reference()
    for field in fields(Settings):
        row = re.search(rf"^\| `{field.name}` \| `([^`]*)` \| (.*) \|$", page, re.M)
        assert row, field.name
        assert row.group(2) == OPTION_HELP[field.name]
    assert "| `threshold` | `0.5` |" in page and "| `write_overrides` | `true` |" in page
    # The YAML example is valid and gives the defaults back.
    import yaml

    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    options = yaml.safe_load(block)["plugins"][0]["invertornot"]
    assert Settings.from_mapping(options) == Settings()


def test_cli_reference_is_the_parsers_help(hooks):
    page = hooks.cli_reference()
    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for name in commands.choices:
        assert f"## {name}\n" in page and f"usage: invertornot-ssg {name}" in page
    assert "--version" in page and "--overrides" in page


def test_the_plots_read_the_committed_evaluation():
    plots = load(REPO / "docs" / "tools" / "plots.py")
    evaluation = (REPO / "models" / "bootstrap" / "EVALUATION.md").read_text(encoding="utf-8")
    methods = plots.table(evaluation, "method")
    assert [row[0] for row in methods][0].startswith("saturation") and len(methods[0]) == 7
    assert {int(row[0]) for row in plots.table(evaluation, "k")} == {3, 7, 15}
    assert plots.table(evaluation, "cosine >=")
    plots_drawn = pytest.importorskip("matplotlib") and plots
    out = REPO / ".pytest_cache" / "plots"
    first = {p.name: p.read_bytes() for p in plots_drawn.write_all(REPO, out)}
    assert len(first) == 6 and all(data.startswith(b"<?xml") for data in first.values())
    assert {p.name: p.read_bytes() for p in plots_drawn.write_all(REPO, out)} == first  # same bytes again


def test_the_repository_carries_what_it_cites():
    """No tracked file points outside the repository (the labeling rule and the preview tool
    used to live in a folder beside it)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        if not name.endswith((".py", ".md", ".yml", ".toml", ".cfg", "Makefile", "run")) or name == "tests/test_docs.py":
            continue
        text = (REPO / name).read_text(encoding="utf-8", errors="replace")
        if re.search(r"/work/|\.\./shared|shared/tools|LABELING\.md", text):
            offenders.append(name)
    assert offenders == []
    assert (REPO / "docs" / "src" / "labeling.md").is_file()
