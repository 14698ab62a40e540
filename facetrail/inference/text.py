"""The text reader behind DetectText: RapidOCR, giving LINE and WORD entries.

Runs RapidOCR (PyPI ``rapidocr==3.10.0``) on onnxruntime with the PP-OCRv6 small detection and
recognition models and PaddleOCR's text-angle classifier, all shipped inside the wheel and
checked by sha256 (``facetrail.modelfiles``); their paths are passed explicitly, so RapidOCR never
tries to download anything. The engine loads on first use, once per process.

Geometry is Rekognition's: a BoundingBox and a 4-point Polygon (top-left, top-right,
bottom-right, bottom-left), as ratios of the image's width and height. Ids number the LINEs
first (reading order, as RapidOCR sorts them: top to bottom, then left to right), then the
WORDs, whose ParentId is their line's Id. Confidence is the recogniser's mean character
probability x 100; lines below ``min_confidence`` (default 50, RapidOCR's own ``text_score``
0.5) are dropped with their words.

Most photos have no text, so a cheap pass comes first: detection alone on the photo scaled down
to 640 px on its long side; where it finds no text box, the answer is empty (a photo no larger
than that skips it: the full pass detects at the same size and stops there). Otherwise the photo
is read with detection at up to 1280 px on its long side, never enlarged (RapidOCR's default
enlarges every photo to at least 736 px on its short side, which costs most on the many small
photos and, on small crops of words, read worse); recognition reads its crops from the photo at
full size either way. Both sizes were fixed before the benchmark scored them.

Pages turned by 90, 180 or 270 degrees (scans without EXIF orientation) are read upright. The
first pass reads the image as sent; then every elongated text box (long side at least 1.5x the
short one) read at confidence 50 or more and classified 0 or 180 degrees with certainty 0.9 or
more (all RapidOCR's own defaults) votes, with the length of its long side, for the quarter
turn that makes it upright: its shape says horizontal or vertical, the angle classifier's label
on its crop which way up. If more than half of the voting length asks for a turn, the page is
read again turned that way, and the geometry is mapped back onto the image as sent (as
Rekognition reports it); lines then come in the upright page's reading order, and a polygon
keeps the text's own corner order (its first point is the text's top-left, wherever that lies
in the image). An upright page pays one pass plus the classifier on its elongated boxes; a
turned page pays two passes.

``single_line=True`` skips detection and reads the whole image as one line: for images known to
be a cropped word or line (detection needs some margin around text and misses tight crops). It
is not a fallback for photos: on photos without text the recogniser still returns characters,
sometimes with confidence above 90 (measured on the face photos in ../shared/data). It reads
the image the way it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import BoundingBox
from facetrail.images.decode import as_rgb
from facetrail.inference.base import Model
from facetrail.inference.runtime import require
from facetrail.tagging.text import Point, TextDetection

DEFAULT_MIN_CONFIDENCE = 50.0  # RapidOCR's Global.text_score
DETECT_SIDE = 1280
PROBE_SIDE = 640
# Which boxes vote on a page's turn, all by RapidOCR's own defaults: it turns a crop this much
# taller than wide before recognition (below that, either way, a box's shape does not say which
# way its text runs); its classifier acts on a label only at Cls.cls_thresh; and it reports a
# line only at Global.text_score. Stray boxes on photos fail the last two.
VERTICAL_ASPECT = 1.5
CLS_THRESHOLD = 0.9
TEXT_SCORE = DEFAULT_MIN_CONFIDENCE / 100.0

Quad = Sequence[Sequence[float]]


@dataclass(frozen=True)
class _Line:
    text: str
    score: float
    quad: Quad
    words: tuple[tuple[str, float, Quad], ...]


class TextReader(Model[list[TextDetection]]):
    """RapidOCR on ``files`` (detection, recognition, angle classifier), all passed explicitly.
    Calls are serialised: the engine keeps per-call options on itself, and one OCR call already
    uses the worker's threads. RapidOCR builds its own onnxruntime sessions, given the thread
    budget through its parameters."""

    serialise = True
    # Detection resolution (long side, RapidOCR's "max" limit); the probe's, smaller, for the
    # "is there any text" pass. Class attributes so the benchmark can set the previous ones.
    detect_side = DETECT_SIDE
    detect_limit_type = "max"
    probe_side: int | None = PROBE_SIDE
    _engine: Any = None
    _crop: Any = None

    def _load(self) -> None:
        rapidocr = require("rapidocr", extra="tagging", what="text detection")
        process_img = require("rapidocr.utils.process_img", extra="tagging", what="text detection")
        det, rec, cls = self.files
        params = {
            "Det.model_path": str(det),
            "Rec.model_path": str(rec),
            "Cls.model_path": str(cls),
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # RapidOCR turns onnxruntime's memory arena off; every call then allocates its
            # tensors afresh, which cost a fifth of text's CPU time (docs/tagging.md).
            "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
            # Detection scales photos down to at most this side and never enlarges them
            # (RapidOCR's default enlarges every photo to at least 736 px on its short side).
            "Det.limit_type": self.detect_limit_type,
            "Det.limit_side_len": self.detect_side,
        }
        self._engine = rapidocr.RapidOCR(params=params)
        # RapidOCR builds its recogniser and classifier on their first use: built now, so a
        # process pays for them when the reader loads, as for every other model.
        self._engine._load_rec_model()
        self._engine._load_cls_model()
        detector = self._engine._load_det_model()  # built now, to give it the table below
        make_input = detector.get_preprocess
        table = _normalised_values(make_input())
        detector.get_preprocess = lambda: _DetectionInput(make_input(), table)
        # The pipeline's own crop, so the classifier agrees.
        self._crop = process_img.get_rotate_crop_image

    def _predict(
        self,
        image: Image.Image,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        single_line: bool = False,
        orientation: bool = True,
    ) -> list[TextDetection]:
        """DetectText entries for ``image``. ``orientation=False`` reads the image as sent in one
        pass, for callers that know their images are upright."""
        rgb = as_rgb(image)
        width, height = rgb.size
        if single_line:
            result = self._engine(_bgr(rgb), use_det=False, use_cls=False, use_rec=True)
            lines = _whole_image_line(result, width, height)
        elif not self._any_text(rgb):
            lines = []
        else:
            bgr = _bgr(rgb)
            lines = self._page(bgr)
            turns = self._upright_turns(bgr, lines) if orientation else 0
            if turns:
                upright = np.ascontiguousarray(np.rot90(bgr, turns))
                lines = [_turn_back(ln, turns, width, height) for ln in self._page(upright)]
        kept = [ln for ln in lines if ln.text.strip() and ln.score * 100.0 >= min_confidence]
        return to_detections(kept, width, height)

    def _any_text(self, rgb: Image.Image) -> bool:
        """The cheap pass: detection alone on the photo scaled down to ``probe_side``. Most
        social-media photos have no text, and they end here."""
        # A photo no larger than the probe is detected at its own size by the full pass too:
        # the probe would only repeat it (the full pass stops after detection if it finds none).
        if self.probe_side is None or max(rgb.size) <= self.probe_side:
            return True
        scale = self.probe_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        small = _bgr(rgb.resize(size, Image.Resampling.BILINEAR))
        found = self._engine(small, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(found, "boxes", None)
        return boxes is not None and len(boxes) > 0

    def _page(self, bgr: npt.NDArray[np.uint8]) -> list[_Line]:
        result = self._engine(
            bgr,
            use_det=True,
            use_cls=True,
            use_rec=True,
            return_word_box=True,
            text_score=0.0,  # filtered by the caller, on our own scale
        )
        return _lines(result)

    def _upright_turns(self, bgr: npt.NDArray[np.uint8], lines: Sequence[_Line]) -> int:
        """Counter-clockwise quarter turns (0-3) that make the page upright: the turn asked for
        by more than half of the voting boxes' length, else 0 (also when nothing votes)."""
        votes = [0.0, 0.0, 0.0, 0.0]
        for line in lines:
            quad = np.asarray(line.quad, dtype=np.float32).reshape(4, 2)
            across, down = _sides(quad)
            elongated = max(across, down) >= VERTICAL_ASPECT * max(min(across, down), 1.0)
            if not elongated or line.score < TEXT_SCORE:
                continue
            crop = self._crop(bgr, quad.copy())
            classified = self._engine(crop, use_det=False, use_cls=True, use_rec=False)
            label, certainty = (getattr(classified, "cls_res", None) or [("0", 0.0)])[0]
            if float(certainty) < CLS_THRESHOLD:
                continue
            flipped = str(label) == "180"
            # RapidOCR turned a vertical crop counter-clockwise: upright after that means the
            # text runs downwards, and the page needs a counter-clockwise quarter turn.
            turns = (3 if flipped else 1) if down > across else (2 if flipped else 0)
            votes[turns] += max(across, down)
        best = int(np.argmax(votes))
        return best if votes[best] > sum(votes) / 2 else 0


