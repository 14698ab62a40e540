"""Turning what users point at (folders, files) into job inputs."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facetrail.errors import InvalidParameterError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_NUMBERED = re.compile(r"^(?P<name>.+?)[_\- ]?\d+$")


@dataclass(frozen=True)
class EnrollEntry:
    source: str
    external_id: str


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def enroll_entries(root: Path) -> list[EnrollEntry]:
    """A folder per person (``Name/any.jpg``) or files named ``Name_N.jpg``; sorted, stable."""
    if not root.exists():
        raise InvalidParameterError(f"{root}: no such file or folder")
    if root.is_file():
        return [EnrollEntry(str(root), person_from_filename(root))]
    entries: list[EnrollEntry] = []
    for child in sorted(root.iterdir()):
        if child.is_dir():
            for f in sorted(child.rglob("*")):
                if f.is_file() and is_image_name(f):
                    entries.append(EnrollEntry(str(f), child.name))
        elif child.is_file() and is_image_name(child):
            entries.append(EnrollEntry(str(child), person_from_filename(child)))
    if not entries:
        raise InvalidParameterError(f"{root}: no images found to enroll")
    return entries


def person_from_filename(path: Path) -> str:
    match = _NUMBERED.match(path.stem)
    return match.group("name") if match else path.stem


def tag_sources(
    sources: Iterable[str | Path], *, column: str | None = None, s3: object | None = None
) -> list[str]:
    """What `facetrail tag` accepts, as one list of image sources (paths, URLs, s3:// keys).

    A folder gives its images; a ``.txt`` file one source per line; a ``.csv`` file the values of
    ``column``; an ``s3://bucket/prefix`` the images under it (``s3`` is a boto3 client); URLs
    and other files are taken as given (a bad one fails as its own item).
    """
    out: list[str] = []
    for raw in sources:
        text = str(raw)
        lowered = text.lower()
        if lowered.startswith(("http://", "https://")):
            out.append(text)
        elif lowered.startswith("s3://"):
            if Path(text).suffix.lower() in IMAGE_SUFFIXES:
                out.append(text)
            else:
                from facetrail.tagging.fetch import list_s3_images

                out.extend(list_s3_images(text, client=s3))
        elif Path(text).suffix.lower() == ".txt" and Path(text).is_file():
            lines = Path(text).read_text(encoding="utf-8").splitlines()
            out.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
        elif Path(text).suffix.lower() == ".csv" and Path(text).is_file():
            out.extend(_csv_column(Path(text), column))
        else:
            out.extend(expand_images([text]))
    return out


def _csv_column(path: Path, column: str | None) -> list[str]:
    if column is None:
        raise InvalidParameterError(f"{path}: say which column holds the images (--column)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise InvalidParameterError(
                f"{path}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])})"
            )
        return [row[column].strip() for row in reader if (row[column] or "").strip()]


def expand_images(paths: Iterable[str | Path]) -> list[str]:
    """Files are taken as given (bad ones fail as items); folders contribute their images."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*")) if f.is_file() and is_image_name(f))
        else:
            out.append(str(path))
    return out
