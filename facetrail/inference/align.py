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


def similarity_transform(
    landmarks: npt.NDArray[np.float32], template: npt.NDArray[np.float32] = ARCFACE_TEMPLATE
) -> npt.NDArray[np.float64]:
    """2x3 matrix taking the five (x, y) points onto ``template`` (rotation, scale, shift)."""
    src = np.asarray(landmarks, np.float32).reshape(5, 2)
    template = np.asarray(template, np.float32)
    # LMEDS ignores one badly placed point (e.g. a mouth corner under a hand) instead of
    # letting it skew the fit; with 5 points it falls back to least squares when all agree.
    matrix, _ = cv2.estimateAffinePartial2D(src, template, method=cv2.LMEDS)
    if matrix is None:  # degenerate points (all equal): plain least squares on the eyes
        matrix, _ = cv2.estimateAffinePartial2D(src[:2], template[:2], method=0)
    if matrix is None:
        raise ValueError("cannot align face: landmarks are degenerate")
    return np.asarray(matrix, np.float64)


def align_face(
    rgb: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.float32],
    size: int = ALIGNED_SIZE,
    *,
    template: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.uint8]:
    """The ``size`` x ``size`` aligned RGB crop: on the ArcFace template (scaled from its
    112 px frame), or on ``template`` given in the crop's own pixels."""
    if template is not None:
        matrix = similarity_transform(landmarks, template)
    else:
        matrix = similarity_transform(landmarks)
        if size != ALIGNED_SIZE:
            matrix = matrix * (size / ALIGNED_SIZE)
    # Replicated borders: faces cut by the image edge get plausible pixels, not black wedges.
    crop = cv2.warpAffine(
        rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(crop, np.uint8)


def to_image(points: npt.ArrayLike, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``points`` (n, 2) in a crop that the affine ``matrix`` (image to crop) produced, mapped
    back to the image's pixels."""
    back = cv2.invertAffineTransform(matrix)
    mapped: npt.NDArray[np.float64] = np.asarray(points, np.float64) @ back[:, :2].T + back[:, 2]
    return mapped
