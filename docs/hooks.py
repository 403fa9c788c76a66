"""MkDocs hooks of the documentation site: pages and plots generated from the code and the data.

One source of truth each: the configuration reference from `Settings` and `OPTION_HELP`
(invertornot_ssg/settings.py), the command-line reference from the argparse parser (cli.py), the
architecture page and the changelog from docs/ARCHITECTURE.md and CHANGELOG.md, and the plots
from models/bootstrap/EVALUATION.md and benchmarks/results/*.json (docs/tools/plots.py).

The plots are written into docs/src/img/plots/ (ignored in git) before MkDocs collects the files,
so this project's plugin classifies them like any image of a site; the pages are added in
`on_files`. A file is rewritten only when its bytes change, so `mkdocs serve` does not loop.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS / "tools"))

import plots  # noqa: E402  (docs/tools/plots.py)

HELP_COLUMNS = "100"  # argparse wraps at the terminal's width: fix it, so the page is the same everywhere


def on_pre_build(config) -> None:
    plots.write_all(REPO, Path(config.docs_dir) / "img" / "plots")


def on_files(files, config):
    pages = {
        "reference/configuration.md": configuration_reference(),
        "reference/cli.md": cli_reference(),
        "architecture.md": (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"),
        "changelog.md": (REPO / "CHANGELOG.md").read_text(encoding="utf-8"),
    }
    for uri, text in pages.items():
        files.append(File.generated(config, uri, content=text))
    return files


# --- the configuration reference ---------------------------------------------------------------


def configuration_reference() -> str:
    from invertornot_ssg.settings import OPTION_HELP, Settings

    defaults = Settings()
    rows = []
    for field in fields(Settings):
        default = getattr(defaults, field.name)
        rows.append(f"| `{field.name}` | `{_yaml(default)}` | {OPTION_HELP.get(field.name, '')} |")
    mkdocs_example = "\n".join(
        f"      {f.name}: {_yaml(getattr(defaults, f.name))}" for f in fields(Settings)
    )
    pelican_example = "\n".join(
        f"    {f.name!r}: {_python(getattr(defaults, f.name))}," for f in fields(Settings)
    )
    return f"""# Configuration reference

*Generated from `invertornot_ssg/settings.py` when this site was built.*

Both plugins take the same options with the same defaults: MkDocs under
`plugins: - invertornot:`, Pelican in the `INVERTORNOT` dict. Relative paths resolve against
the folder of `mkdocs.yml` (MkDocs) or the folder `pelican` runs in (Pelican). `apply`,
`classify` and the other commands take the options they need as flags
([command line](cli.md)).

| option | default | meaning |
| --- | --- | --- |
{chr(10).join(rows)}

An unknown option or a value of the wrong type stops the build with a message naming it.

## Every option at its default

```yaml
# mkdocs.yml
plugins:
  - invertornot:
{mkdocs_example}
```

```python
# pelicanconf.py
PLUGINS = ["invertornot"]
INVERTORNOT = {{
{pelican_example}
}}
```
"""


def _yaml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_str(v) for v in value) + "]"
    if isinstance(value, str):
        return _yaml_str(value)
    return str(value)


def _yaml_str(value: str) -> str:
    """A YAML scalar as a person writes it: bare when safe, single-quoted otherwise."""
    import yaml

    bare = value and value == value.strip() and not any(c in value for c in "#:[]{},'\"@&*!|>%`")
    if bare and yaml.safe_load(value) == value:
        return value
    return "'" + value.replace("'", "''") + "'"


def _python(value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return repr(value)


# --- the command-line reference ----------------------------------------------------------------


def cli_reference() -> str:
    from invertornot_ssg.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        parts = [
            "# Command-line reference\n",
            "*Generated from the argument parser (`invertornot_ssg/cli.py`) when this site was built: "
            "what `invertornot-ssg --help` and `invertornot-ssg COMMAND --help` print.*\n",
            _block(parser.format_help()),
        ]
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        summaries = {action.dest: action.help for action in commands._choices_actions}
        for name, sub in commands.choices.items():
            parts.append(f"## {name}\n")
            parts.append(f"{(summaries.get(name) or '').capitalize()}.\n")
            parts.append(_block(sub.format_help()))
        parts.append(
            "## Exit status\n\n"
            "0: done. 1: nothing to work on (no image or page found, a path that does not exist). "
            "2: a usage or configuration error, named on stderr. A bad image is never an exit "
            "status: it is an error line (`classify`) or a warning, and the rest goes on.\n"
        )
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(parts)


def _block(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```\n"
