"""The ``s3://bucket/key`` image source: reading objects and listing prefixes through boto3.

The client comes from the settings: the user's AWS configuration (profile, credentials), the
region in ``FACETRAIL_AWS_REGION`` and, for S3-compatible stores (MinIO, Ceph, a test server),
the endpoint in ``FACETRAIL_S3_ENDPOINT_URL``. S3 errors become facetrail exceptions with
``retryable`` set: a missing bucket or key is ImageNotFoundError, throttling and 5xx may be retried.
"""

from __future__ import annotations

import urllib.parse
from pathlib import PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from facetrail.errors import (
    ConfigurationError,
    FacetrailError,
    FetchError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidParameterError,
)
from facetrail.settings import Settings

CHUNK = 64 * 1024
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/or/prefix`` -> (bucket, key)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise InvalidParameterError(f"{uri}: not an s3://bucket/key URI")
    return parts.netloc, parts.path.lstrip("/")


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client: the user's AWS configuration, plus the settings' region and endpoint."""
    endpoint = settings.s3_endpoint_url or None
    # S3-compatible servers rarely serve bucket names as host names; path style always works.
    config = Config(s3={"addressing_style": "path"}) if endpoint else None
    return boto3.client(
        "s3", region_name=settings.aws_region or None, endpoint_url=endpoint, config=config
    )


def list_s3_images(uri: str, *, client: Any) -> list[str]:
    """The image objects under ``s3://bucket/prefix``, as s3:// URIs, sorted by key."""
    bucket, prefix = parse_s3_uri(uri)
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES:
                    keys.append(key)
    except Exception as exc:
        raise s3_error(exc, uri) from None
    return [f"s3://{bucket}/{key}" for key in sorted(keys)]


def read_object(client: Any, bucket: str, key: str, *, max_bytes: int, label: str) -> bytes:
    """An object's bytes, refused beyond ``max_bytes`` (checked on the size, then streamed).

    ``label`` names the source in error messages.
    """
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        size = int(response.get("ContentLength") or 0)
        if size > max_bytes:
            body.close()
            raise ImageTooLargeError(f"{label}: {size} bytes exceeds the {max_bytes}-byte limit")
        data = bytearray()
        while chunk := body.read(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                body.close()
                raise ImageTooLargeError(f"{label}: more than {max_bytes} bytes")
    except FacetrailError:
        raise
    except Exception as exc:
        raise s3_error(exc, label) from None
    return bytes(data)


def get_s3_object(uri: str, *, client: Any, max_bytes: int) -> bytes:
    """The bytes of the object at ``s3://bucket/key``, at most ``max_bytes``."""
    bucket, key = parse_s3_uri(uri)
    if not key:
        raise InvalidParameterError(f"{uri}: no object key")
    return read_object(client, bucket, key, max_bytes=max_bytes, label=uri)


def s3_error(exc: Exception, label: str) -> FacetrailError:
    """A boto3/botocore exception as the facetrail error it means."""
    if isinstance(exc, NoCredentialsError):
        return ConfigurationError(f"{label}: no AWS credentials found (configure the AWS CLI)")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{label}: S3 {code or status}: {error.get('Message', '')}".rstrip(": ")
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            return ImageNotFoundError(message)
        transient = status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout")
        return FetchError(message, retryable=transient)
    if isinstance(exc, BotoCoreError):
        return FetchError(f"{label}: {exc}", retryable=True)
    return FetchError(f"{label}: {type(exc).__name__}: {exc}", retryable=True)


class S3Reader:
    """The opener's reader for ``s3://bucket/key`` sources (one client, thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.client = s3_client(settings)
        self.max_bytes = settings.max_image_bytes

    def read(self, source: str) -> bytes:
        return get_s3_object(source, client=self.client, max_bytes=self.max_bytes)
