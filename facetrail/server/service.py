"""Rekognition's operations, answered by a facetrail Backend (the local backend): faces here,
image tagging in ``facetrail.server.tagging``.

Each operation takes the parsed request (see ``protocol.parse_input``) and returns the response
as botocore's service model shapes it. Fields the local backend cannot compute (eyeglasses,
beard, eyes open, the pupils...) are left out rather than invented.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from facetrail.backends.base import Backend, FaceAssociation, FaceRecord, UserMatch
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
    UserExistsError,
    UserNotFoundError,
)
from facetrail.images import LoadedImage, open_bytes, read_bytes
from facetrail.server.protocol import ServiceError, invalid_parameter, model_version_number
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
DEFAULT_USER_PAGE_SIZE = 500  # ListUsers' MaxResults maximum
DEFAULT_USER_MATCH_THRESHOLD = 80.0  # SearchUsers and SearchUsersByImage
DEFAULT_ASSOCIATE_THRESHOLD = 75.0  # AssociateFaces' UserMatchThreshold
DEFAULT_MAX_USERS = 500
_ARN = re.compile(
    r"arn:aws:rekognition:[a-z0-9-]+:\d{12}:collection/(?P<collection>[a-zA-Z0-9_.\-]+)"
)
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
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
            "CreateUser": self.create_user,
            "DeleteUser": self.delete_user,
            "ListUsers": self.list_users,
            "AssociateFaces": self.associate_faces,
            "DisassociateFaces": self.disassociate_faces,
            "SearchUsers": self.search_users,
            "SearchUsersByImage": self.search_users_by_image,
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
        if isinstance(exc, UserNotFoundError):
            return ServiceError(
                "ResourceNotFoundException", f"The user id: {params.get('UserId')} does not exist"
            )
        if isinstance(exc, UserExistsError):
            return ServiceError(
                "ConflictException", f"The user id: {params.get('UserId')} already exists"
            )
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
        if "S3Object" in image and "Bytes" in image:
            raise invalid_parameter(f"{member} takes Bytes or S3Object, not both")
        data = self._s3_object(image["S3Object"]) if "S3Object" in image else image.get("Bytes")
        if not data:
            raise invalid_parameter(f"{member} needs Bytes or S3Object")
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

    def _s3_object(self, s3_object: Params) -> bytes:
        """An S3Object's bytes, read through the image opener from the configured S3 endpoint
        (``FACETRAIL_S3_ENDPOINT_URL``, else AWS's)."""
        bucket, name = s3_object.get("Bucket"), s3_object.get("Name")
        if not bucket or not name:
            raise ServiceError("InvalidS3ObjectException", "S3Object needs a Bucket and a Name")
        if "Version" in s3_object:
            raise ServiceError(
                "InvalidS3ObjectException",
                "S3Object.Version is not supported by facetrail serve: omit it to read the latest",
            )
        source = f"s3://{bucket}/{name}"
        try:
            return read_bytes(self.image_settings, source)
        except ImageTooLargeError as exc:
            raise ServiceError("ImageTooLargeException", exc.message) from None
        except FacetrailError as exc:  # missing bucket or key, no access, unreachable endpoint
            raise ServiceError(
                "InvalidS3ObjectException", f"Unable to get object metadata from S3: {exc.message}"
            ) from None

    def _version(self, model_id: str) -> str:
        """The numeric FaceModelVersion the service would give for one of our model ids."""
        return model_version_number(model_id)

    def _face_json(self, record: FaceRecord) -> dict[str, Any]:
        face: dict[str, Any] = {
            "FaceId": record.face_id,
            "BoundingBox": box_json(record.box),
            "ImageId": image_id(record.image_sha256, record.face_id),
            "Confidence": record.confidence,
            "IndexFacesModelVersion": self._version(record.model),
        }
        if record.external_id is not None:
            face["ExternalImageId"] = record.external_id
        if record.user_id is not None:
            face["UserId"] = record.user_id
        return face

    def _arn(self, region: str, collection_id: str) -> str:
        return f"arn:aws:rekognition:{region}:{ACCOUNT_ID}:collection/{collection_id}"

    # Collections -------------------------------------------------------------------------
    def create_collection(self, params: Params, region: str) -> Response:
        info = self.backend.create_collection(params["CollectionId"], tags=params.get("Tags"))
        return {
            "StatusCode": 200,
            "CollectionArn": self._arn(region, info.collection_id),
            "FaceModelVersion": self._version(info.face_model_version),
        }

    def describe_collection(self, params: Params, region: str) -> Response:
        info = self.backend.describe_collection(params["CollectionId"])
        response: Response = {
            "FaceCount": info.face_count,
            "FaceModelVersion": self._version(info.face_model_version),
            "CollectionARN": self._arn(region, info.collection_id),
            "UserCount": info.user_count,
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
                self._version(self.backend.describe_collection(n).face_model_version) for n in page
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
        # DetectionAttributes as DetectFaces' Attributes: anything beyond DEFAULT adds them all.
        wanted = set(params.get("DetectionAttributes") or ["DEFAULT"]) - {"DEFAULT"}
        backend = self.backend.for_collection(collection)
        result = backend.index_faces(
            collection, image, external_id=external_id, max_faces=max_faces, attributes=bool(wanted)
        )
        image_uuid = image_id(image.sha256, image.sha256)
        records = []
        for indexed in result.indexed:
            face: dict[str, Any] = {
                "FaceId": indexed.face_id,
                "BoundingBox": box_json(indexed.face.box),
                "ImageId": image_uuid,
                "Confidence": indexed.face.confidence,
                "IndexFacesModelVersion": self._version(indexed.model),
            }
            if external_id is not None:
                face["ExternalImageId"] = external_id
            records.append({"Face": face, "FaceDetail": face_detail_json(indexed.face)})
        return {
            "FaceRecords": records,
            "FaceModelVersion": self._version(backend.model_version),
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
            records = [r for r in records if r.user_id == params["UserId"]]
        start, end = _page(params.get("NextToken"), params.get("MaxResults"), len(records))
        response: Response = {
            "Faces": [self._face_json(r) for r in records[start:end]],
            "FaceModelVersion": self._version(
                self.backend.describe_collection(collection).face_model_version
            ),
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
        backend = self.backend.for_collection(collection)
        matches = backend.search_faces(
            collection,
            face_id,
            max_faces=params.get("MaxFaces", DEFAULT_MAX_MATCHES),
            threshold=params.get("FaceMatchThreshold", DEFAULT_MATCH_THRESHOLD),
        )
        return {
            "SearchedFaceId": face_id,
            "FaceMatches": self._matches(collection, matches),
            "FaceModelVersion": self._version(backend.model_version),
        }

    def search_faces_by_image(self, params: Params, region: str) -> Response:
        collection = params["CollectionId"]
        image = self._image(params, "Image")
        backend = self.backend.for_collection(collection)
        found = backend.search_faces_by_image(
            collection,
            image,
            max_faces=params.get("MaxFaces", DEFAULT_MAX_MATCHES),
            threshold=params.get("FaceMatchThreshold", DEFAULT_MATCH_THRESHOLD),
        )
        return {
            "SearchedFaceBoundingBox": box_json(found.face.box),
            "SearchedFaceConfidence": found.face.confidence,
            "FaceMatches": self._matches(collection, found.matches),
            "FaceModelVersion": self._version(backend.model_version),
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

    # Resource tags -----------------------------------------------------------------------
    def _tagged(self, params: Params) -> str:
        """The collection a ResourceArn names (collections are the only taggable resources)."""
        arn = params["ResourceArn"]
        match = _ARN.fullmatch(arn)
        if match is None:
            raise ServiceError("ResourceNotFoundException", f"The resource {arn} does not exist")
        return match.group("collection")

    def _on_resource(self, params: Params, action: Callable[[str], Response]) -> Response:
        collection = self._tagged(params)
        try:
            return action(collection)
        except CollectionNotFoundError:
            raise ServiceError(
                "ResourceNotFoundException", f"The resource {params['ResourceArn']} does not exist"
            ) from None

    def tag_resource(self, params: Params, region: str) -> Response:
        def tag(collection: str) -> Response:
            self.backend.tag_collection(collection, params["Tags"])
            return {}

        return self._on_resource(params, tag)

    def untag_resource(self, params: Params, region: str) -> Response:
        def untag(collection: str) -> Response:
            self.backend.untag_collection(collection, params["TagKeys"])
            return {}

        return self._on_resource(params, untag)

    def list_tags_for_resource(self, params: Params, region: str) -> Response:
        return self._on_resource(
            params, lambda collection: {"Tags": self.backend.collection_tags(collection)}
        )

    # Users -------------------------------------------------------------------------------
    def create_user(self, params: Params, region: str) -> Response:
        self.backend.create_user(params["CollectionId"], params["UserId"])
        return {}

    def delete_user(self, params: Params, region: str) -> Response:
        self.backend.delete_user(params["CollectionId"], params["UserId"])
        return {}

    def list_users(self, params: Params, region: str) -> Response:
        collection = params["CollectionId"]
        users = self.backend.list_users(collection)
        size = params.get("MaxResults") or DEFAULT_USER_PAGE_SIZE
        start, end = _page(params.get("NextToken"), size, len(users))
        with_faces = self._user_face_counts(collection)
        response: Response = {
            "Users": [
                {"UserId": u, "UserStatus": "ACTIVE" if with_faces.get(u) else "CREATED"}
                for u in users[start:end]
            ]
        }
        if end < len(users):
            response["NextToken"] = str(end)
        return response

    def _user_face_counts(self, collection: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.backend.list_faces(collection):
            if record.user_id is not None:
                counts[record.user_id] = counts.get(record.user_id, 0) + 1
        return counts

    @staticmethod
    def _refusals(result: FaceAssociation, user_id: str) -> list[dict[str, Any]]:
        out = []
        for face_id, reason in result.refused.items():
            entry: dict[str, Any] = {"FaceId": face_id, "Reasons": [reason]}
            if reason != "FACE_NOT_FOUND":
                entry["UserId"] = user_id
            out.append(entry)
        return out

    def associate_faces(self, params: Params, region: str) -> Response:
        user_id = params["UserId"]
        result = self.backend.associate_faces(
            params["CollectionId"],
            user_id,
            params["FaceIds"],
            threshold=params.get("UserMatchThreshold", DEFAULT_ASSOCIATE_THRESHOLD),
        )
        faces = self._user_face_counts(params["CollectionId"]).get(user_id, 0)
        return {
            "AssociatedFaces": [{"FaceId": f} for f in result.associated],
            "UnsuccessfulFaceAssociations": self._refusals(result, user_id),
            "UserStatus": "ACTIVE" if faces else "CREATED",
        }

    def disassociate_faces(self, params: Params, region: str) -> Response:
        user_id = params["UserId"]
        result = self.backend.disassociate_faces(params["CollectionId"], user_id, params["FaceIds"])
        faces = self._user_face_counts(params["CollectionId"]).get(user_id, 0)
        return {
            "DisassociatedFaces": [{"FaceId": f} for f in result.associated],
            "UnsuccessfulFaceDisassociations": self._refusals(result, user_id),
            "UserStatus": "ACTIVE" if faces else "CREATED",
        }

    @staticmethod
    def _user_matches(matches: list[UserMatch]) -> list[dict[str, Any]]:
        return [
            {"Similarity": m.similarity, "User": {"UserId": m.user_id, "UserStatus": "ACTIVE"}}
            for m in sorted(matches, key=lambda m: -m.similarity)
        ]

    def search_users(self, params: Params, region: str) -> Response:
        user_id, face_id = params.get("UserId"), params.get("FaceId")
        if (user_id is None) == (face_id is None):
            raise invalid_parameter("SearchUsers takes a UserId or a FaceId (one of them)")
        backend = self.backend.for_collection(params["CollectionId"])
        matches = backend.search_users(
            params["CollectionId"],
            user_id=user_id,
            face_id=face_id,
            threshold=params.get("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD),
            max_users=params.get("MaxUsers", DEFAULT_MAX_USERS),
        )
        response: Response = {
            "UserMatches": self._user_matches(matches),
            "FaceModelVersion": self._version(backend.model_version),
        }
        if user_id is not None:
            response["SearchedUser"] = {"UserId": user_id}
        else:
            response["SearchedFace"] = {"FaceId": face_id}
        return response

    def search_users_by_image(self, params: Params, region: str) -> Response:
        image = self._image(params, "Image")
        backend = self.backend.for_collection(params["CollectionId"])
        found = backend.search_users_by_image(
            params["CollectionId"],
            image,
            threshold=params.get("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD),
            max_users=params.get("MaxUsers", DEFAULT_MAX_USERS),
        )
        return {
            "UserMatches": self._user_matches(found.matches),
            "FaceModelVersion": self._version(backend.model_version),
            "SearchedFace": {"FaceDetail": face_detail_json(found.face)},
            # Only the largest face is searched, as the service does.
            "UnsearchedFaces": [
                {"FaceDetails": face_detail_json(face), "Reasons": ["FACE_NOT_LARGEST"]}
                for face in found.unsearched
            ],
        }
