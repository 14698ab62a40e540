"""Corrections: a person's word on one face of one photo, honoured by identify and re-runs.

- "F is not X": X is never named for that face again (nor listed among its runners-up), in
  any identify job or re-run of the collection, until the correction is withdrawn. Results that
  named X there lose the name now.
- "F is Y": the face is named Y whatever the scores say (and Y names no other face of that
  photo). Its results move to Y now. Unless told not to, the face is also enrolled as Y: a crop
  of the photo around it (other faces greyed out) goes through an ordinary enroll job, so Y's
  template learns the face and later photos of Y are named better.
- Withdrawn: the record stays, it no longer applies, and a face it enrolled leaves Y again.
  Results keep their names until a re-run decides again.

A face is its photo (``images``) and its box: in another job of the same photo (a re-run, a
second identify job) it is the face whose box overlaps the corrected one most, by at least
:data:`SAME_FACE_IOU`. Corrections name people by id, so renames and merges carry them along;
erasing a person erases theirs. Every change is in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.backends.base import BoundingBox
from facetrail.errors import InvalidParameterError, NotFoundError
from facetrail.identification import FaceRule
from facetrail.images import LoadedImage, to_jpeg
from facetrail.models import (
    Collection,
    Correction,
    CorrectionKind,
    Face,
    FaceResult,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    Person,
)
from facetrail.models.base import utcnow
from facetrail.services import audit
from facetrail.services.records import (
    bump_version,
    get_collection,
    get_or_create_person,
    get_person,
)
from facetrail.settings import Settings

# Boxes of one face in two runs of one photo overlap at least this much.
SAME_FACE_IOU = 0.5
# The crop enrolled for "is": the face's box grown by this share of its size on every side,
# and scaled up to at least this many pixels on its shorter side (the detector's comfort).
CROP_MARGIN = 0.4
CROP_MIN_SIDE = 160
GREY = (128, 128, 128)


# What recording a correction that stands already answers besides it.
_ALREADY = {"results_changed": 0, "already": True}


def _box(row: FaceResult | Correction) -> BoundingBox:
    return BoundingBox(row.box_left, row.box_top, row.box_width, row.box_height)


def _result(
    session: Session, collection: Collection, face_result_id: int
) -> tuple[FaceResult, JobItem, Job]:
    """A face result of one of the collection's identify jobs, on a photo we have a record of."""
    found = session.execute(
        select(FaceResult, JobItem, Job)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(FaceResult.id == face_result_id)
    ).first()
    if found is None or found[2].collection_id != collection.id:
        raise NotFoundError(f"no face result {face_result_id} in collection {collection.name!r}")
    result, item, job = found._tuple()
    if item.image_id is None:
        raise InvalidParameterError(
            f"face result {face_result_id}: its photo is no longer on record (erased)"
        )
    return result, item, job


def _same_face(
    session: Session, collection_id: int, image_id: int, box: BoundingBox
) -> list[FaceResult]:
    """Every result of the collection's identify jobs for this face of this photo."""
    rows = session.scalars(
        select(FaceResult)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(
            Job.collection_id == collection_id,
            Job.kind == JobKind.IDENTIFY,
            JobItem.image_id == image_id,
            JobItem.status == ItemStatus.SUCCEEDED,
        )
    ).all()
    by_item: dict[int, list[FaceResult]] = {}
    for row in rows:
        by_item.setdefault(row.job_item_id, []).append(row)
    same: list[FaceResult] = []
    for faces in by_item.values():
        best = max(faces, key=lambda f: _box(f).iou(box))
        if _box(best).iou(box) >= SAME_FACE_IOU:
            same.append(best)
    return same


def _active(
    session: Session, collection_id: int, image_ids: Iterable[int]
) -> list[tuple[Correction, str]]:
    """Active corrections on these photos, with the external id of the person each names."""
    ids = sorted(set(image_ids))
    if not ids:
        return []
    return list(
        session.execute(
            select(Correction, Person.external_id)
            .join(Person, Correction.person_id == Person.id)
            .where(
                Correction.collection_id == collection_id,
                Correction.image_id.in_(ids),
                Correction.withdrawn_at.is_(None),
            )
            .order_by(Correction.id)
        ).tuples()
    )


def _on_face(corrections: Sequence[Correction], box: BoundingBox) -> list[Correction]:
    return [c for c in corrections if _box(c).iou(box) >= SAME_FACE_IOU]


