"""Drawing boxes and names on a photo, with the font that ships inside Pillow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from facetrail.images import LoadedImage

KNOWN = (46, 204, 113)
UNKNOWN = (231, 76, 60)


def annotate(image: LoadedImage, faces: Sequence[dict[str, Any]]) -> Image.Image:
    canvas = image.pixels.copy()
    draw = ImageDraw.Draw(canvas)
    scale = max(canvas.width, canvas.height)
    font = ImageFont.load_default(size=max(12, scale // 45))
    width = max(2, scale // 300)
    for face in faces:
        box = face["box"]
        x0, y0 = box["left"] * canvas.width, box["top"] * canvas.height
        x1, y1 = x0 + box["width"] * canvas.width, y0 + box["height"] * canvas.height
        person = face.get("person")
        color = KNOWN if person else UNKNOWN
        draw.rectangle((x0, y0, x1, y1), outline=color, width=width)
        similarity = face.get("similarity")
        label = person or "unknown"
        if person and similarity is not None:  # none: named by a correction
            label = f"{person} {similarity:.0f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left, bottom - top
        ty = y1 + width if y1 + th + 3 * width < canvas.height else max(0.0, y0 - th - 3 * width)
        draw.rectangle((x0, ty, x0 + tw + 2 * width, ty + th + 2 * width), fill=color)
        draw.text((x0 + width - left, ty + width - top), label, fill=(255, 255, 255), font=font)
    return canvas


def output_path(out: Path, source: str, many: bool) -> Path:
    """``out`` is a file for one image (``x.jpg``), else a folder of ``<name>.jpg`` files."""
    if not many and out.suffix.lower() in {".jpg", ".jpeg", ".png"}:
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / (Path(source).stem + ".jpg")