def _normalised_values(preprocess: Any) -> npt.NDArray[np.float32]:
    """(3, 256): what RapidOCR's detection input holds for each channel and pixel value."""
    values = np.arange(256, dtype=np.uint8).reshape(256, 1, 1).repeat(3, axis=2)
    normalised = np.asarray(preprocess.normalize(values), dtype=np.float32)
    return np.ascontiguousarray(normalised[:, 0, :].T)


class _DetectionInput:
    """RapidOCR's detection input (its ``DetPreProcess``), the per-pixel arithmetic looked up.

    RapidOCR resizes, then normalises every pixel in float64 and casts the result to float32.
    Each output value depends only on its channel and 8-bit input value, so a table of the 768
    results gives the very same array for a fraction of the work (docs/tagging.md, "Text").
    """

    def __init__(self, preprocess: Any, table: npt.NDArray[np.float32]) -> None:
        self.preprocess = preprocess
        self.table = table

    def __call__(self, img: npt.NDArray[Any]) -> npt.NDArray[np.float32] | None:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            out: npt.NDArray[np.float32] | None = self.preprocess(img)
            return out
        resized = self.preprocess.resize(img)
        if resized is None:
            return None
        batch = np.empty((1, 3, *resized.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.take(self.table[channel], resized[:, :, channel], out=batch[0, channel])
        return batch


def _bgr(rgb: Image.Image) -> npt.NDArray[np.uint8]:
    """An RGB image as the array RapidOCR takes (OpenCV's channel order, contiguous)."""
    # cvtColor swaps the channels in one pass, at a tenth of numpy's copy through a reversed view.
    return np.asarray(cv2.cvtColor(np.asarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR), np.uint8)


def _lines(result: Any) -> list[_Line]:
    boxes = getattr(result, "boxes", None)
    texts = getattr(result, "txts", None)
    scores = getattr(result, "scores", None)
    if boxes is None or texts is None or scores is None:
        return []
    words = list(getattr(result, "word_results", None) or ())
    lines: list[_Line] = []
    for i, (quad, text, score) in enumerate(zip(boxes, texts, scores, strict=True)):
        line_words: tuple[tuple[str, float, Quad], ...] = ()
        if i < len(words) and words[i]:
            line_words = tuple(
                (str(w[0]), float(w[1]), w[2])
                for w in words[i]
                if len(w) == 3 and w[2] is not None and str(w[0]).strip()
            )
        # RapidOCR leaves out lines it found no word boxes for, which shifts the lines after
        # them: keep word boxes only when they spell this very line.
        if "".join(w[0] for w in line_words) != "".join(str(text).split()):
            line_words = ()
        lines.append(_Line(str(text), float(score), np.asarray(quad).tolist(), line_words))
    return lines


def _sides(quad: npt.NDArray[np.float32]) -> tuple[float, float]:
    """Length across (top edge) and down (left edge) of a quad, the longer of each pair, as
    RapidOCR measures its crops."""
    across = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))
    down = max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
    return float(across), float(down)


