"""DetectLabels' ImageProperties from pixels: colours, quality, foreground and background."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from facetrail.tagging.properties import image_properties


def test_dominant_colours_are_named_and_measured() -> None:
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :150] = (220, 20, 20)  # three quarters red
    pixels[:, 150:] = (20, 40, 210)  # one quarter blue
    colors = image_properties(Image.fromarray(pixels))["DominantColors"]
    assert [c["SimplifiedColor"] for c in colors] == ["red", "blue"]
    assert abs(colors[0]["PixelPercent"] - 75.0) < 1.0 and abs(colors[1]["PixelPercent"] - 25.0) < 1
    red, green, blue = (colors[0][k] for k in ("Red", "Green", "Blue"))
    assert colors[0]["HexCode"] == f"#{red:02x}{green:02x}{blue:02x}"


def test_quality_orders_brightness_sharpness_and_contrast() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
    sharp = image_properties(noise)["Quality"]
    blurred = image_properties(noise.filter(ImageFilter.GaussianBlur(4)))["Quality"]
    assert sharp["Sharpness"] > blurred["Sharpness"] + 20
    assert sharp["Contrast"] > blurred["Contrast"]
    dark = image_properties(Image.new("RGB", (100, 100), (20, 20, 20)))["Quality"]
    light = image_properties(Image.new("RGB", (100, 100), (235, 235, 235)))["Quality"]
    assert dark["Brightness"] < 10 < 90 < light["Brightness"]
    assert dark["Contrast"] == 0.0


def test_a_detailed_subject_on_a_plain_backdrop_is_the_foreground() -> None:
    rng = np.random.default_rng(1)
    pixels = np.full((200, 200, 3), (40, 160, 60), np.uint8)  # a plain green backdrop
    pixels[60:140, 60:140] = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)  # textured subject
    properties = image_properties(Image.fromarray(pixels))
    background = properties["Background"]
    assert background["DominantColors"][0]["SimplifiedColor"] == "green"
    assert background["DominantColors"][0]["PixelPercent"] > 80
    assert properties["Foreground"]["Quality"]["Sharpness"] > background["Quality"]["Sharpness"]
