"""Turning what users name (folders, files, lists, URLs, S3 prefixes) into job sources.

Every entry a scan finds with an image name becomes a source, whatever it turns out to be (a
FIFO, a dangling symlink, a directory named ``x.jpg``): it fails later as its own item with its
reason, instead of vanishing. Hidden names (``.x.jpg``) are skipped. A name that is not valid
UTF-8 becomes a ``file://`` URI with ``%XX`` escapes, which text columns and JSON can carry and
the opener reads back byte for byte; so does one read from a ``.txt`` or ``.csv`` list (a URL
with such bytes gets them ``%XX``-escaped).
"""

from __future__ import annotations

import csv
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.settings import Settings

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_NUMBERED = re.compile(r"^(?P<name>.+?)[_\- ]?\d+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True)
class EnrollEntry:
    """One image to enroll and the person it shows."""

    source: str
    external_id: str


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def source_of(path: Path) -> str:
    """``path`` as a job source: as given, or a ``file://`` URI when it is not valid UTF-8."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return path.absolute().as_uri()
    return text


def _text(name: str) -> str:
    """A file-system name as valid text (undecodable bytes shown as U+FFFD)."""
    return os.fsencode(name).decode("utf-8", "replace")


def scan_folder(root: Path) -> list[Path]:
    """The image-named entries under ``root``, recursively (symlinked folders too), sorted.

    A folder named like an image is an entry (it fails as an item), not a folder to descend.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()  # (device, inode): a symlink loop is walked once
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            children = list(folder.iterdir())
        except OSError:
            if folder is root:
                raise
            found.append(folder)  # an unreadable sub-folder fails as its own item
            continue
        for child in children:
            if is_image_name(child):
                found.append(child)
            elif child.is_dir():
                pending.append(child)
    return sorted(found)


def enroll_entries(root: Path) -> list[EnrollEntry]:
    """A folder per person (``Name/any.jpg``) or files named ``Name_N.jpg``; sorted, stable."""
    if not root.exists() and not root.is_symlink():
        raise InvalidParameterError(f"{source_of(root)}: no such file or folder")
    if not root.is_dir():
        return [EnrollEntry(source_of(root), person_from_filename(root))]
    entries: list[EnrollEntry] = []
    for child in sorted(root.iterdir()):
        if is_image_name(child):
            entries.append(EnrollEntry(source_of(child), person_from_filename(child)))
        elif child.is_dir():
            person = _text(child.name)
            entries.extend(EnrollEntry(source_of(f), person) for f in scan_folder(child))
    if not entries:
        raise InvalidParameterError(f"{source_of(root)}: no images found to enroll")
    return entries


def enroll_sources(
    sources: Iterable[str | Path], *, settings: Settings, person: str | None = None
) -> list[EnrollEntry]:
    """What a user names for enrollment, as entries, in order.

    A local folder or file follows :func:`enroll_entries`; an ``s3://bucket/prefix`` follows the
    same layout over its keys (a sub-prefix per person, or ``Name_N.jpg``); any other URL or an
    ``s3://`` image key is one image, its person taken from its file name. ``person`` names the
    person of every image found instead.
    """
    entries: list[EnrollEntry] = []
    for raw in sources:
        if isinstance(raw, str) and _SCHEME.match(raw):
            entries.extend(_remote_entries(raw, settings))
        else:
            entries.extend(enroll_entries(Path(raw)))
    if person is not None:
        return [EnrollEntry(e.source, person) for e in entries]
    return entries


def _remote_entries(source: str, settings: Settings) -> list[EnrollEntry]:
    import urllib.parse

    if source.lower().startswith("s3://") and not _is_image_key(source):
        from facetrail.images.s3 import list_s3_images, s3_client

        prefix = source if source.endswith("/") else source + "/"
        found = list_s3_images(prefix, client=s3_client(settings))
        if not found:
            raise InvalidParameterError(f"{source}: no images found to enroll")
        entries = []
        for uri in found:
            below = uri[len(prefix) :]
            folder, _, name = below.rpartition("/")
            person = folder.split("/", 1)[0] if folder else person_from_filename(Path(name))
            entries.append(EnrollEntry(uri, person))
        return entries
    name = urllib.parse.unquote(urllib.parse.urlsplit(source).path).rsplit("/", 1)[-1]
    return [EnrollEntry(source, person_from_filename(Path(name)))]


def person_from_filename(path: Path) -> str:
    stem = _text(path.stem)
    match = _NUMBERED.match(stem)
    return match.group("name") if match else stem


def expand_sources(
    sources: Iterable[str | Path],
    *,
    settings: Settings,
    column: str | None = None,
    upload: bool = False,
) -> list[str]:
    """What a user names, as one list of image sources, in order.

    A folder gives its images; a ``.txt`` file one source per line; a ``.csv`` file the values
    of ``column``; an ``s3://bucket/prefix`` the images under it; URLs (any ``scheme://``) and
    other files are taken as given (a bad one fails as its own item). With ``upload``, local
    files are put into the image store and given as ``upload://`` sources, so workers on other
    machines can read them.
    """
    out: list[str] = []
    for raw in sources:
        if isinstance(raw, str) and _SCHEME.match(raw):
            out.extend(_remote(raw, settings))
            continue
        path = Path(raw)
        suffix = path.suffix.lower()
        if path.is_dir():
            out.extend(source_of(f) for f in scan_folder(path))
        elif suffix == ".txt" and path.is_file():
            out.extend(_txt_lines(path, settings))
        elif suffix == ".csv" and path.is_file():
            out.extend(_csv_column(path, column))
        else:
            out.append(source_of(path))
    if upload:
        return [_upload_local(source, settings) for source in out]
    return out


def _remote(source: str, settings: Settings) -> list[str]:
    if source.lower().startswith("s3://") and not _is_image_key(source):
        from facetrail.images.s3 import list_s3_images, s3_client

        return list_s3_images(source, client=s3_client(settings))
    return [source]


def _is_image_key(uri: str) -> bool:
    return Path(uri.rsplit("/", 1)[-1]).suffix.lower() in IMAGE_SUFFIXES


def _listed(text: str) -> str:
    """A source read from a list (undecodable bytes kept as surrogate escapes) as valid text."""
    if _SCHEME.match(text):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogateescape")
            return urllib.parse.quote(raw, safe=":/?#[]@!$&'()*+,;=%~")
        return text
    return source_of(Path(text))


def _txt_lines(path: Path, settings: Settings) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    named = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [source for line in named for source in _remote(_listed(line), settings)]


def _csv_column(path: Path, column: str | None) -> list[str]:
    if column is None:
        raise InvalidParameterError(f"{path}: say which column holds the images (--column)")
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise InvalidParameterError(
                f"{path}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])})"
            )
        values = [(row[column] or "").strip() for row in reader]
    return [_listed(v) for v in values if v]


def _upload_local(source: str, settings: Settings) -> str:
    """A local file's bytes put in the image store; other sources and unreadable files as given."""
    from facetrail.images.decode import read_source
    from facetrail.images.opener import path_of, scheme_of
    from facetrail.images.store import upload

    if scheme_of(source) != "file":
        return source
    try:
        data = read_source(path_of(source), max_bytes=settings.max_image_bytes)
        return upload(settings, data)
    except FacetrailError:
        return source  # it fails as its own item, with its reason, where it is opened
