"""The head's cheap image statistics (STAT_NAMES) and the measures they are made of."""
from __future__ import annotations


from .._lazy import np
from .loaded import Image, LoadedImage

STATS_SIDE = 128  # image_stats works on a copy this small: 2 to 3 ms
NATIVE_CROP = 256  # the native_* statistics look at a centre crop this large, before any downscale

STAT_NAMES: tuple[str, ...] = (
    *(f"lum_hist_{i}" for i in range(8)),  # luminance histogram, fractions of pixels
    "near_white",  # luminance > 0.9
    "near_black",  # luminance < 0.1
    "mean_luminance",
    "mean_saturation",  # HSL saturation
    "transparency",  # fraction of pixels not fully opaque in the file
    "log_colors",  # log2(distinct colours at 4 bits per channel) / 12, in [0, 1]
    "edge_density",  # fraction of pixels with a luminance gradient above 0.1
    # What the file itself draws, weighted by opacity, before any page shows through: dark
    # strokes on a transparent background vanish on a dark page (invert), light ones do not (keep).
    # The same as the composited figures for an opaque image.
    "ink_luminance",  # mean luminance of the drawn pixels
    "ink_dark",  # fraction of opaque pixels with luminance < 0.4
    "ink_light",  # fraction of opaque pixels with luminance > 0.7
    # Drawn or photographed: figures are flat areas of few colours with sharp steps between them;
    # photographs and paintings change a little everywhere (shading, texture, sensor noise).
    "flat",  # fraction of neighbouring pixels with the same colour
    "near_flat",  # ... differing by at most 2 levels in every channel
    "soft_steps",  # ... differing by 3 to 24 levels at most
    "hard_steps",  # ... differing by more than 64 levels somewhere
    "top_color",  # fraction of pixels in the commonest colour (4 bits per channel): the background
    "top8_colors",  # ... in the 8 commonest
    "top32_colors",  # ... in the 32 commonest
    "border_luminance",  # mean luminance of the outer twentieth: the page a figure sits on
    "border_spread",  # its standard deviation
    "colorfulness",  # Hasler and Suesstrunk's measure, on [0, 1] channels
    *(f"sat_hist_{i}" for i in range(4)),  # HSL saturation histogram, fractions of pixels
    "lum_spread",  # standard deviation of luminance
    "lum_entropy",  # entropy of a 64-bin luminance histogram / 6 bits, in [0, 1]
    # What the file is: cameras write JPEG; SVG is always drawn; photographs tend to be large.
    "is_jpeg",
    "is_svg",
    "log_pixels",  # log2(width * height) / 24 of the file
    "log_aspect",  # log2(width / height)
    # The neighbour steps again, on a centre crop at the resolution the file was decoded (JPEGs at
    # 1/2 to 1/8 scale), before the downscale that averages a camera's noise away and blurs a
    # drawing's sharp edges.
    "native_flat",
    "native_near_flat",
    "native_soft_steps",
    "native_hard_steps",
    "native_fine_steps",  # ... differing by 1 to 3 levels: sensor or compression noise
    # Of the pixels a transparent file draws, the share only partly opaque, at its own resolution:
    # anti-aliased edges of line art and symbolic icons are a thin rim; the soft shadows and glows
    # of shaded icons and clipart (keep) are wide.
    "soft_alpha",
    # How a transparent file changes when the page behind it turns from white to dark (#18181b),
    # kept as it is: black line art fades into a dark page (invert), light strokes and glows stand
    # out on it (keep). Zero for an opaque file, which looks the same on any page.
    "dark_page_edges",  # change in the fraction of pixels with a luminance gradient above 0.1
    "dark_page_luminance",  # change in mean luminance
    "dark_page_light",  # change in the fraction of pixels with luminance above 0.7
    "dark_page_contrast",  # change in the mean luminance gradient
)
INK_DARK, INK_LIGHT = 0.4, 0.7
EDGE_GRADIENT = 0.1  # a luminance step this large between neighbours is an edge
DARK_PAGE = (24, 24, 27)  # #18181b, the dark page of the labeling rule (docs/src/labeling.md)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L"
_DARK_PAGE_LUMINANCE = sum(w * c for w, c in zip(_LUMA, DARK_PAGE)) / 255.0


