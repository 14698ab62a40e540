"""One way in for images: a source string -> bytes (by its scheme) -> a decoded LoadedImage.

Every path that reads an image (jobs of every kind, the CLI, the Python API, ``facetrail serve``)
goes through here. A scheme registry maps each scheme to the reader that handles it, imported on
first use (so a missing optional dependency only hurts the sources that need it, with an install
hint naming the extra):

    local paths, ``file://``  facetrail.images.opener.PathReader
    ``http://``, ``https://``  facetrail.images.http.HttpReader (SSRF-guarded)
    ``s3://bucket/key``        facetrail.images.s3.S3Reader
    ``upload://<sha256>``      facetrail.images.store.UploadReader (the image store)

Any other ``scheme://`` is refused rather than read as a file name. Readers enforce
``max_image_bytes`` before reading where the scheme tells the size (file size, Content-Length,
S3 ContentLength) and while reading otherwise; ``decode_image`` checks ``max_image_pixels`` from
the header before decoding.

Local files are confined: a caller that is not local (a job from a ``facetrail.submit`` payload)
reads only files under ``FACETRAIL_IMAGE_ROOTS``, checked after resolving symlinks, and anything
else fails with one message that says nothing about the file. Direct Python callers and jobs a
local user created (``trusted_paths``) read any file (``local=True``, the default here; jobs
decide through ``facetrail.jobs.runner.Context``). To add a scheme: a module with a reader class
(``__init__(settings)``, ``read(source) -> bytes``) and one line in ``SCHEMES``.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from facetrail.errors import (
    InvalidImageError,
    MissingExtraError,
    SourceRefusedError,
    URLRefusedError,
)
from facetrail.images.decode import LoadedImage, decode_image, read_source
from facetrail.settings import Settings

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class Reader(Protocol):
    """Reads one scheme's sources; built once per opener, shared between threads."""

    def read(self, source: str) -> bytes: ...


@dataclass(frozen=True)
class Scheme:
    """Where a scheme's reader lives, and the extra that installs what it imports."""

    module: str
    cls: str
    extra: str | None = None


SCHEMES: dict[str, Scheme] = {
    "file": Scheme("facetrail.images.opener", "PathReader"),
    "http": Scheme("facetrail.images.http", "HttpReader"),
    "https": Scheme("facetrail.images.http", "HttpReader"),
    "s3": Scheme("facetrail.images.s3", "S3Reader", "s3"),
    "upload": Scheme("facetrail.images.store", "UploadReader"),
}


def scheme_of(source: str) -> str:
    """``"https"`` for ``https://...``; ``"file"`` for a path with no scheme."""
    match = _SCHEME.match(source)
    return match.group(1).lower() if match else "file"


def path_of(source: str) -> Path:
    """A local path or ``file://`` URI as a path (percent-escapes decoded as file-system bytes)."""
    if scheme_of(source) != "file" or not _SCHEME.match(source):
        return Path(source)
    parts = urllib.parse.urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise URLRefusedError(f"{source}: file:// URIs on another host are not read")
    if parts.query or parts.fragment:
        raise URLRefusedError(f"{source}: a file:// URI has no query or fragment")
    # Bytes, not text: a name that is not valid UTF-8 travels as %XX escapes (Path.as_uri()).
    return Path(os.fsdecode(urllib.parse.unquote_to_bytes(parts.path)))


