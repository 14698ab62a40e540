"""Per-image tagging results -> the long and wide tables analysts load into pandas.

A result is a dict per image (``image_result`` builds one)::

    {"image": "photos/a.jpg", "status": "succeeded", "error": None,
     "labels": [DetectLabels Label dicts], "text": [DetectText TextDetection dicts],
     "people": [RecognizeCelebrities CelebrityFaces items] or the whole response
               ({"CelebrityFaces": [...], "UnrecognizedFaces": [...]}),
     "moderation": [DetectModerationLabels ModerationLabel dicts]}

and a failed one ``{"image": ..., "status": "failed", "error": {"code": ..., "message": ...}}``.
The entries are Rekognition's response shapes, so results from the local models and from the
rekognition backend (boto3) tabulate the same way. An operation that was not run is absent.

Long table: one row per finding, columns ``image, status, error_code, error_message, type,
value, confidence, left, top, width, height, extra`` (``extra``: JSON). Types: ``label`` (no box),
``object`` (one per label instance, with its box), ``text_line``, ``text_word``, ``person``,
``unrecognized_face``, ``moderation``. An image with no finding still has one row (empty type),
and a failed image is exactly one row carrying its error: no image is dropped and a failed image
leaves no partial rows.

Wide table: one row per image: ``image, status, error``, then numbered columns per type
(``label_1, label_1_confidence, ...``, ``text_1, ...`` for lines, ``text_all``, ``person_1, ...``,
``unrecognized_faces``, ``moderation_1, ...``), as many as the busiest image needs (or
``max_per_type``). Boxes are ratios of the image size; confidences are 0-100.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from facetrail.errors import FacetrailError

LONG_COLUMNS = (
    "image",
    "status",
    "error_code",
    "error_message",
    "type",
    "value",
    "confidence",
    "left",
    "top",
    "width",
    "height",
    "extra",
)
RESULT_KEYS = ("labels", "text", "people", "moderation")
# OWASP's CSV-injection advice: a spreadsheet runs a cell starting with one of these as a formula,
# so such text cells are written with a leading "'" (numbers are left as they are).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def image_result(
    image: str,
    *,
    results: Mapping[str, Any] | None = None,
    error: FacetrailError | None = None,
) -> dict[str, Any]:
    """One image's entry for the tables: its results, or its error (never both)."""
    if error is not None:
        return {
            "image": image,
            "status": "failed",
            "error": {"code": error.code, "message": error.message},
        }
    return {"image": image, "status": "succeeded", "error": None, **dict(results or {})}


def _failed(result: Mapping[str, Any]) -> bool:
    return result.get("status") != "succeeded" or bool(result.get("error"))


def _error(result: Mapping[str, Any]) -> tuple[str | None, str | None]:
    error = result.get("error")
    if not error:
        return ("error", "failed without an error message") if _failed(result) else (None, None)
    if isinstance(error, Mapping):
        return str(error.get("code") or "error"), str(error.get("message") or "")
    return "error", str(error)


def _box(geometry: Mapping[str, Any] | None) -> tuple[float | None, ...]:
    if not geometry:
        return (None, None, None, None)
    return tuple(
        float(geometry[k]) if geometry.get(k) is not None else None
        for k in ("Left", "Top", "Width", "Height")
    )


def _people(value: Any) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(recognized, unrecognized) face entries from a list or a whole response."""
    if isinstance(value, Mapping):
        return list(value.get("CelebrityFaces") or []), list(value.get("UnrecognizedFaces") or [])
    return list(value or []), []


def _extra(data: Mapping[str, Any]) -> str | None:
    cleaned = {k: v for k, v in data.items() if v not in (None, [], {})}
    return json.dumps(cleaned, sort_keys=True, ensure_ascii=False) if cleaned else None


def long_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The long-table rows of one image."""
    image = str(result.get("image", ""))
    base = dict.fromkeys(LONG_COLUMNS)
    base["image"] = image
    if _failed(result):
        code, message = _error(result)
        return [{**base, "status": "failed", "error_code": code, "error_message": message}]
    base["status"] = "succeeded"

    rows: list[dict[str, Any]] = []

    def add(kind: str, value: Any, confidence: Any, box: Any = None, **extra: Any) -> None:
        left, top, width, height = _box(box)
        rows.append(
            {
                **base,
                "type": kind,
                "value": value,
                "confidence": None if confidence is None else float(confidence),
                "left": left,
                "top": top,
                "width": width,
                "height": height,
                "extra": _extra(extra),
            }
        )

    for label in result.get("labels") or []:
        add(
            "label",
            label.get("Name"),
            label.get("Confidence"),
            parents=[p.get("Name") for p in label.get("Parents") or []],
            categories=[c.get("Name") for c in label.get("Categories") or []],
        )
        for instance in label.get("Instances") or []:
            add(
                "object", label.get("Name"), instance.get("Confidence"), instance.get("BoundingBox")
            )
    for entry in result.get("text") or []:
        kind = "text_line" if entry.get("Type") == "LINE" else "text_word"
        add(
            kind,
            entry.get("DetectedText"),
            entry.get("Confidence"),
            (entry.get("Geometry") or {}).get("BoundingBox"),
            id=entry.get("Id"),
            parent_id=entry.get("ParentId"),
        )
    known, unknown = _people(result.get("people"))
    for face in known:
        geometry = face.get("Face") or {}
        add(
            "person",
            face.get("Name"),
            face.get("MatchConfidence"),
            geometry.get("BoundingBox"),
            id=face.get("Id"),
            urls=list(face.get("Urls") or []),
        )
    for face in unknown:
        add("unrecognized_face", None, face.get("Confidence"), face.get("BoundingBox"))
    for label in result.get("moderation") or []:
        add(
            "moderation",
            label.get("Name"),
            label.get("Confidence"),
            parent=label.get("ParentName") or None,
            level=label.get("TaxonomyLevel"),
        )
    return rows or [base]


