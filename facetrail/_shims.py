"""Stand-ins for names that other parts of the package provide (SHIM(H4): delete on merge).

Each function below has the signature of its real home, named in its docstring; code that uses
them imports from here only until those homes exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facetrail.backends import recognizer_for
from facetrail.backends.base import Recognizer as Backend  # SHIM(H4)
from facetrail.errors import InvalidParameterError
from facetrail.images import LoadedImage
from facetrail.settings import Settings

__all__ = ["OPERATIONS", "Backend", "backend_for", "check_ops", "run_ops"]

OPERATIONS = ("labels", "text", "people", "moderation")  # SHIM(H4)


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
