"""Rekognition's image-tagging operations for ``facetrail serve``.

DetectLabels, DetectText and DetectModerationLabels run on the server's backend (its models load
on their first use), RecognizeCelebrities
and GetCelebrityInfo read the facetrail collections marked as public figures
(``facetrail.services.known_people``). Each operation takes the parsed request and the decoded
image and returns the response as botocore's service model shapes it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from facetrail.backends.base import Backend, BoundingBox
from facetrail.images import LoadedImage
from facetrail.server.protocol import ServiceError, invalid_parameter
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.tagging.labels import Label
    from facetrail.tagging.text import TextDetection

Params = dict[str, Any]
Response = dict[str, Any]

# RecognizeCelebrities looks at the 64 largest faces of an image (Amazon Rekognition API reference).
MAX_CELEBRITY_FACES = 64
# A word is inside a region of interest when at least half of its box is (as the service says).
REGION_SHARE = 0.5
MAX_URLS = 255  # the Urls list's maximum in the service model

# Celebrity ids must match [0-9A-Za-z]*; person external ids may hold any character. Letters and
# digits other than "Z" stay as they are; "Z" and every other character become "Z" followed by
# the two upper-case hex digits of each of its UTF-8 bytes ("rose_leslie" -> "roseZ5Fleslie").
_ESCAPE = "Z"
_PLAIN = re.compile(r"[0-9A-Ya-z]")
_ESCAPED = re.compile(r"Z([0-9A-F]{2})")


def celebrity_id(external_id: str) -> str:
    """The RecognizeCelebrities ``Id`` of a person's external id (one-to-one, alphanumeric)."""
    out: list[str] = []
    for char in external_id:
        if _PLAIN.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"{_ESCAPE}{byte:02X}" for byte in char.encode())
    return "".join(out)


def external_id_of(celebrity: str) -> str | None:
    """The external id ``celebrity_id`` made ``celebrity`` from; None for an id it cannot make."""
    data = bytearray()
    i = 0
    while i < len(celebrity):
        char = celebrity[i]
        if char == _ESCAPE:
            match = _ESCAPED.match(celebrity, i)
            if match is None:
                return None
            data.append(int(match.group(1), 16))
            i = match.end()
        elif _PLAIN.fullmatch(char):
            data.extend(char.encode())
            i += 1
        else:
            return None
    try:
        decoded = data.decode()
    except UnicodeDecodeError:
        return None
    return decoded if celebrity_id(decoded) == celebrity else None