def long_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [row for result in results for row in long_rows(result)]
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS))


def _numbered(prefix: str, items: Sequence[tuple[Any, Any]], count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(count):
        value, confidence = items[i] if i < len(items) else (None, None)
        out[f"{prefix}_{i + 1}"] = value
        out[f"{prefix}_{i + 1}_confidence"] = None if confidence is None else float(confidence)
    return out


def _wide_items(result: Mapping[str, Any]) -> dict[str, list[tuple[Any, Any]]]:
    lines = [t for t in result.get("text") or [] if t.get("Type") == "LINE"]
    known, _ = _people(result.get("people"))
    return {
        "label": [(lb.get("Name"), lb.get("Confidence")) for lb in result.get("labels") or []],
        "text": [(t.get("DetectedText"), t.get("Confidence")) for t in lines],
        "person": [(f.get("Name"), f.get("MatchConfidence")) for f in known],
        "moderation": [
            (m.get("Name"), m.get("Confidence")) for m in result.get("moderation") or []
        ],
    }


def wide_table(
    results: Iterable[Mapping[str, Any]], *, max_per_type: int | None = None
) -> pd.DataFrame:
    results = list(results)
    items = [None if _failed(r) else _wide_items(r) for r in results]
    prefixes = ("label", "text", "person", "moderation")
    counts = {p: max((len(i[p]) for i in items if i is not None), default=0) for p in prefixes}
    if max_per_type is not None:
        counts = {p: min(c, max_per_type) for p, c in counts.items()}
    ran = {key: any(key in r for r in results if not _failed(r)) for key in RESULT_KEYS}
    rows: list[dict[str, Any]] = []
    for result, found in zip(results, items, strict=True):
        row: dict[str, Any] = {"image": str(result.get("image", ""))}
        if found is None:
            code, message = _error(result)
            row.update(status="failed", error=f"{code}: {message}" if message else code)
            found = {p: [] for p in prefixes}
        else:
            row.update(status="succeeded", error=None)
        row.update(_numbered("label", found["label"], counts["label"]))
        row.update(_numbered("text", found["text"], counts["text"]))
        if ran["text"]:
            lines = [str(t) for t, _ in found["text"]]
            row["text_all"] = "\n".join(lines) if lines else None
        row.update(_numbered("person", found["person"], counts["person"]))
        if ran["people"]:
            row["unrecognized_faces"] = (
                None if _failed(result) else len(_people(result.get("people"))[1])
            )
        row.update(_numbered("moderation", found["moderation"], counts["moderation"]))
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, path: str | Path, *, parquet: bool | None = None) -> Path:
    """CSV, or Parquet when ``parquet`` (default: by the ``.parquet`` suffix)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    as_parquet = target.suffix.lower() == ".parquet" if parquet is None else parquet
    if as_parquet:
        frame.to_parquet(target, index=False)
    else:
        # Text is always quoted: pandas leaves a lone "\r" unquoted, which splits the row.
        frame.map(csv_safe).to_csv(target, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return target


def csv_safe(value: Any) -> Any:
    """``value``, with a leading "'" when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_tables(
    results: Iterable[Mapping[str, Any]],
    *,
    long: str | Path | None = None,
    wide: str | Path | None = None,
    parquet: bool | None = None,
    max_per_type: int | None = None,
) -> dict[str, Path]:
    """Write the long and/or wide table of ``results``; returns what was written where."""
    results = list(results)
    written: dict[str, Path] = {}
    if long is not None:
        written["long"] = write_table(long_table(results), long, parquet=parquet)
    if wide is not None:
        frame = wide_table(results, max_per_type=max_per_type)
        written["wide"] = write_table(frame, wide, parquet=parquet)
    return written
