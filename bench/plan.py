"""Which photos each section runs on, and how the table describes them."""

from __future__ import annotations

import os
from pathlib import Path

from bench import datasets


class Plan:
    """The data each section runs on, cut to ``limit`` items, and how to describe it."""

    def __init__(self, root: Path, limit: int | None, enroll_per_identity: int = 2) -> None:
        pairs, self.pair_rows = datasets.load_pairs(root)
        self.pairs = pairs[:limit]
        split = datasets.identity_split(root, enroll_per_identity)
        self.enroll_per_identity = enroll_per_identity
        opened, strangers = datasets.open_set_split(root, enroll_per_identity)
        self.open_split = (
            datasets.IdentitySplit(opened.enroll, opened.probes[:limit], opened.clusters),
            strangers,
        )
        self.split = datasets.IdentitySplit(split.enroll, split.probes[:limit], split.clusters)
        self.boxed = datasets.load_detection_set(root)[:limit]
        self.photos = datasets.throughput_images(root)[:limit]

    def measured_on(self) -> dict[str, str]:
        same = sum(p.same for p in self.pairs)
        boxes = sum(len(i.boxes) for i in self.boxed)
        return {
            "verification": f"{len(self.pairs)} deepface pairs ({same} same, "
            f"{len(self.pairs) - same} different)",
            "identification": f"{len(self.split.probes)} held-out deepface photos; "
            f"{len(self.split.enroll)} enrolled (first {self.enroll_per_identity} per cluster, "
            f"{self.split.clusters} clusters)",
            "open_set": f"{len(self.open_split[0].probes)} deepface photos, "
            f"{sum(p.label in self.open_split[1] for p in self.open_split[0].probes)} of them "
            f"of {len(self.open_split[1])} never-enrolled clusters",
            "detection": f"dlib testing.xml: {len(self.boxed)} images, {boxes} boxes",
            "throughput": f"{len(self.photos)} photos (deepface + face_recognition examples), "
            f"{os.cpu_count()} cores",
        }
