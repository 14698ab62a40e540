"""Objects and scenes as labels, in the shape of Rekognition's DetectLabels.

Two models run on every photo: a COCO detector (80 classes, with boxes) and an ImageNet-1k
classifier (``scenes``: 1000 classes, image-level, no boxes), merged by label name.

The models are ``facetrail.inference.labels`` (the detector) and ``facetrail.inference.classifier``;
this module turns their outputs into labels.

Confidence: a label's confidence is its best instance's peak score x 100. The scores are not
calibrated like Rekognition's (good detections score 0.4-0.7), so the default floor is the
packager's documented default ``object.minConfidence = 0.2`` (20), not Rekognition's 55.
Boxes of one class are merged by non-maximum suppression (``inference.labels.nms``) per class,
so a rider does not suppress the bike.

Each COCO class becomes a label with the COCO name title-cased ("Dog", "Traffic Light"), simple
parents (Dog -> Mammal, Pet, Animal) and a category, from the static table below. Parents are
reported as labels too, as Rekognition does, with their best child's confidence and no boxes.

The classifier's labels (``scenes.classifier_labels``: "German Shepherd Dog", "Beach") use the
same table for their parents and come at the same confidence floor. A name both models give
("Dog" from the detector and as a breed's parent) is one label: the higher confidence, the
detector's boxes, the parents of both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facetrail.backends.base import BoundingBox
from facetrail.inference.labels import COCO_CLASSES, Detection, LabelOutputs, nms
from facetrail.modelfiles import MODELS
from facetrail.shapes import box_from_json, box_json

MODEL_NAME = "centernet"
CLASSIFIER_NAME = "efficientnet_lite0"
MODEL_VERSION = (
    f"centernet-mbv3-coco@{MODELS[MODEL_NAME].sha256[:8]}"
    f"+efficientnet-lite0-imagenet@{MODELS[CLASSIFIER_NAME].sha256[:8]}"
)
DEFAULT_MIN_CONFIDENCE = 20.0  # Human's object.minConfidence (0.2) for this model


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
        return {"BoundingBox": box_json(self.box), "Confidence": self.confidence}

    @classmethod
    def from_rekognition(cls, entry: Mapping[str, Any]) -> Instance:
        return cls(box_from_json(entry.get("BoundingBox")), float(entry.get("Confidence", 0.0)))


@dataclass(frozen=True)
class Label:
    """A DetectLabels label: name, confidence 0-100, instances with boxes, parents, categories."""

    name: str
    confidence: float
    instances: tuple[Instance, ...] = ()
    parents: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Confidence": self.confidence,
            "Instances": [i.to_rekognition() for i in self.instances],
            "Parents": [{"Name": p} for p in self.parents],
            "Aliases": [{"Name": a} for a in self.aliases],
            "Categories": [{"Name": c} for c in self.categories],
        }

    @classmethod
    def from_rekognition(cls, entry: Mapping[str, Any]) -> Label:
        """A label from a DetectLabels response entry (fields facetrail does not model, such as
        DominantColors, are left out)."""

        def names(key: str) -> tuple[str, ...]:
            return tuple(str(item["Name"]) for item in entry.get(key) or [] if "Name" in item)

        return cls(
            name=str(entry.get("Name", "")),
            confidence=float(entry.get("Confidence", 0.0)),
            instances=tuple(Instance.from_rekognition(i) for i in entry.get("Instances") or []),
            parents=names("Parents"),
            categories=names("Categories"),
            aliases=names("Aliases"),
        )


def detect_labels_response(labels: Sequence[Label]) -> dict[str, Any]:
    """The body of a DetectLabels response for ``labels``."""
    return {"Labels": [lb.to_rekognition() for lb in labels], "LabelModelVersion": MODEL_VERSION}


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