def _turn_back(line: _Line, turns: int, width: int, height: int) -> _Line:
    """``line`` read on the image turned ``turns`` quarter turns counter-clockwise, with its
    geometry on the image as sent (``width`` x ``height``)."""
    words = tuple((t, s, _unturn(q, turns, width, height)) for t, s, q in line.words)
    return _Line(line.text, line.score, _unturn(line.quad, turns, width, height), words)


def _unturn(quad: Quad, turns: int, width: int, height: int) -> Quad:
    points = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    u, v = points[:, 0], points[:, 1]
    if turns == 1:
        x, y = width - v, u
    elif turns == 2:
        x, y = width - u, height - v
    elif turns == 3:
        x, y = v, height - u
    else:
        x, y = u, v
    mapped: Quad = np.stack([x, y], axis=1).tolist()
    return mapped


def _whole_image_line(result: Any, width: int, height: int) -> list[_Line]:
    texts = getattr(result, "txts", None)
    scores = getattr(result, "scores", None)
    if not texts or not scores:
        return []
    quad = [[0.0, 0.0], [float(width), 0.0], [float(width), float(height)], [0.0, float(height)]]
    return [_Line(str(texts[0]), float(scores[0]), quad, ())]


def to_detections(lines: Sequence[_Line], width: int, height: int) -> list[TextDetection]:
    """LINE entries (ids 0..n-1), then WORD entries pointing at their line."""
    out: list[TextDetection] = []
    for line_id, line in enumerate(lines):
        out.append(_entry(line_id, "LINE", line.text.strip(), line.score, line.quad, width, height))
    next_id = len(lines)
    for line_id, line in enumerate(lines):
        words = line.words or _split_words(line)
        for text, score, quad in words:
            out.append(_entry(next_id, "WORD", text, score, quad, width, height, line_id))
            next_id += 1
    return out


