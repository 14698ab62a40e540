"""An ONNX file with its subnormal float32 weights set to zero.

PaddleOCR's PP-OCRv6 detector, as RapidOCR ships it, stores a tenth of its weights as subnormal
numbers (below float32's smallest normal, 1.2e-38): two 1x1 convolutions of its neck hold most
of them. They change no output that float32 can tell apart, but on many x86 CPUs each
multiplication with one takes a microcode assist; there the detector ran about three times
slower than its work warrants (docs/tagging.md, "Text"). Every float32 initializer and constant
keeps its other values bit for bit; nothing else in the graph changes.

The output is deterministic for a given source file (the protobuf is re-serialised as read, in
the same field order), so the installed file's sha256 is recorded in
``facetrail.modelfiles.catalogue``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, numpy_helper

CONVERTER_VERSION = "1"
SMALLEST_NORMAL = np.finfo(np.float32).tiny


def subnormals(values: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Where ``values`` are subnormal: nonzero and below float32's smallest normal number."""
    return np.logical_and(np.not_equal(values, 0), np.less(np.abs(values), SMALLEST_NORMAL))


def flushed(tensor: TensorProto) -> bool:
    """Set ``tensor``'s subnormal float32 values to zero in place; whether any were."""
    if tensor.data_type != TensorProto.FLOAT:
        return False
    values = numpy_helper.to_array(tensor)
    subnormal = subnormals(values)
    if not subnormal.any():
        return False
    tensor.CopyFrom(
        numpy_helper.from_array(np.where(subnormal, np.float32(0), values), tensor.name)
    )
    return True


def tensors(graph: onnx.GraphProto) -> list[TensorProto]:
    """The graph's initializers and its nodes' tensor attributes, subgraphs included."""
    out = list(graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                out.append(attribute.t)
            elif attribute.type == onnx.AttributeProto.GRAPH:
                out.extend(tensors(attribute.g))
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    out.extend(tensors(sub))
    return out


def convert_to_bytes(source: bytes) -> bytes:
    """The ONNX file ``source`` with its subnormal float32 weights flushed to zero."""
    model = onnx.load_from_string(source)
    changed = [flushed(t) for t in tensors(model.graph)]
    return model.SerializeToString() if any(changed) else source
