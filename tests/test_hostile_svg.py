"""SVGs crafted to crash resvg's native code (issue 34): nesting 250-999 levels deep, through
<g>, <a>, <use> chains, masks, groups reached through <use>, a <use> fan-out bomb and a reference
loop. resvg needs ~32 KB of stack per level, so 250 levels overflowed an 8 MiB stack and killed
the process with SIGSEGV. Each file is now refused with a warning or rendered in a thread with
a large stack, and a real `mkdocs build` of a page holding all of them beside a good image
succeeds and still classifies the good image."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from invertornot_ssg.images import MAX_SVG_DEPTH

OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'


def nested(tag: str, levels: int) -> str:
    return OPEN + f"<{tag}>" * levels + '<rect width="10" height="10"/>' + f"</{tag}>" * levels + "</svg>"


def use_chain(links: int) -> str:
    uses = "".join(f'<use id="u{i}" xlink:href="#u{i - 1}"/>' for i in range(1, links))
    return OPEN + f'<defs><rect id="u0" width="10" height="10"/>{uses}</defs><use xlink:href="#u{links - 1}"/></svg>'


def groups_through_use(groups: int, depth: int) -> str:
    """`groups` groups, each `depth` deep, the innermost using the next: no element is deep, but
    resvg descends groups x depth levels."""
    parts = []
    for i in range(groups):
        inner = f'<use xlink:href="#c{i + 1}"/>' if i < groups - 1 else '<rect width="9" height="9"/>'
        parts.append(f'<g id="c{i}">' + "<g>" * depth + inner + "</g>" * depth + "</g>")
    return OPEN + "<defs>" + "".join(parts) + '</defs><use xlink:href="#c0"/></svg>'


def mask_chain(links: int) -> str:
    masks = "".join(f'<mask id="m{i}"><rect width="64" height="64" fill="white" mask="url(#m{i + 1})"/></mask>'
                    for i in range(links))
    return (OPEN + f'<defs>{masks}<mask id="m{links}"><rect width="9" height="9" fill="white"/></mask></defs>'
            '<rect width="64" height="64" mask="url(#m0)"/></svg>')


def stylesheet_mask_chain(links: int) -> str:
    """The same chain with each mask applied from a style sheet, not an attribute."""
    rules = "".join(f".k{i} {{ mask: url(#m{i + 1}) }}" for i in range(links))
    masks = "".join(f'<mask id="m{i}"><rect class="k{i}" width="64" height="64" fill="white"/></mask>'
                    for i in range(links))
    return (OPEN + f"<style>{rules}</style><defs>{masks}"
            f'<mask id="m{links}"><rect width="9" height="9" fill="white"/></mask></defs>'
            '<rect width="64" height="64" mask="url(#m0)"/></svg>')


def use_bomb(levels: int, fan: int) -> str:
    """Each level uses the one below `fan` times: fan ** levels elements once expanded."""
    parts = [f'<g id="l{i}">' + f'<use xlink:href="#l{i - 1}"/>' * fan + "</g>" for i in range(1, levels)]
    return OPEN + '<defs><rect id="l0" width="1" height="1"/>' + "".join(parts) + f'</defs><use xlink:href="#l{levels - 1}"/></svg>'


def reference_loop() -> str:
    return OPEN + '<defs><g id="a"><use xlink:href="#b"/></g><g id="b"><use xlink:href="#a"/></g></defs><use xlink:href="#a"/></svg>'


# name -> (SVG text, what becomes of it: 'rendered' or the start of the refusal)
CRAFTED = {
    "g250.svg": (nested("g", 250), "rendered"),  # crashed on an 8 MiB stack
    "a250.svg": (nested("a", 250), "rendered"),
    "g999.svg": (nested("g", 999), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "a999.svg": (nested("a", 999), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "g5000.svg": (nested("g", 5000), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "use250.svg": (use_chain(250), "rendered"),
    "use999.svg": (use_chain(999), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "groups-via-use.svg": (groups_through_use(10, 30), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "mask300.svg": (mask_chain(300), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "css-mask300.svg": (stylesheet_mask_chain(300), f"SVG nested more than {MAX_SVG_DEPTH} levels deep"),
    "use-bomb.svg": (use_bomb(9, 10), "SVG with more than 200,000 elements"),
    "loop.svg": (reference_loop(), "SVG whose references form a loop"),
}

LOAD_ALL = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from invertornot_ssg.images import ImageError, load_image
def one(path):
    result = load_image(path)
    return [path, result.kind, result.detail] if isinstance(result, ImageError) else [path, "rendered", result.format]
# In a pool thread with the default stack, as the engine's decode threads load images.
with ThreadPoolExecutor(2) as pool:
    print(json.dumps(list(pool.map(one, sys.argv[1:]))))
"""