def _split_words(line: _Line) -> tuple[tuple[str, float, Quad], ...]:
    """Words of a line the recogniser gave no word boxes for: the line's quad cut in proportion
    to character positions, each word with the line's confidence."""
    tokens = line.text.split()
    if not tokens:
        return ()
    quad = np.asarray(line.quad, dtype=np.float64)
    total = max(len(line.text), 1)
    words: list[tuple[str, float, Quad]] = []
    position = 0
    for token in tokens:
        start = line.text.index(token, position)
        end = start + len(token)
        position = end
        a, b = start / total, end / total
        top_left = quad[0] + (quad[1] - quad[0]) * a
        top_right = quad[0] + (quad[1] - quad[0]) * b
        bottom_right = quad[3] + (quad[2] - quad[3]) * b
        bottom_left = quad[3] + (quad[2] - quad[3]) * a
        corners = np.stack([top_left, top_right, bottom_right, bottom_left]).tolist()
        words.append((token, line.score, corners))
    return tuple(words)


def _entry(
    entry_id: int,
    kind: str,
    text: str,
    score: float,
    quad: Quad,
    width: int,
    height: int,
    parent: int | None = None,
) -> TextDetection:
    points: npt.NDArray[np.float64] = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    xs = np.clip(points[:, 0] / width, 0.0, 1.0)
    ys = np.clip(points[:, 1] / height, 0.0, 1.0)
    box = BoundingBox(
        left=float(xs.min()),
        top=float(ys.min()),
        width=float(xs.max() - xs.min()),
        height=float(ys.max() - ys.min()),
    )
    polygon = tuple(Point(float(x), float(y)) for x, y in zip(xs, ys, strict=True))
    return TextDetection(
        id=entry_id,
        type=kind,
        text=text,
        confidence=round(score * 100.0, 3),
        box=box,
        polygon=polygon,
        parent_id=parent,
    )
