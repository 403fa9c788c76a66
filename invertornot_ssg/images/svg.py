"""SVG through resvg: size, structure checks against hostile files, no external references, rendering."""
from __future__ import annotations

import base64
import io
import re
import threading
import warnings
import xml.etree.ElementTree as ET
import zlib
from typing import Any, BinaryIO

from .._lazy import np
from ..errors import shorten
from .loaded import _Reject, Image

MAX_SVG_BYTES = 32 * 1024 * 1024  # an SVG (or decompressed SVGZ) is parsed whole in memory
# resvg recurses in native code, ~32 KB of stack per level of nesting, counting each reference
# (<use>, mask, clip-path, pattern, marker, filter) as a level: 250 levels overflow a thread's
# default 8 MiB stack and kill the process (SIGSEGV). Files nested deeper than MAX_SVG_DEPTH are
# refused; the rest render in a thread with SVG_STACK_BYTES of stack (reserved, touched only as used).
MAX_SVG_DEPTH = 256
MAX_SVG_ELEMENTS = 200_000  # after expanding references: a <use> fan-out multiplies elements
SVG_STACK_BYTES = 64 * 1024 * 1024
_SVG_NS = "{http://www.w3.org/2000/svg}"
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")
_SAFE_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|gif|webp)(;[^,]*)?,", re.IGNORECASE)
_SVG_UNITS = {  # CSS pixels per unit at 96 dpi; em and ex at resvg's default 16 px font
    "": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0,
    "em": 16.0, "ex": 8.0,
}
_URL_REFERENCE = re.compile(r"url\(\s*['\"]?#([^)'\"\s]+)")
# Elements a reference to which renders nothing nested (a gradient's children are its stops).
_FLAT_TARGETS = frozenset({"linearGradient", "radialGradient", "stop"})
_LINKS = frozenset({"a", "animate", "animateMotion", "animateTransform", "set", "script", "discard", "view"})
_SVG_LENGTH = re.compile(r"\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex|%)?\s*")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_GZIP_MAGIC = b"\x1f\x8b"


def _starts_with_markup(head: bytes) -> bool:
    """True when the content starts like XML or HTML (after a byte-order mark and whitespace)."""
    return _as_text(head).lstrip("\ufeff \t\r\n").startswith("<")


def _as_text(data: bytes) -> str:
    """Bytes to text for sniffing only (the XML parser decodes for real)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "ignore")
    return data.decode("utf-8", "ignore")


def _render_svg(fp: BinaryIO, max_side: int, max_pixels: int) -> tuple[Image.Image, int, int]:
    """Rasterize an SVG or SVGZ with resvg, fitted within max_side, with no external resources."""
    try:
        import resvg_py  # imported on first SVG: many builds have none
    except ImportError:
        raise _Reject("unsupported", "SVG needs the resvg-py package (pip install resvg-py)") from None
    data = fp.read(MAX_SVG_BYTES + 1)
    if len(data) > MAX_SVG_BYTES:
        raise _Reject("too-large", f"SVG larger than {MAX_SVG_BYTES // 2**20} MiB")
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data)
    root_tag = _root_tag(data)
    if root_tag is None:
        raise _Reject("not-an-image", "markup without any element, not an image")
    if root_tag.lower() == "html":
        raise _Reject("not-an-image", "an HTML page, not an image")
    if root_tag.rpartition(":")[2].lower() != "svg":
        raise _Reject("not-an-image", f"markup with root <{root_tag}>, not an SVG image")
    try:
        # expat never fetches external entities or DTDs and caps entity expansion.
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _Reject("svg-error", f"invalid SVG ({exc})") from None
    if root.tag not in (f"{_SVG_NS}svg", "svg"):
        raise _Reject("not-an-image", f"XML with root <{root.tag}>, not an SVG")
    _drop_external_references(root, max_pixels)
    _check_structure(root)
    declared = _svg_size(root)
    if declared:
        scale = min(1.0, max_side / max(declared))
        box = (max(1, round(declared[0] * scale)), max(1, round(declared[1] * scale)))
    else:
        box = (max_side, max_side)  # no usable size: resvg fits its default into this box
    # Always pass a box: without one resvg allocates the declared size and aborts the process.
    png = _rasterize(resvg_py, ET.tostring(root, encoding="unicode"), box)
    image = Image.open(io.BytesIO(png))
    image.load()
    width, height = (max(1, round(declared[0])), max(1, round(declared[1]))) if declared else image.size
    return image.convert("RGBA"), width, height


def _rasterize(resvg_py: Any, svg: str, box: tuple[int, int]) -> bytes:
    """resvg's PNG of `svg`, rendered in a thread with a large stack (see MAX_SVG_DEPTH)."""
    outcome: list = []

    def render() -> None:
        try:
            outcome.append(resvg_py.svg_to_bytes(svg_string=svg, width=box[0], height=box[1], dpi=96.0))
        except BaseException as exc:  # pyo3 turns a Rust panic into PanicException, a BaseException
            outcome.append(exc)

    with _STACK_SIZE_LOCK:  # the stack size is process-wide: set it only for this thread's start
        previous = threading.stack_size(SVG_STACK_BYTES)
        try:
            worker = threading.Thread(target=render, name="invertornot-svg", daemon=True)
            worker.start()
        finally:
            threading.stack_size(previous)
    worker.join()
    result = outcome[0]
    if isinstance(result, ValueError):
        raise _Reject("svg-error", f"SVG cannot be rendered ({shorten(str(result))})")
    if isinstance(result, BaseException):
        raise _Reject("svg-error", f"SVG renderer failed ({type(result).__name__}: {shorten(str(result))})")
    return result