def _inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or below it (``/a/bc`` is not under ``/a/b``)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class PathReader:
    """Local files, by path or ``file://`` URI, under ``max_image_bytes``.

    ``read`` confines sources to the configured image roots; ``local=True`` (a local user named
    the file) reads any file the process can read.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.max_image_bytes
        self.roots = tuple(os.path.realpath(root) for root in settings.image_root_list)

    def confine(self, path: Path, source: str) -> Path:
        """``path`` with symlinks resolved, if that lies under a root; else SourceRefusedError.

        Checked before anything touches the file itself, so a refusal is the same whether the
        file exists, is a folder or a FIFO, or how large it is.
        """
        resolved = os.path.realpath(path)
        if not any(_inside(resolved, root) for root in self.roots):
            raise SourceRefusedError(
                f"{source}: local files are read only under the configured image roots "
                "(FACETRAIL_IMAGE_ROOTS)"
            )
        # The resolved path is what is read: a symlink swapped in after the check is not
        # followed out of the root at its last step.
        return Path(resolved)

    def read(self, source: str, *, local: bool = False) -> bytes:
        path = path_of(source)
        if not local:
            path = self.confine(path, source)
        try:
            return read_source(path, max_bytes=self.max_bytes)
        except InvalidImageError as exc:
            # Errors name the source the caller gave, not the decoded or resolved path.
            if str(path) != source:
                raise type(exc)(exc.message.replace(str(path), source, 1)) from None
            raise


class ImageOpener:
    """Opens any source the scheme registry knows. Thread-safe; one per settings is enough."""

    def __init__(self, settings: Settings, schemes: Mapping[str, Scheme] | None = None) -> None:
        self.settings = settings
        self.schemes = dict(SCHEMES if schemes is None else schemes)
        self._readers: dict[str, Reader] = {}
        self._lock = threading.Lock()

    def reader(self, scheme: str) -> Reader:
        """The reader for ``scheme``, imported and built on first use."""
        with self._lock:
            found = self._readers.get(scheme)
            if found is None:
                found = self._readers[scheme] = self._build(scheme)
            return found

    def _build(self, scheme: str) -> Reader:
        spec = self.schemes.get(scheme)
        if spec is None:
            known = ", ".join(sorted(self.schemes))
            raise URLRefusedError(f"{scheme}:// sources are not read (schemes: {known})")
        try:
            module = importlib.import_module(spec.module)
        except ModuleNotFoundError as exc:
            if spec.extra is None or (exc.name or "").startswith("facetrail"):
                raise
            raise MissingExtraError(
                f"{scheme}:// sources need {exc.name!r}: pip install 'facetrail[{spec.extra}]'"
            ) from exc
        reader: Reader = getattr(module, spec.cls)(self.settings)
        return reader

    def read_bytes(
        self, source: str, *, local: bool = True, deadline: float | None = None
    ) -> bytes:
        """The raw bytes at ``source``, at most ``max_image_bytes``.

        ``local``: a local user named the source, so any local file may be read (False: only
        under the image roots). ``deadline``: a ``time.monotonic()`` by which a URL fetch gives
        up (the item's fetch budget), besides the fetch timeouts.
        """
        scheme = scheme_of(source)
        if scheme not in self.schemes:
            known = ", ".join(f"{name}://" for name in sorted(self.schemes))
            raise URLRefusedError(f"{source}: {scheme}:// sources are not read ({known} only)")
        reader = self.reader(scheme)
        if isinstance(reader, PathReader):
            return reader.read(source, local=local)
        if deadline is not None and scheme in ("http", "https"):
            from facetrail.images.http import HttpReader

            if isinstance(reader, HttpReader):
                return reader.read(source, deadline=deadline)
        return reader.read(source)

    def decode(self, data: bytes, *, source: str) -> LoadedImage:
        """``data`` decoded under the settings' byte and pixel limits."""
        return decode_image(
            data,
            source=source,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
        )

    def open(
        self, source: str, *, local: bool = True, deadline: float | None = None
    ) -> LoadedImage:
        """The image at ``source``, decoded; ``LoadedImage.source`` is ``source`` as given."""
        return self.decode(self.read_bytes(source, local=local, deadline=deadline), source=source)


@functools.lru_cache(maxsize=16)
def image_opener(settings: Settings) -> ImageOpener:
    """The process's opener for ``settings`` (readers and their clients are built once)."""
    return ImageOpener(settings)


def open_image(
    settings: Settings, source: str, *, local: bool = True, deadline: float | None = None
) -> LoadedImage:
    """The image at ``source`` (a path, ``file://``, ``http(s)://``, ``s3://`` or ``upload://``).

    ``local=False`` confines local files to the image roots (a source from another app)."""
    return image_opener(settings).open(source, local=local, deadline=deadline)


def open_bytes(settings: Settings, data: bytes, *, source: str = "<bytes>") -> LoadedImage:
    """Image bytes a caller already holds (a request body), decoded under the settings' limits."""
    return image_opener(settings).decode(data, source=source)


def read_bytes(settings: Settings, source: str, *, local: bool = True) -> bytes:
    """The raw bytes at ``source``, at most ``max_image_bytes``, not decoded."""
    return image_opener(settings).read_bytes(source, local=local)
