"""The image store: uploaded image bytes, kept by their sha256 where every worker can read them.

An app on another machine hands images to the workers as bytes: ``upload(settings, data)`` keeps
them in the store and returns ``"upload://<sha256hex>"``, a source any worker opens with
``open_image``. The store is ``FACETRAIL_IMAGE_STORE``: a folder (``$FACETRAIL_HOME/images`` by
default; share it between machines) or ``s3://bucket/prefix`` (any S3-compatible bucket, see
``FACETRAIL_S3_ENDPOINT_URL``). Keys are content hashes, so storing the same bytes twice is one
object, and a write is atomic: a reader sees the whole object or none.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from facetrail.errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError
from facetrail.settings import Settings

SCHEME = "upload://"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def upload_key(source: str) -> str:
    """``upload://<sha256hex>`` -> the hex digest; anything else is refused."""
    key = source[len(SCHEME) :] if source.lower().startswith(SCHEME) else ""
    if not _SHA256.match(key):
        raise InvalidImageError(f"{source}: not an upload://<sha256 hex digest> source")
    return key


class ImageStore(ABC):
    """Bytes by sha256: ``put`` is idempotent, ``get`` of a missing key is ImageNotFoundError."""

    def put(self, data: bytes) -> str:
        """Keep ``data``; its sha256 hex digest, the key to ``get`` it back."""
        key = hashlib.sha256(data).hexdigest()
        if not self.exists(key):
            self._write(key, data)
        return key

    def get(self, key: str, *, max_bytes: int) -> bytes:
        """The bytes kept under ``key``, refused beyond ``max_bytes`` before reading them."""
        if not _SHA256.match(key):
            raise InvalidImageError(f"{SCHEME}{key}: not a sha256 hex digest")
        data = self._read(key, max_bytes=max_bytes)
        # The key is the content's hash: a mismatch means the store was altered or damaged.
        if hashlib.sha256(data).hexdigest() != key:
            raise InvalidImageError(f"{SCHEME}{key}: the stored bytes do not match their sha256")
        return data

    def delete(self, key: str) -> None:
        """Remove the bytes kept under ``key``; a missing key is no error (erasure may repeat)."""
        if not _SHA256.match(key):
            raise InvalidImageError(f"{SCHEME}{key}: not a sha256 hex digest")
        self._delete(key)

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, key: str, *, max_bytes: int) -> bytes: ...


class FolderStore(ImageStore):
    """``root/ab/abcdef...``: a folder, shared between machines by whatever mounts it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed: readers never see half an object.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # workers may run as other users
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _read(self, key: str, *, max_bytes: int) -> bytes:
        from facetrail.images.decode import read_source

        label = f"{SCHEME}{key}"
        path = self.path(key)
        if not path.exists():
            raise ImageNotFoundError(f"{label}: not in the image store")
        try:
            return read_source(path, max_bytes=max_bytes)
        except InvalidImageError as exc:
            # The message names the store's file; callers know the source by its upload:// name.
            raise type(exc)(exc.message.replace(str(path), label)) from None


class S3Store(ImageStore):
    """``s3://bucket/prefix/ab/abcdef...`` in any S3-compatible bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key[:2]}/{key}" if self.prefix else f"{key[:2]}/{key}"

    def exists(self, key: str) -> bool:
        from facetrail.images.s3 import s3_error

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            error = s3_error(exc, f"{SCHEME}{key}")
            # Without s3:ListBucket, S3 answers 403 for a missing key: take it as missing, and
            # let the PUT say whether writing is allowed.
            status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(error, ImageNotFoundError) or status == 403:
                return False
            raise error from None
        return True

    def _write(self, key: str, data: bytes) -> None:
        from facetrail.images.s3 import s3_error

        # One PUT is atomic in S3: the object appears whole or not at all.
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)
        except Exception as exc:
            raise s3_error(exc, f"{SCHEME}{key}") from None

    def _delete(self, key: str) -> None:
        from facetrail.images.s3 import s3_error

        # S3 answers a DELETE of a missing key with success.
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            raise s3_error(exc, f"{SCHEME}{key}") from None

    def _read(self, key: str, *, max_bytes: int) -> bytes:
        from facetrail.images.s3 import read_object

        label = f"{SCHEME}{key}"
        try:
            return read_object(
                self.client, self.bucket, self.object_key(key), max_bytes=max_bytes, label=label
            )
        except ImageNotFoundError:
            raise ImageNotFoundError(f"{label}: not in the image store") from None


@functools.lru_cache(maxsize=8)
def image_store(settings: Settings) -> ImageStore:
    """The store ``settings`` name, one per process and settings."""
    where = settings.resolved_image_store
    if where.lower().startswith("s3://"):
        from facetrail.images.s3 import parse_s3_uri, s3_client

        bucket, prefix = parse_s3_uri(where)
        return S3Store(s3_client(settings), bucket, prefix)
    return FolderStore(Path(where).expanduser())


def upload(settings: Settings, data: bytes) -> str:
    """Keep ``data`` in the image store; ``"upload://<sha256hex>"``, the same for the same bytes."""
    if not data:
        raise InvalidImageError("upload: empty image (0 bytes)")
    if len(data) > settings.max_image_bytes:
        raise ImageTooLargeError(
            f"upload: {len(data)} bytes exceeds the {settings.max_image_bytes}-byte limit"
        )
    return SCHEME + image_store(settings).put(data)


class UploadReader:
    """The opener's reader for ``upload://<sha256hex>`` sources."""

    def __init__(self, settings: Settings) -> None:
        self.store = image_store(settings)
        self.max_bytes = settings.max_image_bytes

    def read(self, source: str) -> bytes:
        return self.store.get(upload_key(source), max_bytes=self.max_bytes)
