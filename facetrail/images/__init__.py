"""Images: one way in for every source, and the store that keeps uploaded bytes.

    from facetrail.images import open_image, upload
    image = open_image(settings, "https://example.com/a.jpg")   # or a path, s3://, upload://
    source = upload(settings, data)                             # "upload://<sha256hex>"

``opener`` maps a source's scheme to its reader; ``decode`` turns bytes into a
:class:`LoadedImage`; ``http`` and ``s3`` fetch; ``store`` keeps uploads; ``scan`` turns what a
user names (folders, lists, prefixes) into job sources.
"""

from __future__ import annotations

from facetrail.images.decode import LoadedImage, as_rgb, decode_image, load_image, to_jpeg
from facetrail.images.opener import ImageOpener, open_bytes, open_image, read_bytes
from facetrail.images.store import upload

__all__ = [
    "ImageOpener",
    "LoadedImage",
    "as_rgb",
    "decode_image",
    "load_image",
    "open_bytes",
    "open_image",
    "read_bytes",
    "to_jpeg",
    "upload",
]
