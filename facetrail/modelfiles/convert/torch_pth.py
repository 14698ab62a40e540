"""PyTorch state-dict files (``.pth``) read into numpy arrays, without torch and without running
the pickle's code.

A ``.pth`` holds pickles; unpickling one normally imports and calls whatever globals it names,
so loading an untrusted file runs arbitrary code. Here the pickle is read by an unpickler that
only knows the handful of globals a plain state dict uses (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the ``torch.*Storage`` type markers), each mapped to a
function of this module; any other global, and any persistent id other than a tensor storage,
raises :class:`PthError`. Tensors are rebuilt with numpy from the raw storage bytes.

Two layouts exist: the legacy one (torch < 1.6: magic number, protocol version and system info
pickles, the state-dict pickle, the storage keys, then each storage as an int64 element count and
its bytes) and the zip one (``<name>/data.pkl`` plus ``<name>/data/<key>`` per storage). Both are
read.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from facetrail.errors import ConfigurationError

Array = npt.NDArray[Any]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage type names -> little-endian numpy dtype
STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("bool"),
}


class PthError(ConfigurationError):
    """The file is not a plain PyTorch state dict this reader accepts."""

    code = "model_conversion"


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it; its bytes are read after the pickle."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any
) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise PthError("a tensor in the pickle does not refer to a storage")
    try:
        return _TensorRef(
            storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
        )
    except (TypeError, ValueError):
        raise PthError("a tensor in the pickle has a malformed shape or stride") from None


def _ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    return collections.OrderedDict(*args)


class _StateDictUnpickler(pickle.Unpickler):
    """Knows only the globals a state dict needs; everything else is refused, never imported."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(stream)
        self.storages: dict[str, _Storage] = {}

    def state_dict(self) -> Any:
        try:
            return self.load()
        except PthError:
            raise
        except Exception as exc:  # truncated or malformed: say so, whatever the cause
            raise PthError(f"cannot read the state-dict pickle: {exc}") from None

    def find_class(self, module: str, name: str) -> Any:
        allowed: dict[tuple[str, str], Callable[..., Any]] = {
            ("collections", "OrderedDict"): _ordered_dict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        }
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"refusing the pickled global {module}.{name}: not part of a state dict")

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", storage type, key, location, element count[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise PthError(f"refusing the persistent id {str(pid)[:60]!r}: not a tensor storage")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise PthError("malformed storage reference in the pickle")
        if len(pid) > 5 and pid[5] is not None:
            raise PthError("storage views (legacy view metadata) are not supported")
        storage = self.storages.setdefault(key, _Storage(key, kind.dtype, numel))
        if storage.dtype != kind.dtype or storage.numel != numel:
            raise PthError(f"storage {key} is described twice, differently")
        return storage


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles: plain data only, no global at all."""

    def plain(self) -> Any:
        try:
            return self.load()
        except PthError:
            raise
        except Exception as exc:
            raise PthError(f"cannot read a header pickle: {exc}") from None

    def find_class(self, module: str, name: str) -> Any:
        raise PthError(f"refusing the pickled global {module}.{name} in a header pickle")

    def persistent_load(self, pid: Any) -> Any:
        raise PthError("refusing a persistent id in a header pickle")


def load_state_dict(data: bytes) -> dict[str, Array]:
    """The tensors of a ``.pth`` state dict (name -> numpy array, C-contiguous, a copy)."""
    if data[:4] == b"PK\x03\x04":
        refs, raw = _load_zip(data)
    else:
        refs, raw = _load_legacy(data)
    if not isinstance(refs, dict):
        raise PthError(f"the pickle holds a {type(refs).__name__}, not a state dict")
    out: dict[str, Array] = {}
    for name, ref in refs.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise PthError(f"entry {name!r} of the state dict is not a tensor")
        out[name] = _materialise(ref, raw[ref.storage.key])
    return out


def _materialise(ref: _TensorRef, storage: Array) -> Array:
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in (*ref.size, *ref.stride)):
        raise PthError("a tensor has a malformed shape or stride")
    if any(d == 0 for d in ref.size):
        return np.zeros(ref.size, dtype=storage.dtype)
    last = ref.offset + sum((d - 1) * s for d, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= storage.size:
        raise PthError("a tensor reaches past the end of its storage")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride)
    )
    return np.array(view, order="C", copy=True)  # ascontiguousarray would make scalars 1-d


def _load_legacy(data: bytes) -> tuple[Any, dict[str, Array]]:
    stream = io.BytesIO(data)
    if _PlainUnpickler(stream).plain() != LEGACY_MAGIC:
        raise PthError("not a PyTorch file (no legacy magic number, not a zip)")
    if _PlainUnpickler(stream).plain() != LEGACY_PROTOCOL:
        raise PthError("unsupported legacy PyTorch protocol version")
    info = _PlainUnpickler(stream).plain()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise PthError("only little-endian PyTorch files are supported")
    unpickler = _StateDictUnpickler(stream)
    refs = unpickler.state_dict()
    keys = _PlainUnpickler(stream).plain()
    if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
        raise PthError("the storage key list does not match the tensors' storages")
    raw: dict[str, Array] = {}
    for key in map(str, keys):
        storage = unpickler.storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise PthError("the file ends before its storages")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise PthError(f"storage {key}: {numel} elements stored, {storage.numel} described")
        size = numel * storage.dtype.itemsize
        chunk = stream.read(size)
        if len(chunk) != size:
            raise PthError(f"storage {key} is truncated")
        raw[key] = np.frombuffer(chunk, dtype=storage.dtype)
    if stream.read(1):
        raise PthError("unexpected bytes after the last storage")
    return refs, raw


def _load_zip(data: bytes) -> tuple[Any, dict[str, Array]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PthError(f"not a PyTorch zip file: {exc}") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise PthError("a PyTorch zip file holds exactly one */data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])))
        refs = unpickler.state_dict()
        raw: dict[str, Array] = {}
        for key, storage in unpickler.storages.items():
            try:
                chunk = archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise PthError(f"storage {key} is missing from the zip") from None
            if len(chunk) != storage.numel * storage.dtype.itemsize:
                raise PthError(f"storage {key} has the wrong size")
            raw[key] = np.frombuffer(chunk, dtype=storage.dtype)
    return refs, raw
