"""TensorFlow.js graph models -> ONNX, for the ops of the models facetrail ships (no TensorFlow).

A TF.js graph model is a JSON file (``modelTopology``: a TensorFlow GraphDef as JSON, and a
``weightsManifest``) plus binary weight shards. This module reads both and writes an equivalent
ONNX graph with the ``onnx`` package's helper API, op by op, keeping TensorFlow's NHWC layout:
convolutions, pooling and resizing are wrapped in transposes to ONNX's NCHW, and onnxruntime's
graph optimiser removes the back-to-back transposes this leaves (186 in CenterNet, 1 left).

Only the ops in ``SUPPORTED_OPS`` are handled, each with TensorFlow's semantics (padding, integer
floor division, strided-slice masks...); anything else raises :class:`ConversionError` naming the
op, rather than guessing. ``tests/unit/test_tagging_tfjs.py`` checks every op against a numpy
reference implementation of TensorFlow's definition.

The output is deterministic: the same inputs give byte-identical ONNX files (the IR version,
opset and producer are fixed here), so an installed file can be checked against a recorded
sha256.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from facetrail.errors import ConfigurationError

# Fixed so that the bytes written never depend on the installed onnx package's defaults.
OPSET = 18
IR_VERSION = 8
# The producer name is part of the ONNX bytes (and so of their recorded sha256): it keeps the
# module's first home.
PRODUCER = "facetrail.tagging.tfjs_onnx"
# Bump when a change alters the ONNX bytes produced (and record the new sha256s in
# modelfiles/catalogue.py).
CONVERTER_VERSION = "1"

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

# TF dtype names -> (numpy dtype, ONNX element type)
_DTYPES: dict[str, tuple[npt.DTypeLike, int]] = {
    "DT_FLOAT": (np.float32, TensorProto.FLOAT),
    "DT_INT32": (np.int32, TensorProto.INT32),
    "DT_INT64": (np.int64, TensorProto.INT64),
    "DT_BOOL": (np.bool_, TensorProto.BOOL),
}
# weightsManifest dtype names -> numpy dtype
_MANIFEST_DTYPES: dict[str, npt.DTypeLike] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("bool"),
}
_QUANTIZED_DTYPES: dict[str, npt.DTypeLike] = {
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}

Array = npt.NDArray[Any]


class ConversionError(ConfigurationError):
    """The TF.js model uses something this converter does not handle, or is malformed."""

    code = "model_conversion"


@dataclass(frozen=True)
class GraphModel:
    """A parsed TF.js graph model: its nodes (GraphDef JSON) and decoded weights."""

    nodes: tuple[dict[str, Any], ...]
    weights: dict[str, Array]
    outputs: tuple[str, ...]  # the signature's output tensor names, e.g. "tower_0/detections"
    metadata: dict[str, str] = field(default_factory=dict)

    def ops(self) -> set[str]:
        return {str(n["op"]) for n in self.nodes}


def load_graph_model(model_json: bytes, shards: Mapping[str, bytes]) -> GraphModel:
    """Parse ``model.json`` and decode its weights from ``shards`` (file name -> bytes)."""
    try:
        doc = json.loads(model_json)
        topology = doc["modelTopology"]
        nodes = tuple(topology["node"])
        manifest = doc["weightsManifest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f"not a TF.js graph model: {exc}") from None
    if doc.get("format") not in (None, "graph-model"):
        raise ConversionError(f"unsupported TF.js model format {doc.get('format')!r}")
    weights: dict[str, Array] = {}
    for group in manifest:
        try:
            buffer = b"".join(shards[p] for p in group["paths"])
        except KeyError as exc:
            raise ConversionError(f"weight shard {exc.args[0]!r} is missing") from None
        offset = 0
        for entry in group["weights"]:
            value, size = _decode_weight(entry, buffer, offset)
            weights[entry["name"]] = value
            offset += size
        if offset != len(buffer):
            raise ConversionError(
                f"weight shards {group['paths']} hold {len(buffer)} bytes, the manifest {offset}"
            )
    signature = doc.get("signature") or {}
    outputs = tuple(_strip_port(name) for name in (signature.get("outputs") or {}))
    metadata = {
        k: str(doc[k]) for k in ("generatedBy", "convertedBy") if isinstance(doc.get(k), str)
    }
    return GraphModel(nodes=nodes, weights=weights, outputs=outputs, metadata=metadata)


def _decode_weight(entry: Mapping[str, Any], buffer: bytes, offset: int) -> tuple[Array, int]:
    """One weight's value (float32/int32/bool) and the number of bytes it takes in the shards."""
    name = entry.get("name", "?")
    shape = [int(d) for d in entry.get("shape", [])]
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    quant = entry.get("quantization")
    stored = (
        _QUANTIZED_DTYPES.get(quant.get("dtype", ""))
        if quant
        else _MANIFEST_DTYPES.get(entry.get("dtype", ""))
    )
    if stored is None:
        raise ConversionError(f"{name}: unsupported weight encoding {quant or entry.get('dtype')}")
    stored_dtype = np.dtype(stored)
    size = count * stored_dtype.itemsize
    if offset + size > len(buffer):
        raise ConversionError(f"{name}: weight data runs past the end of its shards")
    raw = np.frombuffer(buffer, dtype=stored_dtype, count=count, offset=offset)
    if not quant:
        return raw.copy().reshape(shape), size
    if stored_dtype.kind == "f":
        value: Array = raw.astype(np.float32)
    else:
        # Affine quantization: value = q * scale + min.
        value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    target = _MANIFEST_DTYPES.get(quant.get("original_dtype", entry.get("dtype", "")), np.float32)
    return value.astype(target).reshape(shape), size