def _retire(
    session: Session, settings: Settings, collection: Collection, retired: Sequence[Correction]
) -> int:
    """Withdraw corrections; the faces they enrolled leave their person again. Call it before
    the session writes anything: the backend deletes with its own connection. Returns how many
    faces left."""
    if not retired:
        return 0
    faces = list(
        session.scalars(
            select(Face)
            .join(JobItem, Face.job_item_id == JobItem.id)
            .join(Correction, JobItem.job_id == Correction.enroll_job_id)
            .where(
                Correction.id.in_([c.id for c in retired]),
                Face.person_id == Correction.person_id,
            )
        )
    )
    if faces:
        backend_for(settings, collection.backend, dict(collection.backend_options)).delete_faces(
            collection.backend_collection_id, [f.face_id for f in faces]
        )
        session.execute(delete(Face).where(Face.id.in_([f.id for f in faces])))
        bump_version(session, collection, people={f.person_id for f in faces})
    for correction in retired:
        correction.withdrawn_at = utcnow()
        correction.withdrawn_by = audit.actor_of(settings)
    return len(faces)


def _describe(correction: Correction, person: str, image: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "correction_id": correction.id,
        "kind": correction.kind.value,
        "person": person,
        "face_result_id": correction.face_result_id,
        "image_id": correction.image_id,
        "box": {k: round(v, 4) for k, v in _box(correction).as_dict().items()},
        "actor": correction.actor,
        "created_at": correction.created_at.isoformat(),
        "withdrawn_at": correction.withdrawn_at.isoformat() if correction.withdrawn_at else None,
        "enroll_job_id": correction.enroll_job_id,
    }
    if image is not None:
        out["image"] = image
    return out


def _record(
    session: Session,
    settings: Settings,
    collection: Collection,
    result: FaceResult,
    item: JobItem,
    kind: CorrectionKind,
    person: Person,
) -> Correction:
    assert item.image_id is not None
    collection.has_corrections = True
    correction = Correction(
        collection_id=collection.id,
        image_id=item.image_id,
        box_left=result.box_left,
        box_top=result.box_top,
        box_width=result.box_width,
        box_height=result.box_height,
        kind=kind,
        person_id=person.id,
        face_result_id=result.id,
        actor=audit.actor_of(settings),
    )
    session.add(correction)
    session.flush()
    return correction


# Recording ---------------------------------------------------------------------------------
def correct_not(
    session: Session,
    settings: Settings,
    collection_name: str,
    face_result_id: int,
    external_id: str,
) -> dict[str, Any]:
    """Record that a face is not ``external_id``; results that named them there lose the name."""
    collection = get_collection(session, collection_name)
    result, item, job = _result(session, collection, face_result_id)
    assert item.image_id is not None
    person = get_person(session, collection, external_id)
    box = _box(result)
    on_face = _on_face([c for c, _ in _active(session, collection.id, [item.image_id])], box)
    for existing in on_face:
        if existing.person_id == person.id and existing.kind == CorrectionKind.NOT:
            return {**_describe(existing, external_id, item.source), **_ALREADY}
    # "is X" on the same face contradicts it: the newer word stands.
    retired = [c for c in on_face if c.person_id == person.id]
    faces_removed = _retire(session, settings, collection, retired)
    correction = _record(session, settings, collection, result, item, CorrectionKind.NOT, person)
    changed = 0
    for row in _same_face(session, collection.id, item.image_id, box):
        kept = [c for c in row.candidates or [] if c.get("person") != external_id]
        if row.person_id == person.id or row.person_external_id == external_id:
            row.person_id = None
            row.person_external_id = None
            row.similarity = None
            changed += 1
        if len(kept) != len(row.candidates or []):
            row.candidates = kept
    audit.record(
        session,
        settings,
        "correct_not",
        collection,
        job_id=job.id,
        correction_id=correction.id,
        face_result_id=face_result_id,
        person=external_id,
        image=item.source,
        results_changed=changed,
        withdrew=[c.id for c in retired],
        faces_removed=faces_removed,
    )
    return {
        **_describe(correction, external_id, item.source),
        "results_changed": changed,
        "withdrew": [c.id for c in retired],
        "already": False,
    }


