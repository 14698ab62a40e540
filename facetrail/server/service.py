"""Rekognition's operations, answered by a facetrail Backend (the local backend): faces here,
image tagging in ``facetrail.server.tagging``.

Each operation takes the parsed request (see ``protocol.parse_input``) and returns the response
as botocore's service model shapes it. Fields the local backend cannot compute (eyeglasses,
beard, eyes open, the pupils...) are left out rather than invented.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from facetrail.backends.base import Backend, FaceRecord
from facetrail.backends.rekognition.images import MAX_IMAGE_BYTES
from facetrail.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    FacetrailError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidParameterError,
    NoFaceError,
    NotFoundError,
    ThrottledError,
)
from facetrail.images import LoadedImage, open_bytes
from facetrail.server.protocol import ServiceError, invalid_parameter
from facetrail.server.tagging import TaggingOperations
from facetrail.settings import Settings
from facetrail.shapes import box_json, face_detail_json

Params = dict[str, Any]
Response = dict[str, Any]

# The service's caps and defaults (Amazon Rekognition API reference).
MAX_FACES_PER_IMAGE = 100  # IndexFaces, DetectFaces and CompareFaces look at the 100 largest
DEFAULT_MATCH_THRESHOLD = 80.0  # FaceMatchThreshold and SimilarityThreshold
# Not documented by the service; the most it ever returns.
DEFAULT_MAX_MATCHES = 4096
DEFAULT_PAGE_SIZE = 1000
ACCOUNT_ID = "000000000000"
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "MPO"})  # MPO: a JPEG with extra frames (cameras)
NO_FACE_MESSAGE = "There are no faces in the image. Should be at least 1."


def image_id(sha256: str | None, fallback: str) -> str:
    """A stable ImageId (UUID-shaped, as the service's) for the image a face came from."""
    if sha256:
        return str(uuid.UUID(hex=sha256[:32]))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"facetrail:{fallback}"))


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return moment.timestamp()


def _page(token: str | None, size: int | None, total: int) -> tuple[int, int]:
    """(start, end) of the page a NextToken and MaxResults ask for."""
    start = 0
    if token:
        if not (token.isascii() and token.isdigit()):  # "²".isdigit() too, but not int("²")
            raise ServiceError("InvalidPaginationTokenException", "Invalid pagination token")
        start = int(token)
    return start, min(total, start + (size or DEFAULT_PAGE_SIZE))


