"""Long and wide tables from per-image results, and their CSV/Parquet files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas", reason="needs the tagging extra")

from facetrail.errors import ImageTooLargeError  # noqa: E402
from facetrail.tagging.tables import (  # noqa: E402
    LONG_COLUMNS,
    image_result,
    long_table,
    wide_table,
    write_tables,
)


def _box(left: float) -> dict[str, float]:
    return {"Width": 0.2, "Height": 0.3, "Left": left, "Top": 0.1}


DOG: dict[str, Any] = image_result(
    "dog.jpg",
    results={
        "labels": [
            {
                "Name": "Dog",
                "Confidence": 41.7,
                "Instances": [{"BoundingBox": _box(0.16), "Confidence": 41.7}],
                "Parents": [{"Name": "Mammal"}, {"Name": "Animal"}],
                "Categories": [{"Name": "Animals and Pets"}],
            },
            {"Name": "Animal", "Confidence": 41.7, "Instances": [], "Parents": []},
        ],
        "text": [
            {
                "DetectedText": "STOP here",
                "Type": "LINE",
                "Id": 0,
                "Confidence": 99.0,
                "Geometry": {"BoundingBox": _box(0.5)},
            },
            {
                "DetectedText": "STOP",
                "Type": "WORD",
                "Id": 1,
                "ParentId": 0,
                "Confidence": 99.5,
                "Geometry": {"BoundingBox": _box(0.5)},
            },
        ],
        "people": {
            "CelebrityFaces": [
                {
                    "Name": "Rose Leslie",
                    "Id": "rose_leslie",
                    "Urls": ["https://example.org/rose"],
                    "MatchConfidence": 97.3,
                    "Face": {"BoundingBox": _box(0.4), "Confidence": 99.9},
                }
            ],
            "UnrecognizedFaces": [{"BoundingBox": _box(0.7), "Confidence": 98.0}],
        },
        "moderation": [],
    },
)
EMPTY = image_result("blank.png", results={"labels": [], "text": [], "moderation": []})
BROKEN = image_result("broken.jpg", error=ImageTooLargeError("broken.jpg: too large"))


def test_long_table_rows() -> None:
    table = long_table([DOG, EMPTY, BROKEN])
    assert list(table.columns) == list(LONG_COLUMNS)
    dog = table[table.image == "dog.jpg"]
    assert dog.type.tolist() == [
        "label", "object", "label", "text_line", "text_word", "person", "unrecognized_face",
    ]  # fmt: skip
    obj = dog[dog.type == "object"].iloc[0]
    assert (obj.value, obj.confidence, obj.left, obj.width) == ("Dog", 41.7, 0.16, 0.2)
    label = dog[dog.type == "label"].iloc[0]
    assert pd.isna(label.left)
    assert json.loads(label.extra) == {
        "parents": ["Mammal", "Animal"],
        "categories": ["Animals and Pets"],
    }
    person = dog[dog.type == "person"].iloc[0]
    assert (person.value, person.confidence) == ("Rose Leslie", 97.3)
    assert json.loads(person.extra)["urls"] == ["https://example.org/rose"]
    word = dog[dog.type == "text_word"].iloc[0]
    assert json.loads(word.extra) == {"id": 1, "parent_id": 0}
    # An image with nothing found still has its row; a failed one is exactly one row.
    blank = table[table.image == "blank.png"]
    assert len(blank) == 1 and pd.isna(blank.iloc[0].type) and blank.iloc[0].status == "succeeded"
    broken = table[table.image == "broken.jpg"]
    assert len(broken) == 1
    row = broken.iloc[0]
    assert (row.status, row.error_code) == ("failed", "image_too_large")
    assert pd.isna(row.type) and pd.isna(row.value)


def test_a_failed_image_never_contributes_partial_rows() -> None:
    """A result marked failed carries no findings into the tables, even if some were attached."""
    partial = {**BROKEN, "labels": DOG["labels"]}
    assert len(long_table([partial])) == 1
    wide = wide_table([partial, DOG])
    assert wide.iloc[0].isna()[["label_1", "label_1_confidence", "text_1", "person_1"]].all()


def test_wide_table_has_numbered_columns() -> None:
    wide = wide_table([DOG, EMPTY, BROKEN])
    assert wide.image.tolist() == ["dog.jpg", "blank.png", "broken.jpg"]
    assert list(wide.columns) == [
        "image", "status", "error",
        "label_1", "label_1_confidence", "label_2", "label_2_confidence",
        "text_1", "text_1_confidence", "text_all",
        "person_1", "person_1_confidence", "unrecognized_faces",
    ]  # fmt: skip
    dog = wide.iloc[0]
    assert (dog.label_1, dog.label_2, dog.text_1, dog.person_1) == (
        "Dog", "Animal", "STOP here", "Rose Leslie",
    )  # fmt: skip
    assert dog.unrecognized_faces == 1
    assert wide.iloc[2].status == "failed"
    assert wide.iloc[2].error == "image_too_large: broken.jpg: too large"
    capped = wide_table([DOG], max_per_type=1)
    assert "label_2" not in capped.columns


@pytest.mark.parametrize("parquet", [False, True])
def test_files_round_trip(tmp_path: Path, parquet: bool) -> None:
    pytest.importorskip("pyarrow")
    suffix = "parquet" if parquet else "csv"
    written = write_tables(
        [DOG, BROKEN], long=tmp_path / f"long.{suffix}", wide=tmp_path / f"wide.{suffix}"
    )
    read = pd.read_parquet if parquet else pd.read_csv
    long, wide = read(written["long"]), read(written["wide"])
    assert len(long) == 8 and len(wide) == 2
    assert wide.label_1.tolist()[0] == "Dog"
    assert long[long.image == "broken.jpg"].error_code.tolist() == ["image_too_large"]


def test_csv_cells_cannot_start_a_formula(tmp_path: Path) -> None:
    # OWASP's CSV-injection advice: text a spreadsheet would run as a formula gets a leading "'".
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain"]
    text = [
        {"DetectedText": value, "Type": "LINE", "Id": i, "Confidence": 90.0 - i}
        for i, value in enumerate(hostile)
    ]
    result = image_result("=cmd|' /C calc'!A0", results={"text": text})
    written = write_tables([result], long=tmp_path / "long.csv", wide=tmp_path / "wide.csv")
    long = pd.read_csv(written["long"], keep_default_na=False)
    lines = long[long.type == "text_line"]
    assert lines.value.tolist() == ["'" + v for v in hostile[:-1]] + ["plain"]
    assert set(long.image) == {"'=cmd|' /C calc'!A0"}
    # Numbers stay numbers, negative ones included.
    assert lines.confidence.tolist() == [90.0 - i for i in range(len(hostile))]
    assert pd.api.types.is_float_dtype(lines.confidence)
    wide = pd.read_csv(written["wide"], keep_default_na=False)
    assert wide.text_1.tolist() == ["'" + hostile[0]]
    # Parquet keeps the values as they are: it is not opened as a spreadsheet.
    pytest.importorskip("pyarrow")
    parquet = write_tables([result], long=tmp_path / "long.parquet")["long"]
    assert pd.read_parquet(parquet).value.tolist() == hostile
