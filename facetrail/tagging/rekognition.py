"""The tagging operations through boto3: Amazon Rekognition, or `facetrail serve` standing in.

Responses already have the shapes the tables read, so both taggers tabulate the same way.
Fetching sources stays facetrail's own (guarded URLs, S3), whichever service tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from facetrail.backends.rekognition import build_client, service_errors
from facetrail.backends.rekognition_images import prepare_image
from facetrail.images import LoadedImage
from facetrail.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_rekognition import RekognitionClient


class RekognitionTagger:
    def __init__(self, settings: Settings) -> None:
        from facetrail.tagging import Tagger

        self.settings = settings
        self._sources = Tagger(settings)  # only for load(): its models never load here
        self._client: RekognitionClient | None = None

    @property
    def client(self) -> RekognitionClient:
        if self._client is None:
            self._client = build_client(self.settings)
        return self._client

    def load(self, source: str) -> LoadedImage:
        return self._sources.load(source)

    def tag(self, image: LoadedImage, ops: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        from facetrail.tagging import check_ops

        wanted = check_ops(ops)
        request: Any = {"Bytes": prepare_image(image)}
        out: dict[str, list[dict[str, Any]]] = {}
        with service_errors():
            if "labels" in wanted:
                labels = self.client.detect_labels(
                    Image=request, MinConfidence=self.settings.label_min_confidence
                )
                out["labels"] = [dict(lb) for lb in labels.get("Labels", [])]
            if "text" in wanted:
                text = self.client.detect_text(Image=request)
                floor = self.settings.text_min_confidence
                out["text"] = [
                    dict(t)
                    for t in text.get("TextDetections", [])
                    if t.get("Confidence", 0.0) >= floor
                ]
            if "moderation" in wanted:
                flags = self.client.detect_moderation_labels(
                    Image=request, MinConfidence=self.settings.moderation_min_confidence
                )
                out["moderation"] = [dict(m) for m in flags.get("ModerationLabels", [])]
        return out
