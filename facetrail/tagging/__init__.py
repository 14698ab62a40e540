"""Image tagging: labels (objects), text, moderation, in Rekognition's response shapes.

``Tagger(settings)`` is cheap to build and loads nothing; each model loads on its first use,
once per process, and is shared by every Tagger built from the same model file and thread count
(a worker may build many). Importing this package imports no model runtime either.

    from facetrail.tagging import Tagger
    tagger = Tagger(settings)
    labels = tagger.labels(image)              # [Label(name="Dog", confidence=41.7, ...)]
    lines = tagger.text(image)                 # [TextDetection(type="LINE", text=...), ...]
    flags = tagger.moderation(image)           # [] or [ModerationLabel("Explicit", 87.1)]
    tagger.tag(image, ["labels", "text"])      # {"labels": [{"Name": "Dog", ...}], "text": [...]}

``image`` is a :class:`facetrail.images.LoadedImage` (or a PIL image); ``tagger.load(source)``
turns a path, an http(s) URL (SSRF-guarded) or an ``s3://`` URI into one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.settings import Settings

if TYPE_CHECKING:
    from PIL import Image

    from facetrail.images import LoadedImage
    from facetrail.tagging.labels import Label, ObjectDetector
    from facetrail.tagging.moderation import ModerationLabel, NsfwClassifier
    from facetrail.tagging.text import TextDetection, TextReader

# The operations this package runs; "people" (known faces) belongs to the face backends.
OPS = ("labels", "text", "moderation")


class Tagger:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- models, loaded lazily ------------------------------------------------------------------

    @property
    def detector(self) -> ObjectDetector:
        from facetrail.modelfiles import model_path
        from facetrail.tagging._runtime import once
        from facetrail.tagging.labels import MODEL_NAME, ObjectDetector

        path = model_path(self.settings, MODEL_NAME)
        threads = self.settings.threads
        return once(("labels", path, threads), lambda: ObjectDetector(path, threads))

    @property
    def reader(self) -> TextReader:
        from facetrail.modelfiles import model_path
        from facetrail.tagging._runtime import once
        from facetrail.tagging.text import MODEL_NAMES, TextReader

        det, rec, cls = (model_path(self.settings, name) for name in MODEL_NAMES)
        threads = self.settings.threads
        return once(("text", det, rec, cls, threads), lambda: TextReader(det, rec, cls, threads))

    @property
    def nsfw(self) -> NsfwClassifier:
        from facetrail.modelfiles import model_path
        from facetrail.tagging._runtime import once
        from facetrail.tagging.moderation import MODEL_NAME, NsfwClassifier

        path = model_path(self.settings, MODEL_NAME)
        threads = self.settings.threads
        return once(("moderation", path, threads), lambda: NsfwClassifier(path, threads))

    @property
    def model_versions(self) -> dict[str, str]:
        """Per operation, the model version string its responses carry."""
        from facetrail.tagging import labels, moderation, text

        return {
            "labels": labels.MODEL_VERSION,
            "text": text.MODEL_VERSION,
            "moderation": moderation.MODEL_VERSION,
        }

    # -- sources --------------------------------------------------------------------------------

    def load(self, source: str) -> LoadedImage:
        """Decode any source ``facetrail.images.open_image`` reads."""
        from facetrail.images import open_image

        return open_image(self.settings, source)

    # -- operations -----------------------------------------------------------------------------

    def labels(
        self,
        image: LoadedImage | Image.Image,
        *,
        max_labels: int | None = None,
        min_confidence: float | None = None,
    ) -> list[Label]:
        """Objects as DetectLabels labels, best first (parents included, as Rekognition does)."""
        from facetrail.tagging._runtime import as_pil
        from facetrail.tagging.labels import to_labels

        floor = self.settings.label_min_confidence if min_confidence is None else min_confidence
        _check_confidence(floor)
        if max_labels is not None and max_labels < 1:
            raise InvalidParameterError(f"max_labels must be at least 1, got {max_labels}")
        detections = self.detector.detect(as_pil(image))
        return to_labels(detections, min_confidence=floor, max_labels=max_labels)

    def text(
        self,
        image: LoadedImage | Image.Image,
        *,
        min_confidence: float | None = None,
        single_line: bool = False,
    ) -> list[TextDetection]:
        """DetectText entries: LINEs (ids 0..n-1) then their WORDs."""
        from facetrail.tagging._runtime import as_pil

        floor = self.settings.text_min_confidence if min_confidence is None else min_confidence
        _check_confidence(floor)
        return self.reader.read(as_pil(image), min_confidence=floor, single_line=single_line)

    def moderation(
        self, image: LoadedImage | Image.Image, *, min_confidence: float | None = None
    ) -> list[ModerationLabel]:
        """DetectModerationLabels labels at or above ``min_confidence`` (default 50)."""
        from facetrail.tagging._runtime import as_pil
        from facetrail.tagging.moderation import to_labels

        floor = (
            self.settings.moderation_min_confidence if min_confidence is None else min_confidence
        )
        _check_confidence(floor)
        return to_labels(self.nsfw.probability(as_pil(image)), min_confidence=floor)

    def tag(
        self, image: LoadedImage | Image.Image, ops: Iterable[str] = OPS
    ) -> dict[str, list[dict[str, Any]]]:
        """Run ``ops`` on one image: op -> Rekognition-shaped entries (JSON-ready)."""
        wanted = check_ops(ops)
        out: dict[str, list[dict[str, Any]]] = {}
        if "labels" in wanted:
            out["labels"] = [lb.to_rekognition() for lb in self.labels(image)]
        if "text" in wanted:
            out["text"] = [t.to_rekognition() for t in self.text(image)]
        if "moderation" in wanted:
            out["moderation"] = [m.to_rekognition() for m in self.moderation(image)]
        return out

    def tag_sources(
        self, sources: Iterable[str], ops: Iterable[str] = OPS
    ) -> Iterator[dict[str, Any]]:
        """One result per source, in order, for ``tables``: an image that cannot be fetched,
        decoded or tagged yields a failed result with its error, and the batch goes on."""
        from facetrail.tagging.tables import image_result

        wanted = check_ops(ops)
        for source in sources:
            try:
                image = self.load(source)
                results = self.tag(image, wanted)
            except FacetrailError as exc:
                yield image_result(source, error=exc)
            else:
                yield image_result(source, results=results)


class ImageTagger(Protocol):
    """What a tag job needs: read a source, run operations on it (Rekognition-shaped results)."""

    def load(self, source: str) -> LoadedImage: ...

    def tag(self, image: LoadedImage, ops: Iterable[str]) -> dict[str, list[dict[str, Any]]]: ...


@functools.cache
def tagger_for(settings: Settings, backend: str = "local") -> ImageTagger:
    """One tagger per settings and backend per process, so a worker loads each model once."""
    if backend == "rekognition":
        from facetrail.tagging.rekognition import RekognitionTagger

        return RekognitionTagger(settings)
    return Tagger(settings)


def check_ops(ops: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(ops))
    unknown = [op for op in wanted if op not in OPS]
    if unknown:
        raise InvalidParameterError(
            f"unknown tagging operation(s) {', '.join(unknown)} (known: {', '.join(OPS)})"
        )
    return wanted


def _check_confidence(value: float) -> None:
    if not 0.0 <= value <= 100.0:
        raise InvalidParameterError(f"min_confidence must be within 0-100, got {value}")


__all__: Sequence[str] = ("OPS", "Tagger", "check_ops", "tagger_for")
