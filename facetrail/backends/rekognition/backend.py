"""The rekognition backend: the Backend interface on Amazon Rekognition, through boto3.

Everything the service does not do for us happens here: images are prepared as it takes them
(``images``), external ids are mapped into its pattern (``ids``), every
face of a photo is searched on its own crop, and every botocore error becomes one of our own
exceptions, with ``retryable`` telling workers whether to try again. The same code talks to
``facetrail serve`` when ``aws_endpoint_url`` points at one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    InvalidConfigError,
    InvalidEndpointConfigurationError,
    InvalidRegionError,
    InvalidRetryConfigurationError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from facetrail.backends.base import (
    LANDMARK_TYPES,
    Backend,
    CollectionInfo,
    CompareMatch,
    CompareResult,
    DetectedFace,
    FaceAssociation,
    FaceMatch,
    FaceRecord,
    FaceSearch,
    IndexedFace,
    IndexResult,
    Landmark,
    Pose,
    Quality,
    UserMatch,
    UserSearch,
    check_confidence,
)
from facetrail.backends.rekognition.ids import (
    check_collection_id,
    decode_external_id,
    encode_external_id,
    encode_user_id,
    is_face_id,
)
from facetrail.backends.rekognition.images import (
    box_in_crop,
    crop_box,
    crop_face,
    encode_within_limit,
    prepare_image,
)
from facetrail.errors import (
    BackendError,
    BackendUnavailableError,
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
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
from facetrail.images import LoadedImage, to_jpeg
from facetrail.settings import Settings
from facetrail.shapes import attributes_from_json, box_from_json

if TYPE_CHECKING:
    from botocore.awsrequest import AWSRequest
    from mypy_boto3_rekognition import RekognitionClient
    from mypy_boto3_rekognition.type_defs import FaceMatchTypeDef, FaceTypeDef

    from facetrail.tagging.labels import Label
    from facetrail.tagging.moderation import ModerationLabel
    from facetrail.tagging.text import TextDetection

log = logging.getLogger(__name__)

# The service's caps: search results per call, and the ids one DeleteFaces call takes.
MAX_SEARCH_FACES = 4096
DELETE_BATCH = 4096
MAX_USERS = 500  # SearchUsers' and SearchUsersByImage's MaxUsers maximum
FACE_ID_BATCH = 100  # face ids one AssociateFaces or DisassociateFaces call takes
# A crop's search is trusted only when the face the service searched with is the one we cropped
# around (a bigger neighbour at the crop's edge would otherwise be searched in its place).
MIN_CROP_IOU = 0.3
API_KEY_HEADER = "X-Api-Key"

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "Throttling",
        "RequestThrottled",
        "RequestThrottledException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
INVALID_PARAMETER_CODES = frozenset(
    {"InvalidParameterException", "ValidationException", "InvalidPaginationTokenException"}
)


# Errors ------------------------------------------------------------------------------------------
def translate_client_error(exc: ClientError) -> FacetrailError:
    """Our exception for an error the service (or facetrail serve) answered with."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    text = f"Rekognition {exc.operation_name}: {code or status}: {error.get('Message') or exc}"
    if code in THROTTLING_CODES:
        return ThrottledError(text)
    if code == "ResourceNotFoundException":
        return CollectionNotFoundError(text)
    if code == "ResourceAlreadyExistsException":
        return CollectionExistsError(text)
    if code == "ConflictException":  # CreateUser of a user that exists
        return UserExistsError(text)
    if code == "ImageTooLargeException":
        return ImageTooLargeError(text)
    if code in {"InvalidImageFormatException", "InvalidS3ObjectException"}:
        return InvalidImageError(text)
    if code in INVALID_PARAMETER_CODES:
        return InvalidParameterError(text)
    if code in AUTH_CODES:
        return ConfigurationError(
            f"{text} (check the AWS credentials and permissions, or the facetrail serve API key)"
        )
    if code in UNAVAILABLE_CODES or status >= 500:
        return BackendUnavailableError(text)
    return BackendError(text, retryable=False)


