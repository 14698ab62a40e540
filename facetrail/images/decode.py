"""Decoding images safely: every way a file can be bad becomes one clear InvalidImageError.

Bytes from any source (see ``facetrail.images.opener``) end here: ``decode_image`` checks the
byte and pixel limits before decoding, applies EXIF orientation and returns an RGB
:class:`LoadedImage`. ``read_source`` / ``load_image`` read a local file under the same limits.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from facetrail.errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError

# Formats a photo pipeline meets; anything else (PDF, EPS, ICO...) is refused before decoding.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})


@dataclass(frozen=True)
class LoadedImage:
    """A decoded RGB image with EXIF orientation applied, and where it came from."""

    pixels: Image.Image
    sha256: str
    source: str
    format: str
    size_bytes: int
    data: bytes

    @property
    def width(self) -> int:
        return self.pixels.width

    @property
    def height(self) -> int:
        return self.pixels.height


def read_source(source: str | Path, *, max_bytes: int) -> bytes:
    """The bytes of a local file, refused beyond ``max_bytes`` before reading."""
    path = Path(source)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageNotFoundError(f"{source}: file not found") from None
    except OSError as exc:
        raise InvalidImageError(f"{source}: cannot read ({exc.strerror})") from None
    # Checked before opening: opening a FIFO would block, a directory cannot be read.
    if not path.is_file():
        raise InvalidImageError(f"{source}: not a regular file")
    if size > max_bytes:
        raise ImageTooLargeError(f"{source}: {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise InvalidImageError(f"{source}: cannot read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{source}: more than {max_bytes} bytes")
    return data


def decode_image(
    data: bytes, *, source: str = "<bytes>", max_bytes: int, max_pixels: int
) -> LoadedImage:
    """Decode ``data`` into an upright RGB image or raise InvalidImageError saying why."""
    if not data:
        raise InvalidImageError(f"{source}: empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{source}: {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            # Pillow warns at half the bomb limit; we enforce our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in ALLOWED_FORMATS:
                raise InvalidImageError(f"{source}: unsupported image format {fmt}")
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{source}: {width}x{height} pixels exceeds the {max_pixels}-pixel limit "
                    "(possible decompression bomb)"
                )
            if width < 1 or height < 1:
                raise InvalidImageError(f"{source}: image has no pixels")
            img.load()
            # In place: a returned copy would cost a full extra pass over the pixels.
            ImageOps.exif_transpose(img, in_place=True)
            rgb = _to_rgb(img)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLargeError(f"{source}: decompression bomb refused ({exc})") from None
        raise InvalidImageError(f"{source}: not a recognised image file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"{source}: corrupt or truncated image ({exc})") from None
    return LoadedImage(
        pixels=rgb,
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
        format=fmt,
        size_bytes=len(data),
        data=data,
    )


def load_image(source: str | Path, *, max_bytes: int, max_pixels: int) -> LoadedImage:
    """A local file, decoded under explicit limits (jobs use ``open_image`` and the settings)."""
    data = read_source(source, max_bytes=max_bytes)
    return decode_image(data, source=str(source), max_bytes=max_bytes, max_pixels=max_pixels)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent areas do not turn black.
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode.startswith("I;16") or img.mode == "I":
        return ImageOps.autocontrast(
            img.convert("I").point(lambda v: v / 256).convert("L")
        ).convert("RGB")
    return img.convert("RGB")


def as_rgb(img: Image.Image) -> Image.Image:
    """``img`` in RGB: itself when it already is (``convert`` would copy every pixel, which on a
    large photo costs each model that asks as much as a resize)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def to_jpeg(img: Image.Image, *, quality: int = 90) -> bytes:
    """``img`` encoded as JPEG bytes."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
