"""The audit log: who did what to which collection, and when."""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.models import AuditEvent, Collection
from facetrail.settings import Settings


def actor_of(settings: Settings) -> str:
    """The configured actor (FACETRAIL_ACTOR, or an API key's name), else the OS user."""
    if settings.actor:
        return settings.actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(
    session: Session,
    settings: Settings,
    action: str,
    collection: Collection | None,
    *,
    job_id: int | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor_of(settings),
        action=action,
        collection_id=collection.id if collection else None,
        collection_name=collection.name if collection else None,
        job_id=job_id,
        details=details,
    )
    session.add(event)
    return event


def events(session: Session, collection: str | None = None, limit: int = 50) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if collection is not None:
        query = query.where(AuditEvent.collection_name == collection)
    return list(session.scalars(query))
