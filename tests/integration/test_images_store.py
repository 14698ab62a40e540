"""The folder image store: content-addressed, idempotent, atomic, and read back whole."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from facetrail.errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError
from facetrail.images import open_image, upload
from facetrail.images.store import FolderStore, image_store, upload_key
from facetrail.settings import Settings
from tests.badinputs import OBAMA, PNG_32BIT


def test_the_default_store_is_a_folder_in_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    source = upload(settings, OBAMA.read_bytes())
    key = hashlib.sha256(OBAMA.read_bytes()).hexdigest()
    assert source == f"upload://{key}"
    assert (tmp_path / "images" / key[:2] / key).read_bytes() == OBAMA.read_bytes()
    image = open_image(settings, source)
    assert image.source == source and image.sha256 == key and image.width > 0
    # Erasure deletes an object; deleting it again is no error.
    image_store(settings).delete(key)
    image_store(settings).delete(key)
    assert not (tmp_path / "images" / key[:2] / key).exists()
    with pytest.raises(ImageNotFoundError):
        open_image(settings, source)


def test_same_bytes_same_key_one_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, image_store=str(tmp_path / "store"))
    photo = OBAMA.read_bytes()
    sources = set()
    threads = [
        threading.Thread(target=lambda: sources.add(upload(settings, photo))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sources) == 1
    other = upload(settings, PNG_32BIT.read_bytes())
    assert other not in sources
    files = sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file())
    # Two objects and no temporary file left behind by the racing writers.
    assert [p.name for p in files] == sorted(s.removeprefix("upload://") for s in {*sources, other})


def test_missing_and_malformed_keys(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(ImageNotFoundError, match="not in the image store") as missing:
        open_image(settings, "upload://" + "ab" * 32)
    assert missing.value.retryable is False
    for bad in ("upload://../../etc/passwd", "upload://ABC", "upload://" + "g" * 64):
        with pytest.raises(InvalidImageError, match="sha256"):
            open_image(settings, bad)
    with pytest.raises(InvalidImageError):
        upload_key("file:///x")


def test_limits_hold_on_upload_and_read(tmp_path: Path) -> None:
    photo = OBAMA.read_bytes()
    small = Settings(home=tmp_path, max_image_bytes=len(photo) - 1)
    with pytest.raises(ImageTooLargeError):
        upload(small, photo)
    with pytest.raises(InvalidImageError, match="empty"):
        upload(small, b"")
    source = upload(Settings(home=tmp_path), photo)
    with pytest.raises(ImageTooLargeError, match=source):
        open_image(small, source)  # refused from the file's size, before reading


def test_a_damaged_object_is_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    source = upload(settings, OBAMA.read_bytes())
    store = image_store(settings)
    assert isinstance(store, FolderStore)
    path = store.path(upload_key(source))
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InvalidImageError, match="do not match"):
        open_image(settings, source)
