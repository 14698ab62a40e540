"""The Backend interface every backend implements, and the values it speaks in.

A backend owns every operation: the face operations (detect, compare, collections, index,
search) and the tagging operations (labels, text, moderation). Callers hand it decoded images
(:class:`facetrail.images.LoadedImage`); loading them is not a backend's job.

Geometry follows Rekognition: boxes and landmarks are ratios of the image's width and height,
confidences and similarities are on a 0-100 scale. Tagging results are facetrail's
Rekognition-shaped values (``Label``, ``TextDetection``, ``ModerationLabel``), each with
``to_rekognition()`` for its JSON entry.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from facetrail.errors import InvalidParameterError, UnsupportedOperationError
from facetrail.images import LoadedImage
from facetrail.settings import Settings
from facetrail.vectors import template

if TYPE_CHECKING:
    from facetrail.tagging.labels import Label
    from facetrail.tagging.moderation import ModerationLabel
    from facetrail.tagging.text import TextDetection

LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
Embedding = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BoundingBox:
    left: float
    top: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels, clipped to the image."""
        x0 = max(0, round(self.left * width))
        y0 = max(0, round(self.top * height))
        x1 = min(width, round((self.left + self.width) * width))
        y1 = min(height, round((self.top + self.height) * height))
        return x0, y0, x1, y1

    def iou(self, other: BoundingBox) -> float:
        x0, y0 = max(self.left, other.left), max(self.top, other.top)
        x1 = min(self.left + self.width, other.left + other.width)
        y1 = min(self.top + self.height, other.top + other.height)
        inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Landmark:
    type: str
    x: float
    y: float


@dataclass(frozen=True)
class Pose:
    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Quality:
    brightness: float
    sharpness: float


@dataclass(frozen=True)
class AgeRange:
    low: int
    high: int


@dataclass(frozen=True)
class Gender:
    value: str  # "Male" or "Female", as Rekognition
    confidence: float  # 0-100


@dataclass(frozen=True)
class Emotion:
    type: str  # one of Rekognition's EmotionName values (HAPPY, SAD, CALM...)
    confidence: float  # 0-100


@dataclass(frozen=True)
class Flag:
    """A yes/no attribute (Smile, EyesOpen...) and the confidence in that answer, 0-100."""

    value: bool
    confidence: float


@dataclass(frozen=True)
class EyeDirection:
    """Where the eyes look, independent of the head's pose: degrees, and a confidence 0-100."""

    yaw: float
    pitch: float
    confidence: float


@dataclass(frozen=True)
class FaceAttributes:
    """What attribute models said about a face; absent where no model measures it."""

    age_range: AgeRange | None = None
    gender: Gender | None = None
    emotions: tuple[Emotion, ...] = ()  # most confident first
    # Rekognition's yes/no attributes by their FaceDetail member name ("Smile", "EyesOpen"...).
    flags: tuple[tuple[str, Flag], ...] = ()
    # Landmark types beyond DetectedFace's five (leftEyeBrowUp, chinBottom...), image ratios.
    landmarks: tuple[Landmark, ...] = ()
    eye_direction: EyeDirection | None = None


@dataclass(frozen=True)
class DetectedFace:
    box: BoundingBox
    confidence: float
    landmarks: tuple[Landmark, ...] = ()
    pose: Pose | None = None
    quality: Quality | None = None
    attributes: FaceAttributes | None = None  # only when asked for (detect_faces(attributes=))


@dataclass(frozen=True)
class IndexedFace:
    """A face stored in a collection; ``embedding`` and ``crop_jpeg`` where the backend has them."""

    face_id: str
    external_id: str | None
    face: DetectedFace
    image_sha256: str
    model: str
    embedding: Embedding | None = None
    crop_jpeg: bytes | None = None


@dataclass(frozen=True)
class IndexResult:
    indexed: list[IndexedFace]
    unindexed: list[DetectedFace] = field(default_factory=list)


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    external_id: str | None
    similarity: float


@dataclass(frozen=True)
class UserMatch:
    """A user (Rekognition's Users API) and how much a face resembles their faces (0-100)."""

    user_id: str
    similarity: float


@dataclass(frozen=True)
class FaceSearch:
    """One detected face of a searched image and the collection faces that resemble it."""

    face: DetectedFace
    matches: list[FaceMatch]
    embedding: Embedding | None = None
    # Where the face was searched among users (Rekognition's Users API): user id -> similarity.
    user_matches: list[UserMatch] | None = None


@dataclass(frozen=True)
class CompareMatch:
    face: DetectedFace
    similarity: float


@dataclass(frozen=True)
class CompareResult:
    source: DetectedFace
    matches: list[CompareMatch]
    unmatched: list[DetectedFace]