def correct_is(
    session: Session,
    settings: Settings,
    collection_name: str,
    face_result_id: int,
    external_id: str,
    *,
    crop: bytes | None = None,
) -> dict[str, Any]:
    """Record that a face is ``external_id`` (created if new) and move its results to them.

    ``crop``: the face's crop (:func:`face_crop`) to enroll as them, through an enroll job
    created here in the caller's transaction; the caller runs it once this commits.
    """
    # The job registry imports this module (identify and re-runs honour corrections).
    from facetrail.jobs import job_type
    from facetrail.jobs.base import UploadedImage
    from facetrail.services import unknowns  # it imports this module (its crops)

    collection = get_collection(session, collection_name)
    result, item, job = _result(session, collection, face_result_id)
    assert item.image_id is not None
    box = _box(result)
    previous = result.person_external_id
    active = _active(session, collection.id, [item.image_id])
    on_face = _on_face([c for c, _ in active], box)
    for existing, name in active:
        if existing in on_face and name == external_id and existing.kind == CorrectionKind.IS:
            return {**_describe(existing, external_id, item.source), **_ALREADY}
    retired = [
        existing
        for existing, name in active
        # The face is nobody else now, and nobody else in the photo is this person; a "not
        # them" on the face gives way to the newer word.
        if (existing.kind == CorrectionKind.IS and (existing in on_face or name == external_id))
        or (existing in on_face and name == external_id)
    ]
    faces_removed = _retire(session, settings, collection, retired)
    person = get_or_create_person(
        session, collection, external_id, display_name=external_id.replace("_", " ")
    )
    session.flush()
    correction = _record(session, settings, collection, result, item, CorrectionKind.IS, person)
    changed = 0
    renamed: list[int] = []
    for row in _same_face(session, collection.id, item.image_id, box):
        renamed.append(row.id)
        if row.person_id != person.id or row.person_external_id != external_id:
            changed += 1
        # A person appears once in a photo: another face named them there loses the name.
        session.execute(
            update(FaceResult)
            .where(
                FaceResult.job_item_id == row.job_item_id,
                FaceResult.id != row.id,
                FaceResult.person_id == person.id,
            )
            .values(person_id=None, person_external_id=None, similarity=None)
        )
        row.person_id = person.id
        row.person_external_id = external_id
        row.similarity = None  # named by a person, not by a score
        row.candidates = [c for c in row.candidates or [] if c.get("person") != external_id]
    # Named now: the face is no unknown any more (it leaves its cluster of unknown faces).
    unknowns.faces_named(session, settings, collection, renamed, reason="correction")
    if crop is not None:
        enroll = job_type("enroll")
        request = enroll.parse(
            {
                "collection": collection.name,
                "entries": [
                    {
                        "image": UploadedImage(data=crop, name=f"correction-{correction.id}.jpg"),
                        "person": external_id,
                    }
                ],
            }
        )
        correction.enroll_job_id = enroll.create(session, settings, request).id
    audit.record(
        session,
        settings,
        "correct_is",
        collection,
        job_id=job.id,
        correction_id=correction.id,
        face_result_id=face_result_id,
        person=external_id,
        previous=previous,
        image=item.source,
        results_changed=changed,
        enroll_job_id=correction.enroll_job_id,
        withdrew=[c.id for c in retired],
        faces_removed=faces_removed,
    )
    return {
        **_describe(correction, external_id, item.source),
        "results_changed": changed,
        "withdrew": [c.id for c in retired],
        "already": False,
    }


def withdraw(
    session: Session, settings: Settings, collection_name: str, correction_id: int
) -> dict[str, Any]:
    """Withdraw a correction; a face it enrolled leaves the person again (backend first)."""
    collection = get_collection(session, collection_name)
    correction = session.get(Correction, correction_id)
    if correction is None or correction.collection_id != collection.id:
        raise NotFoundError(f"no correction {correction_id} in collection {collection_name!r}")
    person = session.get_one(Person, correction.person_id)
    if correction.withdrawn_at is not None:
        return {**_describe(correction, person.external_id), "faces_removed": 0}
    removed = _retire(session, settings, collection, [correction])
    audit.record(
        session,
        settings,
        "withdraw_correction",
        collection,
        correction_id=correction.id,
        kind=correction.kind.value,
        person=person.external_id,
        faces_removed=removed,
    )
    return {**_describe(correction, person.external_id), "faces_removed": removed}


def list_corrections(
    session: Session, collection_name: str, *, withdrawn: bool = False
) -> list[dict[str, Any]]:
    """The collection's corrections, oldest first (``withdrawn``: those withdrawn too)."""
    collection = get_collection(session, collection_name)
    query = (
        select(Correction, Person.external_id)
        .join(Person, Correction.person_id == Person.id)
        .where(Correction.collection_id == collection.id)
        .order_by(Correction.id)
    )
    if not withdrawn:
        query = query.where(Correction.withdrawn_at.is_(None))
    return [_describe(c, name) for c, name in session.execute(query).tuples()]


# Honouring ---------------------------------------------------------------------------------
def rules_for(
    session: Session, collection: Collection, image_id: int | None, boxes: Sequence[BoundingBox]
) -> list[FaceRule | None] | None:
    """What active corrections say of each face (by box) of one photo; None: nothing."""
    if not collection.has_corrections or image_id is None or not boxes:
        return None
    return _rules(_active(session, collection.id, [image_id]), boxes)


