"""Turning what users point at (folders, files) into job inputs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from facetrail.errors import InvalidParameterError
from facetrail.services.jobs import EnrollEntry

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_NUMBERED = re.compile(r"^(?P<name>.+?)[_\- ]?\d+$")


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
