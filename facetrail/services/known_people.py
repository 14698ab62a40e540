"""Known people in a photo (Rekognition's RecognizeCelebrities), from the collections users mark
as public figures: no built-in celebrity list exists, so users curate their own.

A public figure's ``KnownGender`` is the gender model's verdict over the faces enrolled for them
(each face's answer is recorded when it is enrolled into a public-figure collection): Male or
Female as the mean probability of Male is above or below one half, absent where no face has an
answer (faces enrolled before the collection was marked) or on an exact tie.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.backends.base import DetectedFace
from facetrail.db import session_scope
from facetrail.images import LoadedImage
from facetrail.models import Collection, Face, Person
from facetrail.services.naming import name_faces
from facetrail.settings import Settings
from facetrail.shapes import face_detail_json

SAME_FACE_IOU = 0.5


def recognize(settings: Settings, image: LoadedImage) -> dict[str, Any]:
    """``{"CelebrityFaces": [...], "UnrecognizedFaces": [...]}`` for ``image``.

    Read-only, in one session of its own: it is called where no unit of work is open (a tagging
    operation, a serve request).
    """
    with session_scope(settings) as session:
        return _recognize(session, settings, image)


def _recognize(session: Session, settings: Settings, image: LoadedImage) -> dict[str, Any]:
    collections = list(
        session.scalars(
            select(Collection).where(Collection.public_figures.is_(True)).order_by(Collection.id)
        )
    )
    faces: list[DetectedFace] = []
    # per face: (similarity, person external id, collection id) of its best naming so far
    best: list[tuple[float, str, int] | None] = []
    for collection in collections:
        backend = backend_for(settings, collection.backend, dict(collection.backend_options))
        searches = backend.identify_faces(collection.backend_collection_id, image, threshold=0.0)
        assignments = name_faces(
            session, collection.id, backend, searches, settings.match_threshold
        )
        for search, assignment in zip(searches, assignments, strict=True):
            index = _same_face(faces, search.face)
            if index is None:
                faces.append(search.face)
                best.append(None)
                index = len(faces) - 1
            if assignment.external_id is None or assignment.similarity is None:
                continue
            current = best[index]
            if current is None or assignment.similarity > current[0]:
                best[index] = (assignment.similarity, assignment.external_id, collection.id)
    if not collections:
        faces = backend_for(settings, "local", {}).detect_faces(image)
        best = [None] * len(faces)
    return _response(session, faces, best)


def _same_face(faces: list[DetectedFace], face: DetectedFace) -> int | None:
    for i, known in enumerate(faces):
        if known.box.iou(face.box) >= SAME_FACE_IOU:
            return i
    return None


def _response(
    session: Session, faces: list[DetectedFace], best: list[tuple[float, str, int] | None]
) -> dict[str, Any]:
    named = {(b[2], b[1]) for b in best if b is not None}
    people: dict[tuple[int, str], Person] = {}
    for collection_id, external_id in named:
        person = session.scalar(
            select(Person).where(
                Person.collection_id == collection_id, Person.external_id == external_id
            )
        )
        if person is not None:
            people[(collection_id, external_id)] = person
    genders = known_genders(session, [p.id for p in people.values()])
    celebrities: list[dict[str, Any]] = []
    unrecognized: list[dict[str, Any]] = []
    for face, match in zip(faces, best, strict=True):
        person = people.get((match[2], match[1])) if match else None
        if match is None or person is None:
            unrecognized.append(face_detail_json(face))
            continue
        entry = {
            "Urls": list(person.urls or []),
            "Name": person.display_name,
            "Id": person.external_id,
            "Face": face_detail_json(face),
            "MatchConfidence": round(match[0], 2),
        }
        if person.id in genders:
            entry["KnownGender"] = {"Type": genders[person.id]}
        celebrities.append(entry)
    return {"CelebrityFaces": celebrities, "UnrecognizedFaces": unrecognized}


def known_genders(session: Session, person_ids: Iterable[int]) -> dict[int, str]:
    """Person id -> KnownGender type ("Male" or "Female") where their faces give one."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Face.person_id, Face.gender, Face.gender_confidence).where(
            Face.person_id.in_(ids), Face.gender.is_not(None)
        )
    ).tuples()
    answers: dict[int, list[tuple[str, float]]] = {}
    for person_id, gender, confidence in rows:
        answers.setdefault(person_id, []).append((str(gender), confidence or 50.0))
    verdicts = {person_id: gender_verdict(given) for person_id, given in answers.items()}
    return {person_id: v for person_id, v in verdicts.items() if v is not None}


def gender_verdict(answers: Iterable[tuple[str, float]]) -> str | None:
    """The gender model's verdict over one person's faces, from each face's (value, confidence
    0-100): Male or Female as the mean probability of Male is above or below one half."""
    male = [c / 100.0 if value == "Male" else 1.0 - c / 100.0 for value, c in answers]
    if not male or sum(male) * 2 == len(male):
        return None
    return "Male" if sum(male) / len(male) > 0.5 else "Female"