def translate_botocore_error(exc: BotoCoreError) -> FacetrailError:
    """Our exception for a failure on the client side (configuration, network)."""
    if isinstance(exc, NoRegionError):
        return ConfigurationError(
            "no AWS region configured: set FACETRAIL_AWS_REGION, AWS_REGION or a profile region"
        )
    credential_errors = (
        NoCredentialsError,
        PartialCredentialsError,
        CredentialRetrievalError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )
    if isinstance(exc, credential_errors):
        return ConfigurationError(f"AWS credentials: {exc}")
    setting_errors = (
        InvalidRegionError,
        InvalidRetryConfigurationError,
        InvalidEndpointConfigurationError,
        InvalidConfigError,
    )
    if isinstance(exc, setting_errors):
        return ConfigurationError(f"AWS client configuration: {exc}")
    if isinstance(exc, ParamValidationError):
        return InvalidParameterError(str(exc))
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        # Connection refused or reset, timeouts: botocore has already retried; a later try may work.
        return BackendUnavailableError(f"Rekognition unreachable: {exc}")
    return BackendError(f"Rekognition client error: {exc}", retryable=False)


@contextmanager
def service_errors() -> Iterator[None]:
    """Translate botocore exceptions raised inside the block into facetrail's."""
    try:
        yield
    except ClientError as exc:
        raise translate_client_error(exc) from exc
    except BotoCoreError as exc:
        raise translate_botocore_error(exc) from exc


# Client ------------------------------------------------------------------------------------------
def build_client(settings: Settings) -> RekognitionClient:
    """A client from the usual AWS configuration chain, with facetrail's settings on top."""
    with service_errors():  # a broken profile or setting fails here, as a ConfigurationError
        return _build_client(settings)


