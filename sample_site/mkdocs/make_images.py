"""Regenerate the sample site's images in docs/img/ (photos from scikit-image, the rest drawn here).

    python sample_site/mkdocs/make_images.py            # needs Pillow and scikit-image

Photos are scikit-image's bundled data images (public domain or CC0; see sample_site/README.md),
downscaled. Plots, diagrams and line art are drawn with Pillow or written as SVG by hand, so
every image of the demo is reproducible and free to redistribute.
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

IMG = Path(__file__).resolve().parent / "docs" / "img"

INK = (33, 37, 41)
GRID = (222, 226, 230)
BLUE, ORANGE, GREEN, RED, PURPLE = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# -- photos (scikit-image data) -----------------------------------------------------------------


def photos() -> None:
    import skimage.data as data

    def save(array, name: str, width: int, **kw) -> None:
        image = Image.fromarray(array).convert("RGB")
        height = round(image.height * width / image.width)
        image.resize((width, height), Image.LANCZOS).save(IMG / name, **kw)

    save(data.astronaut(), "astronaut.png", 220, optimize=True)  # a PNG photo (of a person)
    save(data.coffee(), "coffee.jpg", 360, quality=82, optimize=True)
    save(data.chelsea(), "chelsea.jpg", 320, quality=82, optimize=True)
    save(data.rocket(), "rocket.jpg", 300, quality=82, optimize=True)
    save(data.hubble_deep_field(), "hubble.jpg", 320, quality=80, optimize=True)  # mostly dark
    scan = Image.fromarray(data.page()).convert("L")  # a scanned page of text
    scan.save(IMG / "scan.png", optimize=True)


# -- plots and diagrams (Pillow) ------------------------------------------------------------------


def axes(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xticks, yticks) -> None:
    left, top, right, bottom = box
    for x, label in xticks:
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.text((x, bottom + 6), label, fill=INK, font=font(12), anchor="mt")
    for y, label in yticks:
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 6, y), label, fill=INK, font=font(12), anchor="rm")
    draw.line([(left, bottom), (right, bottom)], fill=INK, width=2)
    draw.line([(left, top), (left, bottom)], fill=INK, width=2)


def line_plot() -> None:
    w, h = 480, 320
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    box = (50, 30, w - 20, h - 40)
    left, top, right, bottom = box
    xs = [left + i * (right - left) / 4 for i in range(5)]
    ys = [bottom - i * (bottom - top) / 4 for i in range(5)]
    axes(draw, box, [(x, str(i * 5)) for i, x in enumerate(xs)], [(y, f"{i * 0.5 - 1:.1f}") for i, y in enumerate(ys)])
    mid = (top + bottom) / 2
    for colour, phase, damp in ((BLUE, 0.0, 0.0), (ORANGE, 1.3, 0.08)):
        points = []
        for i in range(200):
            t = i / 199
            v = math.sin(t * 4 * math.pi + phase) * math.exp(-damp * t * 20)
            points.append((left + t * (right - left), mid - v * (bottom - top) / 2 * 0.9))
        draw.line(points, fill=colour, width=3, joint="curve")
    draw.text((w / 2, 14), "Damped oscillation", fill=INK, font=font(15), anchor="mm")
    image.save(IMG / "line-plot.png", optimize=True)


def bar_chart() -> None:
    w, h = 420, 300
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    box = (50, 30, w - 20, h - 40)
    left, top, right, bottom = box
    values = [3.2, 5.1, 4.4, 6.8, 2.5]
    pastel = [(174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213)]
    step = (right - left) / len(values)
    axes(draw, box, [], [(bottom - v * (bottom - top) / 8, str(v)) for v in range(0, 9, 2)])
    for i, (v, colour) in enumerate(zip(values, pastel)):
        x0 = left + i * step + step * 0.2
        x1 = left + (i + 1) * step - step * 0.2
        draw.rectangle([x0, bottom - v * (bottom - top) / 8, x1, bottom - 1], fill=colour, outline=INK)
        draw.text(((x0 + x1) / 2, bottom + 6), "ABCDE"[i], fill=INK, font=font(12), anchor="mt")
    draw.text((w / 2, 14), "Requests per region", fill=INK, font=font(15), anchor="mm")
    image.save(IMG / "bar chart.png", optimize=True)  # a space in the name: URL-encoded in the HTML


def pie_chart() -> None:
    """Saturated colours that carry meaning: the author keeps it (an explicit class on the tag)."""
    w, h = 300, 240
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    shares = [(0.45, RED, "stop"), (0.30, (255, 193, 7), "wait"), (0.25, GREEN, "go")]
    start = -90.0
    for share, colour, _ in shares:
        draw.pieslice([20, 20, 220, 220], start, start + share * 360, fill=colour, outline="white", width=2)
        start += share * 360
    for i, (_, colour, label) in enumerate(shares):
        draw.rectangle([234, 70 + i * 34, 250, 86 + i * 34], fill=colour)
        draw.text((256, 78 + i * 34), label, fill=INK, font=font(13), anchor="lm")
    image.save(IMG / "pie-chart.png", optimize=True)


def equation() -> None:
    w, h = 420, 90
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 45), "p_invert = sigmoid(w . x + b) >= 0.5", fill="black", font=font(24), anchor="lm")
    image.save(IMG / "equation.png", optimize=True)


def brand_colours() -> None:
    """A swatch chart whose colours are the point: the page's front matter keeps it."""
    w, h = 400, 160
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    swatches = [((0, 82, 155), "#00529B"), ((255, 204, 0), "#FFCC00"), ((0, 150, 57), "#009639"), ((227, 6, 19), "#E30613")]
    for i, (colour, name) in enumerate(swatches):
        x = 20 + i * 95
        draw.rounded_rectangle([x, 20, x + 80, 100], radius=10, fill=colour)
        draw.text((x + 40, 120), name, fill=INK, font=font(13), anchor="mt")
    image.save(IMG / "brand-colours.png", optimize=True)