class RekognitionService:
    """The operations. ``region`` only shapes ARNs: nothing here is regional."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        # Request images are held to Rekognition's own byte limit, whatever the settings allow.
        self.image_settings = settings.with_(max_image_bytes=MAX_IMAGE_BYTES)
        # Labels, text, moderation on the same backend, and known people; models load lazily.
        self.tagging = TaggingOperations(backend, settings)
        self.operations: dict[str, Callable[[Params, str], Response]] = {
            "CreateCollection": self.create_collection,
            "DescribeCollection": self.describe_collection,
            "ListCollections": self.list_collections,
            "DeleteCollection": self.delete_collection,
            "IndexFaces": self.index_faces,
            "ListFaces": self.list_faces,
            "DeleteFaces": self.delete_faces,
            "SearchFaces": self.search_faces,
            "SearchFacesByImage": self.search_faces_by_image,
            "DetectFaces": self.detect_faces,
            "CompareFaces": self.compare_faces,
            "DetectLabels": self._tagging_operation(self.tagging.detect_labels),
            "DetectText": self._tagging_operation(self.tagging.detect_text),
            "DetectModerationLabels": self._tagging_operation(
                self.tagging.detect_moderation_labels
            ),
            "RecognizeCelebrities": self._tagging_operation(self.tagging.recognize_celebrities),
            "GetCelebrityInfo": lambda params, region: self.tagging.get_celebrity_info(params),
        }

    def _tagging_operation(
        self, operation: Callable[[Params, LoadedImage], Response]
    ) -> Callable[[Params, str], Response]:
        def handler(params: Params, region: str) -> Response:
            return operation(params, self._image(params, "Image"))

        return handler

    def handle(self, operation: str, params: Params, region: str) -> Response:
        handler = self.operations.get(operation)
        if handler is None:
            raise ServiceError(
                "UnknownOperationException", f"facetrail serve does not implement {operation}"
            )
        try:
            return handler(params, region)
        except FacetrailError as exc:
            raise self._service_error(exc, params) from exc

    @staticmethod
    def _service_error(exc: FacetrailError, params: Params) -> ServiceError:
        collection = params.get("CollectionId", "")
        if isinstance(exc, CollectionNotFoundError):
            return ServiceError(
                "ResourceNotFoundException", f"The collection id: {collection} does not exist"
            )
        if isinstance(exc, CollectionExistsError):
            return ServiceError(
                "ResourceAlreadyExistsException", f"The collection id: {collection} already exists"
            )
        if isinstance(exc, NoFaceError):
            return invalid_parameter(NO_FACE_MESSAGE)
        if isinstance(exc, NotFoundError):
            return invalid_parameter("faceId was not found in the collection.")
        if isinstance(exc, ImageTooLargeError):
            return ServiceError("ImageTooLargeException", exc.message)
        if isinstance(exc, InvalidImageError):
            return ServiceError("InvalidImageFormatException", "Request has invalid image format")
        if isinstance(exc, InvalidParameterError):
            return invalid_parameter(exc.message)
        if isinstance(exc, ThrottledError):
            return ServiceError("ThrottlingException", exc.message)
        return ServiceError("InternalServerError", exc.message, status=500)

    # Inputs ------------------------------------------------------------------------------
    def _image(self, params: Params, member: str) -> LoadedImage:
        image = params[member]
        if "S3Object" in image:
            raise invalid_parameter(
                f"{member}.S3Object is not supported by facetrail serve: send the image as Bytes"
            )
        data = image.get("Bytes")
        if not data:
            raise invalid_parameter(f"{member} needs Bytes")
        try:
            with PILImage.open(io.BytesIO(data)) as probe:  # the header tells the format
                fmt = probe.format
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            fmt = None
        if fmt not in IMAGE_FORMATS:
            raise ServiceError("InvalidImageFormatException", "Request has invalid image format")
        try:
            loaded = open_bytes(self.image_settings, data, source=member)
        except ImageTooLargeError as exc:
            raise ServiceError("ImageTooLargeException", exc.message) from None
        except InvalidImageError:
            raise ServiceError(
                "InvalidImageFormatException", "Request has invalid image format"
            ) from None
        # The service documents 80x80 but answers smaller images, such as tight crops of the
        # faces of a group photo; the floor here is the smallest face the detector looks for.
        least = self.settings.min_face_size
        if loaded.width < least or loaded.height < least:
            raise invalid_parameter(
                f"{member} is {loaded.width}x{loaded.height} pixels; the minimum image "
                f"dimensions are {least}x{least} pixels"
            )
        return loaded

    def _face_json(self, record: FaceRecord) -> dict[str, Any]:
        face: dict[str, Any] = {
            "FaceId": record.face_id,
            "BoundingBox": box_json(record.box),
            "ImageId": image_id(record.image_sha256, record.face_id),
            "Confidence": record.confidence,
            "IndexFacesModelVersion": record.model,
        }
        if record.external_id is not None:
            face["ExternalImageId"] = record.external_id
        return face

    def _arn(self, region: str, collection_id: str) -> str:
        return f"arn:aws:rekognition:{region}:{ACCOUNT_ID}:collection/{collection_id}"

    # Collections -------------------------------------------------------------------------
    def create_collection(self, params: Params, region: str) -> Response:
        info = self.backend.create_collection(params["CollectionId"])
        return {
            "StatusCode": 200,
            "CollectionArn": self._arn(region, info.collection_id),
            "FaceModelVersion": info.face_model_version,
        }

    def describe_collection(self, params: Params, region: str) -> Response:
        info = self.backend.describe_collection(params["CollectionId"])
        response: Response = {
            "FaceCount": info.face_count,
            "FaceModelVersion": info.face_model_version,
            "CollectionARN": self._arn(region, info.collection_id),
            "UserCount": 0,  # users (AssociateFaces) are not supported: there are none
        }
        created = _epoch(info.created_at)
        if created is not None:
            response["CreationTimestamp"] = created
        return response

    def list_collections(self, params: Params, region: str) -> Response:
        names = self.backend.list_collections()
        start, end = _page(params.get("NextToken"), params.get("MaxResults"), len(names))
        page = names[start:end]
        response: Response = {
            "CollectionIds": page,
            "FaceModelVersions": [
                self.backend.describe_collection(n).face_model_version for n in page
            ],
        }
        if end < len(names):
            response["NextToken"] = str(end)
        return response

    def delete_collection(self, params: Params, region: str) -> Response:
        self.backend.delete_collection(params["CollectionId"])
        return {"StatusCode": 200}

    # Faces in collections ----------------------------------------------------------------
    def index_faces(self, params: Params, region: str) -> Response:
        collection = params["CollectionId"]
        image = self._image(params, "Image")
        external_id = params.get("ExternalImageId")
        max_faces = min(params.get("MaxFaces", MAX_FACES_PER_IMAGE), MAX_FACES_PER_IMAGE)
        # QualityFilter is accepted and not applied: the local backend has no quality classes.
        result = self.backend.index_faces(
            collection, image, external_id=external_id, max_faces=max_faces
        )
        image_uuid = image_id(image.sha256, image.sha256)
        records = []
        for indexed in result.indexed:
            face: dict[str, Any] = {
                "FaceId": indexed.face_id,
                "BoundingBox": box_json(indexed.face.box),
                "ImageId": image_uuid,
                "Confidence": indexed.face.confidence,
            }
            if external_id is not None:
                face["ExternalImageId"] = external_id
            records.append({"Face": face, "FaceDetail": face_detail_json(indexed.face)})
        return {
            "FaceRecords": records,
            "FaceModelVersion": self.backend.model_version,
            "UnindexedFaces": [
                {"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": face_detail_json(face)}
                for face in result.unindexed
            ],
        }

    def list_faces(self, params: Params, region: str) -> Response:
        collection = params["CollectionId"]
        records = self.backend.list_faces(collection)
        if "FaceIds" in params:
            wanted = set(params["FaceIds"])
            records = [r for r in records if r.face_id in wanted]
        if "UserId" in params:
            records = []  # users are not supported, so no face belongs to one
        start, end = _page(params.get("NextToken"), params.get("MaxResults"), len(records))
        response: Response = {
            "Faces": [self._face_json(r) for r in records[start:end]],
            "FaceModelVersion": self.backend.describe_collection(collection).face_model_version,
        }
        if end < len(records):
            response["NextToken"] = str(end)
        return response

    def delete_faces(self, params: Params, region: str) -> Response:
        face_ids: list[str] = params["FaceIds"]
        deleted = set(self.backend.delete_faces(params["CollectionId"], face_ids))
        return {
            "DeletedFaces": [f for f in face_ids if f in deleted],
            "UnsuccessfulFaceDeletions": [
                {"FaceId": f, "Reasons": ["FACE_NOT_FOUND"]} for f in face_ids if f not in deleted
            ],
        }

    def _matches(self, collection: str, matches: list[Any]) -> list[dict[str, Any]]:
        """FaceMatches, highest similarity first, with each face as ListFaces shows it."""
        records = {r.face_id: r for r in self.backend.list_faces(collection)} if matches else {}
        out = [
            {"Similarity": m.similarity, "Face": self._face_json(records[m.face_id])}
            for m in sorted(matches, key=lambda m: -m.similarity)
            if m.face_id in records
        ]
        return out

    def search_faces(self, params: Params, region: str) -> Response:
        collection, face_id = params["CollectionId"], params["FaceId"]
        matches = self.backend.search_faces(
            collection,
            face_id,
            max_faces=params.get("MaxFaces", DEFAULT_MAX_MATCHES),
            threshold=params.get("FaceMatchThreshold", DEFAULT_MATCH_THRESHOLD),
        )
        return {
            "SearchedFaceId": face_id,
            "FaceMatches": self._matches(collection, matches),
            "FaceModelVersion": self.backend.model_version,
        }

    def search_faces_by_image(self, params: Params, region: str) -> Response:
        collection = params["CollectionId"]
        image = self._image(params, "Image")
        found = self.backend.search_faces_by_image(
            collection,
            image,
            max_faces=params.get("MaxFaces", DEFAULT_MAX_MATCHES),
            threshold=params.get("FaceMatchThreshold", DEFAULT_MATCH_THRESHOLD),
        )
        return {
            "SearchedFaceBoundingBox": box_json(found.face.box),
            "SearchedFaceConfidence": found.face.confidence,
            "FaceMatches": self._matches(collection, found.matches),
            "FaceModelVersion": self.backend.model_version,
        }

    # Faces in one image ------------------------------------------------------------------
    def detect_faces(self, params: Params, region: str) -> Response:
        # Attributes=["ALL"] (or any attribute name beyond DEFAULT) adds what the attribute
        # models measure; members no model measures stay absent.
        image = self._image(params, "Image")
        wanted = set(params.get("Attributes") or ["DEFAULT"]) - {"DEFAULT"}
        faces = self.backend.detect_faces(image, attributes=bool(wanted))[:MAX_FACES_PER_IMAGE]
        return {"FaceDetails": [face_detail_json(f) for f in faces]}

    def compare_faces(self, params: Params, region: str) -> Response:
        source = self._image(params, "SourceImage")
        target = self._image(params, "TargetImage")
        result = self.backend.compare_faces(
            source, target, threshold=params.get("SimilarityThreshold", DEFAULT_MATCH_THRESHOLD)
        )
        return {
            "SourceImageFace": {
                "BoundingBox": box_json(result.source.box),
                "Confidence": result.source.confidence,
            },
            "FaceMatches": [
                {"Similarity": m.similarity, "Face": face_detail_json(m.face)}
                for m in sorted(result.matches, key=lambda m: -m.similarity)
            ],
            "UnmatchedFaces": [face_detail_json(f) for f in result.unmatched],
        }