def _build_client(settings: Settings) -> RekognitionClient:
    session = boto3.session.Session()
    region = settings.aws_region or session.region_name
    if not region and settings.aws_endpoint_url:
        region = "us-east-1"  # a stand-in endpoint ignores it, but signing needs one
    options: dict[str, Any] = {
        # total_max_attempts counts the first try too (as AWS_MAX_ATTEMPTS does).
        "retries": {
            "mode": settings.aws_retry_mode,
            "total_max_attempts": max(1, settings.aws_max_attempts),
        },
        # One connection per concurrent crop search, so the pool never makes them wait.
        "max_pool_connections": max(10, settings.rekognition_concurrency),
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    if settings.aws_endpoint_url and session.get_credentials() is None:
        # facetrail serve does not check signatures: no credentials are needed to talk to it.
        options["signature_version"] = botocore.UNSIGNED
    client: RekognitionClient = session.client(
        "rekognition",
        region_name=region,
        endpoint_url=settings.aws_endpoint_url or None,
        config=Config(**options),
    )
    if settings.serve_api_key and settings.aws_endpoint_url:
        key = settings.serve_api_key

        def add_api_key(request: AWSRequest, **_: Any) -> None:
            request.headers[API_KEY_HEADER] = key

        client.meta.events.register("before-sign.rekognition.*", add_api_key)
    return client


# Conversions -------------------------------------------------------------------------------------
def to_face(raw: Mapping[str, Any], box: Mapping[str, Any] | None = None) -> DetectedFace:
    """A FaceDetail or ComparedFace (or just a box and a confidence) as a DetectedFace."""
    points = {lm.get("Type"): lm for lm in raw.get("Landmarks", [])}
    landmarks = tuple(
        Landmark(
            type=kind, x=float(points[kind].get("X", 0.0)), y=float(points[kind].get("Y", 0.0))
        )
        for kind in LANDMARK_TYPES
        if kind in points
    )
    pose = raw.get("Pose")
    quality = raw.get("Quality")
    return DetectedFace(
        box=box_from_json(box if box is not None else raw.get("BoundingBox")),
        confidence=float(raw.get("Confidence", 0.0)),
        landmarks=landmarks,
        pose=Pose(
            roll=float(pose.get("Roll", 0.0)),
            yaw=float(pose.get("Yaw", 0.0)),
            pitch=float(pose.get("Pitch", 0.0)),
        )
        if pose
        else None,
        quality=Quality(
            brightness=float(quality.get("Brightness", 0.0)),
            sharpness=float(quality.get("Sharpness", 0.0)),
        )
        if quality
        else None,
        attributes=attributes_from_json(raw),
    )


def largest_first(faces: list[DetectedFace]) -> list[DetectedFace]:
    return sorted(faces, key=lambda f: -f.box.area)


def to_matches(raw: Sequence[FaceMatchTypeDef]) -> list[FaceMatch]:
    matches = [
        FaceMatch(
            face_id=m["Face"]["FaceId"],
            external_id=decode_external_id(m["Face"].get("ExternalImageId")),
            similarity=float(m.get("Similarity", 0.0)),
        )
        for m in raw
        if "FaceId" in m.get("Face", {})
    ]
    matches.sort(key=lambda m: -m.similarity)
    return matches


def to_user_matches(response: Mapping[str, Any]) -> list[UserMatch]:
    """UserMatches as facetrail's values (user ids decoded as external ids are), best first."""
    matches = [
        UserMatch(
            decode_external_id(m["User"]["UserId"]) or m["User"]["UserId"],
            float(m.get("Similarity", 0.0)),
        )
        for m in response.get("UserMatches", [])
        if m.get("User", {}).get("UserId")
    ]
    return sorted(matches, key=lambda m: -m.similarity)


def _max_faces(value: int) -> int:
    return min(MAX_SEARCH_FACES, max(1, int(value)))


def _percent(value: float) -> float:
    return min(100.0, max(0.0, float(value)))


# The backend -------------------------------------------------------------------------------------
class RekognitionBackend(Backend):
    name = "rekognition"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: RekognitionClient | None = None
        self._client_lock = threading.Lock()
        # The face model of the collection this thread last worked with: the service decides it
        # per collection, and a worker reads it right after indexing.
        self._seen = threading.local()
        self._last_version = ""

    @property
    def client(self) -> RekognitionClient:
        with self._client_lock:
            if self._client is None:
                self._client = build_client(self.settings)
            return self._client

    @property
    def model_version(self) -> str:
        version = getattr(self._seen, "version", "") or self._last_version
        return f"rekognition@{version}" if version else "rekognition"

    def _remember(self, version: str | None) -> str:
        if version:
            self._seen.version = version
            self._last_version = version
        return version or ""

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # Faces in one image -------------------------------------------------------------------
    def _detect_bytes(self, data: bytes, *, attributes: bool = False) -> list[DetectedFace]:
        with service_errors():
            response = self.client.detect_faces(
                Image={"Bytes": data}, Attributes=["ALL"] if attributes else ["DEFAULT"]
            )
        return largest_first([to_face(d) for d in response.get("FaceDetails", [])])

    @contextmanager
    def _searching_image(self, data: bytes, source: str) -> Iterator[None]:
        """A search by image: the service answers a face-less image with InvalidParameterException,
        told apart here (a detection, on this error path only) as NoFaceError."""
        try:
            with service_errors():
                yield
        except InvalidParameterError:
            if not self._detect_bytes(data):
                raise NoFaceError(f"{source}: no face in the image") from None
            raise

    def detect_faces(self, image: LoadedImage, *, attributes: bool = False) -> list[DetectedFace]:
        return self._detect_bytes(prepare_image(image), attributes=attributes)

    def compare_faces(
        self, source: LoadedImage, target: LoadedImage, *, threshold: float | None = None
    ) -> CompareResult:
        threshold = self.settings.compare_threshold if threshold is None else threshold
        src, tgt = prepare_image(source), prepare_image(target)
        try:
            with service_errors():
                response = self.client.compare_faces(
                    SourceImage={"Bytes": src},
                    TargetImage={"Bytes": tgt},
                    SimilarityThreshold=_percent(threshold),
                    QualityFilter="NONE",
                )
        except InvalidParameterError:
            # The service answers "invalid parameters" when either image has no face: find out
            # which, at the cost of a detection on this error path only.
            src_faces = self._detect_bytes(src)
            if not src_faces:
                raise NoFaceError(f"{source.source}: no face in the source image") from None
            if not self._detect_bytes(tgt):
                return CompareResult(source=src_faces[0], matches=[], unmatched=[])
            raise
        matches = [
            CompareMatch(face=to_face(m.get("Face", {})), similarity=float(m.get("Similarity", 0)))
            for m in response.get("FaceMatches", [])
        ]
        matches.sort(key=lambda m: -m.similarity)
        return CompareResult(
            source=to_face(response.get("SourceImageFace", {})),
            matches=matches,
            unmatched=[to_face(f) for f in response.get("UnmatchedFaces", [])],
        )

    # Collections ---------------------------------------------------------------------------
    def create_collection(
        self, collection_id: str, *, tags: Mapping[str, str] | None = None
    ) -> CollectionInfo:
        check_collection_id(collection_id)
        with service_errors():
            if tags:
                response = self.client.create_collection(
                    CollectionId=collection_id, Tags=dict(tags)
                )
            else:
                response = self.client.create_collection(CollectionId=collection_id)
        version = self._remember(response.get("FaceModelVersion"))
        return CollectionInfo(collection_id, 0, version)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        check_collection_id(collection_id)
        with service_errors():
            response = self.client.describe_collection(CollectionId=collection_id)
        version = self._remember(response.get("FaceModelVersion"))
        return CollectionInfo(
            collection_id,
            int(response.get("FaceCount", 0)),
            version,
            response.get("CreationTimestamp"),
            int(response.get("UserCount", 0)),
        )

    def list_collections(self) -> list[str]:
        names: list[str] = []
        with service_errors():
            for page in self.client.get_paginator("list_collections").paginate():
                names.extend(page.get("CollectionIds", []))
        return sorted(names)

    def delete_collection(self, collection_id: str) -> None:
        check_collection_id(collection_id)
        with service_errors():
            self.client.delete_collection(CollectionId=collection_id)

    # Faces in collections ------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        attributes: bool = False,
    ) -> IndexResult:
        check_collection_id(collection_id)
        stored_id = None if external_id is None else encode_external_id(external_id)
        data = prepare_image(image)
        if max_faces is not None and max_faces < 1:
            # The service takes no MaxFaces below 1; nothing to index is still a valid request.
            self.describe_collection(collection_id)
            return IndexResult(indexed=[], unindexed=self._detect_bytes(data))
        request: dict[str, Any] = {
            "CollectionId": collection_id,
            "Image": {"Bytes": data},
            "DetectionAttributes": ["ALL"] if attributes else ["DEFAULT"],
            # No quality filter: then MaxFaces keeps the largest faces, as the interface promises.
            "QualityFilter": "NONE",
        }
        if stored_id is not None:
            request["ExternalImageId"] = stored_id
        if max_faces is not None:
            request["MaxFaces"] = max_faces
        with service_errors():
            response = self.client.index_faces(**request)
        version = self._remember(response.get("FaceModelVersion"))
        indexed: list[IndexedFace] = []
        for record in response.get("FaceRecords", []):
            stored: FaceTypeDef = record.get("Face", {})
            face = to_face(record.get("FaceDetail", {}), box=stored.get("BoundingBox"))
            # Kept with the context the service needs to find the face again, so that a
            # re-index from the stored crop works when the photo is gone.
            crop = crop_face(image.pixels, face.box)
            indexed.append(
                IndexedFace(
                    face_id=stored["FaceId"],
                    external_id=external_id,
                    face=face,
                    image_sha256=image.sha256,
                    model=f"rekognition@{stored.get('IndexFacesModelVersion') or version}",
                    crop_jpeg=to_jpeg(crop),
                )
            )
        indexed.sort(key=lambda i: -i.face.box.area)
        unindexed = [to_face(u.get("FaceDetail", {})) for u in response.get("UnindexedFaces", [])]
        return IndexResult(indexed=indexed, unindexed=largest_first(unindexed))

    def search_faces_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_faces: int = 4096,
        threshold: float = 0.0,
    ) -> FaceSearch:
        check_collection_id(collection_id)
        data = prepare_image(image)
        with self._searching_image(data, image.source):
            response = self.client.search_faces_by_image(
                CollectionId=collection_id,
                Image={"Bytes": data},
                MaxFaces=_max_faces(max_faces),
                FaceMatchThreshold=_percent(threshold),
                QualityFilter="NONE",
            )
        self._remember(response.get("FaceModelVersion"))
        face = DetectedFace(
            box=box_from_json(response.get("SearchedFaceBoundingBox")),
            confidence=float(response.get("SearchedFaceConfidence", 0.0)),
        )
        return FaceSearch(face=face, matches=to_matches(response.get("FaceMatches", [])))

    def search_faces(
        self, collection_id: str, face_id: str, *, max_faces: int = 4096, threshold: float = 0.0
    ) -> list[FaceMatch]:
        check_collection_id(collection_id)
        missing = f"face {face_id!r} is not in collection {collection_id!r}"
        if not is_face_id(face_id):
            self.describe_collection(collection_id)  # a missing collection says so first
            raise NotFoundError(missing)
        try:
            with service_errors():
                response = self.client.search_faces(
                    CollectionId=collection_id,
                    FaceId=face_id,
                    MaxFaces=_max_faces(max_faces),
                    FaceMatchThreshold=_percent(threshold),
                )
        except (InvalidParameterError, CollectionNotFoundError):
            # An unknown face id comes back as an error too: tell it from a missing collection.
            self.describe_collection(collection_id)
            raise NotFoundError(missing) from None
        self._remember(response.get("FaceModelVersion"))
        return [m for m in to_matches(response.get("FaceMatches", [])) if m.face_id != face_id]

    def identify_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_matches: int = 4096,
        threshold: float = 0.0,
    ) -> list[FaceSearch]:
        check_collection_id(collection_id)
        faces = self.detect_faces(image)
        if not faces:
            # Still fail loudly on a missing collection, as a search would.
            self.describe_collection(collection_id)
            return []
        # Where the collection has users (people whose faces are associated), each face is
        # searched among the users: the service scores a user's faces as one.
        by_user = self.describe_collection(collection_id).user_count > 0
        # SearchFacesByImage searches with the largest face only: give each face its own crop.
        workers = max(1, min(self.settings.rekognition_concurrency, len(faces)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rekognition") as pool:
            return list(
                pool.map(
                    lambda face: self._search_crop(
                        collection_id,
                        image,
                        face,
                        _max_faces(max_matches),
                        _percent(threshold),
                        by_user=by_user,
                    ),
                    faces,
                )
            )

    def _search_crop(
        self,
        collection_id: str,
        image: LoadedImage,
        face: DetectedFace,
        max_faces: int,
        threshold: float,
        *,
        by_user: bool = False,
    ) -> FaceSearch:
        rect = crop_box(image.width, image.height, face.box)
        data = encode_within_limit(crop_face(image.pixels, face.box), source=image.source)
        if by_user:
            return self._search_crop_users(image, face, data, rect, collection_id, threshold)
        try:
            with service_errors():
                response = self.client.search_faces_by_image(
                    CollectionId=collection_id,
                    Image={"Bytes": data},
                    MaxFaces=max_faces,
                    FaceMatchThreshold=threshold,
                    QualityFilter="NONE",
                )
        except InvalidParameterError:
            if self._detect_bytes(data):
                raise
            # The detector found this face in the whole photo but not in its crop: no matches.
            log.info("%s: face at %s not found again in its crop", image.source, face.box)
            return FaceSearch(face=face, matches=[])
        searched = box_from_json(response.get("SearchedFaceBoundingBox"))
        if searched.iou(box_in_crop(face.box, rect, image.width, image.height)) < MIN_CROP_IOU:
            log.info(
                "%s: the crop of the face at %s was searched with another face",
                image.source,
                face.box,
            )
            return FaceSearch(face=face, matches=[])
        return FaceSearch(face=face, matches=to_matches(response.get("FaceMatches", [])))

    def _search_crop_users(
        self,
        image: LoadedImage,
        face: DetectedFace,
        data: bytes,
        rect: tuple[int, int, int, int],
        collection_id: str,
        threshold: float,
    ) -> FaceSearch:
        try:
            with service_errors():
                response = self.client.search_users_by_image(
                    CollectionId=collection_id,
                    Image={"Bytes": data},
                    MaxUsers=MAX_USERS,
                    UserMatchThreshold=threshold,
                    QualityFilter="NONE",
                )
        except InvalidParameterError:
            if self._detect_bytes(data):
                raise
            return FaceSearch(face=face, matches=[], user_matches=[])
        searched = response.get("SearchedFace", {}).get("FaceDetail", {}).get("BoundingBox")
        box = box_in_crop(face.box, rect, image.width, image.height)
        if searched is not None and box_from_json(searched).iou(box) < MIN_CROP_IOU:
            return FaceSearch(face=face, matches=[], user_matches=[])
        return FaceSearch(face=face, matches=[], user_matches=to_user_matches(response))

    def list_faces(self, collection_id: str) -> list[FaceRecord]:
        check_collection_id(collection_id)
        records: list[FaceRecord] = []
        with service_errors():
            pages = self.client.get_paginator("list_faces").paginate(CollectionId=collection_id)
            for page in pages:
                version = self._remember(page.get("FaceModelVersion"))
                for face in page.get("Faces", []):
                    records.append(
                        FaceRecord(
                            face_id=face["FaceId"],
                            external_id=decode_external_id(face.get("ExternalImageId")),
                            box=box_from_json(face.get("BoundingBox")),
                            confidence=float(face.get("Confidence", 0.0)),
                            # The service keeps an ImageId of its own, not the image's hash.
                            image_sha256=None,
                            model=f"rekognition@{face.get('IndexFacesModelVersion') or version}",
                            user_id=decode_external_id(face.get("UserId")),
                        )
                    )
        records.sort(key=lambda r: r.face_id)
        return records

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        check_collection_id(collection_id)
        # Ids that are not face ids cannot be in any collection; the service would refuse them.
        wanted = list(dict.fromkeys(f for f in face_ids if is_face_id(f)))
        if not wanted:
            self.describe_collection(collection_id)
            return []
        deleted: set[str] = set()
        with service_errors():
            for start in range(0, len(wanted), DELETE_BATCH):
                response = self.client.delete_faces(
                    CollectionId=collection_id, FaceIds=wanted[start : start + DELETE_BATCH]
                )
                deleted.update(response.get("DeletedFaces", []))
        return [f for f in wanted if f in deleted]

    # Resource tags -------------------------------------------------------------------------
    def _collection_arn(self, collection_id: str) -> str:
        check_collection_id(collection_id)
        with service_errors():
            response = self.client.describe_collection(CollectionId=collection_id)
        return str(response["CollectionARN"])

    def collection_tags(self, collection_id: str) -> dict[str, str]:
        arn = self._collection_arn(collection_id)
        with service_errors():
            response = self.client.list_tags_for_resource(ResourceArn=arn)
        return dict(response.get("Tags", {}))

    def tag_collection(self, collection_id: str, tags: Mapping[str, str]) -> None:
        arn = self._collection_arn(collection_id)
        with service_errors():
            self.client.tag_resource(ResourceArn=arn, Tags=dict(tags))

    def untag_collection(self, collection_id: str, keys: Sequence[str]) -> None:
        arn = self._collection_arn(collection_id)
        with service_errors():
            self.client.untag_resource(ResourceArn=arn, TagKeys=list(keys))

    # Users ---------------------------------------------------------------------------------
    # User ids are encoded as external ids are (the service takes [a-zA-Z0-9_.\-:]+ only).
    # Identification searches users where a collection has them, so people are users here.
    people_as_users = True

    def user_match_id(self, external_id: str) -> str:
        stored = encode_user_id(external_id)
        return decode_external_id(stored) or stored

    @contextmanager
    def _user_errors(self, collection_id: str, user_id: str) -> Iterator[None]:
        """The service answers ResourceNotFoundException for a missing collection or user."""
        try:
            with service_errors():
                yield
        except CollectionNotFoundError:
            self.describe_collection(collection_id)  # raises if the collection is missing
            raise UserNotFoundError(
                f"user {user_id!r} is not in collection {collection_id!r}"
            ) from None

    def create_user(self, collection_id: str, user_id: str) -> None:
        check_collection_id(collection_id)
        with service_errors():
            self.client.create_user(CollectionId=collection_id, UserId=encode_user_id(user_id))

    def delete_user(self, collection_id: str, user_id: str) -> None:
        check_collection_id(collection_id)
        with self._user_errors(collection_id, user_id):
            self.client.delete_user(CollectionId=collection_id, UserId=encode_user_id(user_id))

    def list_users(self, collection_id: str) -> list[str]:
        check_collection_id(collection_id)
        users: list[str] = []
        with service_errors():
            for page in self.client.get_paginator("list_users").paginate(
                CollectionId=collection_id
            ):
                users.extend(
                    decode_external_id(u["UserId"]) or u["UserId"] for u in page.get("Users", [])
                )
        return sorted(users)

    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        threshold: float = 75.0,
    ) -> FaceAssociation:
        check_collection_id(collection_id)
        results = []
        with self._user_errors(collection_id, user_id):
            for batch in _batches(face_ids):
                response = self.client.associate_faces(
                    CollectionId=collection_id,
                    UserId=encode_user_id(user_id),
                    FaceIds=batch,
                    UserMatchThreshold=_percent(threshold),
                )
                results.append(
                    _association(response, "AssociatedFaces", "UnsuccessfulFaceAssociations")
                )
        return _merged(results)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> FaceAssociation:
        check_collection_id(collection_id)
        results = []
        with self._user_errors(collection_id, user_id):
            for batch in _batches(face_ids):
                response = self.client.disassociate_faces(
                    CollectionId=collection_id, UserId=encode_user_id(user_id), FaceIds=batch
                )
                results.append(
                    _association(response, "DisassociatedFaces", "UnsuccessfulFaceDisassociations")
                )
        return _merged(results)

    def search_users(
        self,
        collection_id: str,
        *,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> list[UserMatch]:
        check_collection_id(collection_id)
        request: dict[str, Any] = {
            "CollectionId": collection_id,
            "UserMatchThreshold": _percent(threshold),
            "MaxUsers": max(1, min(max_users, MAX_USERS)),
        }
        if user_id is not None:
            request["UserId"] = encode_user_id(user_id)
        else:
            request["FaceId"] = face_id
        with self._user_errors(collection_id, user_id or ""):
            response = self.client.search_users(**request)
        return to_user_matches(response)

    def search_users_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> UserSearch:
        check_collection_id(collection_id)
        data = prepare_image(image)
        with self._searching_image(data, image.source):
            response = self.client.search_users_by_image(
                CollectionId=collection_id,
                Image={"Bytes": data},
                UserMatchThreshold=_percent(threshold),
                MaxUsers=max(1, min(max_users, MAX_USERS)),
                QualityFilter="NONE",
            )
        self._remember(response.get("FaceModelVersion"))
        searched = response.get("SearchedFace", {}).get("FaceDetail", {})
        unsearched = [
            to_face(u.get("FaceDetails", {})) for u in response.get("UnsearchedFaces", [])
        ]
        return UserSearch(to_face(searched), to_user_matches(response), unsearched)

    # Tagging -------------------------------------------------------------------------------
    # The service's responses already have facetrail's shapes: they are read into its values.
    def detect_labels(
        self,
        image: LoadedImage,
        *,
        min_confidence: float | None = None,
        max_labels: int | None = None,
    ) -> list[Label]:
        from facetrail.tagging.labels import Label

        floor, max_labels = self._label_arguments(min_confidence, max_labels)
        options: dict[str, Any] = {"MinConfidence": floor}
        if max_labels is not None:
            options["MaxLabels"] = max_labels
        with service_errors():
            response = self.client.detect_labels(Image={"Bytes": prepare_image(image)}, **options)
        return [Label.from_rekognition(entry) for entry in response.get("Labels", [])]

    def detect_text(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[TextDetection]:
        from facetrail.tagging.text import TextDetection

        floor = self.settings.text_min_confidence if min_confidence is None else min_confidence
        check_confidence(floor)
        with service_errors():
            response = self.client.detect_text(Image={"Bytes": prepare_image(image)})
        # DetectText has no MinConfidence of its own: the floor is applied here.
        return [
            TextDetection.from_rekognition(entry)
            for entry in response.get("TextDetections", [])
            if entry.get("Confidence", 0.0) >= floor
        ]

    def detect_moderation_labels(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[ModerationLabel]:
        from facetrail.tagging.moderation import ModerationLabel

        settings = self.settings
        floor = settings.moderation_min_confidence if min_confidence is None else min_confidence
        check_confidence(floor)
        with service_errors():
            response = self.client.detect_moderation_labels(
                Image={"Bytes": prepare_image(image)}, MinConfidence=floor
            )
        return [ModerationLabel.from_rekognition(m) for m in response.get("ModerationLabels", [])]


def _batches(face_ids: Sequence[str]) -> list[list[str]]:
    """Face ids in the service's batches (AssociateFaces and DisassociateFaces take 1-100);
    one batch even when empty, so that the service still checks the user and collection."""
    unique = list(dict.fromkeys(face_ids))
    return [unique[i : i + FACE_ID_BATCH] for i in range(0, len(unique), FACE_ID_BATCH)] or [[]]


def _merged(results: Sequence[FaceAssociation]) -> FaceAssociation:
    """One answer for several batches: the user's status is the last batch's."""
    return FaceAssociation(
        [f for r in results for f in r.associated],
        {f: reason for r in results for f, reason in r.refused.items()},
        results[-1].user_status if results else "ACTIVE",
    )


def _association(response: Any, done: str, refused: str) -> FaceAssociation:
    """An (Dis)AssociateFaces response as a FaceAssociation: the faces done, the first reason
    for each face refused, the user's status."""
    return FaceAssociation(
        [str(f.get("FaceId")) for f in response.get(done, [])],
        {
            str(u.get("FaceId")): (u.get("Reasons") or ["FACE_NOT_FOUND"])[0]
            for u in response.get(refused, [])
        },
        str(response.get("UserStatus", "ACTIVE")),
    )
