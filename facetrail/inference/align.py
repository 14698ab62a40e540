"""Face alignment: a 5-point similarity transform onto the ArcFace 112x112 template (or another
model's template, e.g. dlib's face chips for the attribute networks)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

# Image-left eye, image-right eye, nose tip, image-left and image-right mouth corners, in the
# 112x112 crop (the layout ArcFace-style models such as MobileFaceNet were trained on).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ALIGNED_SIZE = 112
# A face shrunk more than 4x onto the crop (a large face in a large photo) is first area-averaged
# down to the crop's scale: a bilinear warp alone reads 4 of every 16 or more pixels and aliases.
# Set before any scored run so that the calibration faces, all nearer the crop's size, are left
# as they were (docs/benchmarks.md, "Large faces averaged down before alignment").
ANTIALIAS_BELOW = 0.25


def similarity_transform(
    landmarks: npt.NDArray[np.float32], template: npt.NDArray[np.float32] = ARCFACE_TEMPLATE
) -> npt.NDArray[np.float64]:
    """2x3 matrix taking the five (x, y) points onto ``template`` (rotation, scale, shift)."""
    src = np.asarray(landmarks, np.float32).reshape(5, 2)
    template = np.asarray(template, np.float32)
    # LMEDS ignores one badly placed point (e.g. a mouth corner under a hand) instead of
    # letting it skew the fit; with 5 points it falls back to least squares when all agree.
    matrix, _ = cv2.estimateAffinePartial2D(src, template, method=cv2.LMEDS)
    if matrix is None:  # only when all five points coincide
        raise ValueError("cannot align face: landmarks are degenerate")
    return np.asarray(matrix, np.float64)


def align_face(
    rgb: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.float32],
    size: int = ALIGNED_SIZE,
    *,
    template: npt.NDArray[np.float32] | None = None,
    antialias: bool = False,
) -> npt.NDArray[np.uint8]:
    """The ``size`` x ``size`` aligned RGB crop: on the ArcFace template (scaled from its
    112 px frame), or on ``template`` given in the crop's own pixels. With ``antialias``, a face
    shrunk by more than ``1 / ANTIALIAS_BELOW`` is area-averaged to the crop's scale first."""
    if template is not None:
        matrix = similarity_transform(landmarks, template)
    else:
        matrix = similarity_transform(landmarks)
        if size != ALIGNED_SIZE:
            matrix = matrix * (size / ALIGNED_SIZE)
    if antialias:
        rgb, matrix = _averaged_down(rgb, matrix, size)
    # Replicated borders: faces cut by the image edge get plausible pixels, not black wedges.
    crop = cv2.warpAffine(
        rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(crop, np.uint8)


def _averaged_down(
    rgb: npt.NDArray[np.uint8], matrix: npt.NDArray[np.float64], size: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """The part of ``rgb`` the crop reads, area-resized to the warp's scale, and the warp from
    it; ``rgb`` and ``matrix`` unchanged when the warp shrinks by ``ANTIALIAS_BELOW`` or less."""
    linear = matrix[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    if scale >= ANTIALIAS_BELOW:
        return rgb, matrix
    corners = to_image([[0, 0], [size, 0], [0, size], [size, size]], matrix)
    margin = 2 / scale  # the bilinear taps at the crop's edge, in the photo's pixels
    height, width = rgb.shape[:2]
    x0 = max(int(np.floor(corners[:, 0].min() - margin)), 0)
    y0 = max(int(np.floor(corners[:, 1].min() - margin)), 0)
    x1 = min(int(np.ceil(corners[:, 0].max() + margin)), width)
    y1 = min(int(np.ceil(corners[:, 1].max() + margin)), height)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop lies off the photo: its border pixels anyway
        return rgb, matrix
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    kx, ky = out_w / (x1 - x0), out_h / (y1 - y0)
    small = cv2.resize(rgb[y0:y1, x0:x1], (out_w, out_h), interpolation=cv2.INTER_AREA)
    # A pixel centre u of the small image lies at x0 + (u + 0.5) / kx - 0.5 in the photo.
    warp = np.empty((2, 3), np.float64)
    warp[:, :2] = linear @ np.diag([1 / kx, 1 / ky])
    warp[:, 2] = linear @ [x0 + 0.5 / kx - 0.5, y0 + 0.5 / ky - 0.5] + matrix[:, 2]
    return np.asarray(small, np.uint8), warp


def to_image(points: npt.ArrayLike, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``points`` (n, 2) in a crop that the affine ``matrix`` (image to crop) produced, mapped
    back to the image's pixels."""
    back = cv2.invertAffineTransform(matrix)
    mapped: npt.NDArray[np.float64] = np.asarray(points, np.float64) @ back[:, :2].T + back[:, 2]
    return mapped
