"""The one model base class and the one process-wide cache of model instances.

A model is cheap to build and loads nothing until its first ``predict`` (or ``load``); loading
happens once, under a lock, so threads asking at once load it once. ``Model.shared`` hands out
one instance per (class, files, threads, options) per process, so every backend, server and
worker built from equal settings shares the loaded weights.
"""

from __future__ import annotations

import abc
import gc
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from facetrail.settings import cpu_cores

Out = TypeVar("Out")
M = TypeVar("M", bound="Model[Any]")

_cache: dict[tuple[Any, ...], Model[Any]] = {}
# Re-entrant: a model may build the models it is made of (labels -> classifier) in __init__.
_cache_lock = threading.RLock()


def resolve_threads(threads: int) -> int:
    """A thread count as settings give it: 0 means every core this process may use."""
    return threads if threads > 0 else cpu_cores()


class Model(abc.ABC, Generic[Out]):
    """Lazy, loaded once, thread-safe. Subclasses implement ``_load`` and ``_predict``.

    ``serialise = True`` runs ``_predict`` under the instance's lock, for runtimes whose sessions
    are not thread-safe (TFLite interpreters, engines that keep per-call state).
    """

    serialise: ClassVar[bool] = False

    def __init__(self, files: Sequence[Path], *, threads: int = 1) -> None:
        self.files = tuple(files)
        self.threads = resolve_threads(threads)
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._loaded = False

    @classmethod
    def shared(cls: type[M], files: Sequence[Path], *, threads: int, **options: Hashable) -> M:
        """The process's instance for these files, thread count and options (built, not loaded)."""
        threads = resolve_threads(threads)
        key = (cls, tuple(files), threads, tuple(sorted(options.items())))
        with _cache_lock:
            model = _cache.get(key)
            if model is None:
                model = _cache[key] = cls(tuple(files), threads=threads, **options)
        assert isinstance(model, cls)
        return model

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the weights now (first call only)."""
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True
                # What the process holds by now (its imports, its models) stays for its life:
                # out of the collector's full passes, which otherwise walk all of it each time
                # enough new objects have survived.
                gc.freeze()

    def predict(self, *args: Any, **kwargs: Any) -> Out:
        """Run the model (loading it first if needed); arguments as the subclass's ``_predict``."""
        self.load()
        if self.serialise:
            with self._run_lock:
                return self._predict(*args, **kwargs)
        return self._predict(*args, **kwargs)

    @abc.abstractmethod
    def _load(self) -> None: ...

    @abc.abstractmethod
    def _predict(self, *args: Any, **kwargs: Any) -> Out: ...


class TFLiteModel(Model[Out]):
    """A model that is one TFLite interpreter over ``files[0]``, built on first use.

    Interpreters are not thread-safe, so calls are serialised; ``self.interpreter`` is ready in
    ``_predict``.
    """

    serialise = True

    def __init__(self, files: Sequence[Path], *, threads: int = 1) -> None:
        super().__init__(files, threads=threads)
        self.interpreter: Any = None

    def _load(self) -> None:
        from facetrail.inference.runtime import tflite_interpreter

        interpreter = tflite_interpreter(self.threads, path=self.files[0])
        interpreter.allocate_tensors()
        self.interpreter = interpreter