def line_art() -> None:
    """Black strokes on a transparent background: invisible on a dark page unless inverted."""
    size = 200
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    black = (0, 0, 0, 255)
    draw.ellipse([60, 20, 140, 100], outline=black, width=6)  # a light bulb
    draw.line([(80, 96), (80, 130), (120, 130), (120, 96)], fill=black, width=6)
    for y in (142, 156):
        draw.line([(82, y), (118, y)], fill=black, width=6)
    draw.line([(90, 170), (110, 170)], fill=black, width=6)
    for angle in range(0, 360, 45):  # rays
        if 45 < angle < 135:
            continue
        a = math.radians(angle)
        draw.line([(100 + 56 * math.cos(a), 60 - 56 * math.sin(a)), (100 + 76 * math.cos(a), 60 - 76 * math.sin(a))], fill=black, width=5)
    draw.line([(88, 60), (100, 80), (112, 60)], fill=black, width=4)  # filament
    image.save(IMG / "line-art.png", optimize=True)


def corrupt() -> None:
    """A PNG signature and header, then garbage: a file that looks like an image and is not."""
    good = IMG / "line-plot.png"
    head = good.read_bytes()[:64]
    (IMG / "corrupt.png").write_bytes(head + bytes(range(256)) * 2)


# -- SVG, written by hand ---------------------------------------------------------------------------

PIPELINE_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="560" height="170" viewBox="0 0 560 170" font-family="sans-serif" font-size="14">
  <rect width="560" height="170" fill="#ffffff"/>
  <defs>
    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto">
      <path d="M0,0 L10,5 L0,10 z" fill="#212529"/>
    </marker>
  </defs>
  <g fill="#f8f9fa" stroke="#212529" stroke-width="2">
    <rect x="10" y="55" width="110" height="60" rx="8"/>
    <rect x="160" y="55" width="110" height="60" rx="8"/>
    <rect x="310" y="55" width="110" height="60" rx="8"/>
    <rect x="460" y="25" width="90" height="50" rx="8"/>
    <rect x="460" y="100" width="90" height="50" rx="8"/>
  </g>
  <g stroke="#212529" stroke-width="2" marker-end="url(#arrow)">
    <line x1="120" y1="85" x2="158" y2="85"/>
    <line x1="270" y1="85" x2="308" y2="85"/>
    <line x1="420" y1="75" x2="458" y2="52"/>
    <line x1="420" y1="95" x2="458" y2="122"/>
  </g>
  <g fill="#212529" text-anchor="middle">
    <text x="65" y="90">&lt;img&gt; tags</text>
    <text x="215" y="90">embed</text>
    <text x="365" y="90">classify</text>
    <text x="505" y="55">invert</text>
    <text x="505" y="130">keep</text>
  </g>
</svg>
"""


def scatter_svg() -> str:
    points = []
    for i in range(40):  # a deterministic cloud around a line
        x = 50 + i * 9
        y = 250 - i * 4.5 + 22 * math.sin(i * 2.7)
        colour = "#1f77b4" if i % 3 else "#ff7f0e"
        points.append(f'    <circle cx="{x:.0f}" cy="{y:.0f}" r="4" fill="{colour}"/>')
    ticks = "\n".join(
        f'    <line x1="40" y1="{y}" x2="420" y2="{y}" stroke="#dee2e6"/>' for y in range(60, 280, 50)
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="440" height="300" viewBox="0 0 440 300" '
        'font-family="sans-serif" font-size="12">\n'
        '  <rect width="440" height="300" fill="white"/>\n'
        f"  <g>\n{ticks}\n  </g>\n"
        '  <path d="M40 20 V270 H425" fill="none" stroke="#212529" stroke-width="2"/>\n'
        '  <text x="230" y="292" text-anchor="middle" fill="#212529">build time (s)</text>\n'
        '  <text x="14" y="150" text-anchor="middle" fill="#212529" transform="rotate(-90 14 150)">pages</text>\n'
        "  <g>\n" + "\n".join(points) + "\n  </g>\n"
        "</svg>\n"
    )


def logo_svg(fg: str, bg: str) -> str:
    """One logo per colour scheme: `#only-light` / `#only-dark` in the src picks it."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="220" height="60" viewBox="0 0 220 60" '
        'font-family="sans-serif" font-size="22" font-weight="bold">\n'
        f'  <rect width="220" height="60" rx="10" fill="{bg}"/>\n'
        f'  <circle cx="30" cy="30" r="16" fill="none" stroke="{fg}" stroke-width="4"/>\n'
        f'  <path d="M30 14 A16 16 0 0 1 30 46 z" fill="{fg}"/>\n'
        f'  <text x="58" y="38" fill="{fg}">invertornot</text>\n'
        "</svg>\n"
    )


def svgs() -> None:
    (IMG / "pipeline.svg").write_text(PIPELINE_SVG, encoding="utf-8")
    (IMG / "scatter.svg").write_text(scatter_svg(), encoding="utf-8")
    (IMG / "logo-light.svg").write_text(logo_svg("#212529", "#ffffff"), encoding="utf-8")
    (IMG / "logo-dark.svg").write_text(logo_svg("#f8f9fa", "#212529"), encoding="utf-8")


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    photos()
    line_plot()
    bar_chart()
    pie_chart()
    equation()
    brand_colours()
    line_art()
    corrupt()
    svgs()
    total = sum(p.stat().st_size for p in IMG.iterdir())
    print(f"wrote {len(list(IMG.iterdir()))} images to {IMG} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
