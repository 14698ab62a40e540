"""Contact sheets: a cluster's faces in one image, since people would rather look than read
(``facetrail unknowns show``).

A sheet is a title line over a grid of square tiles, ``COLUMNS`` wide; under each tile, its
caption: the face's number, the job and the date, and the image's name. :func:`layout` gives the
geometry, so the sheet's size and where each tile lies follow from the number of faces alone.
Drawn with Pillow and the font that ships inside it (as ``facetrail.annotate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from facetrail.backends.base import BoundingBox

TILE = 160  # a face crop's side, in pixels
COLUMNS = 6
GAP = 8  # between tiles and around the grid
CAPTION_LINES = 2
FONT_SIZE = 12
LINE = FONT_SIZE + 3
TITLE = 2 * LINE
BACKGROUND = (255, 255, 255)
MISSING = (205, 205, 205)  # the tile of a face whose photo could not be read
TEXT = (30, 30, 30)
# Context kept around a face's box on every side, as a share of the box's longer side: enough
# to see hair and chin. (Crops for enrolling a face are services/corrections.face_crop's.)
SHEET_MARGIN = 0.25


@dataclass(frozen=True)
class Tile:
    """One face: its crop (None where the photo could not be read) and caption lines."""

    crop: Image.Image | None
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    count: int
    columns: int
    rows: int
    width: int
    height: int

    def cell(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of tile ``index``'s crop."""
        row, column = divmod(index, self.columns)
        left = GAP + column * (TILE + GAP)
        top = TITLE + GAP + row * (TILE + CAPTION_LINES * LINE + GAP)
        return left, top, left + TILE, top + TILE


def layout(count: int) -> Layout:
    columns = max(1, min(COLUMNS, count))
    rows = max(1, -(-count // columns))
    width = GAP + columns * (TILE + GAP)
    height = TITLE + GAP + rows * (TILE + CAPTION_LINES * LINE + GAP)
    return Layout(count, columns, rows, width, height)


def face_crop(pixels: Image.Image, box: BoundingBox, margin: float) -> Image.Image:
    """The face in ``box`` (ratios of ``pixels``) with ``margin`` around it, square where the
    photo allows, clipped to the photo."""
    width, height = pixels.size
    x0, y0, x1, y1 = box.to_pixels(width, height)
    side = max(x1 - x0, y1 - y0, 1) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return pixels.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


def draw_sheet(title: str, tiles: Sequence[Tile]) -> Image.Image:
    """The sheet: ``title`` over the tiles in :func:`layout`'s grid."""
    grid = layout(len(tiles))
    sheet = Image.new("RGB", (grid.width, grid.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    draw.text((GAP, GAP), _fit(draw, title, grid.width - 2 * GAP, font), fill=TEXT, font=font)
    for index, tile in enumerate(tiles):
        left, top, right, bottom = grid.cell(index)
        if tile.crop is None:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=MISSING)
        else:
            crop = tile.crop.convert("RGB")
            crop.thumbnail((TILE, TILE))
            # Centred in its square: a face at a photo's edge keeps its proportions.
            sheet.paste(crop, (left + (TILE - crop.width) // 2, top + (TILE - crop.height) // 2))
        for n, line in enumerate(tile.lines[:CAPTION_LINES]):
            text = _fit(draw, line, TILE, font)
            draw.text((left, bottom + 2 + n * LINE), text, fill=TEXT, font=font)
    return sheet


def _fit(
    draw: ImageDraw.ImageDraw,
    text: str,
    width: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> str:
    """``text``, shortened from the left with an ellipsis until it fits ``width`` pixels (the
    end of a path names the file)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text
