"""The one list of tagging operations: what each is called, how it runs, how it tabulates.

Every operation is defined once, here, in the order results and table columns follow:

- its name (a tag job's ``ops``, the key of its result);
- ``run``: how it runs on a backend for one decoded image, giving JSON-ready Rekognition entries
  ("people" runs the known-people recognition of ``facetrail.services.known_people``, which
  searches each public-figure collection with that collection's own backend);
- what the long and wide tables need: its long-table findings, and its numbered wide columns
  (plus any summary columns, written when the operation ran).

Adding an operation is one ``Operation`` here and the backend method it runs, in the backends
that can run it: ``implementation(backend, "detect_x")`` finds that method, and a backend without
one answers UnsupportedOperationError, so the Backend interface need not change first.

    results = run_ops(settings, get_backend(settings), image, ["labels", "text"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from facetrail.errors import InvalidParameterError, UnsupportedOperationError

if TYPE_CHECKING:
    from facetrail.backends.base import Backend
    from facetrail.images import LoadedImage
    from facetrail.settings import Settings

Entry = Mapping[str, Any]
# One long-table row of an operation: (type, value, confidence, Rekognition BoundingBox, extra)
Finding = tuple[str, Any, Any, Any, dict[str, Any]]


@dataclass(frozen=True)
class Operation:
    name: str
    run: Callable[[Settings, Backend, LoadedImage], Any]
    # Long table: the findings of one image's result for this operation (None: not run).
    findings: Callable[[Any], Iterable[Finding]]
    # Wide table: numbered columns "<prefix>_1", "<prefix>_1_confidence", ... from (value,
    # confidence) pairs, then the summary columns (given the result, None for a failed image).
    wide_prefix: str
    wide_items: Callable[[Any], list[tuple[Any, Any]]]
    wide_summary: Callable[[Any, bool], dict[str, Any]] | None = field(default=None)


def implementation(backend: Backend, method: str) -> Callable[..., Any]:
    """``backend``'s method ``method``, or UnsupportedOperationError naming the backend."""
    found: Callable[..., Any] | None = getattr(backend, method, None)
    if not callable(found):
        raise UnsupportedOperationError(f"the {backend.name} backend does not implement {method}")
    return found


# labels -------------------------------------------------------------------------------------------
def _run_labels(settings: Settings, backend: Backend, image: LoadedImage) -> list[dict[str, Any]]:
    return [label.to_rekognition() for label in backend.detect_labels(image)]


def _label_findings(labels: Any) -> Iterable[Finding]:
    for label in labels or []:
        extra = {
            "parents": [p.get("Name") for p in label.get("Parents") or []],
            "categories": [c.get("Name") for c in label.get("Categories") or []],
        }
        yield "label", label.get("Name"), label.get("Confidence"), None, extra
        for instance in label.get("Instances") or []:
            box = instance.get("BoundingBox")
            yield "object", label.get("Name"), instance.get("Confidence"), box, {}


def _label_items(labels: Any) -> list[tuple[Any, Any]]:
    return [(lb.get("Name"), lb.get("Confidence")) for lb in labels or []]


# text ---------------------------------------------------------------------------------------------
def _run_text(settings: Settings, backend: Backend, image: LoadedImage) -> list[dict[str, Any]]:
    return [detection.to_rekognition() for detection in backend.detect_text(image)]


def _text_findings(entries: Any) -> Iterable[Finding]:
    for entry in entries or []:
        kind = "text_line" if entry.get("Type") == "LINE" else "text_word"
        box = (entry.get("Geometry") or {}).get("BoundingBox")
        extra = {"id": entry.get("Id"), "parent_id": entry.get("ParentId")}
        yield kind, entry.get("DetectedText"), entry.get("Confidence"), box, extra


def _text_items(entries: Any) -> list[tuple[Any, Any]]:
    lines = [t for t in entries or [] if t.get("Type") == "LINE"]
    return [(t.get("DetectedText"), t.get("Confidence")) for t in lines]