def rules_by_photo(
    session: Session, collection: Collection, photos: Sequence[tuple[int | None, list[BoundingBox]]]
) -> list[list[FaceRule | None] | None]:
    """:func:`rules_for` for many photos in one query (a re-run's items)."""
    if not collection.has_corrections:
        return [None] * len(photos)
    active = _active(session, collection.id, [i for i, _ in photos if i is not None])
    by_image: dict[int, list[tuple[Correction, str]]] = {}
    for correction, name in active:
        by_image.setdefault(correction.image_id, []).append((correction, name))
    return [
        _rules(by_image[image_id], boxes) if image_id in by_image and boxes else None
        for image_id, boxes in photos
    ]


def corrected_photos(
    session: Session, collection: Collection, image_ids: Iterable[int]
) -> set[int]:
    """Photos any correction was ever made on, withdrawn or not: their stored results may say
    what no scoring would (a re-run scores them again rather than copy them)."""
    ids = sorted(set(image_ids))
    if not ids or not collection.has_corrections:
        return set()
    return set(
        session.scalars(
            select(Correction.image_id).where(
                Correction.collection_id == collection.id, Correction.image_id.in_(ids)
            )
        )
    )


def _rules(
    active: Sequence[tuple[Correction, str]], boxes: Sequence[BoundingBox]
) -> list[FaceRule | None] | None:
    if not active:
        return None
    rules: list[FaceRule | None] = [None] * len(boxes)
    for correction, name in active:
        target = _box(correction)
        overlaps = [b.iou(target) for b in boxes]
        face = max(range(len(boxes)), key=overlaps.__getitem__)
        if overlaps[face] < SAME_FACE_IOU:
            continue
        rule = rules[face] or FaceRule()
        if correction.kind == CorrectionKind.IS:
            rule = FaceRule(name, rule.not_people)
        else:
            rule = FaceRule(rule.is_person, rule.not_people | {name})
        rules[face] = rule
    return rules if any(rules) else None


# People ------------------------------------------------------------------------------------
def move_person(session: Session, source_id: int, target_id: int) -> None:
    """A merge: the merged person's corrections are the target's now."""
    session.execute(
        update(Correction).where(Correction.person_id == source_id).values(person_id=target_id)
    )


def erase_person(session: Session, person_id: int) -> int:
    """An erasure: every correction naming the person goes. Returns how many."""
    gone = session.scalars(select(Correction.id).where(Correction.person_id == person_id)).all()
    if gone:
        session.execute(delete(Correction).where(Correction.id.in_(gone)))
    return len(gone)


# The photo behind a face -------------------------------------------------------------------
def face_photo(
    session: Session, collection_name: str, face_result_id: int
) -> tuple[str, bool, BoundingBox, list[BoundingBox]]:
    """Where to read a face's photo: its source, whether local files may be read anywhere (the
    job's trust), the face's box and the other faces' boxes."""
    from facetrail.jobs.base import TRUSTED_PATHS

    collection = get_collection(session, collection_name)
    result, item, job = _result(session, collection, face_result_id)
    others = [_box(f) for f in item.faces if f.id != result.id]
    return item.source, bool((job.parameters or {}).get(TRUSTED_PATHS)), _box(result), others


def face_crop(image: LoadedImage, box: BoundingBox, others: Sequence[BoundingBox]) -> bytes:
    """A JPEG of the face at ``box`` with a margin, other faces greyed out, so that the face is
    the largest one an enrollment finds in it."""
    width, height = image.width, image.height
    grown = BoundingBox(
        box.left - CROP_MARGIN * box.width,
        box.top - CROP_MARGIN * box.height,
        box.width * (1 + 2 * CROP_MARGIN),
        box.height * (1 + 2 * CROP_MARGIN),
    )
    x0, y0, x1, y1 = grown.to_pixels(width, height)
    crop = image.pixels.crop((x0, y0, x1, y1)).convert("RGB")
    face = box.to_pixels(width, height)
    kept = image.pixels.crop(face)
    draw = ImageDraw.Draw(crop)
    for other in others:
        ox0, oy0, ox1, oy1 = other.to_pixels(width, height)
        draw.rectangle((ox0 - x0, oy0 - y0, ox1 - x0, oy1 - y0), fill=GREY)
    crop.paste(kept, (face[0] - x0, face[1] - y0))  # the face itself stays whole
    short = min(crop.size)
    if 0 < short < CROP_MIN_SIDE:
        scale = CROP_MIN_SIDE / short
        crop = crop.resize(
            (round(crop.width * scale), round(crop.height * scale)), PILImage.Resampling.BICUBIC
        )
    return to_jpeg(crop)
