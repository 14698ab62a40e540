"""Identifiers as Rekognition accepts them: collection ids checked, external ids mapped reversibly.

Rekognition only stores ExternalImageId values matching ``[a-zA-Z0-9_.\\-:]+`` (at most 255
characters). People are named by whatever their folder is called ("Rose Leslie", "김연아"), so ids
outside that pattern are stored as ``ft64:`` + URL-safe base64 of their UTF-8 bytes, and mapped
back when results come in. Ids that already start with the prefix are encoded too, so the mapping
is one-to-one and decoding never guesses. An id too long even for that (over 187 UTF-8 bytes)
is stored as ``ft64h:`` + the start of its encoding + its sha256: still accepted, no longer
decodable, which facetrail does not need, since it names people through its own face records.
User ids (a person's external id, where people are users) are encoded the same way within
UserId's 128 characters; a hashed one is matched back by encoding the person's id again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from facetrail.errors import InvalidParameterError

COLLECTION_ID_PATTERN = re.compile(r"[a-zA-Z0-9_.\-]+")
EXTERNAL_ID_PATTERN = re.compile(r"[a-zA-Z0-9_.\-:]+")
USER_ID_PATTERN = EXTERNAL_ID_PATTERN  # the same rule in the service model, 128 at most
FACE_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_ID_LENGTH = 255
MAX_USER_ID_LENGTH = 128  # UserId is shorter than ExternalImageId in the service model
ENCODED_PREFIX = "ft64:"
HASHED_PREFIX = "ft64h:"
_BASE64URL = re.compile(r"[A-Za-z0-9_\-]*")


def check_collection_id(collection_id: str) -> str:
    """Refuse, before any network call, a collection id the service would refuse."""
    if not (
        0 < len(collection_id) <= MAX_ID_LENGTH and COLLECTION_ID_PATTERN.fullmatch(collection_id)
    ):
        raise InvalidParameterError(
            f"collection id {collection_id!r} must be 1-{MAX_ID_LENGTH} characters of "
            "a-z, A-Z, 0-9, '_', '.' and '-' (Rekognition's CollectionId rule)"
        )
    return collection_id


def is_face_id(value: str) -> bool:
    return FACE_ID_PATTERN.fullmatch(value) is not None


def encode_external_id(external_id: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """The ExternalImageId to store for ``external_id``; see :func:`decode_external_id`."""
    if not external_id:
        raise InvalidParameterError("an external id cannot be empty")
    encoded = _encode(external_id, max_length)
    if len(encoded) > max_length:
        digest = hashlib.sha256(external_id.encode("utf-8")).hexdigest()
        keep = max_length - len(HASHED_PREFIX) - len(digest) - 1
        return f"{HASHED_PREFIX}{encoded[len(ENCODED_PREFIX) :][:keep]}.{digest}"
    return encoded


def encode_user_id(user_id: str) -> str:
    """The UserId to store for a facetrail user id (a person's external id): encoded as
    external ids are, within UserId's 128 characters."""
    return encode_external_id(user_id, max_length=MAX_USER_ID_LENGTH)


def decode_external_id(stored: str | None) -> str | None:
    """The external id behind a stored ExternalImageId; values we did not encode pass through."""
    if stored is None or not stored.startswith(ENCODED_PREFIX):
        return stored
    body = stored[len(ENCODED_PREFIX) :]
    if not _BASE64URL.fullmatch(body):
        return stored
    try:
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return stored
    # Only a value this module would have produced is decoded (e.g. not "ft64:abc" from elsewhere).
    # (A user id of 129-255 plain characters is encoded where an external id is not.)
    lengths = (MAX_ID_LENGTH, MAX_USER_ID_LENGTH)
    return decoded if any(_encode(decoded, n) == stored for n in lengths) else stored


def _encode(external_id: str, max_length: int) -> str:
    if (
        EXTERNAL_ID_PATTERN.fullmatch(external_id)
        and len(external_id) <= max_length
        and not external_id.startswith((ENCODED_PREFIX, HASHED_PREFIX))
    ):
        return external_id
    body = base64.urlsafe_b64encode(external_id.encode("utf-8")).rstrip(b"=").decode("ascii")
    return ENCODED_PREFIX + body
