"""The benchmark's rotating identification splits (bench.datasets, bench.crossval)."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any, cast

import numpy as np
import pytest

from bench import crossval, datasets
from bench.crossval import Tally
from facetrail.backends.local import pipeline
from facetrail.inference.detector import Detection
from tests.conftest import DATA


def test_rotation_zero_enrolls_the_first_photos() -> None:
    split = datasets.identity_split(DATA, 2)
    clusters = datasets.load_identities(DATA)
    for label, photos in clusters.items():
        first = sorted(photos, key=lambda p: p.name)[:2]
        assert [e.path for e in split.enroll if e.label == label] == first


def test_every_photo_is_a_probe_exactly_n_minus_k_times_over_the_rounds() -> None:
    clusters = datasets.load_identities(DATA)
    rounds = max(len(photos) for photos in clusters.values())
    probed: Counter[str] = Counter()
    for rotation in range(rounds):
        split = datasets.identity_split(DATA, 1, rotation)
        enrolled = {e.path for e in split.enroll}
        assert not enrolled & {p.path for p in split.probes}
        assert {e.label for e in split.enroll} == set(clusters)  # distractors stay enrolled
        probed.update(str(p.path) for p in split.probes)
    for photos in clusters.values():
        for photo in photos:
            assert probed[str(photo)] == len(photos) - 1


def test_open_set_strangers_rotate_and_are_never_enrolled() -> None:
    seen: set[str] = set()
    for rotation in range(3):
        split, strangers = datasets.open_set_split(DATA, 1, rotation=rotation)
        assert strangers and not strangers & seen
        seen |= strangers
        assert not {e.label for e in split.enroll} & strangers
        stranger_probes = [p for p in split.probes if p.label in strangers]
        clusters = datasets.load_identities(DATA)
        assert len(stranger_probes) == sum(len(clusters[c]) for c in strangers)
    assert seen == set(datasets.load_identities(DATA))


def test_tally_separates_wrong_names_from_unknowns() -> None:
    tally = Tally()
    tally.add(["a", None, "c", None], ["a", "b", "b", None])
    assert (tally.probes, tally.right, tally.wrong_name, tally.unknown) == (4, 2, 1, 1)
    assert tally.accuracy == 0.5


def test_tally_merge_adds_every_count() -> None:
    total, part = Tally(), Tally()
    total.add(["a"], ["a"])
    part.add(["b", None], ["a", "c"])
    total.merge(part)
    assert (total.probes, total.right, total.wrong_name, total.unknown) == (3, 1, 1, 1)


def test_celeba_split_enrolls_the_first_photos_and_a_third_are_strangers() -> None:
    clusters = datasets.load_celeba_identities(DATA)
    assert len(clusters) == 66 and sum(len(p) for p in clusters.values()) == 519
    split = datasets.identity_split(DATA, 2, dataset="celeba")
    assert len(split.enroll) == 132 and len(split.probes) == 387
    for label, photos in clusters.items():
        first = sorted(photos, key=lambda p: p.name)[:2]
        assert [e.path for e in split.enroll if e.label == label] == first
    opened, strangers = datasets.open_set_split(DATA, 2, dataset="celeba")
    assert len(strangers) == 22
    assert not {e.label for e in opened.enroll} & strangers
    assert len(opened.probes) == 519 - len(opened.enroll)


def test_tally_counts_probes_without_a_face() -> None:
    tally = Tally()
    tally.add(["a", None, None], ["a", "b", None], ["a", None, None])
    assert (tally.right, tally.unknown, tally.no_face) == (2, 1, 2)


def test_several_shifts_are_parsed_and_need_no_baseline() -> None:
    assert crossval.parse_args(["--shift", "0,1,2,3", "--no-baseline"]).shift == (0, 1, 2, 3)
    assert crossval.parse_args([]).shift == (0,)
    with pytest.raises(SystemExit):  # the baseline does not shift
        crossval.parse_args(["--shift", "0,1"])
    for bad in ("a", "-1", "1,1", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            crossval._shifts(bad)


def test_shift_detection_moves_boxes_back_and_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []

    def detect(self: pipeline.FacePipeline, rgb: Any) -> list[Detection]:
        seen.append(np.asarray(rgb).shape)
        box = np.array([10, 20, 30, 40], np.float32)
        return [Detection(box=box, score=0.9, landmarks=np.zeros((5, 2), np.float32))]

    monkeypatch.setattr(pipeline.FacePipeline, "detect", detect)
    photo = np.zeros((50, 60, 3), np.uint8)
    with crossval.shift_detection(2):
        (face,) = pipeline.FacePipeline.detect(cast(pipeline.FacePipeline, None), photo)
    assert seen == [(48, 58, 3)]
    assert face.box.tolist() == [12, 22, 32, 42]
    assert face.landmarks.tolist() == [[2, 2]] * 5
    assert pipeline.FacePipeline.detect is detect


def test_a_draw_line_gives_right_per_setting_and_pooled_counts() -> None:
    closed, opened = Tally(), Tally()
    closed.add(["a", None], ["a", "b"])
    opened.add(["a", "c"], ["a", None])
    assert crossval.draw_line(3, [closed, opened]) == "| 3 px | 1, 1 | 2 of 4 | 1 | 1 |"
