"""The s3:// source and the S3 image store, against a real S3-compatible server over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from facetrail.errors import (
    FetchError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidParameterError,
)
from facetrail.images import open_image, read_bytes, upload
from facetrail.images.s3 import get_s3_object, list_s3_images, s3_error
from facetrail.images.scan import EnrollEntry, enroll_sources, expand_sources
from facetrail.images.store import S3Store, image_store
from tests.badinputs import OBAMA, PNG_32BIT
from tests.s3server import S3Server, s3_process, s3_server

__all__ = ["s3_process", "s3_server"]  # fixtures

CAP = 300_000  # bytes; obama.jpg is below it


def test_s3_objects_are_opened_and_capped(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    photo = OBAMA.read_bytes()
    assert len(photo) < CAP
    client.put_object(Bucket=bucket, Key="shoot/obama.jpg", Body=photo)
    client.put_object(Bucket=bucket, Key="shoot/huge.jpg", Body=b"\xff\xd8\xff" + b"\0" * CAP)
    settings = s3_server.settings(max_image_bytes=CAP)

    image = open_image(settings, f"s3://{bucket}/shoot/obama.jpg")
    assert image.data == photo and image.source == f"s3://{bucket}/shoot/obama.jpg"
    assert read_bytes(settings, f"s3://{bucket}/shoot/obama.jpg") == photo
    with pytest.raises(ImageTooLargeError, match="byte limit"):
        open_image(settings, f"s3://{bucket}/shoot/huge.jpg")
    with pytest.raises(ImageNotFoundError) as missing:
        get_s3_object(f"s3://{bucket}/shoot/gone.jpg", client=client, max_bytes=CAP)
    assert missing.value.retryable is False
    with pytest.raises(ImageNotFoundError):
        open_image(settings, "s3://no-such-bucket-facetrail/a.jpg")


def test_s3_prefixes_list_their_images_across_pages(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    for key in ["shoot/b.JPG", "shoot/notes.txt", "shoot/deep/a.png", "other/c.jpg"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    expected = [f"s3://{bucket}/shoot/b.JPG", f"s3://{bucket}/shoot/deep/a.png"]
    assert list_s3_images(f"s3://{bucket}/shoot/", client=client) == sorted(expected)
    # More keys than one page holds (1000): the listing follows continuation tokens.
    many = [f"many/{i:04d}.jpg" for i in range(1005)]
    for key in many:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert len(list_s3_images(f"s3://{bucket}/many/", client=client)) == 1005


def test_scan_expands_s3_prefixes_and_keeps_keys(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    for key in ["shoot/1.jpg", "shoot/2.png", "shoot/readme.md"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    settings = s3_server.settings()
    sources = expand_sources(
        [f"s3://{bucket}/shoot/", f"s3://{bucket}/elsewhere/one.jpg"], settings=settings
    )
    assert sources == [
        f"s3://{bucket}/shoot/1.jpg",
        f"s3://{bucket}/shoot/2.png",
        f"s3://{bucket}/elsewhere/one.jpg",  # a key is taken as given, even a missing one
    ]


def test_enroll_sources_read_an_s3_prefix_as_a_folder(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    client = s3_server.client()
    for key in [
        "people/Ada Lovelace/one.jpg",
        "people/Ada Lovelace/x/two.png",
        "people/grace_2.jpg",
    ]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.put_object(Bucket=bucket, Key="people/notes.md", Body=b"x")
    settings = s3_server.settings()
    assert enroll_sources([f"s3://{bucket}/people"], settings=settings) == [
        EnrollEntry(f"s3://{bucket}/people/Ada Lovelace/one.jpg", "Ada Lovelace"),
        EnrollEntry(f"s3://{bucket}/people/Ada Lovelace/x/two.png", "Ada Lovelace"),
        EnrollEntry(f"s3://{bucket}/people/grace_2.jpg", "grace"),
    ]
    with pytest.raises(InvalidParameterError, match="no images found"):
        enroll_sources([f"s3://{bucket}/nobody/"], settings=settings)


def test_the_s3_image_store_is_content_addressed(s3_server: S3Server) -> None:
    bucket = s3_server.bucket()
    settings = s3_server.settings(image_store=f"s3://{bucket}/uploads")
    photo = OBAMA.read_bytes()

    first = upload(settings, photo)
    assert first == upload(settings, photo)  # same bytes, same key, one object
    second = upload(settings, PNG_32BIT.read_bytes())
    assert second != first
    store = image_store(settings)
    assert isinstance(store, S3Store)
    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    key = first.removeprefix("upload://")
    assert sorted(o["Key"] for o in listed) == sorted(
        [f"uploads/{key[:2]}/{key}", store.object_key(second.removeprefix("upload://"))]
    )

    image = open_image(settings, first)
    assert image.data == photo and image.sha256 == key and image.source == first
    with pytest.raises(ImageNotFoundError, match="not in the image store"):
        open_image(settings, "upload://" + "0" * 64)

    # Erasure deletes an object; deleting it again is no error.
    store.delete(key)
    store.delete(key)
    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [store.object_key(second.removeprefix("upload://"))]
    with pytest.raises(ImageNotFoundError):
        open_image(settings, first)


def test_s3_errors_say_whether_a_retry_may_help() -> None:
    def client_error(code: str, status: int) -> ClientError:
        response: Any = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(response, "GetObject")

    assert isinstance(s3_error(client_error("NoSuchKey", 404), "s3://b/k"), ImageNotFoundError)
    busy = s3_error(client_error("SlowDown", 503), "s3://b/k")
    assert isinstance(busy, FetchError) and busy.retryable is True
    denied = s3_error(client_error("AccessDenied", 403), "s3://b/k")
    assert isinstance(denied, FetchError) and denied.retryable is False
