from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from facetrail.models.base import Base, Timestamped


class Image(Timestamped, Base):
    """An image we have read, keyed by its content hash; the first place we saw it is kept."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source_uri: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    format: Mapped[str] = mapped_column(String(16))