_STACK_SIZE_LOCK = threading.Lock()


def _check_structure(root: ET.Element) -> None:
    """Refuse an SVG nested deeper than MAX_SVG_DEPTH or larger than MAX_SVG_ELEMENTS once its
    references are followed, and one whose references form a loop: what would overflow resvg's
    stack or run it out of time. Iterative: Python's own recursion limit is ~1,000."""
    by_id: dict[str, ET.Element] = {}
    stylesheet_targets: list[str] = []
    count = 0
    for element in root.iter():
        count += 1
        if count > MAX_SVG_ELEMENTS:
            raise _Reject("svg-error", f"SVG with more than {MAX_SVG_ELEMENTS:,} elements")
        element_id = element.get("id")
        if element_id is not None:
            by_id.setdefault(element_id, element)
        if _local_name(element.tag) == "style" and element.text:
            stylesheet_targets += _URL_REFERENCE.findall(element.text)

    def children(element: ET.Element) -> list[ET.Element]:
        """The element's children, then what it references (each reference is a level in resvg)."""
        found = list(element)
        for name, value in element.attrib.items():
            if name in _HREFS and _local_name(element.tag) in _LINKS:
                continue  # a hyperlink or an animation's target: nothing is drawn through it
            if name in _HREFS:
                targets = [value.strip()[1:]] if value.strip().startswith("#") else []
            else:
                targets = _URL_REFERENCE.findall(value) if "url(" in value else []
            found += [by_id[t] for t in targets if t in by_id]
        return found

    # Depth-first, post-order: depth[e] and size[e] count e and everything it draws.
    depth: dict[ET.Element, int] = {}
    size: dict[ET.Element, int] = {}
    on_path: set[ET.Element] = set()
    stack: list[tuple[ET.Element, list[ET.Element] | None]] = [(root, None)]
    while stack:
        element, kids = stack.pop()
        if kids is None:  # first visit: come back once its children are done
            if element in depth:
                continue
            kids = children(element)
            on_path.add(element)
            stack.append((element, kids))
            for kid in kids:
                if kid in on_path:
                    raise _Reject("svg-error", f"SVG whose references form a loop (through <{_local_name(kid.tag)}>)")
                if kid not in depth:
                    stack.append((kid, None))
            continue
        on_path.discard(element)
        depth[element] = 1 + max((depth[k] for k in kids), default=0)
        size[element] = min(1 + sum(size[k] for k in kids), MAX_SVG_ELEMENTS + 1)
        if depth[element] > MAX_SVG_DEPTH:
            raise _Reject("svg-error", f"SVG nested more than {MAX_SVG_DEPTH} levels deep (counting references)")
        if size[element] > MAX_SVG_ELEMENTS:
            raise _Reject("svg-error", f"SVG with more than {MAX_SVG_ELEMENTS:,} elements once references are followed")
    # A stylesheet's url(#id) may apply to any element: a bound, each target counted once.
    nested = [by_id[t] for t in dict.fromkeys(stylesheet_targets) if t in by_id]
    extra = sum(depth.get(t, 0) for t in nested if _local_name(t.tag) not in _FLAT_TARGETS)
    if depth[root] + extra > MAX_SVG_DEPTH:
        raise _Reject("svg-error", f"SVG nested more than {MAX_SVG_DEPTH} levels deep (counting references)")