def _centre_crop(im: Image.Image, side: int) -> Image.Image:
    width, height = im.size
    if width <= side and height <= side:
        return im
    left, top = max(0, (width - side) // 2), max(0, (height - side) // 2)
    return im.crop((left, top, left + min(side, width), top + min(side, height)))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel luminance of an (..., 3) float array in [0, 1]."""
    return rgb @ np.asarray(_LUMA, dtype=np.float32)


def _ink_stats(pixels: np.ndarray) -> tuple[float, float, float]:
    """ink_luminance, ink_dark, ink_light of RGBA pixels in [0, 1]: weighted by opacity."""
    alpha = pixels[..., 3]
    weight = float(alpha.sum())
    if weight < 1e-6:  # draws nothing: only the page shows, as with a light figure
        return 1.0, 0.0, 0.0
    luminance = _luminance(pixels[..., :3])
    opaque = alpha >= 0.5
    count = max(int(np.count_nonzero(opaque)), 1)
    return (
        float((luminance * alpha).sum() / weight),
        float(np.count_nonzero(opaque & (luminance < INK_DARK)) / count),
        float(np.count_nonzero(opaque & (luminance > INK_LIGHT)) / count),
    )


def _dark_page_shift(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """The dark_page_* statistics of RGBA pixels in [0, 1]: each measure on a dark page less the
    same on a white one, with the transparent parts showing the page."""
    alpha, luminance = pixels[..., 3], _luminance(pixels[..., :3])
    on_white, on_dark = (_page_measures(alpha * luminance + (1.0 - alpha) * page)
                         for page in (1.0, _DARK_PAGE_LUMINANCE))
    return tuple(d - w for w, d in zip(on_white, on_dark))


def _page_measures(shown: np.ndarray) -> tuple[float, float, float, float]:
    """Edge share (as edge_density), mean luminance, light share (as ink_light) and mean gradient
    of a luminance image."""
    gradient = _gradient(shown)
    edges, contrast = 0.0, 0.0  # a row or a column of pixels has no neighbours to step to
    if gradient.size:
        edges, contrast = float((gradient > EDGE_GRADIENT).mean()), float(gradient.mean())
    return edges, float(shown.mean()), float((shown > INK_LIGHT).mean()), contrast


def _gradient(luminance: np.ndarray) -> np.ndarray:
    """Magnitude of the step to the right and lower neighbours, one pixel short on each axis."""
    return np.hypot(np.diff(luminance, axis=1)[:-1, :], np.diff(luminance, axis=0)[:, :-1])


def mean_hsl_saturation(rgb_image: Image.Image) -> float:
    """Mean HSL saturation of an image's pixels, in [0, 1]."""
    rgb = np.asarray(rgb_image.convert("RGB"), dtype=np.float32) / 255.0
    return float(_hsl_saturation(rgb).mean()) if rgb.size else 0.0


def _hsl_saturation(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel HSL saturation of an (..., 3) float array in [0, 1]."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high = _largest_channel(rgb)
    low = np.minimum(np.minimum(red, green), blue)
    spread = high - low
    denominator = 1.0 - np.abs(high + low - 1.0)  # 1 - |2L - 1|
    return np.divide(spread, denominator, out=np.zeros_like(spread), where=spread > 1e-6)


def image_stats(loaded: LoadedImage) -> np.ndarray:
    """Cheap statistics (see STAT_NAMES) computed on a small copy of the composited image."""
    image = loaded.image.convert("RGB")
    factor = -(-max(image.size) // STATS_SIDE)  # ceiling division
    pixels = np.asarray(image.reduce(factor) if factor > 1 else image)  # box average: fast, no aliasing
    rgb = pixels.astype(np.float32) / 255.0
    luminance = _luminance(rgb)
    fine_histogram = _histogram(luminance, 64)
    histogram = fine_histogram.reshape(8, 8).sum(axis=1)
    quantised = pixels >> 4  # 4 bits per channel, so noise does not count as colours
    codes = quantised.astype(np.int32) @ np.array([256, 16, 1], dtype=np.int32)
    color_counts = np.bincount(codes.ravel(), minlength=4096)
    colors = np.count_nonzero(color_counts)
    gradient = _gradient(luminance)
    edges = float((gradient > EDGE_GRADIENT).mean()) if gradient.size else 0.0
    saturation = _hsl_saturation(rgb)
    commonest = np.sort(color_counts)[::-1] / codes.size
    occupied = fine_histogram[fine_histogram > 0]
    width, height = max(loaded.width, 1), max(loaded.height, 1)
    values = [
        *histogram,
        (luminance > 0.9).mean(),
        (luminance < 0.1).mean(),
        luminance.mean(),
        saturation.mean(),
        loaded.transparency,
        np.log2(colors) / 12.0,
        edges,
        *(loaded.ink or (luminance.mean(), (luminance < INK_DARK).mean(), (luminance > INK_LIGHT).mean())),
        *_neighbour_steps(pixels),
        commonest[0], commonest[:8].sum(), commonest[:32].sum(),
        *_border(luminance),
        _colorfulness(rgb),
        *_histogram(saturation, 4),
        luminance.std(),
        -(occupied * np.log2(occupied)).sum() / 6.0,
        loaded.format == "JPEG",  # a camera's MPO is read as JPEG
        loaded.format == "SVG",
        np.log2(width * height) / 24.0,
        np.log2(width / height),
        *(loaded.texture or _native_texture(_centre_crop(image, NATIVE_CROP))),
        loaded.soft_alpha,
        *(loaded.dark_page or (0.0, 0.0, 0.0, 0.0)),
    ]
    return np.asarray(values, dtype=np.float32)


def _histogram(values: np.ndarray, bins: int) -> np.ndarray:
    """Fractions of `values` (in [0, 1]) in equal bins; 1.0 falls in the last. np.histogram, faster."""
    index = np.minimum((values * bins).astype(np.intp), bins - 1)
    return np.bincount(index.ravel(), minlength=bins) / max(values.size, 1)


def _neighbour_steps(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """flat, near_flat, soft_steps, hard_steps: how much a pixel differs from its right and lower
    neighbours (the largest difference over the channels, in 8-bit levels)."""
    return _step_shares(_channel_steps(pixels))[:4]


def _native_texture(image: Image.Image) -> tuple[float, float, float, float, float]:
    """The native_* statistics of an RGB image (a crop at the decoded resolution)."""
    return _step_shares(_channel_steps(np.asarray(image.convert("RGB"))))


def _channel_steps(pixels: np.ndarray) -> np.ndarray:
    signed = pixels.astype(np.int16)
    return np.concatenate([_largest_channel(np.abs(np.diff(signed, axis=1))).ravel(),
                           _largest_channel(np.abs(np.diff(signed, axis=0))).ravel()])


def _step_shares(steps: np.ndarray) -> tuple[float, float, float, float, float]:
    """Shares of steps: none, at most 2, 3 to 24, over 64, and 1 to 3 levels."""
    if not steps.size:  # one pixel: nothing changes
        return 1.0, 1.0, 0.0, 0.0, 0.0
    return (float((steps == 0).mean()), float((steps <= 2).mean()),
            float(((steps > 2) & (steps <= 24)).mean()), float((steps > 64).mean()),
            float(((steps >= 1) & (steps <= 3)).mean()))


def _largest_channel(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(values[..., 0], values[..., 1]), values[..., 2])  # faster than max(axis=-1)


def _border(luminance: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the luminance of the outer twentieth of each side."""
    side = max(1, min(luminance.shape) // 20)
    ring = np.concatenate([luminance[:side].ravel(), luminance[-side:].ravel(),
                           luminance[:, :side].ravel(), luminance[:, -side:].ravel()])
    return float(ring.mean()), float(ring.std())


def _colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003): spread and mean of two opponent colour axes."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red_green, yellow_blue = red - green, 0.5 * (red + green) - blue
    return float(np.hypot(red_green.std(), yellow_blue.std()) + 0.3 * np.hypot(red_green.mean(), yellow_blue.mean()))
