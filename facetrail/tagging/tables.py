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

The operations and what each contributes to the tables are ``facetrail.tagging.operations``.

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
from facetrail.tagging.operations import OPERATIONS

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

    for op in OPERATIONS.values():
        for kind, value, confidence, box, extra in op.findings(result.get(op.name)):
            add(kind, value, confidence, box, **extra)
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


def wide_table(
    results: Iterable[Mapping[str, Any]], *, max_per_type: int | None = None
) -> pd.DataFrame:
    results = list(results)
    ops = list(OPERATIONS.values())
    items = [
        None if _failed(r) else {op.name: op.wide_items(r.get(op.name)) for op in ops}
        for r in results
    ]
    counts = {
        op.name: max((len(i[op.name]) for i in items if i is not None), default=0) for op in ops
    }
    if max_per_type is not None:
        counts = {name: min(c, max_per_type) for name, c in counts.items()}
    ran = {op.name: any(op.name in r for r in results if not _failed(r)) for op in ops}
    rows: list[dict[str, Any]] = []
    for result, found in zip(results, items, strict=True):
        row: dict[str, Any] = {"image": str(result.get("image", ""))}
        failed = found is None
        if found is None:
            code, message = _error(result)
            row.update(status="failed", error=f"{code}: {message}" if message else code)
            found = {op.name: [] for op in ops}
        else:
            row.update(status="succeeded", error=None)
        for op in ops:
            row.update(_numbered(op.wide_prefix, found[op.name], counts[op.name]))
            if ran[op.name] and op.wide_summary is not None:
                row.update(op.wide_summary(result.get(op.name), failed))
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
