"""Shared plumbing: one model instance per process, onnxruntime sessions, image conversions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from facetrail.errors import MissingExtraError
from facetrail.images import LoadedImage
from facetrail.modelfiles import TAGGING_EXTRA_COMMAND

T = TypeVar("T")

_shared: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def once(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """One instance per key per process, built on first request (thread-safe).

    Loading happens under the lock, so two threads asking at once load a model once.
    """
    with _lock:
        if key not in _shared:
            _shared[key] = build()
        value: T = _shared[key]
        return value


def ort_session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads (the worker's budget)."""
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        raise MissingExtraError(
            f"image tagging needs the 'tagging' extra: {TAGGING_EXTRA_COMMAND}"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    # One inference at a time per worker process: no inter-op pool to oversubscribe the cores.
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def as_pil(image: LoadedImage | Image.Image) -> Image.Image:
    """The RGB pixels of a decoded image (facetrail.images already applied EXIF orientation)."""
    pixels = image.pixels if isinstance(image, LoadedImage) else image
    return pixels if pixels.mode == "RGB" else pixels.convert("RGB")