class TaggingOperations:
    """The operations, on ``backend`` (whose models load on their first use)."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    # DetectLabels ------------------------------------------------------------------------
    def detect_labels(self, params: Params, image: LoadedImage) -> Response:
        from facetrail.tagging.labels import detect_labels_response

        features = params.get("Features") or ["GENERAL_LABELS"]
        labels: list[Label] = []
        max_labels = params.get("MaxLabels")
        if "GENERAL_LABELS" in features and max_labels != 0:
            labels = self.backend.detect_labels(image, min_confidence=params.get("MinConfidence"))
            general = (params.get("Settings") or {}).get("GeneralLabels") or {}
            labels = filter_labels(labels, general)
            if max_labels is not None:
                labels = labels[:max_labels]
        response = detect_labels_response(labels)
        if "IMAGE_PROPERTIES" in features:
            from facetrail.tagging.properties import image_properties

            response["ImageProperties"] = image_properties(image.pixels)
        return response

    # DetectText --------------------------------------------------------------------------
    def detect_text(self, params: Params, image: LoadedImage) -> Response:
        from facetrail.tagging.text import detect_text_response

        filters = params.get("Filters") or {}
        regions = [_region_box(r) for r in filters.get("RegionsOfInterest") or []]
        detections = self.backend.detect_text(image)
        word_filter = filters.get("WordFilter") or {}
        if word_filter or regions:
            detections = filter_text(detections, word_filter, regions)
        return detect_text_response(detections)

    # DetectModerationLabels --------------------------------------------------------------
    def detect_moderation_labels(self, params: Params, image: LoadedImage) -> Response:
        from facetrail.tagging.moderation import detect_moderation_labels_response

        if "ProjectVersion" in params:
            # Custom moderation adapters do not exist here.
            raise ServiceError(
                "ResourceNotFoundException",
                f"The project version {params['ProjectVersion']} does not exist",
            )
        # HumanLoopConfig is accepted and ignored: no human review is ever started here.
        labels = self.backend.detect_moderation_labels(
            image, min_confidence=params.get("MinConfidence")
        )
        response = detect_moderation_labels_response(labels)
        # Content types (animated, illustrated) need a model none of ours is: an empty list
        # says that no content type was recognised, which is all that is known.
        response["ContentTypes"] = []
        return response

    # RecognizeCelebrities, GetCelebrityInfo ----------------------------------------------
    def recognize_celebrities(self, params: Params, image: LoadedImage) -> Response:
        from facetrail.services.known_people import recognize

        found = recognize(self.settings, image)
        celebrities: list[dict[str, Any]] = found["CelebrityFaces"]
        unrecognized: list[dict[str, Any]] = found["UnrecognizedFaces"]
        # Only the 64 largest faces, as the service (celebrities first among equals).
        faces = [("celebrity", i, _area(c["Face"])) for i, c in enumerate(celebrities)]
        faces += [("unrecognized", i, _area(f)) for i, f in enumerate(unrecognized)]
        largest = sorted(faces, key=lambda f: -f[2])[:MAX_CELEBRITY_FACES]
        kept = {(kind, i) for kind, i, _ in largest}
        return {
            "CelebrityFaces": [
                {**c, "Id": celebrity_id(c["Id"]), "Urls": list(c["Urls"])[:MAX_URLS]}
                for i, c in enumerate(celebrities)
                if ("celebrity", i) in kept
            ],
            "UnrecognizedFaces": [
                f for i, f in enumerate(unrecognized) if ("unrecognized", i) in kept
            ],
        }

    def get_celebrity_info(self, params: Params) -> Response:
        from sqlalchemy import select

        from facetrail.db import session_scope
        from facetrail.models import Collection, Person
        from facetrail.services.known_people import known_genders

        celebrity = params["Id"]
        external_id = external_id_of(celebrity)
        not_found = ServiceError("ResourceNotFoundException", f"celebrity {celebrity} not found")
        if external_id is None:
            raise not_found
        with session_scope(self.settings) as session:
            # The same external id in two public-figure collections: the older collection wins.
            person = session.scalar(
                select(Person)
                .join(Collection, Person.collection_id == Collection.id)
                .where(Collection.public_figures.is_(True), Person.external_id == external_id)
                .order_by(Collection.id)
                .limit(1)
            )
            if person is None:
                raise not_found
            response: Response = {
                "Name": person.display_name,
                "Urls": list(person.urls or [])[:MAX_URLS],
            }
            gender = known_genders(session, [person.id]).get(person.id)
            if gender is not None:
                response["KnownGender"] = {"Type": gender}
            return response


def filter_labels(labels: Sequence[Label], general: Params) -> list[Label]:
    """DetectLabels' GeneralLabels filters: a label is kept when it passes the inclusion filters
    (by name or category; none given passes every label) and no exclusion filter names it or
    one of its categories (exclusion wins)."""
    include = set(general.get("LabelInclusionFilters") or [])
    exclude = set(general.get("LabelExclusionFilters") or [])
    include_categories = set(general.get("LabelCategoryInclusionFilters") or [])
    exclude_categories = set(general.get("LabelCategoryExclusionFilters") or [])
    kept = []
    for label in labels:
        categories = set(label.categories)
        if (include or include_categories) and not (
            label.name in include or categories & include_categories
        ):
            continue
        if label.name in exclude or categories & exclude_categories:
            continue
        kept.append(label)
    return kept


def filter_text(
    detections: Sequence[TextDetection], word_filter: Params, regions: Sequence[BoundingBox]
) -> list[TextDetection]:
    """DetectText's filters: words below ``MinConfidence`` or the minimum box sizes, or outside
    every region of interest, are dropped; lines are kept while one of their words is; ids are
    renumbered (lines first, then words), as an unfiltered answer numbers them."""
    min_confidence = word_filter.get("MinConfidence", 0.0)
    min_height = word_filter.get("MinBoundingBoxHeight", 0.0)
    min_width = word_filter.get("MinBoundingBoxWidth", 0.0)

    def keep(word: TextDetection) -> bool:
        if word.confidence < min_confidence:
            return False
        if word.box.height < min_height or word.box.width < min_width:
            return False
        return not regions or any(_inside(word.box, region) for region in regions)

    words = [d for d in detections if d.type == "WORD" and keep(d)]
    parents = {w.parent_id for w in words}
    lines = [d for d in detections if d.type == "LINE" and d.id in parents]
    new_ids = {line.id: i for i, line in enumerate(lines)}
    out = [dataclasses.replace(line, id=new_ids[line.id]) for line in lines]
    for i, word in enumerate(words):
        assert word.parent_id is not None
        out.append(dataclasses.replace(word, id=len(lines) + i, parent_id=new_ids[word.parent_id]))
    return out


def _region_box(region: Params) -> BoundingBox:
    box = region.get("BoundingBox")
    if box is None:
        if region.get("Polygon"):
            raise invalid_parameter(
                "RegionsOfInterest with a Polygon only are not supported by facetrail serve: "
                "give each region a BoundingBox"
            )
        raise invalid_parameter("a region of interest needs a BoundingBox")
    return BoundingBox(
        left=box.get("Left", 0.0),
        top=box.get("Top", 0.0),
        width=box.get("Width", 0.0),
        height=box.get("Height", 0.0),
    )


def _inside(box: BoundingBox, region: BoundingBox) -> bool:
    width = min(box.left + box.width, region.left + region.width) - max(box.left, region.left)
    height = min(box.top + box.height, region.top + region.height) - max(box.top, region.top)
    area = box.width * box.height
    if width <= 0 or height <= 0 or area <= 0:
        return False
    return width * height >= REGION_SHARE * area


def _area(face: dict[str, Any]) -> float:
    box = face["BoundingBox"]
    return float(box["Width"] * box["Height"])
