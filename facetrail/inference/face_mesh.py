"""MediaPipe's face mesh (``face_landmark.tflite`` of PyPI ``mediapipe==0.10.21``): 468 points.

The network takes a 192x192 RGB crop scaled to [0, 1], upright (MediaPipe rotates its crop so
the eyes are level) and about 1.5 times BlazeFace's tight box; it returns 468 (x, y, z) points in
the crop's pixels and a face-presence logit. The crop here is 1.25 times the larger side of
MTCNN's box (which reaches from forehead to chin, larger than BlazeFace's), turned along the eye
line; the scale was chosen on the even rows of ``celeba_attributes`` (1.25 and 1.5 tied) and the
attribute benchmark scores only the odd rows. Points are mapped back to the image's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.inference.align import to_image
from facetrail.inference.base import TFLiteModel
from facetrail.inference.detector import Detection

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

MESH_SIZE = 192
MESH_SCALE = 1.25
MESH_POINTS = 468
POINTS_OUTPUT = "conv2d_21"


def mesh_transform(detection: Detection) -> npt.NDArray[np.float64]:
    """2x3 matrix from the image to the upright MESH_SIZE crop around the face."""
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    side = MESH_SCALE * max(x1 - x0, y1 - y0)
    eye_l, eye_r = detection.landmarks[0], detection.landmarks[1]
    angle = float(np.degrees(np.arctan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0])))
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, MESH_SIZE / side)
    matrix[:, 2] += np.array([MESH_SIZE / 2, MESH_SIZE / 2]) - np.array(centre)
    return np.asarray(matrix, np.float64)


class FaceMeshModel(TFLiteModel[list[FloatArray]]):
    """``files``: face_landmark.tflite. ``predict(rgb, detections)``: per face, (468, 2) points
    in the image's pixels (MediaPipe's canonical mesh order)."""

    def _predict(self, rgb: UInt8Array, detections: Sequence[Detection]) -> list[FloatArray]:
        pixels = np.ascontiguousarray(rgb)
        source = self.interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        out = []
        for detection in detections:
            matrix = mesh_transform(detection)
            crop = cv2.warpAffine(
                pixels,
                matrix,
                (MESH_SIZE, MESH_SIZE),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            self.interpreter.set_tensor(source, (crop.astype(np.float32) / 255.0)[None])
            self.interpreter.invoke()
            points = np.asarray(self.interpreter.get_tensor(outputs[POINTS_OUTPUT]), np.float64)
            xy = points.reshape(MESH_POINTS, 3)[:, :2]
            out.append(to_image(xy, matrix).astype(np.float32))
        return out
