"""The opener: each scheme through ``open_image``, the registry's refusals and install hints."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facetrail.errors import (
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageError,
    MissingExtraError,
    URLRefusedError,
)
from facetrail.images import ImageOpener, open_bytes, open_image, upload
from facetrail.images.opener import SCHEMES, Scheme, image_opener, scheme_of
from facetrail.settings import Settings
from tests.badinputs import OBAMA, decompression_bomb


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def photo_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on loopback serving one photo; its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "obama.jpg").write_bytes(OBAMA.read_bytes())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_paths_and_file_uris(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    by_path = open_image(settings, str(OBAMA))
    assert by_path.source == str(OBAMA) and by_path.data == OBAMA.read_bytes()
    by_uri = open_image(settings, OBAMA.as_uri())
    assert by_uri.sha256 == by_path.sha256 and by_uri.source == OBAMA.as_uri()
    assert open_image(settings, "file://localhost" + str(OBAMA)).sha256 == by_path.sha256
    # A name that is not valid UTF-8 travels as %XX escapes and is read byte for byte.
    odd = tmp_path / os.fsdecode(b"caf\xe9 photo.jpg")
    odd.write_bytes(OBAMA.read_bytes())
    assert "%E9%20" in odd.as_uri()
    assert open_image(settings, odd.as_uri()).sha256 == by_path.sha256
    with pytest.raises(URLRefusedError, match="another host"):
        open_image(settings, "file://fileserver/share/a.jpg")


def test_local_files_that_are_not_images_fail_clearly(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_image_bytes=1000)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(InvalidImageError, match="not a regular file"):
        open_image(settings, str(fifo))  # refused without opening: it would block
    with pytest.raises(InvalidImageError, match="not a regular file"):
        open_image(settings, folder.as_uri())
    with pytest.raises(ImageNotFoundError, match=r"gone\.jpg"):
        open_image(settings, (tmp_path / "gone.jpg").as_uri())
    with pytest.raises(ImageTooLargeError, match="byte limit"):
        open_image(settings, str(OBAMA))


def test_the_pixel_limit_holds_before_decoding(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_image_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError, match="pixel"):
        open_image(settings, str(decompression_bomb(tmp_path)))
    with pytest.raises(ImageTooLargeError, match="pixel"):
        open_bytes(settings, decompression_bomb(tmp_path).read_bytes(), source="body")


def test_http_sources_are_fetched_under_the_guard(photo_server: str, tmp_path: Path) -> None:
    url = f"{photo_server}/obama.jpg"
    allowed = Settings(home=tmp_path, fetch_allow_networks="127.0.0.1/32")
    image = open_image(allowed, url)
    assert image.data == OBAMA.read_bytes() and image.source == url
    with pytest.raises(URLRefusedError, match="loopback"):
        open_image(Settings(home=tmp_path), url)  # loopback is not public


def test_uploads_round_trip(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    source = upload(settings, OBAMA.read_bytes())
    assert scheme_of(source) == "upload"
    assert open_image(settings, source).data == OBAMA.read_bytes()


def test_bytes_in_hand(tmp_path: Path) -> None:
    image = open_bytes(Settings(home=tmp_path), OBAMA.read_bytes(), source="Image")
    assert image.source == "Image" and image.format == "JPEG"
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        open_bytes(Settings(home=tmp_path), b"plain text", source="Image")


@pytest.mark.parametrize(
    "source", ["ftp://example.com/a.jpg", "gopher://127.0.0.1:70/_GET", "HDFS://n/a.jpg"]
)
def test_unknown_schemes_are_refused(tmp_path: Path, source: str) -> None:
    with pytest.raises(URLRefusedError, match=r"not read \(file://, http://") as info:
        open_image(Settings(home=tmp_path), source)
    assert info.value.retryable is False


def test_a_scheme_whose_dependency_is_missing_names_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ft_test_ipfs_reader.py").write_text(
        "import ft_test_not_installed_package  # noqa\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    schemes = {**SCHEMES, "ipfs": Scheme("ft_test_ipfs_reader", "IpfsReader", "ipfs")}
    opener = ImageOpener(Settings(home=tmp_path), schemes)
    with pytest.raises(MissingExtraError, match=r"pip install 'facetrail\[ipfs\]'") as info:
        opener.open("ipfs://bafy/a.jpg")
    assert "ft_test_not_installed_package" in info.value.message
    assert opener.open(str(OBAMA)).width > 0  # the other schemes still work


def test_a_new_scheme_is_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ft_test_memory_reader.py").write_text(
        "from pathlib import Path\n"
        "class MemoryReader:\n"
        "    def __init__(self, settings):\n"
        "        self.root = Path(settings.home)\n"
        "    def read(self, source):\n"
        "        return (self.root / source.split('://', 1)[1]).read_bytes()\n"
    )
    (tmp_path / "obama.jpg").write_bytes(OBAMA.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path))
    schemes = {**SCHEMES, "mem": Scheme("ft_test_memory_reader", "MemoryReader")}
    opener = ImageOpener(Settings(home=tmp_path), schemes)
    assert opener.open("mem://obama.jpg").data == OBAMA.read_bytes()
    assert opener.reader("mem") is opener.reader("mem")  # built once


def test_one_opener_per_process_and_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert image_opener(settings) is image_opener(Settings(home=tmp_path))
    assert image_opener(settings) is not image_opener(settings.with_(max_image_bytes=5))
