"""The markdown table: one row per figure, both systems, and the ratio facetrail / baseline."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.evaluate import Identification, Verification
from bench.metrics import DetectionCounts, ratio
from bench.throughput import Throughput

SECTIONS = ("verification", "identification", "detection", "throughput")


@dataclass
class Results:
    """One system's figures; a section that failed keeps its error text instead."""

    label: str
    rule: str = ""
    version: str = ""
    verification: Verification | None = None
    identification: Identification | None = None
    detection: DetectionCounts | None = None
    throughput: Throughput | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    metric: str
    measured_on: str
    value: Callable[[Results], float | None]
    fmt: Callable[[float], str]
    section: str
    with_ratio: bool = True


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def num(digits: int) -> Callable[[float], str]:
    return lambda x: "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def count(x: float) -> str:
    return str(int(x))


def _cell(results: Results, row: Row) -> tuple[str, float | None]:
    if row.section in results.errors:
        return "error", None
    value = row.value(results)
    return ("n/a", None) if value is None else (row.fmt(value), value)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "n/a"
    r = ratio(ours, theirs)
    return "n/a" if math.isnan(r) else f"{r:.2f}x"


def render(rows: list[Row], ours: Results, theirs: Results) -> str:
    header = ["metric", "measured on", ours.label, f"{theirs.label} (baseline)", "ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    previous = ""
    for row in rows:
        ours_text, ours_value = _cell(ours, row)
        theirs_text, theirs_value = _cell(theirs, row)
        r = _ratio(ours_value, theirs_value) if row.with_ratio else "-"
        on = "(same)" if row.measured_on == previous else row.measured_on
        previous = row.measured_on
        cells = [row.metric, on, ours_text, theirs_text, r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _v(f: Callable[[Verification], float]) -> Callable[[Results], float | None]:
    return lambda r: None if r.verification is None else f(r.verification)


def _i(f: Callable[[Identification], float]) -> Callable[[Results], float | None]:
    return lambda r: None if r.identification is None else f(r.identification)


def _d(f: Callable[[DetectionCounts], float]) -> Callable[[Results], float | None]:
    return lambda r: None if r.detection is None else f(r.detection)


def _t(f: Callable[[Throughput], float]) -> Callable[[Results], float | None]:
    return lambda r: None if r.throughput is None else f(r.throughput)


def build_rows(sections: list[str], measured_on: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    if "verification" in sections:
        on = measured_on["verification"]
        rows += [
            Row(
                "Verification accuracy, own fixed rule",
                on,
                _v(lambda v: v.accuracy),
                pct,
                "verification",
            ),
            Row("Verification ROC AUC", on, _v(lambda v: v.auc), num(4), "verification"),
            Row(
                "Verification pairs with no face (counted wrong)",
                on,
                _v(lambda v: v.no_face),
                count,
                "verification",
                False,
            ),
        ]
    if "identification" in sections:
        on = measured_on["identification"]
        rows += [
            Row("Identification top-1, own rule", on, _i(lambda i: i.top1), pct, "identification"),
            Row(
                "Identification rank-1, no threshold",
                on,
                _i(lambda i: i.rank1),
                pct,
                "identification",
            ),
            Row(
                "Held-out photos with no face (counted wrong)",
                on,
                _i(lambda i: i.no_face),
                count,
                "identification",
                False,
            ),
            Row(
                "Open-set identification accuracy (strangers must stay unknown)",
                measured_on["open_set"],
                _i(lambda i: i.open_set),
                pct,
                "identification",
            ),
            Row(
                "Strangers named as someone (open set)",
                "(same)",
                _i(lambda i: i.strangers_named),
                count,
                "identification",
                False,
            ),
        ]
    if "detection" in sections:
        on = measured_on["detection"]
        rows += [
            Row("Detection recall @ IoU >= 0.5", on, _d(lambda d: d.recall), pct, "detection"),
            Row(
                "Detection precision @ IoU >= 0.5", on, _d(lambda d: d.precision), pct, "detection"
            ),
            Row("Detections returned", on, _d(lambda d: d.detections), count, "detection", False),
        ]
    if "throughput" in sections:
        on = measured_on["throughput"]
        rows += [
            Row(
                "Identification throughput, images/s",
                on,
                _t(lambda t: t.images_per_s),
                num(2),
                "throughput",
            ),
            Row(
                "Identification throughput, faces/s",
                on,
                _t(lambda t: t.faces_per_s),
                num(2),
                "throughput",
            ),
            Row(
                "CPU time per image, ms (all threads)",
                on,
                _t(lambda t: t.cpu_ms_per_image),
                num(0),
                "throughput",
            ),
            Row(
                "Peak memory (max RSS of the process), MiB",
                on,
                _t(lambda t: t.peak_rss_kib / 1024),
                num(0),
                "throughput",
            ),
        ]
    return rows
