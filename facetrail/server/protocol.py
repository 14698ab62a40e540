"""The Rekognition JSON 1.1 protocol: errors as botocore parses them, input checked by the model.

Input rules (required members, lengths, patterns, ranges, enums) are read from botocore's own
service model for Rekognition, so the server enforces what the service declares rather than a
copy of it that could drift.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import zlib
from collections.abc import Callable
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape, StringShape, StructureShape

TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"


class ServiceError(Exception):
    """An error answer: ``__type`` in a JSON body, with an HTTP status (400 unless said)."""

    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"__type": self.error_type, "Message": self.message}


def invalid_parameter(message: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message)


# FaceModelVersion and IndexFacesModelVersion are numbers on the service ("7.0"; the model
# declares IndexFacesModelVersion as [0-9\.]+, and notebooks parse them): each face model
# facetrail serves has one here. Our own ids (detector/embedder@weights) stay in our records.
MODEL_VERSIONS: dict[str, str] = {
    "mtcnn-tflite/mobilefacenet-192@d8ba40c0": "7.0",
    "mtcnn-tflite/dlib-128@55533b28": "7.1",
    "retinaface-onet/mobilefacenet-192@d8ba40c0": "8.0",
    "retinaface-onet/dlib-128@55533b28": "8.1",
    "retinaface-onet/mobilefacenet-flip-192@d8ba40c0": "8.2",
    "mtcnn-tflite/mobilefacenet-flip-192@d8ba40c0": "7.2",
}
# A model not in the table: a number no table entry uses, stable for the id.
_UNLISTED_MAJOR = 90


def model_version_number(model_id: str) -> str:
    """The numeric face model version a response shows for one of our model ids."""
    known = MODEL_VERSIONS.get(model_id)
    if known is not None:
        return known
    if model_id.startswith("rekognition@"):  # the service's own number, kept as it gave it
        number = model_id.removeprefix("rekognition@")
        if number and all(c.isdigit() or c == "." for c in number):
            return number
    return f"{_UNLISTED_MAJOR}.{zlib.crc32(model_id.encode()) % 100_000}"


@functools.cache
def pattern(expression: str) -> regex.Pattern[str]:
    """A service-model pattern compiled as the service reads it: Java's syntax, with Unicode
    property classes (TagKey's ``\\p{L}``), which Python's ``re`` lacks and ``regex`` has."""
    return regex.compile(expression)


def matches_pattern(expression: str, value: str) -> bool:
    """The service matches patterns against the whole value."""
    return pattern(expression).fullmatch(value) is not None


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("rekognition")


def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


def parse_input(operation: OperationModel, params: Any) -> dict[str, Any]:
    """Check ``params`` against the operation's input shape; blobs come back decoded."""
    shape = operation.input_shape
    if shape is None:
        return {}
    if not isinstance(params, dict):
        raise ServiceError("SerializationException", "the request body must be a JSON object")
    errors: list[str] = []
    parsed = _parse(shape, params, "", errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise invalid_parameter(f"{count} validation {noun} detected: " + "; ".join(errors))
    result: dict[str, Any] = parsed
    return result


def _at(path: str, name: str) -> str:
    # The service names members in camelCase in its validation messages ("image.bytes").
    camel = name[:1].lower() + name[1:]
    return f"{path}.{camel}" if path else camel


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:77] + "..."


def _parse(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    kind = shape.type_name
    meta = shape.metadata
    where = f"at '{path}'" if path else ""

    def fail(constraint: str) -> None:
        errors.append(
            f"Value {_shown(value)} {where} failed to satisfy constraint: Member must {constraint}"
        )

    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            fail("be an object")
            return None
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_at(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None or item is None:
                continue  # unknown members are ignored, as the service does
            out[name] = _parse(member, item, _at(path, name), errors)
        return out
    if kind == "list":
        if not isinstance(value, list):
            fail("be a list")
            return None
        _check_length(len(value), meta, fail)
        member_shape = shape.member  # type: ignore[attr-defined]
        return [
            _parse(member_shape, item, f"{path}.{i + 1}", errors) for i, item in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            fail("be an object")
            return None
        key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
        return {
            _parse(key_shape, k, path, errors): _parse(value_shape, v, f"{path}.{k}", errors)
            for k, v in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            fail("be a string")
            return None
        _check_length(len(value), meta, fail)
        expression = meta.get("pattern")
        if expression and not matches_pattern(expression, value):
            fail(f"satisfy regular expression pattern: {expression}")
        enum = shape.enum if isinstance(shape, StringShape) else []
        if enum and value not in enum:
            fail(f"satisfy enum value set: [{', '.join(enum)}]")
        return value
    if kind in {"integer", "long"}:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("be an integer")
            return None
        _check_range(value, meta, fail)
        return value
    if kind in {"float", "double"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("be a number")
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any double
            number = math.inf
        if not math.isfinite(number):  # the strict JSON parser refuses these first
            fail("be a finite number")
            return None
        _check_range(number, meta, fail)
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            fail("be a boolean")
        return value
    if kind == "blob":
        return _parse_blob(value, meta, path, fail)
    return value  # timestamps and documents pass as they are


def _parse_blob(
    value: Any, meta: dict[str, Any], path: str, fail: Callable[[str], None]
) -> bytes | None:
    if not isinstance(value, str):
        fail("be base64-encoded bytes")
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(
            "SerializationException", f"'{path}' is not valid base64-encoded data"
        ) from None
    maximum = meta.get("max")
    if maximum is not None and len(data) > maximum:
        # Only image bytes carry a maximum in this API; the service answers with its own type.
        raise ServiceError(
            "ImageTooLargeException",
            f"Image size is too large: {len(data)} bytes, the limit for image bytes is {maximum}",
        )
    if len(data) < meta.get("min", 0):
        fail(f"have length greater than or equal to {meta['min']}")
    return data


def _check_length(length: int, meta: dict[str, Any], fail: Callable[[str], None]) -> None:
    if "min" in meta and length < meta["min"]:
        fail(f"have length greater than or equal to {meta['min']}")
    if "max" in meta and length > meta["max"]:
        fail(f"have length less than or equal to {meta['max']}")


def _check_range(value: float, meta: dict[str, Any], fail: Callable[[str], None]) -> None:
    if "min" in meta and value < meta["min"]:
        fail(f"have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        fail(f"have value less than or equal to {meta['max']}")
