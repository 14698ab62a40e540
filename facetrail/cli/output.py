"""Printing results for people (tables) and programs (--json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def _tag_summary(results: dict[str, Any]) -> str:
    labels = [lb["Name"] for lb in results.get("labels", [])[:5]]
    lines = [t for t in results.get("text", []) if t.get("Type") == "LINE"]
    people = [c["Name"] for c in results.get("people", {}).get("CelebrityFaces", [])]
    flags = [m["Name"] for m in results.get("moderation", [])]
    parts = [f"labels {', '.join(labels) or '-'}", f"{len(lines)} text lines"]
    if people:
        parts.append(f"people {', '.join(people)}")
    if flags:
        parts.append(f"moderation {', '.join(flags)}")
    return "; ".join(parts)


def describe_job(report: dict[str, Any], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    # Tag jobs run against no collection.
    on = (
        f" on {report['collection']!r} v{report['collection_version']}"
        if report.get("collection") is not None
        else ""
    )
    out.write(
        f"job {report['job_id']} ({report['kind']}, {report['backend']}){on}: "
        f"{report['status']}, {report['succeeded']}/{report['total']} ok, "
        f"{report['failed']} failed\n"
    )
    if report.get("resume"):
        out.write(f"  its process ({report['runner']}) is gone; resume it: {report['resume']}\n")
    for image in report.get("images", []):
        if image["status"] == "failed":
            out.write(f"  {image['image']}: FAILED [{image['error_code']}] {image['error']}\n")
            continue
        if report["kind"] == "tag":
            out.write(f"  {image['image']}: {_tag_summary(image.get('results', {}))}\n")
            continue
        if report["kind"] in ("enroll", "reindex"):
            out.write(f"  {image['image']}: {image['status']} as {image.get('person')}\n")
            continue
        names = [
            f"{_name(f)} #{f['face_result_id']}" if "face_result_id" in f else _name(f)
            for f in image["faces"]
        ]
        out.write(f"  {image['image']}: {', '.join(names) or 'no faces'}\n")


def _name(face: dict[str, Any]) -> str:
    if not face["person"]:
        return "unknown"
    if face["similarity"] is None:  # named by a correction, not by a score
        return f"{face['person']} (corrected)"
    return f"{face['person']} ({face['similarity']:.1f})"
