"""Backends by name. Each is imported on first use so a missing extra only hurts its own users.

backend = get_backend(settings)                       # Settings.backend, or a name
backend = backend_for(settings, "local", {"embedder": "dlib"})   # a collection's own
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from facetrail.backends.base import Backend
from facetrail.errors import ConfigurationError, MissingExtraError
from facetrail.settings import Settings

# name -> (module, class, the extra that provides its dependencies)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "local": ("facetrail.backends.local.backend", "LocalBackend", "local"),
    "rekognition": ("facetrail.backends.rekognition.backend", "RekognitionBackend", "rekognition"),
}


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, class_name, extra = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigurationError(f"unknown backend {name!r}; choose one of: {known}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("facetrail"):
            raise ConfigurationError(f"backend {name!r} is not available in this version") from exc
        raise MissingExtraError(
            f"backend {name!r} needs {exc.name!r}: pip install 'facetrail[{extra}]'"
        ) from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls


@functools.cache
def get_backend(settings: Settings, name: str | None = None) -> Backend:
    """One backend per (settings, name) per process; models inside load on first use."""
    return backend_class(name or settings.backend)(settings)


# Settings a collection pins at creation, so every worker searches it the way it was built
# (the detector too: faces are aligned on its landmarks, so another one's vectors differ).
PINNED_OPTIONS: dict[str, tuple[str, ...]] = {
    "local": ("embedder", "detector"),
    "rekognition": ("aws_region",),  # a Rekognition collection lives in one region
}


def backend_options(settings: Settings, name: str) -> dict[str, Any]:
    return {key: getattr(settings, key) for key in PINNED_OPTIONS.get(name, ())}


def backend_for(settings: Settings, name: str, options: dict[str, Any]) -> Backend:
    """The backend for a collection: ``settings`` with the collection's pinned options."""
    pinned = {k: v for k, v in options.items() if k in PINNED_OPTIONS.get(name, ())}
    return get_backend(settings.with_(**pinned) if pinned else settings, name)