def _strip_port(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


# -- attribute helpers -------------------------------------------------------------------------


def _attr(node: Mapping[str, Any], key: str) -> Any:
    return node.get("attr", {}).get(key)


def _attr_int(node: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = _attr(node, key)
    return int(value["i"]) if value and "i" in value else default


def _attr_bool(node: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = _attr(node, key)
    return bool(value["b"]) if value and "b" in value else default


def _attr_str(node: Mapping[str, Any], key: str, default: str = "") -> str:
    value = _attr(node, key)
    return base64.b64decode(value["s"]).decode() if value and "s" in value else default


def _attr_ints(node: Mapping[str, Any], key: str) -> list[int]:
    value = _attr(node, key)
    if not value:
        return []
    return [int(i) for i in value.get("list", {}).get("i", [])]


def _attr_strs(node: Mapping[str, Any], key: str) -> list[str]:
    value = _attr(node, key)
    if not value:
        return []
    return [base64.b64decode(s).decode() for s in value.get("list", {}).get("s", [])]


def _attr_type(node: Mapping[str, Any], key: str) -> str:
    value = _attr(node, key)
    return str(value["type"]) if value and "type" in value else "DT_FLOAT"


# -- the converter -----------------------------------------------------------------------------


class _Builder:
    """Accumulates ONNX nodes and initializers while walking the TF graph in order."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        self.by_name = {str(n["name"]): n for n in model.nodes}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.dtypes: dict[str, int] = {}  # ONNX tensor name -> element type
        self._emitted: set[str] = set()
        self._counter = 0

    # names
    def fresh(self, base: str) -> str:
        self._counter += 1
        return f"{base}/__onnx_{self._counter}"

    # constants
    def const_value(self, ref: str) -> Array:
        """The value of a Const input used as a static parameter (axis, shape, size...)."""
        name = _strip_port(ref)
        node = self.by_name.get(name)
        if node is None or node["op"] != "Const":
            raise ConversionError(f"{ref} must be a constant here")
        if name not in self.model.weights:
            raise ConversionError(f"constant {name} has no value in the weights manifest")
        return self.model.weights[name]

    def add_initializer(self, name: str, value: Array) -> str:
        if name not in self._emitted:
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            self.dtypes[name] = helper.np_dtype_to_tensor_dtype(value.dtype)
            self._emitted.add(name)
        return name

    def int64(self, base: str, values: Sequence[int] | Array) -> str:
        return self.add_initializer(self.fresh(base), np.asarray(values, dtype=np.int64))

    def tensor(self, ref: str) -> str:
        """The ONNX name of a TF tensor reference ``node`` or ``node:k``."""
        name = _strip_port(ref)
        node = self.by_name.get(name.split(":")[0])
        if node is not None and node["op"] == "Const":
            return self.add_initializer(name, self.const_value(name))
        return name

    def add(
        self,
        op: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        dtype: int | None = None,
        **attrs: Any,
    ) -> None:
        self._counter += 1
        node_name = f"{outputs[0]}/{op}_{self._counter}"
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), node_name, **attrs))
        if dtype is None:
            dtype = self.dtypes.get(inputs[0], TensorProto.FLOAT) if inputs else TensorProto.FLOAT
        for out in outputs:
            self.dtypes.setdefault(out, dtype)


Handler = Callable[[_Builder, dict[str, Any], list[str], str], None]
_HANDLERS: dict[str, Handler] = {}


def _handles(*ops: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for op in ops:
            _HANDLERS[op] = fn
        return fn

    return register


def _data_inputs(node: Mapping[str, Any]) -> list[str]:
    return [str(i) for i in node.get("input", []) if not str(i).startswith("^")]


@_handles("Identity")
def _identity(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    b.add("Identity", [b.tensor(inputs[0])], [out])


_BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul"}


@_handles(*_BINARY)
def _binary(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    # TensorFlow and ONNX both broadcast numpy-style.
    x, y = b.tensor(inputs[0]), b.tensor(inputs[1])
    b.add(_BINARY[node["op"]], [x, y], [out], dtype=b.dtypes.get(x))


@_handles("FloorMod")
def _floor_mod(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    x, y = b.tensor(inputs[0]), b.tensor(inputs[1])
    if b.dtypes.get(x) == TensorProto.FLOAT:
        raise ConversionError(f"{node['name']}: FloorMod on floats is not supported")
    # ONNX integer Mod with fmod=0 takes the divisor's sign: Python's (and TF's) floor modulo.
    b.add("Mod", [x, y], [out], fmod=0)


@_handles("FloorDiv")
def _floor_div(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    x, y = b.tensor(inputs[0]), b.tensor(inputs[1])
    if b.dtypes.get(x) == TensorProto.FLOAT:
        quotient = b.fresh(out)
        b.add("Div", [x, y], [quotient])
        b.add("Floor", [quotient], [out])
        return
    # ONNX integer Div truncates toward zero; TF floors. (x - floormod(x, y)) / y is exact.
    mod, diff = b.fresh(out), b.fresh(out)
    b.add("Mod", [x, y], [mod], fmod=0)
    b.add("Sub", [x, mod], [diff])
    b.add("Div", [diff, y], [out])


@_handles("Relu")
def _relu(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    b.add("Relu", [b.tensor(inputs[0])], [out])


@_handles("Relu6")
def _relu6(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    _clip6(b, b.tensor(inputs[0]), out)


def _clip6(b: _Builder, x: str, out: str) -> None:
    low = b.add_initializer("__facetrail_zero", np.array(0.0, dtype=np.float32))
    high = b.add_initializer("__facetrail_six", np.array(6.0, dtype=np.float32))
    b.add("Clip", [x, low, high], [out])


@_handles("Sigmoid")
def _sigmoid(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    b.add("Sigmoid", [b.tensor(inputs[0])], [out])


def _nchw(b: _Builder, x: str) -> str:
    y = b.fresh(x)
    b.add("Transpose", [x], [y], perm=[0, 3, 1, 2])
    return y


def _nhwc(b: _Builder, x: str, out: str) -> None:
    b.add("Transpose", [x], [out], perm=[0, 2, 3, 1])


def _spatial(node: Mapping[str, Any], key: str) -> list[int]:
    values = _attr_ints(node, key) or [1, 1, 1, 1]
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise ConversionError(f"{node['name']}: unsupported {key} {values}")
    return values[1:3]


def _padding(node: Mapping[str, Any]) -> dict[str, Any]:
    padding = _attr_str(node, "padding")
    if padding == "SAME":
        # ONNX SAME_UPPER puts the odd pixel at the end, exactly as TensorFlow's SAME does.
        return {"auto_pad": "SAME_UPPER"}
    if padding == "VALID":
        return {"auto_pad": "VALID"}
    if padding == "EXPLICIT":
        p = _attr_ints(node, "explicit_paddings")  # NHWC (before, after) pairs
        if len(p) != 8 or any(p[i] for i in (0, 1, 6, 7)):
            raise ConversionError(f"{node['name']}: unsupported explicit padding {p}")
        return {"pads": [p[2], p[4], p[3], p[5]]}
    raise ConversionError(f"{node['name']}: unsupported padding {padding!r}")


def _check_nhwc(node: Mapping[str, Any]) -> None:
    fmt = _attr_str(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise ConversionError(f"{node['name']}: data format {fmt} is not supported")


@_handles("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def _conv(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    _check_nhwc(node)
    op = node["op"]
    depthwise = "Depthwise" in op
    filt = b.const_value(inputs[1]).astype(np.float32)
    if filt.ndim != 4:
        raise ConversionError(f"{node['name']}: filter of rank {filt.ndim}")
    kh, kw, cin, cout = filt.shape
    if depthwise:
        # TF [kh, kw, in, multiplier]; output channel c*mult + m is input channel c's m-th
        # filter, which is ONNX's grouped layout with group = in: [in*mult, 1, kh, kw].
        weight = filt.reshape(kh, kw, cin * cout).transpose(2, 0, 1)[:, None, :, :]
        group = cin
    else:
        weight = filt.transpose(3, 2, 0, 1)  # [out, in, kh, kw]
        group = 1
    conv_inputs = [_nchw(b, b.tensor(inputs[0])), b.add_initializer(f"{out}/__weight", weight)]
    activation = ""
    if op.startswith(("_Fused", "Fused")):
        fused = _attr_strs(node, "fused_ops")
        extra = inputs[2:]
        if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or len(extra) != 1:
            raise ConversionError(f"{node['name']}: unsupported fused ops {fused}")
        if len(fused) == 2:
            activation = fused[1]
            if activation not in ("Relu", "Relu6"):
                raise ConversionError(f"{node['name']}: unsupported fused activation {activation}")
        bias = b.const_value(extra[0]).astype(np.float32).reshape(-1)
        conv_inputs.append(b.add_initializer(f"{out}/__bias", bias))
    attrs: dict[str, Any] = {
        "kernel_shape": [kh, kw],
        "strides": _spatial(node, "strides"),
        "dilations": _spatial(node, "dilations"),
        "group": group,
        **_padding(node),
    }
    if attrs["dilations"] != [1, 1] and "auto_pad" in attrs and attrs["auto_pad"] != "VALID":
        # onnxruntime refuses SAME auto-padding with dilation, and explicit pads would need the
        # input's size; none of the shipped models has a dilated convolution.
        raise ConversionError(f"{node['name']}: dilated convolutions with SAME padding")
    y = b.fresh(out)
    b.add("Conv", conv_inputs, [y], dtype=TensorProto.FLOAT, **attrs)
    if activation == "Relu":
        z = b.fresh(out)
        b.add("Relu", [y], [z])
        y = z
    elif activation == "Relu6":
        z = b.fresh(out)
        _clip6(b, y, z)
        y = z
    _nhwc(b, y, out)


@_handles("MaxPool")
def _max_pool(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    _check_nhwc(node)
    y = b.fresh(out)
    b.add(
        "MaxPool",
        [_nchw(b, b.tensor(inputs[0]))],
        [y],
        kernel_shape=_spatial(node, "ksize"),
        strides=_spatial(node, "strides"),
        **_padding(node),
    )
    _nhwc(b, y, out)


@_handles("Mean")
def _mean(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    axes = b.const_value(inputs[1]).reshape(-1)
    keep = 1 if _attr_bool(node, "keep_dims") else 0
    b.add("ReduceMean", [b.tensor(inputs[0]), b.int64(out, axes)], [out], keepdims=keep)


@_handles("ConcatV2")
def _concat(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    axis = int(b.const_value(inputs[-1]))
    tensors = [b.tensor(i) for i in inputs[:-1]]
    b.add("Concat", tensors, [out], axis=axis)


@_handles("Reshape")
def _reshape(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    shape = b.const_value(inputs[1]).reshape(-1)
    # allowzero=1: a 0 in TF's shape is a zero-sized dimension, not "copy the input's".
    b.add("Reshape", [b.tensor(inputs[0]), b.int64(out, shape)], [out], allowzero=1)


@_handles("ExpandDims")
def _expand_dims(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    axis = b.const_value(inputs[1]).reshape(-1)
    b.add("Unsqueeze", [b.tensor(inputs[0]), b.int64(out, axis)], [out])


@_handles("Cast")
def _cast(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    target = _attr_type(node, "DstT")
    if target not in _DTYPES:
        raise ConversionError(f"{node['name']}: cast to {target} is not supported")
    onnx_type = _DTYPES[target][1]
    b.add("Cast", [b.tensor(inputs[0])], [out], dtype=onnx_type, to=onnx_type)


@_handles("Equal")
def _equal(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    b.add("Equal", [b.tensor(inputs[0]), b.tensor(inputs[1])], [out], dtype=TensorProto.BOOL)


@_handles("StridedSlice")
def _strided_slice(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    begin, end, strides = (
        [int(v) for v in b.const_value(i).reshape(-1).tolist()] for i in inputs[1:4]
    )
    if _attr_int(node, "ellipsis_mask") or _attr_int(node, "new_axis_mask"):
        raise ConversionError(f"{node['name']}: ellipsis/new-axis masks are not supported")
    begin_mask = _attr_int(node, "begin_mask")
    end_mask = _attr_int(node, "end_mask")
    shrink_mask = _attr_int(node, "shrink_axis_mask")
    starts: list[int] = []
    ends: list[int] = []
    steps: list[int] = []
    shrink: list[int] = []
    for axis, (start, stop, step) in enumerate(zip(begin, end, strides, strict=True)):
        if step == 0:
            raise ConversionError(f"{node['name']}: zero stride")
        if shrink_mask & (1 << axis):
            # One element at ``start``; -1 means the last, whose end is the axis' end.
            starts.append(start)
            ends.append(INT64_MAX if start == -1 else start + 1)
            steps.append(1)
            shrink.append(axis)
            continue
        if begin_mask & (1 << axis):
            start = 0 if step > 0 else INT64_MAX
        if end_mask & (1 << axis):
            stop = INT64_MAX if step > 0 else INT64_MIN
        starts.append(start)
        ends.append(stop)
        steps.append(step)
    axes = list(range(len(starts)))
    sliced = b.fresh(out) if shrink else out
    b.add(
        "Slice",
        [
            b.tensor(inputs[0]),
            b.int64(out, starts),
            b.int64(out, ends),
            b.int64(out, axes),
            b.int64(out, steps),
        ],
        [sliced],
    )
    if shrink:
        b.add("Squeeze", [sliced, b.int64(out, shrink)], [out])


@_handles("TopKV2")
def _top_k(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    if not _attr_bool(node, "sorted", True):
        raise ConversionError(f"{node['name']}: unsorted TopKV2 is not supported")
    k = b.const_value(inputs[1]).reshape(-1)
    indices64 = b.fresh(out)
    # Both TF and ONNX put the lower index first among equal values.
    b.add(
        "TopK",
        [b.tensor(inputs[0]), b.int64(out, k)],
        [out, indices64],
        axis=-1,
        largest=1,
        sorted=1,
    )
    b.dtypes[indices64] = TensorProto.INT64
    b.add("Cast", [indices64], [f"{out}:1"], dtype=TensorProto.INT32, to=TensorProto.INT32)


@_handles("GatherV2")
def _gather(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    if _attr_int(node, "batch_dims"):
        raise ConversionError(f"{node['name']}: GatherV2 with batch_dims is not supported")
    axis = int(b.const_value(inputs[2]))
    b.add("Gather", [b.tensor(inputs[0]), b.tensor(inputs[1])], [out], axis=axis)


@_handles("ResizeBilinear")
def _resize_bilinear(b: _Builder, node: dict[str, Any], inputs: list[str], out: str) -> None:
    size = b.const_value(inputs[1]).reshape(-1)
    if _attr_bool(node, "align_corners"):
        mode = "align_corners"
    elif _attr_bool(node, "half_pixel_centers"):
        mode = "half_pixel"
    else:
        mode = "asymmetric"  # TF's legacy default: source = destination * in / out
    x = _nchw(b, b.tensor(inputs[0]))
    # Full NCHW sizes: the batch and channel dimensions come from the input's shape. (Resize's
    # ``axes`` attribute would avoid this, but onnxruntime's transpose optimiser mishandles it.)
    batch_channels, sizes = b.fresh(out), b.fresh(out)
    b.add("Shape", [x], [batch_channels], dtype=TensorProto.INT64, start=0, end=2)
    b.add("Concat", [batch_channels, b.int64(out, size)], [sizes], dtype=TensorProto.INT64, axis=0)
    y = b.fresh(out)
    b.add(
        "Resize",
        [x, "", "", sizes],
        [y],
        dtype=TensorProto.FLOAT,
        mode="linear",
        coordinate_transformation_mode=mode,
    )
    _nhwc(b, y, out)


SUPPORTED_OPS = frozenset(_HANDLERS) | {"Const", "Placeholder"}


def convert(
    model: GraphModel, *, outputs: Sequence[str] | None = None, name: str = "tfjs"
) -> onnx.ModelProto:
    """Build the ONNX model computing ``outputs`` (the signature's outputs by default)."""
    wanted = tuple(_strip_port(o) for o in (outputs or model.outputs))
    if not wanted:
        raise ConversionError("the model names no outputs; pass outputs=")
    b = _Builder(model)
    order = _topological(model, wanted)
    unsupported = sorted({str(n["op"]) for n in order} - SUPPORTED_OPS)
    if unsupported:
        raise ConversionError(f"unsupported TF.js ops: {', '.join(unsupported)}")
    for node in order:
        op, node_name = str(node["op"]), str(node["name"])
        if op == "Const":
            continue  # emitted as an initializer where a tensor input uses it
        if op == "Placeholder":
            b.inputs.append(_placeholder(node))
            b.dtypes[node_name] = _DTYPES[_attr_type(node, "dtype")][1]
            continue
        _HANDLERS[op](b, node, _data_inputs(node), node_name)
    output_names = [b.tensor(ref) for ref in wanted]
    onnx_model = _make_model(b, name, output_names, [])
    # The checker wants typed, shaped graph outputs: take them from ONNX's shape inference.
    inferred = onnx.shape_inference.infer_shapes(onnx_model, strict_mode=True)
    known = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    graph_outputs = []
    for tensor in output_names:
        info = known.get(tensor)
        if info is None or not info.type.tensor_type.HasField("shape"):
            raise ConversionError(f"cannot infer the shape of output {tensor}")
        graph_outputs.append(info)
    onnx_model = _make_model(b, name, output_names, graph_outputs)
    for key, value in sorted(model.metadata.items()):
        onnx_model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _make_model(
    b: _Builder, name: str, output_names: Sequence[str], outputs: Sequence[onnx.ValueInfoProto]
) -> onnx.ModelProto:
    if not outputs:
        outputs = [helper.make_empty_tensor_value_info(o) for o in output_names]
    graph = helper.make_graph(b.nodes, name, b.inputs, list(outputs), b.initializers)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=CONVERTER_VERSION,
        ir_version=IR_VERSION,
    )


def convert_to_bytes(
    model_json: bytes, shards: Mapping[str, bytes], *, outputs: Sequence[str] | None = None
) -> bytes:
    """Parse, convert and serialise: the deterministic bytes the installer checks."""
    model = convert(load_graph_model(model_json, shards), outputs=outputs)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def _placeholder(node: Mapping[str, Any]) -> onnx.ValueInfoProto:
    dtype = _attr_type(node, "dtype")
    if dtype not in _DTYPES:
        raise ConversionError(f"{node['name']}: input dtype {dtype} is not supported")
    dims = (_attr(node, "shape") or {}).get("shape", {}).get("dim", [])
    shape: list[int | str] = []
    for i, d in enumerate(dims):
        size = int(d.get("size", -1))
        shape.append(size if size >= 0 else f"d{i}")
    return helper.make_tensor_value_info(str(node["name"]), _DTYPES[dtype][1], shape or None)


def _topological(model: GraphModel, outputs: Sequence[str]) -> list[dict[str, Any]]:
    """The nodes ``outputs`` depend on, each after its inputs, in a stable order."""
    by_name = {str(n["name"]): n for n in model.nodes}
    position = {str(n["name"]): i for i, n in enumerate(model.nodes)}
    ordered: list[dict[str, Any]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for out in outputs:
        root = out.split(":")[0]
        if root not in by_name:
            raise ConversionError(f"output {out!r} is not a node of the model")
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            current, expanded = stack.pop()
            if expanded:
                state[current] = 2
                ordered.append(by_name[current])
                continue
            if state.get(current) == 2:
                continue
            if state.get(current) == 1:
                raise ConversionError(f"the graph has a cycle through {current}")
            state[current] = 1
            stack.append((current, True))
            deps = {i.lstrip("^").split(":")[0] for i in by_name[current].get("input", [])}
            for dep in sorted(deps, key=lambda d: -position.get(d, -1)):
                if dep not in by_name:
                    raise ConversionError(f"{current} reads {dep}, which the model lacks")
                if state.get(dep) != 2:
                    stack.append((dep, False))
    return ordered