def _local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _gunzip(data: bytes) -> bytes:
    """Decompress SVGZ, refusing more than MAX_SVG_BYTES of output (a gzip bomb)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_SVG_BYTES + 1)
    except zlib.error as exc:
        raise _Reject("not-an-image", f"corrupt gzip data, not an SVGZ image ({exc})") from None
    if len(out) > MAX_SVG_BYTES:
        raise _Reject("too-large", f"SVGZ expands to more than {MAX_SVG_BYTES // 2**20} MiB")
    if not inflater.eof:
        raise _Reject("truncated", f"truncated SVGZ (gzip stream ends early after {len(data)} bytes)")
    if not _starts_with_markup(out[:4096]):
        raise _Reject("not-an-image", "gzip-compressed data, not an SVGZ image")
    return out


def _root_tag(data: bytes) -> str | None:
    """The name of the first element, skipping the XML declaration, comments and DOCTYPE."""
    match = _ELEMENT.search(_COMMENT.sub("", _as_text(data[:65536])))
    return match.group(1) if match else None


def _drop_external_references(root: ET.Element, max_pixels: int) -> None:
    """Remove every href except same-document '#id' and embedded raster images of sane size."""
    for element in root.iter():
        for attr in _HREFS:
            value = element.get(attr)
            if value is not None and not _safe_href(value.strip(), max_pixels):
                del element.attrib[attr]


def _safe_href(value: str, max_pixels: int) -> bool:
    """True for '#id' and for a base64 data: PNG/JPEG/GIF/WebP whose header fits max_pixels."""
    if value.startswith("#"):
        return True
    match = _SAFE_DATA_URI.match(value)
    if not match or "base64" not in (match.group(2) or "").lower():
        return False  # files, URLs, nested SVG (it could reference files), percent-encoded data
    try:
        raw = base64.b64decode(value[match.end():])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as embedded:
                width, height = embedded.size
    except Exception:  # undecodable or not an image: resvg would skip it anyway
        return False
    return width * height <= max_pixels  # resvg would decode it at full size


def _svg_size(root: ET.Element) -> tuple[float, float] | None:
    """The SVG's declared size in CSS pixels from width, height and viewBox; None if unusable."""
    view_box = _view_box(root.get("viewBox"))
    if not view_box:
        width, height = _svg_length(root.get("width"), None), _svg_length(root.get("height"), None)
        return (width, height) if width and height else None
    width, height = _svg_length(root.get("width"), view_box[0]), _svg_length(root.get("height"), view_box[1])
    aspect = view_box[0] / view_box[1]
    if width and not height:  # one dimension given: the other follows the viewBox, as in browsers
        height = width / aspect
    elif height and not width:
        width = height * aspect
    elif not width and not height:
        width, height = view_box
    return (width, height) if np.isfinite(width) and np.isfinite(height) else None


def _view_box(text: str | None) -> tuple[float, float] | None:
    """Width and height of a 'min-x min-y width height' viewBox, if valid."""
    try:
        parts = [float(p) for p in re.split(r"[\s,]+", (text or "").strip())]
    except ValueError:
        return None
    if len(parts) != 4 or not all(np.isfinite(parts)) or parts[2] <= 0 or parts[3] <= 0:
        return None
    return parts[2], parts[3]


def _svg_length(text: str | None, reference: float | None) -> float | None:
    """An SVG length in CSS pixels (96 dpi), None if absent or invalid; percentages need a viewBox."""
    match = _SVG_LENGTH.fullmatch(text or "")
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or ""
    if unit == "%":
        value = number / 100 * reference if reference else None
    else:
        value = number * _SVG_UNITS[unit]
    return value if value is not None and 0 < value < float("inf") else None
