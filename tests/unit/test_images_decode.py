"""Every way an input file can be bad becomes a clear InvalidImageError; odd-but-valid ones load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetrail.errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError
from facetrail.images import LoadedImage, load_image
from tests import badinputs

LIMITS = {"max_bytes": 40 * 1024 * 1024, "max_pixels": 50_000_000}


def load(path: Path) -> LoadedImage:
    return load_image(path, **LIMITS)


def test_corrupt_jpeg(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        load(badinputs.corrupt_jpeg(tmp_path))


def test_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="empty file"):
        load(badinputs.zero_bytes(tmp_path))


def test_text_named_jpg(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        load(badinputs.text_as_jpg(tmp_path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="not found"):
        load(badinputs.missing(tmp_path))


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = badinputs.decompression_bomb(tmp_path)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ImageTooLargeError, match=r"pixel|bomb"):
        load(bomb)


def test_too_many_bytes(tmp_path: Path) -> None:
    with pytest.raises(ImageTooLargeError, match="byte limit"):
        load_image(badinputs.OBAMA, max_bytes=1000, max_pixels=LIMITS["max_pixels"])


def test_webp_named_jpg_is_read_by_content() -> None:
    image = load(badinputs.WEBP_AS_JPG)
    assert image.format == "WEBP"
    assert image.pixels.mode == "RGB"


def test_32bit_png_becomes_rgb() -> None:
    with Image.open(badinputs.PNG_32BIT) as raw:
        assert raw.mode == "RGBA"
    image = load(badinputs.PNG_32BIT)
    assert image.pixels.mode == "RGB"
    assert image.pixels.size == (626, 1200)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rotated = badinputs.exif_rotated(tmp_path)
    with Image.open(rotated) as raw:
        stored_size = raw.size
    image = load(rotated)
    upright = Image.open(badinputs.OBAMA).convert("RGB")
    assert stored_size == (upright.height, upright.width)
    assert image.pixels.size == upright.size
    diff = np.abs(np.asarray(image.pixels, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 6  # only JPEG re-encoding noise remains


def test_sha256_identifies_content() -> None:
    a = load(badinputs.OBAMA)
    assert len(a.sha256) == 64
    assert a.sha256 == load(badinputs.OBAMA).sha256
    assert a.sha256 != load(badinputs.PNG_32BIT).sha256
