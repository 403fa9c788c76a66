"""invertornot_ssg.images: every format we promise, every bad input its own error, statistics and hashes."""
from __future__ import annotations

import colorsys
import gzip
import hashlib
import html
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFile, ImageFilter, JpegImagePlugin
from skimage import data as skdata

from invertornot_ssg.errors import ConfigError
from invertornot_ssg.images import (
    ERROR_KINDS,
    STAT_NAMES,
    ImageError,
    LoadedImage,
    file_sha1,
    image_stats,
    load_image,
    load_image_bytes,
    mean_hsl_saturation,
    parse_color,
    perceptual_hash,
    phash_distance,
)

DARK = (24, 24, 27)  # a dark page colour, so compositing is visible
RED_PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    """The image saved in `fmt`, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write(path: Path, image: Image.Image, fmt: str, **params) -> Path:
    """Save the image to path in `fmt` and return the path."""
    path.write_bytes(encode(image, fmt, **params))
    return path


def loaded(result: LoadedImage | ImageError) -> LoadedImage:
    """The result, asserted to be a LoadedImage with a well-formed image."""
    assert isinstance(result, LoadedImage), result
    assert result.image.mode == "RGB"
    assert max(result.image.size) <= 512
    return result


def failed(result: LoadedImage | ImageError, kind: str, path: Path | str) -> ImageError:
    """The result, asserted to be an ImageError of `kind` whose message names the file."""
    assert isinstance(result, ImageError), result
    assert result.kind == kind and kind in ERROR_KINDS, result.message
    assert os.fsdecode(path) in result.message or Path(path).name in result.message
    return result


def pixel(result: LoadedImage, x: float, y: float) -> tuple[int, int, int]:
    """The RGB pixel at fractional position (x, y) of the loaded image."""
    width, height = result.image.size
    return result.image.getpixel((min(width - 1, int(x * width)), min(height - 1, int(y * height))))


def near(a, b, tolerance: int = 8) -> bool:
    """True when two colours differ by at most `tolerance` in every channel."""
    return all(abs(int(p) - int(q)) <= tolerance for p, q in zip(a, b))


def half_transparent(mode_size=(40, 20)) -> Image.Image:
    """RGBA: left half opaque black, right half fully transparent."""
    image = Image.new("RGBA", mode_size, (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, mode_size[0] // 2, mode_size[1]))
    return image


# --- PNG -----------------------------------------------------------------------------------


def test_png_rgba_is_composited_on_the_background(tmp_path):
    result = loaded(load_image(write(tmp_path / "a.png", half_transparent(), "PNG"), background=DARK))
    assert result.format == "PNG" and (result.width, result.height) == (40, 20)
    assert result.transparency == pytest.approx(0.5)
    assert near(pixel(result, 0.1, 0.5), (0, 0, 0))
    assert near(pixel(result, 0.9, 0.5), DARK)


def test_png_la(tmp_path):
    image = half_transparent().convert("LA")
    result = loaded(load_image(write(tmp_path / "la.png", image, "PNG"), background=(255, 0, 0)))
    assert result.transparency == pytest.approx(0.5)
    assert near(pixel(result, 0.9, 0.5), (255, 0, 0))


def test_png_palette_with_trns(tmp_path):
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 10, 5))  # top half blue, bottom half index 0, made transparent
    path = write(tmp_path / "p.png", image, "PNG", transparency=0)
    assert Image.open(path).info.get("transparency") == 0
    result = loaded(load_image(path, background=DARK))
    assert result.transparency == pytest.approx(0.5)
    assert near(pixel(result, 0.5, 0.2), (0, 0, 255))
    assert near(pixel(result, 0.5, 0.8), DARK)


def test_png_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    path = write(tmp_path / "grey16.png", Image.fromarray(ramp), "PNG")
    assert Image.open(path).mode.startswith("I;16")
    result = loaded(load_image(path))
    row = np.asarray(result.image)[4, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert 110 < row[128] < 145  # mid-grey, where clipping would give white
    dark = np.full((8, 8), 20000, dtype=np.uint16)  # every value above 255, yet dark
    result = loaded(load_image(write(tmp_path / "dark16.png", Image.fromarray(dark), "PNG")))
    assert near(pixel(result, 0.5, 0.5), (78, 78, 78), 2)


def test_png_1_bit(tmp_path):
    image = Image.new("1", (16, 16), 1)
    image.paste(0, (0, 0, 8, 16))
    result = loaded(load_image(write(tmp_path / "bits.png", image, "PNG")))
    assert pixel(result, 0.1, 0.5) == (0, 0, 0) and pixel(result, 0.9, 0.5) == (255, 255, 255)
    assert result.transparency == 0.0


# --- JPEG ----------------------------------------------------------------------------------


def test_jpeg_cmyk_is_converted(tmp_path):
    path = write(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    result = loaded(load_image(path))
    assert near(pixel(result, 0.5, 0.5), (0, 255, 255), 12)  # pure cyan


def test_jpeg_exif_orientation_reports_the_displayed_size(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    result = loaded(load_image(write(tmp_path / "rotated.jpg", image, "JPEG", exif=exif, quality=95)))
    assert (result.width, result.height) == (20, 40)
    assert result.image.size == (20, 40)
    assert near(pixel(result, 0.5, 0.1), (255, 0, 0), 40)  # stored left is displayed top
    assert near(pixel(result, 0.5, 0.9), (0, 0, 255), 40)


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    image = Image.linear_gradient("L").resize((6000, 4000)).convert("RGB")
    path = write(tmp_path / "big.jpg", image, "JPEG", quality=70)
    decoded_sizes = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        outcome = original_draft(self, mode, size)
        if outcome is not None:  # None: too late to draft (Image.thumbnail asks again after the load)
            decoded_sizes.append(self.size)
        return outcome

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    result = loaded(load_image(path))
    assert (result.width, result.height) == (6000, 4000)
    assert result.image.size == (512, 341)
    assert decoded_sizes == [(750, 500)]  # libjpeg decoded at 1/8 scale: still covers the fitted 512x341
    result = loaded(load_image(path, max_side=256))
    assert result.image.size == (256, 171) and decoded_sizes[-1] == (750, 500)  # 1/8 is libjpeg's smallest


# --- GIF and WebP --------------------------------------------------------------------------


def test_animated_gif_reads_only_the_first_frame(tmp_path):
    colours = [(255, 0, 0)] + [(0, 0, 255)] * 399
    frames = [Image.new("RGB", (32, 32), colour) for colour in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=20, optimize=False)
    assert Image.open(path).n_frames > 1
    result = loaded(load_image(path))
    assert result.format == "GIF"
    assert near(pixel(result, 0.5, 0.5), (255, 0, 0))


def test_gif_transparency(tmp_path):
    image = half_transparent().convert("P")  # Pillow gives the transparent pixels an index
    path = tmp_path / "t.gif"
    image.save(path, transparency=image.getpixel((39, 0)))
    result = loaded(load_image(path, background=DARK))
    assert result.transparency == pytest.approx(0.5)
    assert near(pixel(result, 0.9, 0.5), DARK)


def test_webp_first_frame_and_alpha(tmp_path):
    frames = [Image.new("RGBA", (32, 32), (0, 255, 0, 255)), Image.new("RGBA", (32, 32), (255, 0, 255, 255))]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, lossless=True)
    result = loaded(load_image(path))
    assert result.format == "WEBP" and near(pixel(result, 0.5, 0.5), (0, 255, 0))
    path = write(tmp_path / "a.webp", half_transparent(), "WEBP", lossless=True)
    still = loaded(load_image(path, background=DARK))
    assert still.transparency == pytest.approx(0.5)
    assert near(pixel(still, 0.9, 0.5), DARK)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO", "AVIF"])
def test_other_web_formats(fmt):
    image = Image.fromarray(skdata.chelsea()).resize((64, 48))
    result = loaded(load_image_bytes(encode(image, fmt), f"cat.{fmt.lower()}"))
    assert result.format == fmt and min(result.image.size) >= 32


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "TGA"])
def test_non_web_formats_are_unsupported(fmt):
    data = encode(Image.new("RGB", (8, 8), "red"), fmt)
    result = failed(load_image_bytes(data, f"x.{fmt.lower()}"), "unsupported", f"x.{fmt.lower()}")
    assert f"{fmt} files are not supported" in result.message


# --- SVG -----------------------------------------------------------------------------------

SVG_HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def write_svg(path: Path, text: str) -> Path:
    """Write SVG text (UTF-8) and return the path."""
    path.write_text(text, encoding="utf-8")
    return path


def test_svg_is_rasterized_at_its_declared_size(tmp_path):
    svg = f'{SVG_HEAD} width="200" height="100"><rect width="100" height="100" fill="red"/></svg>'
    path = write_svg(tmp_path / "a.svg", svg)
    result = loaded(load_image(path, background=DARK))
    assert result.format == "SVG" and (result.width, result.height) == (200, 100)
    assert result.image.size == (200, 100)
    assert result.transparency == pytest.approx(0.5, abs=0.02)
    assert near(pixel(result, 0.25, 0.5), (255, 0, 0)) and near(pixel(result, 0.75, 0.5), DARK)


@pytest.mark.parametrize(
    "attributes, size",
    [
        ('viewBox="0 0 30 10"', (30, 10)),
        ('width="3in" height="1in"', (288, 96)),
        ('width="50%" height="50%" viewBox="0 0 300 100"', (150, 50)),
        ('width="2000" height="1000"', (2000, 1000)),
        ('width="300" viewBox="0 0 30 10"', (300, 100)),  # the other side follows the viewBox
    ],
)
def test_svg_sizes(tmp_path, attributes, size):
    path = write_svg(tmp_path / "s.svg", f'{SVG_HEAD} {attributes}><rect width="100%" height="100%"/></svg>')
    result = loaded(load_image(path))
    assert (result.width, result.height) == size
    scale = min(1.0, 512 / max(size))
    assert result.image.size == (round(size[0] * scale), round(size[1] * scale))


def test_svg_with_huge_declared_size_renders_small_and_fast(tmp_path):
    for width, height in [("100000000", "100000000"), ("100000000", "10"), ("1e30", "1e30")]:
        svg = f'{SVG_HEAD} width="{width}" height="{height}"><rect width="50%" height="50%" fill="blue"/></svg>'
        path = write_svg(tmp_path / "huge.svg", svg)
        result = loaded(load_image(path))
        assert result.width == round(float(width))


def test_svg_without_size_and_with_style_sheet(tmp_path):
    svg = f'{SVG_HEAD}><style>.a {{ fill: #00f }}</style><rect class="a" width="100" height="50"/></svg>'
    result = loaded(load_image(write_svg(tmp_path / "nosize.svg", svg)))
    assert near(pixel(result, 0.05, 0.05), (0, 0, 255))


def test_svg_with_doctype_and_text(tmp_path):
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!-- made by hand -->\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        f'{SVG_HEAD} width="120" height="40"><text x="5" y="30" font-size="24">Plot</text></svg>'
    )
    result = loaded(load_image(write_svg(tmp_path / "text.svg", svg)))
    assert (result.width, result.height) == (120, 40)


def test_svgz(tmp_path):
    svg = f'{SVG_HEAD} width="20" height="20"><rect width="20" height="20" fill="lime"/></svg>'
    path = tmp_path / "a.svgz"
    path.write_bytes(gzip.compress(svg.encode()))
    result = loaded(load_image(path))
    assert result.format == "SVG" and near(pixel(result, 0.5, 0.5), (0, 255, 0))


def test_svg_external_entity_is_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    svg = (
        f'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        f'{SVG_HEAD} width="400" height="50"><text x="0" y="40" font-size="40">&x;</text></svg>'
    )
    result = load_image(write_svg(tmp_path / "xxe.svg", svg))
    if isinstance(result, ImageError):
        failed(result, "svg-error", tmp_path / "xxe.svg")
        assert "TOP-SECRET" not in result.message
    else:  # rendered without the entity: nothing drawn
        assert np.asarray(result.image).min() == 255


def test_svg_external_images_are_not_loaded(tmp_path, monkeypatch):
    write(tmp_path / "red.png", Image.new("RGB", (50, 50), (255, 0, 0)), "PNG")
    monkeypatch.chdir(tmp_path)  # so a relative href would resolve, were it allowed
    hrefs = [
        str(tmp_path / "red.png"),
        f"file://{tmp_path / 'red.png'}",
        "red.png",
        "https://example.com/red.png",
        "file:///etc/passwd",
        f"data:image/svg+xml;utf8,{SVG_HEAD}><image href='red.png' width='9' height='9'/></svg>",  # nested SVG
    ]
    images = "".join(
        f'<image x="{x}" y="{10 * i}" width="50" height="10" {attr}="{html.escape(href)}"/>'
        for x, attr in [(0, "xlink:href"), (50, "href")]
        for i, href in enumerate(hrefs)
    )
    path = write_svg(tmp_path / "ext.svg", f'{SVG_HEAD} width="100" height="60">{images}</svg>')
    result = loaded(load_image(path))
    assert np.asarray(result.image).min() == 255  # nothing drawn: all white background


def test_svg_embedded_data_uri_image_is_drawn(tmp_path):
    image = f'<image width="10" height="10" href="data:image/png;base64,{RED_PNG_1PX}"/>'
    svg = f'{SVG_HEAD} width="10" height="10">{image}</svg>'
    result = loaded(load_image(write_svg(tmp_path / "embedded.svg", svg)))
    assert near(pixel(result, 0.5, 0.5), (255, 0, 0))


def test_svg_that_panics_the_renderer_is_an_error(tmp_path):
    svg = f'{SVG_HEAD} width="10" height="10"><rect width="5" height="10" stroke="red" stroke-width="1e30"/></svg>'
    result = load_image(write_svg(tmp_path / "panic.svg", svg))  # tiny-skia panics; pyo3 raises PanicException
    assert isinstance(result, LoadedImage) or result.kind == "svg-error"


def test_svg_entity_expansion_bomb_is_refused(tmp_path):
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    svg = f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY e0 "lol">{entities}]>{SVG_HEAD}><text>&e9;</text></svg>'
    failed(load_image(write_svg(tmp_path / "laughs.svg", svg)), "svg-error", tmp_path / "laughs.svg")


@pytest.mark.parametrize(
    "text, kind",
    [
        (f"{SVG_HEAD} width='10' height='10'><rect", "svg-error"),  # cut off
        (f"{SVG_HEAD} width='0' height='0'/>", "svg-error"),
        ("<!DOCTYPE html><html><body><svg></svg></body></html>", "not-an-image"),
        ('<?xml version="1.0"?><note>hello</note>', "not-an-image"),
    ],
)
def test_svg_and_markup_errors(tmp_path, text, kind):
    path = write_svg(tmp_path / "bad.svg", text)
    failed(load_image(path), kind, path)


# --- bad inputs ----------------------------------------------------------------------------


@pytest.fixture
def photo_png() -> bytes:
    """A small photo from scikit-image, as PNG bytes."""
    return encode(Image.fromarray(skdata.astronaut()).resize((96, 96)), "PNG")


def test_missing_file(tmp_path):
    result = failed(load_image(tmp_path / "nope.png"), "missing", tmp_path / "nope.png")
    assert "no such file" in result.message
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    result = failed(load_image(tmp_path / "dangling.png"), "missing", "dangling.png")
    assert "broken symbolic link" in result.message


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert "0 bytes" in failed(load_image(tmp_path / "empty.png"), "empty", "empty.png").message
    assert failed(load_image_bytes(b"", "remote.png"), "empty", "remote.png")


@pytest.mark.parametrize("cut", [20, 40, 200, 0.5, -30])
def test_truncated_png(tmp_path, photo_png, cut):
    end = int(len(photo_png) * cut) if isinstance(cut, float) else cut % len(photo_png)
    path = tmp_path / "cut.png"
    path.write_bytes(photo_png[:end])
    result = failed(load_image(path), "truncated", path)
    assert f"truncated PNG (file ends after {end} " in result.message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # Pillow's global left alone


def test_png_missing_only_its_iend_chunk_still_loads(photo_png):
    assert loaded(load_image_bytes(photo_png[:-12], "no-iend.png")).image.size == (96, 96)


@pytest.mark.parametrize("cut", [10, 0.5, -2])
def test_truncated_jpeg(tmp_path, cut):
    data = encode(Image.fromarray(skdata.astronaut()).resize((96, 96)), "JPEG")
    end = int(len(data) * cut) if isinstance(cut, float) else cut % len(data)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:end])
    result = failed(load_image(path), "truncated", path)
    assert f"truncated JPEG (file ends after {end} bytes" in result.message


def test_truncated_gif_and_webp(tmp_path):
    image = Image.fromarray(skdata.astronaut()).resize((64, 64))
    for fmt, name in [("GIF", "GIF"), ("WEBP", "WebP")]:
        data = encode(image, fmt)
        result = load_image_bytes(data[: len(data) // 2], f"cut.{fmt.lower()}")
        name_in_message = f"cut.{fmt.lower()}: truncated {name} (file ends after {len(data) // 2} "
        assert failed(result, "truncated", f"cut.{fmt.lower()}").message.startswith(name_in_message)


def test_png_with_a_jpg_extension_is_loaded_by_content(tmp_path, photo_png):
    path = tmp_path / "really-a-png.jpg"
    path.write_bytes(photo_png)
    assert loaded(load_image(path)).format == "PNG"


def test_html_saved_as_png(tmp_path):
    path = tmp_path / "page.png"
    path.write_text("\ufeff  <!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>")
    assert "HTML page" in failed(load_image(path), "not-an-image", path).message


def test_text_and_binary_junk_are_not_images(tmp_path):
    (tmp_path / "notes.png").write_text("just some notes\n")
    assert "text" in failed(load_image(tmp_path / "notes.png"), "not-an-image", "notes.png").message
    (tmp_path / "junk.png").write_bytes(bytes(range(256)))
    assert "00 01 02" in failed(load_image(tmp_path / "junk.png"), "not-an-image", "junk.png").message


def test_heic_is_unsupported():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    assert "HEIC" in failed(load_image_bytes(heic, "photo.heic"), "unsupported", "photo.heic").message


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_a_corrupt_avif_is_corrupt_not_unsupported(damage):
    """Pillow reads AVIF: one it cannot decode is damaged, not of a format we refuse (issue 34)."""
    data = encode(Image.fromarray(skdata.chelsea()).resize((64, 48)), "AVIF")
    data = data[: len(data) // 2] if damage == "truncated" else data[:64] + bytes(len(data) - 64)
    result = failed(load_image_bytes(data, "cat.avif"), "unreadable", "cat.avif")
    assert "corrupt or truncated AVIF" in result.message and "not supported" not in result.message


def png_with_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (with a valid CRC): a decompression bomb."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


@pytest.mark.parametrize("width, height", [(12000, 9000), (100000, 100000)])
def test_decompression_bomb_is_refused_from_the_header(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_size(width, height))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        result = failed(load_image(path), "too-large", path)
    assert f"{width}x{height}" in result.message or "pixels" in result.message
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's global limit left alone


def test_max_pixels_is_ours(tmp_path, photo_png):
    assert failed(load_image_bytes(photo_png, "p.png", max_pixels=5000), "too-large", "p.png")
    assert loaded(load_image_bytes(photo_png, "p.png", max_pixels=96 * 96))


def test_extreme_shapes_load(tmp_path):
    tiny = loaded(load_image(write(tmp_path / "1x1.png", Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")))
    assert (tiny.width, tiny.height) == (1, 1) and tiny.image.size == (1, 1)
    assert image_stats(tiny).shape == (len(STAT_NAMES),)
    strip = loaded(load_image(write(tmp_path / "strip.png", Image.new("RGB", (30000, 10)), "PNG")))
    assert (strip.width, strip.height) == (30000, 10) and strip.image.size == (512, 1)
    assert np.isfinite(image_stats(strip)).all()


def test_file_name_that_is_not_utf8(tmp_path, photo_png):
    path = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(path, "wb") as fp:
        fp.write(photo_png)
    result = loaded(load_image(path))
    assert result.path == path and result.format == "PNG"
    missing = load_image(os.fsencode(tmp_path) + b"/gon\xe9.png")
    assert missing.kind == "missing" and "gon\\udce9.png" in missing.message
    missing.message.encode("utf-8")  # printable in any log


def test_symlink_loop_and_directory(tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    assert "loop" in failed(load_image(tmp_path / "a.png"), "unreadable", "a.png").message
    (tmp_path / "dir.png").mkdir()
    assert "directory" in failed(load_image(tmp_path / "dir.png"), "unreadable", "dir.png").message
    os.mkfifo(tmp_path / "fifo.png")  # opening it would block forever
    assert "regular file" in failed(load_image(tmp_path / "fifo.png"), "unreadable", "fifo.png").message


def test_load_image_bytes_matches_load_image(tmp_path, photo_png):
    path = tmp_path / "p.png"
    path.write_bytes(photo_png)
    from_file, from_bytes = loaded(load_image(path)), loaded(load_image_bytes(photo_png, "p.png"))
    assert from_bytes.path == "p.png"
    assert np.array_equal(np.asarray(from_file.image), np.asarray(from_bytes.image))


def sample_bytes() -> dict[str, bytes]:
    """Small valid PNG, JPEG and GIF files to mutate."""
    image = Image.fromarray(skdata.chelsea()).resize((24, 16))
    svg = f'{SVG_HEAD} width="30" viewBox="0 0 3 2"><path d="M0 0L3 2" stroke="#000" stroke-width=".1"/></svg>'
    return {fmt: encode(image, fmt) for fmt in ("PNG", "JPEG", "GIF")} | {
        "PNGA": encode(half_transparent(), "PNG"),
        "SVG": svg.encode(),
        "SVGZ": gzip.compress(svg.encode()),
    }


SAMPLES = sample_bytes()


@st.composite
def mutated(draw) -> bytes:
    """A valid sample with a few bytes overwritten, then cut short or extended."""
    data = bytearray(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=16))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=512), mutated()))
def test_bad_bytes_never_raise(data):
    result = load_image_bytes(data, "fuzz.bin", max_pixels=1_000_000)
    assert isinstance(result, (LoadedImage, ImageError))
    if isinstance(result, ImageError):
        assert result.kind in ERROR_KINDS and result.message.startswith("fuzz.bin: ")
    else:
        assert result.image.mode == "RGB"


# --- hashes, colours, statistics -----------------------------------------------------------


def test_file_sha1(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1_000_000)
    assert file_sha1(path) == hashlib.sha1(b"abc" * 1_000_000).hexdigest()


def test_perceptual_hash_and_distance():
    photo = Image.fromarray(skdata.astronaut())
    other = Image.fromarray(skdata.camera()).convert("RGB")
    h = perceptual_hash(photo)
    assert len(h) == 16 and int(h, 16) >= 0
    assert phash_distance(h, h) == 0
    assert phash_distance(h, perceptual_hash(photo.resize((128, 128)))) <= 4
    assert phash_distance(h, perceptual_hash(other)) > 10
    assert phash_distance("0000000000000000", "000000000000000f") == 4
    with pytest.raises(ValueError):
        phash_distance("00", "0000")


@pytest.mark.parametrize(
    "text, rgb",
    [
        ("#fff", (255, 255, 255)),
        ("#18181b", (24, 24, 27)),
        (" #18181B ", (24, 24, 27)),
        ("white", (255, 255, 255)),
        ("Black", (0, 0, 0)),
        ("rgb(1, 2, 3)", (1, 2, 3)),
    ],
)
def test_parse_color(text, rgb):
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["#ggg", "#12345", "notacolour", "", None])
def test_parse_color_rejects(text):
    with pytest.raises(ConfigError, match=repr(text).replace("(", r"\(")):
        parse_color(text)


def test_mean_hsl_saturation_matches_colorsys():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    expected = np.mean([colorsys.rgb_to_hls(*(p / 255.0))[2] for p in pixels.reshape(-1, 3)])
    assert mean_hsl_saturation(Image.fromarray(pixels)) == pytest.approx(expected, abs=1e-5)
    assert mean_hsl_saturation(Image.new("RGB", (4, 4), (255, 0, 0))) == pytest.approx(1.0)
    assert mean_hsl_saturation(Image.new("RGB", (4, 4), (128, 128, 128))) == 0.0


def stats_of(image: Image.Image, transparency: float = 0.0) -> dict[str, float]:
    """image_stats of an in-memory image, by name."""
    values = image_stats(LoadedImage("mem.png", image.convert("RGB"), *image.size, "PNG", transparency))
    assert values.dtype == np.float32 and values.shape == (len(STAT_NAMES),)
    return dict(zip(STAT_NAMES, values.tolist()))


def test_image_stats_on_simple_images():
    white = stats_of(Image.new("RGB", (300, 200), "white"), transparency=0.25)
    assert white["lum_hist_7"] == 1.0 and white["near_white"] == 1.0 and white["near_black"] == 0.0
    assert white["mean_luminance"] == pytest.approx(1.0) and white["mean_saturation"] == 0.0
    assert white["transparency"] == 0.25 and white["log_colors"] == 0.0 and white["edge_density"] == 0.0
    black = stats_of(Image.new("RGB", (64, 64), "black"))
    assert black["near_black"] == 1.0 and black["lum_hist_0"] == 1.0
    red = stats_of(Image.new("RGB", (64, 64), (255, 0, 0)))
    assert red["mean_saturation"] == pytest.approx(1.0)
    checker = np.kron((np.indices((16, 16)).sum(axis=0) % 2) * 255, np.ones((8, 8))).astype(np.uint8)
    assert stats_of(Image.fromarray(checker))["edge_density"] > 0.1
    assert len(STAT_NAMES) == len(set(STAT_NAMES))


def test_image_stats_tell_a_photo_from_a_plot():
    photo = stats_of(Image.fromarray(skdata.astronaut()))
    plot = Image.new("RGB", (512, 384), "white")
    plot_array = np.asarray(plot).copy()
    xs = np.arange(40, 480)
    plot_array[(200 + 100 * np.sin(xs / 40)).astype(int), xs] = (31, 119, 180)  # one data line
    plot_array[350, 40:480] = plot_array[20:350, 40] = 0  # axes
    diagram = stats_of(Image.fromarray(plot_array))
    assert diagram["near_white"] > 0.9 > photo["near_white"]
    assert photo["log_colors"] > diagram["log_colors"]
    assert photo["lum_hist_3"] + photo["lum_hist_4"] > diagram["lum_hist_3"] + diagram["lum_hist_4"]


def test_texture_and_palette_statistics_tell_drawn_from_photographed():
    """A figure is flat areas of few colours with sharp steps; a photograph changes a little everywhere."""
    photo = stats_of(Image.fromarray(skdata.astronaut()))
    figure = Image.new("RGB", (480, 360), "white")
    draw = ImageDraw.Draw(figure)
    draw.rectangle((60, 60, 200, 160), fill=(31, 119, 180), outline="black", width=3)
    draw.ellipse((260, 140, 420, 300), fill=(255, 127, 14), outline="black", width=3)
    draw.line((200, 110, 260, 220), fill="black", width=3)
    drawn = stats_of(figure)
    assert drawn["flat"] > 0.8 > 0.3 > photo["flat"]
    assert photo["soft_steps"] > 0.3 > drawn["soft_steps"]
    assert drawn["top_color"] > 0.5 > 0.2 > photo["top_color"]
    assert drawn["top8_colors"] > 0.95 > 0.5 > photo["top8_colors"]
    assert drawn["border_luminance"] == pytest.approx(1.0) and drawn["border_spread"] == pytest.approx(0.0)
    assert photo["lum_entropy"] > 0.8 > drawn["lum_entropy"]
    assert stats_of(Image.new("RGB", (64, 64), "grey"))["colorfulness"] == pytest.approx(0.0)
    assert photo["colorfulness"] > 0.1 and stats_of(figure.convert("L"))["colorfulness"] == pytest.approx(0.0)
    one_pixel = stats_of(Image.new("RGB", (1, 1), "white"))
    assert one_pixel["flat"] == 1.0 and one_pixel["soft_steps"] == 0.0


def test_file_statistics_come_from_the_file_not_the_decoded_copy():
    wide = Image.fromarray(skdata.astronaut()).resize((1024, 256))
    jpeg = stats_by_name(loaded(load_image_bytes(encode(wide, "JPEG"), "wide.jpg")))
    assert jpeg["is_jpeg"] == 1.0 and jpeg["is_svg"] == 0.0
    assert jpeg["log_pixels"] == pytest.approx(18 / 24) and jpeg["log_aspect"] == pytest.approx(2.0)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="20" height="20"/></svg>'
    drawn = stats_by_name(loaded(load_image_bytes(svg, "square.svg")))
    assert drawn["is_svg"] == 1.0 and drawn["is_jpeg"] == 0.0


def test_ink_statistics_see_what_a_transparent_file_draws():
    """Black and light-grey strokes on a transparent background both composite to a mostly white
    picture; only the ink tells them apart (black vanishes on a dark page: invert; grey: keep)."""

    def glyph(colour, alpha=255):
        image = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
        ImageDraw.Draw(image).rectangle((20, 20, 76, 76), outline=(*colour, alpha), width=8)
        return stats_by_name(loaded(load_image_bytes(encode(image, "PNG"), "glyph.png")))

    dark, light = glyph((0, 0, 0)), glyph((190, 190, 190))
    assert dark["near_white"] > 0.5 and light["near_white"] > 0.5
    assert dark["ink_dark"] > 0.95 and dark["ink_light"] == 0.0 and dark["ink_luminance"] < 0.05
    assert light["ink_light"] > 0.95 and light["ink_dark"] == 0.0
    assert light["ink_luminance"] == pytest.approx(190 / 255, abs=0.02)
    faint = glyph((0, 0, 0), alpha=60)  # strokes under half opaque: no opaque ink, yet dark
    assert faint["ink_dark"] == 0.0 and faint["ink_luminance"] < 0.05
    nothing = glyph((0, 0, 0), alpha=0)
    assert nothing["ink_luminance"] == 1.0 and nothing["ink_dark"] == 0.0
    photo = stats_by_name(loaded(load_image_bytes(encode(Image.fromarray(skdata.astronaut()), "PNG"), "a.png")))
    assert photo["ink_luminance"] == pytest.approx(photo["mean_luminance"])  # opaque: what the page shows


def test_soft_alpha_tells_a_shaded_icon_from_line_art():
    """Anti-aliased line art is opaque but for a thin rim; a shaded icon's drop shadow is wide and
    partly transparent. Measured on the file, before the downscale blurs every edge."""

    def icon(shadow: bool) -> dict[str, float]:
        image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
        if shadow:
            cast = Image.new("L", image.size, 0)
            ImageDraw.Draw(cast).rounded_rectangle((96, 112, 432, 448), radius=40, fill=110)
            image.putalpha(cast.filter(ImageFilter.GaussianBlur(24)))
        ImageDraw.Draw(image).rounded_rectangle((80, 80, 416, 416), radius=40, outline=(40, 40, 40, 255), width=12)
        return stats_by_name(loaded(load_image_bytes(encode(image, "PNG"), "icon.png")))

    line_art, shaded = icon(False), icon(True)
    assert line_art["soft_alpha"] == 0.0 < 0.5 < shaded["soft_alpha"]
    assert line_art["transparency"] > 0.8  # both are mostly transparent: the share alone cannot tell them
    thin = Image.new("L", (2048, 2048), 0)
    ImageDraw.Draw(thin).ellipse((200, 200, 1848, 1848), outline=255, width=24)
    smooth = Image.merge("RGBA", (*Image.new("RGB", (512, 512)).split(), thin.resize((512, 512), Image.BOX)))
    rim = stats_by_name(loaded(load_image_bytes(encode(smooth, "PNG"), "ring.png")))["soft_alpha"]
    assert 0.0 < rim < 0.5 < shaded["soft_alpha"]  # anti-aliasing: a rim of soft pixels, not a shadow
    opaque = stats_by_name(loaded(load_image_bytes(encode(Image.fromarray(skdata.astronaut()), "PNG"), "a.png")))
    assert opaque["soft_alpha"] == 0.0


def test_dark_page_statistics_tell_black_line_art_from_light_strokes():
    """On a white page black and white strokes on a transparent background differ only in the ink;
    on a dark page black strokes fade into it (edges lost: invert) and white ones stand out
    (edges gained: keep). An opaque file looks the same on any page."""

    def strokes(colour: tuple[int, int, int]) -> dict[str, float]:
        image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        for x in range(40, 360, 40):
            draw.line((x, 30, x + 20, 270), fill=(*colour, 255), width=5)
        return stats_by_name(loaded(load_image_bytes(encode(image, "PNG"), "strokes.png")))

    black, white = strokes((0, 0, 0)), strokes((255, 255, 255))
    assert black["dark_page_edges"] < -0.05 and black["dark_page_contrast"] < 0
    assert white["dark_page_edges"] > 0.05 and white["dark_page_contrast"] > 0
    # Both lose the white page's light alike: only the edges tell which strokes stay legible.
    assert black["dark_page_luminance"] == pytest.approx(white["dark_page_luminance"], abs=0.01)
    assert white["dark_page_luminance"] < -0.5 and white["dark_page_light"] < -0.5 and black["dark_page_light"] < -0.5
    opaque = stats_by_name(loaded(load_image_bytes(encode(Image.fromarray(skdata.astronaut()), "PNG"), "a.png")))
    assert all(opaque[name] == 0.0 for name in STAT_NAMES if name.startswith("dark_page_"))


def stats_by_name(image: LoadedImage) -> dict[str, float]:
    return dict(zip(STAT_NAMES, image_stats(image).tolist()))


@given(st.from_regex(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", fullmatch=True))
def test_parse_color_reads_hex_colours_as_pillow_does(text):
    """Hex colours are parsed without importing Pillow; names still go through it."""
    from PIL import ImageColor

    assert parse_color(text) == ImageColor.getcolor(text, "RGB")


def test_native_statistics_see_the_file_before_it_is_downscaled():
    """A pixel-wide checkerboard is all hard steps at the decoded resolution and flat grey at 224 px;
    a camera's grain is fine steps at full size that the downscale averages away."""
    checker = (np.indices((1200, 1600)).sum(axis=0) % 2 * 255).astype(np.uint8)
    fine = stats_by_name(loaded(load_image_bytes(encode(Image.fromarray(checker).convert("RGB"), "PNG"), "c.png")))
    assert fine["native_hard_steps"] == 1.0 and fine["native_flat"] == 0.0
    assert fine["hard_steps"] < 0.05  # the downscaled copy is near-uniform grey

    rng = np.random.default_rng(0)
    photo = np.asarray(Image.fromarray(skdata.astronaut()).resize((1600, 1600)), dtype=np.float32)
    grainy = np.clip(photo + rng.normal(0, 1.5, photo.shape), 0, 255).astype(np.uint8)
    camera = stats_by_name(loaded(load_image_bytes(encode(Image.fromarray(grainy), "PNG"), "grain.png")))
    figure = Image.new("RGB", (1600, 1200), "white")
    ImageDraw.Draw(figure).rectangle((400, 300, 1200, 900), fill=(31, 119, 180), outline="black", width=6)
    drawn = stats_by_name(loaded(load_image_bytes(encode(figure, "PNG"), "figure.png")))
    assert camera["native_fine_steps"] > 0.3 > 0.01 > drawn["native_fine_steps"]
    assert drawn["native_flat"] > 0.95 > 0.2 > camera["native_flat"]

    transparent = Image.new("RGBA", (600, 600), (0, 0, 0, 0))  # nothing drawn: the page, flat
    assert stats_by_name(loaded(load_image_bytes(encode(transparent, "PNG"), "t.png")))["native_flat"] == 1.0