def _text_summary(entries: Any, failed: bool) -> dict[str, Any]:
    lines = [str(text) for text, _ in _text_items(None if failed else entries)]
    return {"text_all": "\n".join(lines) if lines else None}


# people -------------------------------------------------------------------------------------------
def _run_people(settings: Settings, backend: Backend, image: LoadedImage) -> dict[str, Any]:
    from facetrail.services.known_people import recognize

    return recognize(settings, image)


def _people(value: Any) -> tuple[list[Entry], list[Entry]]:
    """(recognized, unrecognized) face entries from a list or a whole response."""
    if isinstance(value, Mapping):
        return list(value.get("CelebrityFaces") or []), list(value.get("UnrecognizedFaces") or [])
    return list(value or []), []


def _people_findings(value: Any) -> Iterable[Finding]:
    known, unknown = _people(value)
    for face in known:
        box = (face.get("Face") or {}).get("BoundingBox")
        extra = {"id": face.get("Id"), "urls": list(face.get("Urls") or [])}
        yield "person", face.get("Name"), face.get("MatchConfidence"), box, extra
    for face in unknown:
        yield "unrecognized_face", None, face.get("Confidence"), face.get("BoundingBox"), {}


def _people_items(value: Any) -> list[tuple[Any, Any]]:
    return [(f.get("Name"), f.get("MatchConfidence")) for f in _people(value)[0]]


def _people_summary(value: Any, failed: bool) -> dict[str, Any]:
    return {"unrecognized_faces": None if failed else len(_people(value)[1])}


# moderation ---------------------------------------------------------------------------------------
def _run_moderation(
    settings: Settings, backend: Backend, image: LoadedImage
) -> list[dict[str, Any]]:
    return [label.to_rekognition() for label in backend.detect_moderation_labels(image)]


def _moderation_findings(labels: Any) -> Iterable[Finding]:
    for label in labels or []:
        extra = {"parent": label.get("ParentName") or None, "level": label.get("TaxonomyLevel")}
        yield "moderation", label.get("Name"), label.get("Confidence"), None, extra


def _moderation_items(labels: Any) -> list[tuple[Any, Any]]:
    return [(m.get("Name"), m.get("Confidence")) for m in labels or []]


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            name="labels",
            run=_run_labels,
            findings=_label_findings,
            wide_prefix="label",
            wide_items=_label_items,
        ),
        Operation(
            name="text",
            run=_run_text,
            findings=_text_findings,
            wide_prefix="text",
            wide_items=_text_items,
            wide_summary=_text_summary,
        ),
        Operation(
            name="people",
            run=_run_people,
            findings=_people_findings,
            wide_prefix="person",
            wide_items=_people_items,
            wide_summary=_people_summary,
        ),
        Operation(
            name="moderation",
            run=_run_moderation,
            findings=_moderation_findings,
            wide_prefix="moderation",
            wide_items=_moderation_items,
        ),
    )
}


def check_ops(ops: Iterable[str]) -> tuple[str, ...]:
    """``ops`` without repeats, in the order given; InvalidParameterError for an unknown
    operation or none at all."""
    wanted = tuple(dict.fromkeys(ops))
    unknown = [op for op in wanted if op not in OPERATIONS]
    if unknown or not wanted:
        raise InvalidParameterError(
            f"unknown tagging operation(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(OPERATIONS)}"
        )
    return wanted


def run_ops(
    settings: Settings, backend: Backend, image: LoadedImage, ops: Iterable[str]
) -> dict[str, Any]:
    """Run ``ops`` on one image: operation -> its JSON-ready Rekognition entries ("people": the
    whole RecognizeCelebrities-shaped answer, recognized and unrecognized faces)."""
    return {name: OPERATIONS[name].run(settings, backend, image) for name in check_ops(ops)}