@dataclass(frozen=True)
class CollectionInfo:
    collection_id: str
    face_count: int
    face_model_version: str
    created_at: datetime | None = None
    user_count: int = 0


@dataclass(frozen=True)
class UserSearch:
    """The largest face of a searched image and the users that resemble it."""

    face: DetectedFace
    matches: list[UserMatch]
    unsearched: list[DetectedFace] = field(default_factory=list)


@dataclass(frozen=True)
class FaceAssociation:
    """AssociateFaces' answer: faces now the user's, faces refused (face id -> reason)."""

    associated: list[str]
    refused: dict[str, str]
    user_status: str = "ACTIVE"


@dataclass(frozen=True)
class FaceRecord:
    face_id: str
    external_id: str | None
    box: BoundingBox
    confidence: float
    image_sha256: str | None
    model: str
    user_id: str | None = None


def check_confidence(value: float) -> float:
    """A MinConfidence argument: 0-100, else InvalidParameterError."""
    if not 0.0 <= value <= 100.0:
        raise InvalidParameterError(f"min_confidence must be within 0-100, got {value}")
    return value


class Backend(abc.ABC):
    """Faces (detect, index, search, compare) and tagging (labels, text, moderation).

    One instance per process and settings (``facetrail.backends.get_backend``); models and
    clients load lazily, on first use.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abc.abstractmethod
    def model_version(self) -> str:
        """Identifies the embedding space: results from different versions never mix."""

    def check_model(self, collection_id: str, held: str) -> None:
        """Refuse to search ``collection_id``, whose faces are ``held`` embeddings, with
        embeddings of another model version."""
        if held != self.model_version:
            raise InvalidParameterError(
                f"collection {collection_id!r} holds {held} embeddings but this backend "
                f"computes {self.model_version}; re-index the collection or choose the matching "
                "detector and embedder"
            )

    def for_collection(self, collection_id: str) -> Backend:
        """The backend that searches ``collection_id`` in the embedding space it was built in:
        this one, unless the collection was made under other settings this backend can take."""
        return self

    # Faces in one image
    @abc.abstractmethod
    def detect_faces(
        self, image: LoadedImage, *, attributes: bool = False
    ) -> list[DetectedFace]: ...

    @abc.abstractmethod
    def compare_faces(
        self, source: LoadedImage, target: LoadedImage, *, threshold: float | None = None
    ) -> CompareResult:
        """Largest face of ``source`` against every face of ``target``."""

    # Collections
    @abc.abstractmethod
    def create_collection(
        self, collection_id: str, *, tags: Mapping[str, str] | None = None
    ) -> CollectionInfo: ...

    @abc.abstractmethod
    def describe_collection(self, collection_id: str) -> CollectionInfo: ...

    @abc.abstractmethod
    def list_collections(self) -> list[str]: ...

    @abc.abstractmethod
    def delete_collection(self, collection_id: str) -> None: ...

    def ensure_collection(self, collection_id: str) -> CollectionInfo:
        from facetrail.errors import CollectionNotFoundError

        try:
            return self.describe_collection(collection_id)
        except CollectionNotFoundError:
            return self.create_collection(collection_id)

    # Faces in collections
    @abc.abstractmethod
    def index_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        attributes: bool = False,
    ) -> IndexResult:
        """Store the faces of ``image`` (largest first, up to ``max_faces``); ``attributes``:
        each face comes with its attributes, as from ``detect_faces(attributes=True)``."""

    @abc.abstractmethod
    def search_faces_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_faces: int = 4096,
        threshold: float = 0.0,
    ) -> FaceSearch:
        """Search the collection with the largest face of ``image``."""

    @abc.abstractmethod
    def search_faces(
        self, collection_id: str, face_id: str, *, max_faces: int = 4096, threshold: float = 0.0
    ) -> list[FaceMatch]:
        """Search the collection with a face already in it (the face itself is excluded)."""

    @abc.abstractmethod
    def identify_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_matches: int = 4096,
        threshold: float = 0.0,
    ) -> list[FaceSearch]:
        """Detect every face of ``image`` and search the collection with each one.

        ``max_matches`` 0, where the backend ``scores_templates``: each face with its embedding
        and no matches, for a caller that scores people itself; the collection is not read.
        """

    def search_embeddings(
        self,
        collection_id: str,
        embeddings: Embedding,
        *,
        max_faces: int = 4096,
        threshold: float = 0.0,
    ) -> list[list[FaceMatch]] | None:
        """Search with embeddings this backend computed earlier; None where it cannot.

        Re-runs use it to skip detection and embedding when the model has not changed.
        """
        return None

    # Person templates (the normalised mean of a person's embeddings) are scored by the caller
    # against this backend's embeddings; the backend says whether it can and calibrates.
    scores_templates: bool = False

    def template_similarity(self, cosines: npt.ArrayLike) -> npt.NDArray[np.float64] | None:
        """Cosines between this backend's embeddings -> similarity (0-100); None if unsupported."""
        return None

    def score_people(
        self, queries: Embedding, people: Mapping[str, Embedding]
    ) -> dict[str, npt.NDArray[np.float64]] | None:
        """Similarity (0-100) of each query face to each person's template; None if unsupported.

        ``people`` maps a person to their enrolled embeddings (k, dim) from this backend's
        model. The template is the normalised mean, so a person's photos reinforce each other.
        """
        if not self.scores_templates:
            return None
        scores: dict[str, npt.NDArray[np.float64]] = {}
        for person, enrolled in people.items():
            similarity = self.template_similarity(queries @ template(enrolled))
            assert similarity is not None
            scores[person] = np.atleast_1d(similarity)
        return scores

    @abc.abstractmethod
    def list_faces(self, collection_id: str) -> list[FaceRecord]: ...

    # Resource tags (a collection's key -> value pairs) ---------------------------------------
    def collection_tags(self, collection_id: str) -> dict[str, str]:
        raise self._unsupported("tags")

    def tag_collection(self, collection_id: str, tags: Mapping[str, str]) -> None:
        """Add or replace tags."""
        raise self._unsupported("tags")

    def untag_collection(self, collection_id: str, keys: Sequence[str]) -> None:
        """Remove tags (keys not present are ignored, as the service does)."""
        raise self._unsupported("tags")

    # Users: faces of one person searched as one (Rekognition's Users API) --------------------
    # Where identification searches a collection's users rather than its faces (the rekognition
    # backend, once the collection has users), every enrolled person is a user holding their
    # faces: ``facetrail.services.users`` keeps them so. Elsewhere people need no users (the
    # local backend scores person templates itself).
    people_as_users: bool = False

    def user_match_id(self, external_id: str) -> str:
        """The user id this backend's user searches report for the user ``external_id``: the
        id itself, unless the backend had to store it in a form it cannot read back."""
        return external_id

    def create_user(self, collection_id: str, user_id: str) -> None:
        """``facetrail.errors.UserExistsError`` where the user exists."""
        raise self._unsupported("users")

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Its faces stay in the collection, associated with nobody; UserNotFoundError if
        there is no such user."""
        raise self._unsupported("users")

    def list_users(self, collection_id: str) -> list[str]:
        """User ids, sorted."""
        raise self._unsupported("users")

    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        threshold: float = 75.0,
    ) -> FaceAssociation:
        """Faces become the user's where they resemble the user's faces at ``threshold``."""
        raise self._unsupported("users")

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> FaceAssociation:
        raise self._unsupported("users")

    def search_users(
        self,
        collection_id: str,
        *,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> list[UserMatch]:
        """Users like a user (itself excluded) or like a face of the collection."""
        raise self._unsupported("users")

    def search_users_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> UserSearch:
        """Users like the largest face of ``image``; NoFaceError if it has none."""
        raise self._unsupported("users")

    def _unsupported(self, what: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(f"the {self.name} backend does not support {what}")

    @abc.abstractmethod
    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces; returns the ids that were deleted."""

    # Tagging: what one image shows ------------------------------------------------------------
    @abc.abstractmethod
    def detect_labels(
        self,
        image: LoadedImage,
        *,
        min_confidence: float | None = None,
        max_labels: int | None = None,
    ) -> list[Label]:
        """DetectLabels: objects and scenes, best first, parents included.

        ``min_confidence`` defaults to ``Settings.label_min_confidence``; InvalidParameterError
        outside 0-100, or for ``max_labels`` below 1.
        """

    @abc.abstractmethod
    def detect_text(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[TextDetection]:
        """DetectText: LINEs (ids 0..n-1), then their WORDs; lines below ``min_confidence``
        (default ``Settings.text_min_confidence``) are left out."""

    @abc.abstractmethod
    def detect_moderation_labels(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[ModerationLabel]:
        """DetectModerationLabels at or above ``min_confidence`` (default
        ``Settings.moderation_min_confidence``)."""

    def _label_arguments(
        self, min_confidence: float | None, max_labels: int | None
    ) -> tuple[float, int | None]:
        """DetectLabels' arguments checked, the floor defaulted from the settings."""
        floor = self.settings.label_min_confidence if min_confidence is None else min_confidence
        if max_labels is not None and max_labels < 1:
            raise InvalidParameterError(f"max_labels must be at least 1, got {max_labels}")
        return check_confidence(floor), max_labels

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and sessions."""
