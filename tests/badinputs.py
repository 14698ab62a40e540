"""Bad and awkward inputs, made in a temporary folder from the real photos."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from PIL import Image

from tests.conftest import DATA

OBAMA = DATA / "face_recognition" / "tests" / "test_images" / "obama.jpg"
WEBP_AS_JPG = DATA / "deepface" / "tests" / "unit" / "dataset" / "img47.jpg"
PNG_32BIT = DATA / "face_recognition" / "tests" / "test_images" / "32bit.png"


def corrupt_jpeg(folder: Path) -> Path:
    """A real JPEG cut off after its first third: the header reads, the pixels do not."""
    data = OBAMA.read_bytes()
    path = folder / "corrupt.jpg"
    path.write_bytes(data[: len(data) // 3])
    return path


def zero_bytes(folder: Path) -> Path:
    path = folder / "empty.jpg"
    path.write_bytes(b"")
    return path


def text_as_jpg(folder: Path) -> Path:
    path = folder / "notes.jpg"
    path.write_text("this is a text file, not a photo\n" * 20)
    return path


def exif_rotated(folder: Path) -> Path:
    """The obama photo stored sideways with EXIF orientation 6 (display rotated 90 degrees)."""
    upright = Image.open(OBAMA)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer must rotate 270 (i.e. 90 clockwise) to show it upright
    path = folder / "rotated.jpg"
    stored.save(path, format="JPEG", exif=exif, quality=92)
    return path


def decompression_bomb(folder: Path) -> Path:
    """A 1-bit PNG of 60000x60000 pixels that is a few hundred kilobytes on disk."""
    width = height = 60_000
    row = b"\x00" + b"\x00" * (width // 8)
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return len(payload).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    path = folder / "bomb.png"
    path.write_bytes(png)
    return path


def missing(folder: Path) -> Path:
    return folder / "does-not-exist.jpg"


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()
