"""`facetrail tag` end to end on real photos: labels, text, known people, errors, tables."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import pandas as pd
import pytest

from facetrail.api import Facetrail
from facetrail.cli.main import main
from facetrail.settings import Settings
from tests import badinputs
from tests.conftest import DATA, KNN

pytest.importorskip("onnxruntime", reason="needs the tagging extra")

NON_FACES = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"
ANIMALS = {"dog.jpg": "Dog", "eagle.jpg": "Bird", "giraffe.jpg": "Giraffe", "horses.jpg": "Horse"}
PAGES = DATA / "ocr" / "tesseract"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of links to the shared photos (nothing copied), plus a broken file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ANIMALS:
        (photos / name).symlink_to(NON_FACES / name)
    (photos / "phototest.tif").symlink_to(PAGES / "phototest.tif")
    (photos / "phototest-rotated-R.png").symlink_to(PAGES / "phototest-rotated-R.png")
    (photos / "kit_with_rose.jpg").symlink_to(KNN / "test" / "kit_with_rose.jpg")
    badinputs.corrupt_jpeg(photos)
    return photos


@pytest.fixture
def band(cli: Settings) -> Settings:
    """The CLI's environment, with "band" enrolled and marked as public figures."""
    Facetrail(cli).enroll("band", KNN / "train")
    assert main(["collections", "public-figures", "band"]) == 0
    assert main(["people", "urls", "rose_leslie", "https://example.org/rose", "-c", "band"]) == 0
    return cli


def test_tag_a_folder_into_long_and_wide_tables(
    band: Settings, folder: Path, tmp_path: Path
) -> None:
    long_csv, wide_csv = tmp_path / "long.csv", tmp_path / "wide.csv"
    code = main(["tag", str(folder), "--long", str(long_csv), "--wide", str(wide_csv)])
    assert code == 0  # partial: one broken file among good ones
    long = pd.read_csv(long_csv)
    wide = pd.read_csv(wide_csv)
    # pandas-stubs type a group's key as any scalar; the "image" column holds paths (str).
    by_image = {Path(cast(str, i)).name: rows for i, rows in long.groupby("image")}

    assert sorted(wide["image"].map(lambda p: Path(p).name)) == sorted(
        p.name for p in folder.iterdir()
    )
    for name, label in ANIMALS.items():
        labels = set(by_image[name].query("type == 'label'")["value"])
        assert label in labels, (name, labels)

    for scan in ("phototest.tif", "phototest-rotated-R.png"):  # upright, and turned sideways
        lines = " ".join(by_image[scan].query("type == 'text_line'")["value"])
        assert "quick brown dog jumped" in lines, (scan, lines)

    people = by_image["kit_with_rose.jpg"].query("type == 'person'")
    assert set(people["value"]) == {"kit harington", "rose leslie"}
    assert "https://example.org/rose" in " ".join(people["extra"].astype(str))

    broken = by_image["corrupt.jpg"]
    assert len(broken) == 1  # one row carrying the error, nothing partial
    assert broken.iloc[0]["status"] == "failed"
    assert broken.iloc[0]["error_code"] == "invalid_image"
    assert wide.set_index(wide["image"].map(lambda p: Path(p).name)).loc[
        "dog.jpg", "label_1"
    ] in set(by_image["dog.jpg"].query("type == 'label'")["value"])


class _Redirect(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.jpg"
    server.shutdown()


def test_url_batches_refuse_internal_addresses(
    settings: Settings, tmp_path: Path, redirector: str
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "\n".join(
            [
                "http://127.0.0.1:9/a.jpg",
                "http://169.254.169.254/latest/meta-data/",
                "http://10.1.2.3/b.jpg",
                "ftp://127.0.0.1/b.jpg",
                redirector,
            ]
        )
    )
    # The redirecting server itself is allowed; where it points is not.
    ft = Facetrail(settings.with_(fetch_allow_networks="127.0.0.1/32"))
    report = ft.tag([urls], ops=["labels"])
    codes = [(i["status"], i["error_code"]) for i in report["images"]]
    assert codes[0] == ("failed", "fetch_failed")  # allowed, but nothing listens there
    assert codes[1:] == [("failed", "url_refused")] * 4
    long, wide = ft.tag_tables(report["job_id"])
    assert len(long) == len(wide) == 5
