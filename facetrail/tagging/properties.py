"""DetectLabels' ImageProperties (feature ``IMAGE_PROPERTIES``), from the pixels alone.

Quality: brightness (mean luma, 0-100), sharpness (variance of the Laplacian at a fixed size,
squashed to 0-100 as faces' Quality is: ``facetrail.backends.local.attributes``) and contrast
(standard deviation of luma over its largest possible value, 0-100). Dominant colours: Pillow's
median-cut quantisation of a thumbnail, each colour named by the nearest CSS colour and by the
nearest of Rekognition's simplified colours, with the share of pixels it covers.

Foreground and background: no segmentation model is used. The foreground is where the image is
detailed (local gradient energy above its median, smoothed), which separates a focused subject
from a blurred or plain backdrop; an image detailed everywhere (or nowhere) has no such split,
and then the central ellipse is taken as the foreground, as photos usually frame their subject.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageColor

from facetrail.backends.local.attributes import SHARPNESS_SCALE, SHARPNESS_SIDE

THUMBNAIL_SIDE = 256  # colours and masks are computed on a thumbnail this size
MAX_COLORS = 10  # the service returns up to 10 dominant colours
MIN_COLOR_SHARE = 1.0  # colours covering less than 1% of the pixels are left out
# The mask is trusted when it covers between these shares of the image.
MIN_FOREGROUND, MAX_FOREGROUND = 0.1, 0.8
# Rekognition's simplified colour names, each at a representative RGB.
SIMPLIFIED_COLORS: dict[str, tuple[int, ...]] = {
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 160, 60),
    "blue": (40, 90, 200),
    "purple": (130, 50, 160),
    "pink": (240, 150, 190),
    "brown": (120, 75, 40),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
}
# By name: Pillow caches parsed colours back into ``colormap``, so its values may be tuples.
_CSS: dict[str, tuple[int, ...]] = {
    name: ImageColor.getrgb(name)[:3] for name in list(ImageColor.colormap)
}

RGB = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def _nearest(color: tuple[int, int, int], palette: dict[str, tuple[int, ...]]) -> str:
    def distance(name: str) -> int:
        return sum((a - b) ** 2 for a, b in zip(color, palette[name], strict=True))

    return min(palette, key=distance)


def _quality(gray: npt.NDArray[np.uint8], mask: Mask) -> dict[str, float]:
    values = gray[mask].astype(np.float64)
    if values.size == 0:
        return {"Brightness": 0.0, "Sharpness": 0.0, "Contrast": 0.0}
    scaled = cv2.resize(gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(
        mask.astype(np.uint8), (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    laplacian = cv2.Laplacian(scaled, cv2.CV_64F)
    variance = float(laplacian[small_mask].var()) if small_mask.any() else 0.0
    return {
        "Brightness": float(values.mean()) / 255.0 * 100.0,
        "Sharpness": 100.0 * (1.0 - math.exp(-variance / SHARPNESS_SCALE)),
        "Contrast": min(100.0, float(values.std()) / 127.5 * 100.0),
    }


def _colors(rgb: RGB, mask: Mask) -> list[dict[str, Any]]:
    pixels = rgb[mask]
    if len(pixels) == 0:
        return []
    strip = Image.fromarray(np.ascontiguousarray(pixels.reshape(1, -1, 3)))
    quantised = strip.quantize(colors=MAX_COLORS, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    counts = quantised.getcolors(MAX_COLORS) or []
    total = float(len(pixels))
    out = []
    for count, index in sorted(counts, key=lambda c: -c[0]):
        share = count / total * 100.0
        if share < MIN_COLOR_SHARE:
            continue
        assert isinstance(index, int)  # a palette image counts palette indices
        r, g, b = (int(v) for v in palette[3 * index : 3 * index + 3])
        out.append(
            {
                "Red": r,
                "Blue": b,
                "Green": g,
                "HexCode": f"#{r:02x}{g:02x}{b:02x}",
                "CSSColor": _nearest((r, g, b), _CSS),
                "SimplifiedColor": _nearest((r, g, b), SIMPLIFIED_COLORS),
                "PixelPercent": share,
            }
        )
    return out


def foreground_mask(gray: npt.NDArray[np.uint8]) -> Mask:
    """Where the image is detailed (see the module docstring), else the central ellipse."""
    height, width = gray.shape
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    energy = cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), sigmaX=max(2.0, width / 40))
    mask = energy > float(np.median(energy)) * 1.5
    if MIN_FOREGROUND <= mask.mean() <= MAX_FOREGROUND:
        return np.asarray(mask, dtype=bool)
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return np.asarray(((xs - cx) / (width / 3)) ** 2 + ((ys - cy) / (height / 3)) ** 2 <= 1.0)


def image_properties(image: Image.Image) -> dict[str, Any]:
    """The ``ImageProperties`` member of a DetectLabels response for ``image``."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    rgb = np.asarray(thumbnail, dtype=np.uint8)
    gray = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    everything = np.ones(gray.shape, dtype=bool)
    foreground = foreground_mask(gray)
    return {
        "Quality": _quality(gray, everything),
        "DominantColors": _colors(rgb, everything),
        "Foreground": {
            "Quality": _quality(gray, foreground),
            "DominantColors": _colors(rgb, foreground),
        },
        "Background": {
            "Quality": _quality(gray, ~foreground),
            "DominantColors": _colors(rgb, ~foreground),
        },
    }
