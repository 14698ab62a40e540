"""Converters that turn a packaged model into the ONNX file facetrail loads, at install time.

Each module has ``convert_to_bytes`` and ``CONVERTER_VERSION``; the output is deterministic, so
its sha256 is recorded in :mod:`facetrail.modelfiles.catalogue`. The ONNX writers need the
``tagging`` extra (``onnx``); ``python_literal`` needs nothing. They are imported only by the
installer, never by the runtime.
"""
