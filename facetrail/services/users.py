"""People as users (Rekognition's Users API) on backends whose identification searches users.

On such a backend (``Backend.people_as_users``: the rekognition backend, which identifies with
SearchUsersByImage once a collection has users) each person of a collection is a user named by
their external id and holding every face enrolled for them. The functions here keep it so as
faces are enrolled or re-indexed and as people are renamed or merged (erasure deletes the user
with the person: ``facetrail.services.people``). Elsewhere they do nothing: the local backend
scores person templates itself.

Every function is idempotent, so a retried item or a re-run command repairs what an interrupted
one left half done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend
from facetrail.errors import UnsupportedOperationError, UserExistsError, UserNotFoundError
from facetrail.models import Face, Person

log = logging.getLogger(__name__)

# The person's word is what enrolls a face: every face of theirs joins their user, however
# unlike their other faces it is (AssociateFaces would refuse those below its threshold).
ENROLLED = 0.0


def add_faces(backend: Backend, index: str, external_id: str, face_ids: Sequence[str]) -> None:
    """The user ``external_id`` of ``index`` exists and holds ``face_ids`` (created if needed;
    faces already theirs stay)."""
    if not backend.people_as_users or not face_ids:
        return
    with contextlib.suppress(UserExistsError):
        backend.create_user(index, external_id)
    _associate(backend, index, external_id, face_ids)


def _associate(backend: Backend, index: str, external_id: str, face_ids: Sequence[str]) -> None:
    result = backend.associate_faces(index, external_id, face_ids, threshold=ENROLLED)
    if result.refused:
        # Deleted meanwhile, or another user's: identification by users will not see them.
        log.warning("%s: faces not given to user %r: %s", index, external_id, result.refused)


def drop_user(backend: Backend, index: str, external_id: str) -> bool:
    """The user ``external_id`` is gone from ``index`` (their faces stay, unassociated);
    whether there was one to delete."""
    if not backend.people_as_users:
        return False
    try:
        backend.delete_user(index, external_id)
    except (UserNotFoundError, UnsupportedOperationError):
        return False
    return True


def move_faces(backend: Backend, index: str, old: str, new: str, face_ids: Sequence[str]) -> None:
    """A rename or a merge: the user ``old`` goes and its faces (``face_ids``, from our
    records) join the user ``new``."""
    if not backend.people_as_users:
        return
    if drop_user(backend, index, old):
        add_faces(backend, index, new, face_ids)
        return
    # No user ``old``: a collection from before people were users (making one now would hide
    # everyone else from identification by users), or a move an earlier try began, whose new
    # user is there to finish filling.
    if face_ids:
        with contextlib.suppress(UserNotFoundError):
            _associate(backend, index, new, face_ids)


def enrolled_faces(
    session: Session, collection_id: int, backend: str, external_id: str | None = None
) -> dict[str, list[str]]:
    """Person external id -> their recorded face ids on ``backend`` (one person if given)."""
    query = (
        select(Person.external_id, Face.face_id)
        .join(Person, Face.person_id == Person.id)
        .where(Face.collection_id == collection_id, Face.backend == backend)
        .order_by(Face.id)
    )
    if external_id is not None:
        query = query.where(Person.external_id == external_id)
    faces: dict[str, list[str]] = {}
    for person, face_id in session.execute(query).tuples():
        faces.setdefault(person, []).append(face_id)
    return faces


def people_with_faces(session: Session, collection_id: int, backend: str) -> int:
    return (
        session.scalar(
            select(func.count(func.distinct(Face.person_id))).where(
                Face.collection_id == collection_id, Face.backend == backend
            )
        )
        or 0
    )


def catch_up(backend: Backend, index: str, faces: dict[str, list[str]]) -> None:
    """Every person of ``faces`` a user holding their faces: for a collection enrolled before
    people were users (identification would otherwise search the users only and miss them)."""
    for external_id, face_ids in faces.items():
        add_faces(backend, index, external_id, face_ids)
