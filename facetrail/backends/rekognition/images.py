"""Images as Rekognition takes them: JPEG or PNG, at most 5 MB of bytes, at least 80 px a side.

The limits are the service's fixed quotas (Amazon Rekognition developer guide, "Guidelines and
quotas"): raw image bytes passed to the API at most 5 MB, images at least 80 pixels high and wide,
PNG and JPEG only.
"""

from __future__ import annotations

import io
import math

from PIL import Image

from facetrail.backends.base import BoundingBox
from facetrail.errors import InvalidImageError
from facetrail.images import LoadedImage, to_jpeg

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MIN_IMAGE_SIDE = 80
SERVICE_FORMATS = frozenset({"JPEG", "PNG"})
# Context kept around a face when it is cropped for its own search: the service has to detect
# the face again in the crop, and detectors need some forehead, chin and background for that.
CROP_MARGIN = 0.5
JPEG_QUALITY = 90
_EXIF_ORIENTATION = 0x0112


def at_least_min_size(pixels: Image.Image) -> Image.Image:
    """``pixels`` enlarged, if needed, to the service's documented minimum side (boxes are ratios
    of the image, so they mean the same on the enlarged copy): tight face crops stay usable."""
    short = min(pixels.width, pixels.height)
    if short >= MIN_IMAGE_SIDE:
        return pixels
    scale = MIN_IMAGE_SIDE / short
    size = (math.ceil(pixels.width * scale), math.ceil(pixels.height * scale))
    return pixels.resize(size, Image.Resampling.BICUBIC)


def prepare_image(image: LoadedImage) -> bytes:
    """The bytes to send for ``image``: the original when the service can take it as it is.

    Anything else is re-encoded from the decoded pixels, which are already upright: re-encoding
    drops the EXIF orientation, so the service sees exactly the pixels we crop from, and the boxes
    it returns mean the same thing to us as to it.
    """
    small = min(image.width, image.height) < MIN_IMAGE_SIDE
    if not small and _sendable_as_is(image):
        return image.data
    return encode_within_limit(at_least_min_size(image.pixels), source=image.source)


def _sendable_as_is(image: LoadedImage) -> bool:
    if image.format not in SERVICE_FORMATS or image.size_bytes > MAX_IMAGE_BYTES:
        return False
    try:
        with Image.open(io.BytesIO(image.data)) as original:  # reads the header only
            orientation = original.getexif().get(_EXIF_ORIENTATION, 1)
            mode = original.mode
    except (OSError, SyntaxError, ValueError):
        return False
    # CMYK or 16-bit sources are safer re-encoded as plain 8-bit RGB.
    return orientation == 1 and mode in {"RGB", "L", "RGBA", "LA", "P"}


def encode_within_limit(
    pixels: Image.Image, *, source: str, max_bytes: int = MAX_IMAGE_BYTES
) -> bytes:
    """JPEG of ``pixels``, downscaled as much as needed to fit ``max_bytes``."""
    img = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
    data = to_jpeg(img, quality=JPEG_QUALITY)
    while len(data) > max_bytes:
        # JPEG size grows roughly with the pixel count: scale both sides by the square root of
        # the ratio, with some headroom so that one or two rounds suffice.
        scale = math.sqrt(max_bytes / len(data)) * 0.9
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        if min(size) < MIN_IMAGE_SIDE:
            raise InvalidImageError(
                f"{source}: cannot fit the image into {max_bytes} bytes without going below "
                f"{MIN_IMAGE_SIDE} pixels a side"
            )
        img = img.resize(size, Image.Resampling.LANCZOS)
        data = to_jpeg(img, quality=JPEG_QUALITY)
    return data


def crop_box(
    width: int, height: int, box: BoundingBox, margin: float = CROP_MARGIN
) -> tuple[int, int, int, int]:
    """Pixel rectangle (left, top, right, bottom) of ``box`` grown by ``margin`` on every side."""
    grown = BoundingBox(
        left=box.left - margin * box.width,
        top=box.top - margin * box.height,
        width=box.width * (1 + 2 * margin),
        height=box.height * (1 + 2 * margin),
    )
    x0, y0, x1, y1 = grown.to_pixels(width, height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crop_face(pixels: Image.Image, box: BoundingBox, margin: float = CROP_MARGIN) -> Image.Image:
    """The face with some context, enlarged when needed to the service's minimum image size."""
    return at_least_min_size(pixels.crop(crop_box(pixels.width, pixels.height, box, margin)))


def box_in_crop(
    box: BoundingBox, rect: tuple[int, int, int, int], width: int, height: int
) -> BoundingBox:
    """``box`` (ratios of the whole image) as ratios of the crop ``rect`` (pixels)."""
    x0, y0, x1, y1 = rect
    cw, ch = x1 - x0, y1 - y0
    return BoundingBox(
        left=(box.left * width - x0) / cw,
        top=(box.top * height - y0) / ch,
        width=box.width * width / cw,
        height=box.height * height / ch,
    )
