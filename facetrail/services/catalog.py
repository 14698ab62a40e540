"""Collections and people as facetrail records them, kept in step with the backend.

Each function works in the caller's session (one unit of work); a backend call that fails
leaves the records as they were.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrail.backends import backend_for, backend_options
from facetrail.errors import CollectionNotFoundError, InvalidParameterError
from facetrail.models import Collection, Face, Person
from facetrail.services import audit, naming
from facetrail.services.records import (
    COLLECTION_NAME,
    get_collection,
    get_or_create_collection,
)
from facetrail.settings import Settings


def _summary(c: Collection, people: int, faces: int) -> dict[str, Any]:
    return {
        "name": c.name,
        "backend": c.backend,
        "version": c.version,
        "people": people,
        "faces": faces,
        "model_version": c.model_version,
        "public_figures": c.public_figures,
        "updated_at": c.updated_at.isoformat(),
    }


def list_collections(session: Session) -> list[dict[str, Any]]:
    people = dict(
        session.execute(select(Person.collection_id, func.count()).group_by(Person.collection_id))
        .tuples()
        .all()
    )
    faces = dict(
        session.execute(select(Face.collection_id, func.count()).group_by(Face.collection_id))
        .tuples()
        .all()
    )
    rows = session.scalars(select(Collection).order_by(Collection.name)).all()
    return [_summary(c, people.get(c.id, 0), faces.get(c.id, 0)) for c in rows]


def describe_collection(session: Session, name: str) -> dict[str, Any]:
    c = get_collection(session, name)
    people = session.scalar(select(func.count()).where(Person.collection_id == c.id)) or 0
    faces = session.scalar(select(func.count()).where(Face.collection_id == c.id)) or 0
    return _summary(c, people, faces)


def create_collection(session: Session, settings: Settings, name: str) -> dict[str, Any]:
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"collection name {name!r} must be 1-255 characters of letters, digits, _ . -"
        )
    # The backend first: it may write with its own connection, which must not wait on ours.
    backend_for(
        settings, settings.backend, backend_options(settings, settings.backend)
    ).ensure_collection(name)
    c = get_or_create_collection(
        session, name, settings.backend, backend_options(settings, settings.backend)
    )
    session.flush()
    audit.record(session, settings, "create_collection", c)
    return describe_collection(session, name)


def delete_collection(session: Session, settings: Settings, name: str) -> None:
    c = get_collection(session, name)
    backend, backend_collection_id = c.backend, c.backend_collection_id
    options = dict(c.backend_options)
    # Already gone on the backend side is fine: our record goes either way.
    with contextlib.suppress(CollectionNotFoundError):
        backend_for(settings, backend, options).delete_collection(backend_collection_id)
    audit.record(session, settings, "delete_collection", c)
    naming.drop_snapshots(session, settings, c)
    session.delete(c)


def set_public_figures(
    session: Session, settings: Settings, name: str, public: bool
) -> dict[str, Any]:
    """Mark a collection's people as public figures, whom tag jobs name (or unmark them)."""
    c = get_collection(session, name)
    c.public_figures = public
    audit.record(session, settings, "public_figures", c, public=public)
    return {"name": name, "public_figures": public}


def list_people(session: Session, name: str) -> list[dict[str, Any]]:
    c = get_collection(session, name)
    rows = session.execute(
        select(Person.external_id, Person.display_name, func.count(Face.id))
        .outerjoin(Face, Face.person_id == Person.id)
        .where(Person.collection_id == c.id)
        .group_by(Person.id)
        .order_by(Person.external_id)
    ).all()
    return [{"external_id": e, "display_name": d, "faces": n} for e, d, n in rows]
