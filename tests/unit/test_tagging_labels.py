"""Labels from the converted CenterNet (and, merged in, the ImageNet classifier) on real photos,
and the label/parent/NMS logic."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="needs the tagging extra")

from facetrail.backends import get_backend
from facetrail.backends.base import BoundingBox
from facetrail.errors import InvalidParameterError
from facetrail.images import load_image
from facetrail.inference.labels import COCO_CLASSES, Detection, nms
from facetrail.settings import Settings
from facetrail.tagging.labels import (
    TAXONOMY,
    Label,
    ancestors,
    detect_labels_response,
    label_name,
    to_labels,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FFMPEG = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"
EXAMPLES = DATA / "dlib" / "examples"

# What dlib's README says each non-face photo shows (the names are the photos' own subjects).
EXPECTED = {
    FFMPEG / "dog.jpg": {"Dog", "Bicycle", "Truck"},
    FFMPEG / "eagle.jpg": {"Bird"},
    FFMPEG / "giraffe.jpg": {"Giraffe", "Zebra"},
    FFMPEG / "horses.jpg": {"Horse"},
    EXAMPLES / "mmod_cars_test_image.jpg": {"Car"},
    EXAMPLES / "mmod_cars_test_image2.jpg": {"Car"},
}


def _labels(settings: Settings, path: Path) -> list[Label]:
    image = load_image(path, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    return get_backend(settings, "local").detect_labels(image)


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: p.name)
def test_the_photos_subjects_are_labelled(settings: Settings, path: Path) -> None:
    labels = _labels(settings, path)
    names = {lb.name for lb in labels}
    assert EXPECTED[path] <= names, f"{path.name}: {sorted(names)}"
    for label in labels:
        assert 20.0 <= label.confidence <= 100.0  # the default floor
        for instance in label.instances:
            box = instance.box
            assert box.left >= 0 and box.top >= 0 and box.width > 0 and box.height > 0
            assert box.left + box.width <= 1.0 + 1e-9 and box.top + box.height <= 1.0 + 1e-9


def test_instances_boxes_and_parents(settings: Settings) -> None:
    labels = {lb.name: lb for lb in _labels(settings, FFMPEG / "horses.jpg")}
    horse = labels["Horse"]
    assert len(horse.instances) >= 2  # several horses
    assert horse.parents == ("Mammal", "Animal")
    assert horse.categories == ("Animals and Pets",)
    # Parent labels come too, as in Rekognition: the best child's confidence and no boxes.
    assert labels["Animal"].confidence == horse.confidence and labels["Animal"].instances == ()
    # In dog.jpg the dog sits in the lower left, below the bicycle.
    found = {lb.name: lb for lb in _labels(settings, FFMPEG / "dog.jpg")}
    dog, bicycle = found["Dog"].instances[0].box, found["Bicycle"].instances[0].box
    assert dog.left + dog.width / 2 < 0.5 and dog.top > bicycle.top


def test_no_animal_in_the_car_scenes(settings: Settings) -> None:
    names = {lb.name for lb in _labels(settings, EXAMPLES / "mmod_cars_test_image.jpg")}
    assert "Animal" not in names
    assert {"Vehicle", "Transportation"} <= names


def test_max_labels_and_min_confidence(settings: Settings) -> None:
    image = load_image(FFMPEG / "dog.jpg", max_bytes=10**8, max_pixels=10**8)
    tagger = get_backend(settings, "local")
    everything = tagger.detect_labels(image, min_confidence=0)
    top = tagger.detect_labels(image, max_labels=3)
    strict = tagger.detect_labels(image, min_confidence=50)
    assert len(top) == 3 and [lb.name for lb in top] == [
        lb.name for lb in tagger.detect_labels(image)[:3]
    ]
    assert all(lb.confidence >= 50 for lb in strict)
    assert len(everything) > len(tagger.detect_labels(image))
    with pytest.raises(InvalidParameterError):
        tagger.detect_labels(image, min_confidence=101)
    with pytest.raises(InvalidParameterError):
        tagger.detect_labels(image, max_labels=0)


def test_rekognition_shape(settings: Settings) -> None:
    body = detect_labels_response(_labels(settings, FFMPEG / "eagle.jpg"))
    bird = next(lb for lb in body["Labels"] if lb["Name"] == "Bird")
    assert set(bird) == {"Name", "Confidence", "Instances", "Parents", "Aliases", "Categories"}
    assert bird["Parents"] == [{"Name": "Animal"}]
    assert set(bird["Instances"][0]["BoundingBox"]) == {"Width", "Height", "Left", "Top"}
    assert body["LabelModelVersion"].startswith("centernet-mbv3-coco@")


def test_every_coco_class_has_a_taxonomy_entry_and_parents_resolve() -> None:
    assert len(COCO_CLASSES) == 80
    for coco in COCO_CLASSES:
        name = label_name(coco)
        assert name in TAXONOMY, name
        assert all(parent in TAXONOMY for parent in ancestors(name))
    assert label_name("traffic light") == "Traffic Light" and label_name("tv") == "TV"
    assert ancestors("Dog") == ("Mammal", "Pet", "Animal")
    assert ancestors("Car") == ("Vehicle", "Transportation")


def test_nms_is_per_class() -> None:
    rider = BoundingBox(0.30, 0.10, 0.30, 0.60)
    bike = BoundingBox(0.30, 0.30, 0.30, 0.45)  # overlaps the rider by IoU ~0.75
    detections = [
        Detection(0, 0.9, rider),
        Detection(0, 0.5, BoundingBox(0.31, 0.11, 0.30, 0.60)),  # the same person again
        Detection(1, 0.8, bike),
    ]
    kept = nms(detections)
    assert [(d.class_id, d.score) for d in kept] == [(0, 0.9), (1, 0.8)]
    labels = to_labels(detections)
    assert [lb.name for lb in labels if lb.instances] == ["Person", "Bicycle"]
    assert len(labels[0].instances) == 1
