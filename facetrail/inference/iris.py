"""MediaPipe's iris model (``iris_landmark.tflite`` of PyPI ``mediapipe==0.10.21``): pupils.

The network takes a 64x64 RGB crop of one eye scaled to [0, 1] and returns 71 eye-contour and
brow points and 5 iris points (the centre first), (x, y, z) in the crop's pixels; the first 16
of the 71 are the eyelids' contour (MediaPipe's ``iris_landmark_left_eye_landmarks``: a corner,
seven lower-lid points, the other corner, seven upper-lid points, each lid from the first corner
towards the second, so lower point i faces upper point i). The crop is
MediaPipe's own (``IrisLandmarkLandmarksToRoi``): centred between the eye's two corners from the
face mesh, turned so that the corners are level, its side 2.3 times the corners' larger extent
(x or y). The network was trained on the image-left eye (mesh corners 33, 133); the image-right
eye (362, 263) is mirrored before and after, as MediaPipe does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.inference.align import to_image
from facetrail.inference.base import TFLiteModel

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

IRIS_SIZE = 64
IRIS_SCALE = 2.3
# Each eye's corners in the 468-point mesh, image-left corner first; whether it is mirrored.
EYE_CORNERS = (((33, 133), False), ((362, 263), True))
IRIS_OUTPUT = "output_iris"
CONTOUR_OUTPUT = "output_eyes_contours_and_brows"
CONTOUR_POINTS = 71
LID_POINTS = 16


@dataclass(frozen=True)
class Eyes:
    """One face's eyes, image-left eye first, in the image's pixels: ``centres`` (2, 2) the iris
    centres; ``lids`` (2, 16, 2) each eye's lid contour in the model's order (see module)."""

    centres: FloatArray
    lids: FloatArray


def eye_transform(corners: npt.NDArray[np.float64], flip: bool) -> npt.NDArray[np.float64]:
    """2x3 matrix from the image to the upright IRIS_SIZE crop of one eye (mirrored if
    ``flip``), ``corners`` its two corners (2, 2) in pixels."""
    start, end = corners
    centre = (start + end) / 2
    side = IRIS_SCALE * max(float(np.max(np.abs(end - start))), 1.0)
    angle = float(np.degrees(np.arctan2(end[1] - start[1], end[0] - start[0])))
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, IRIS_SIZE / side)
    matrix[:, 2] += np.array([IRIS_SIZE / 2, IRIS_SIZE / 2]) - centre
    if flip:
        mirror = np.array([[-1.0, 0.0, IRIS_SIZE], [0.0, 1.0, 0.0]])
        matrix = mirror @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.asarray(matrix, np.float64)


class IrisModel(TFLiteModel[list[Eyes]]):
    """``files``: iris_landmark.tflite. ``predict(rgb, meshes)``: per face (one 468-point mesh
    each, image pixels), its ``Eyes``: iris centres and lid contours in the image's pixels,
    image-left eye first."""

    def _predict(self, rgb: UInt8Array, meshes: Sequence[FloatArray]) -> list[Eyes]:
        pixels = np.ascontiguousarray(rgb)
        source = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        out = []
        for mesh in meshes:
            points = np.asarray(mesh, np.float64)
            centres = np.zeros((2, 2), np.float32)
            lids = np.zeros((2, LID_POINTS, 2), np.float32)
            for eye, (corners, flip) in enumerate(EYE_CORNERS):
                matrix = eye_transform(points[list(corners)], flip)
                crop = cv2.warpAffine(
                    pixels,
                    matrix,
                    (IRIS_SIZE, IRIS_SIZE),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )
                self.interpreter.set_tensor(source, (crop.astype(np.float32) / 255.0)[None])
                self.interpreter.invoke()
                iris = np.asarray(self.interpreter.get_tensor(outputs[IRIS_OUTPUT]), np.float64)
                centre = iris.reshape(5, 3)[0, :2]
                contour = np.asarray(self.interpreter.get_tensor(outputs[CONTOUR_OUTPUT]))
                lid = contour.reshape(CONTOUR_POINTS, 3)[:LID_POINTS, :2].astype(np.float64)
                mapped = to_image(np.vstack([centre, lid]), matrix)
                centres[eye], lids[eye] = mapped[0], mapped[1:]
            out.append(Eyes(centres=centres, lids=lids))
        return out
