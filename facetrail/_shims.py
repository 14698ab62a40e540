"""Stand-ins for names that other parts of the package provide (SHIM(H4): delete on merge).

Each function below has the signature of its real home, named in its docstring; code that uses
them imports from here only until those homes exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from facetrail.backends import recognizer_for
from facetrail.backends.base import Recognizer as Backend  # SHIM(H4)
from facetrail.errors import ImageNotFoundError, InvalidParameterError
from facetrail.images import LoadedImage, decode_image, load_image
from facetrail.settings import Settings
from facetrail.sources import EnrollEntry, enroll_entries, tag_sources

__all__ = [
    "OPERATIONS",
    "Backend",
    "EnrollEntry",
    "backend_for",
    "check_ops",
    "enroll_entries",
    "expand_sources",
    "open_bytes",
    "open_image",
    "run_ops",
    "upload",
]

UPLOAD = "upload://"
OPERATIONS = ("labels", "text", "people", "moderation")  # SHIM(H4)


def _store(settings: Settings) -> Path:  # SHIM(H4)
    return settings.home / "images"


def upload(settings: Settings, data: bytes) -> str:  # SHIM(H4): facetrail.images.upload
    return _put(settings, data)


def _put(settings: Settings, data: bytes) -> str:  # SHIM(H4)
    digest = hashlib.sha256(data).hexdigest()
    path = _store(settings) / digest[:2] / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return UPLOAD + digest


def open_bytes(  # SHIM(H4): facetrail.images.open_bytes
    settings: Settings, data: bytes, *, source: str
) -> LoadedImage:
    return decode_image(
        data,
        source=source,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )


def open_image(settings: Settings, source: str) -> LoadedImage:  # SHIM(H4): facetrail.images
    lowered = source.lower()
    if lowered.startswith(UPLOAD):
        path = _store(settings) / source[len(UPLOAD) :][:2] / source[len(UPLOAD) :]
        if not path.is_file():
            raise ImageNotFoundError(f"{source}: not in the image store")
        return open_bytes(settings, path.read_bytes(), source=source)
    if "://" in lowered:
        from facetrail.tagging import Tagger

        return Tagger(settings).load(source)
    return load_image(
        source, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )


def expand_sources(  # SHIM(H4): facetrail.images.scan.expand_sources
    sources: Iterable[str | Path],
    *,
    settings: Settings,
    column: str | None = None,
    upload: bool = False,
) -> list[str]:
    s3 = None
    sources = list(sources)
    if any(str(s).lower().startswith("s3://") for s in sources):
        from facetrail.tagging.fetch import s3_client

        s3 = s3_client(settings)
    out = tag_sources(sources, column=column, s3=s3)
    if not upload:
        return out
    return [
        _put(settings, Path(s).read_bytes()) if "://" not in s and Path(s).is_file() else s
        for s in out
    ]


def backend_for(  # SHIM(H4): facetrail.backends.backend_for
    settings: Settings, name: str, options: dict[str, Any]
) -> Backend:
    return recognizer_for(settings, name, options)


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:  # SHIM(H4): facetrail.tagging.operations
    unknown = [op for op in ops if op not in OPERATIONS]
    if unknown or not ops:
        raise InvalidParameterError(
            f"unknown tagging operation(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(OPERATIONS)}"
        )
    return tuple(dict.fromkeys(ops))


def run_ops(  # SHIM(H4): facetrail.tagging.operations.run_ops
    settings: Settings, backend: Backend, image: LoadedImage, ops: Sequence[str]
) -> dict[str, Any]:
    from facetrail.services import known_people
    from facetrail.tagging import tagger_for

    tagger = tagger_for(settings, backend.name)
    results: dict[str, Any] = dict(tagger.tag(image, [op for op in ops if op != "people"]))
    if "people" in ops:
        results["people"] = known_people.recognize(settings, image)
    return results