def write_crafted(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (text, _) in CRAFTED.items():
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(folder / name)
    return paths


def test_each_crafted_svg_is_rendered_or_refused_without_a_crash(tmp_path):
    paths = write_crafted(tmp_path)
    # A child process: were resvg to overflow its stack again, this test fails instead of pytest dying.
    done = subprocess.run([sys.executable, "-c", LOAD_ALL, *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    outcomes = {Path(path).name: (kind, detail) for path, kind, detail in json.loads(done.stdout)}
    for name, (_, expected) in CRAFTED.items():
        kind, detail = outcomes[name]
        if expected == "rendered":
            assert (kind, detail) == ("rendered", "SVG"), (name, kind, detail)
        else:
            assert kind == "svg-error" and detail.startswith(expected), (name, kind, detail)


def test_ordinary_svgs_with_references_still_render(tmp_path):
    """Shared symbols, gradients from a style sheet and clip paths: depth stays small."""
    from invertornot_ssg.images import LoadedImage, load_image

    markers = "".join(f'<use xlink:href="#dot" x="{i % 60}" y="{i // 60}"/>' for i in range(3000))
    svg = (OPEN + '<style>.f { fill: url(#grad) } .c { clip-path: url(#clip) }</style><defs>'
           '<linearGradient id="grad"><stop offset="0" stop-color="red"/><stop offset="1" stop-color="blue"/></linearGradient>'
           '<clipPath id="clip"><rect width="32" height="32"/></clipPath><circle id="dot" r="1"/></defs>'
           f'<g class="c"><rect class="f" width="64" height="64"/></g>{markers}</svg>')
    path = tmp_path / "ordinary.svg"
    path.write_text(svg)
    assert isinstance(load_image(path), LoadedImage)


def chart() -> Image.Image:
    image = Image.new("RGB", (160, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(10, 110), (10, 10)], fill="black", width=2)
    draw.line([(10, 110), (150, 110)], fill="black", width=2)
    draw.line([(10, 100), (60, 40), (100, 70), (150, 20)], fill="blue", width=3)
    return image


@pytest.mark.slow
def test_mkdocs_build_with_every_crafted_svg_beside_a_good_image(tmp_path):
    """...and an <img> whose src is 100 KB long, whose warning is shortened (issue 34)."""
    docs = tmp_path / "docs"
    write_crafted(docs / "img")
    chart().save(docs / "img" / "good.png")
    lines = ["# Hostile SVGs", "", "![good](img/good.png)", ""]
    lines += [f"![{name}](img/{name})" for name in CRAFTED]
    long_src = "img/" + "x" * 100_000 + ".png"  # a 100 KB src: its warning is shortened
    lines += ["", f'<img alt="long" src="{long_src}">']
    (docs / "index.md").write_text("\n".join(lines) + "\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: hostile svg\nplugins:\n  - invertornot:\n      store: {tmp_path / 'store'}\n")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(config), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=900, env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert built.returncode == 0, (built.returncode, built.stderr[-3000:])
    html = (tmp_path / "site" / "index.html").read_text()
    good = re.search(r'<img\b[^>]*alt="good"[^>]*>', html).group(0)
    assert re.search(r'class="[^"]*invert', good), good
    warnings = [line for line in built.stderr.splitlines() if line.startswith("WARNING")]
    for name, (_, expected) in CRAFTED.items():
        mine = [w for w in warnings if f"img/{name}" in w]
        if expected == "rendered":
            assert not mine, mine
        else:
            assert len(mine) == 1 and expected in mine[0], (name, warnings)
    long = [w for w in warnings if "xxxxxxxxxx" in w]
    assert len(long) == 1 and len(long[0]) < 1000 and "(100,010 characters)" in long[0], long
    recorded = (tmp_path / "invertornot.yml").read_text()
    assert "img/good.png" in recorded and "img/g250.svg" in recorded
