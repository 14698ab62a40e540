"""``python -m bench.tight_crops``: the group-photo flow of a Rekognition notebook, through serve.

A typical notebook calls DetectFaces on a group photo, crops each face tightly with the returned
BoundingBox and calls SearchFacesByImage once per crop. This runs that flow with boto3 against a
live ``facetrail serve`` (loopback), next to facetrail's own identify job on the whole photo,
and prints a markdown table: for each group photo, the people each way names.

People are enrolled from other photos: deepface's identity clusters (``identities.csv``, the
group photos are not in it) and face_recognition's ``knn_examples/train`` folders. Each group
photo is run as it is and shrunk to 750 px wide, where tight crops are 40-80 px (as in the
notebooks that refused them at 80x80). Done when the crops name everyone the job names.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bench.datasets import DEFAULT_ROOT
from bench.facetrail_side import bench_settings
from facetrail.api import Facetrail
from facetrail.images import to_jpeg
from facetrail.images.scan import EnrollEntry
from facetrail.modelfiles import install_models
from facetrail.server import make_server
from facetrail.settings import Settings

NOTEBOOK_WIDTH = 750  # the group photo's width in the notebooks this flow comes from


@dataclass(frozen=True)
class GroupSet:
    """Group photos and the collection of people (enrolled from other photos) to search."""

    collection: str
    photos: tuple[Path, ...]
    enroll: tuple[EnrollEntry, ...]


@dataclass(frozen=True)
class Row:
    photo: str
    variant: str
    faces: int
    crop_widths: tuple[int, ...]
    job_names: frozenset[str]
    crop_names: frozenset[str]
    crops_without_face: int

    @property
    def covered(self) -> bool:
        return self.job_names <= self.crop_names


def group_sets(root: Path) -> list[GroupSet]:
    deepface = root / "deepface"
    entries = []
    with (deepface / "identities.csv").open() as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            name = f"cluster-{row['identity_cluster']}"
            entries.append(EnrollEntry(source=str(deepface / row["file"]), external_id=name))
    dataset = deepface / "tests" / "unit" / "dataset"
    knn = root / "face_recognition" / "examples" / "knn_examples"
    knn_entries = [
        EnrollEntry(source=str(photo), external_id=person.name)
        for person in sorted((knn / "train").iterdir())
        if person.is_dir()
        for photo in sorted(person.iterdir())
    ]
    return [
        GroupSet(
            "deepface",
            (dataset / "couple.jpg", dataset / "selfie-many-people.jpg"),
            tuple(entries),
        ),
        GroupSet(
            "knn",
            (knn / "test" / "obama_and_biden.jpg", knn / "test" / "kit_with_rose.jpg"),
            tuple(knn_entries),
        ),
    ]


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    srv = make_server(settings, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.url
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def rekognition_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}),
    )


def variants(photo: Path) -> list[tuple[str, bytes]]:
    """The photo's bytes as they are, and as a JPEG NOTEBOOK_WIDTH px wide."""
    data = photo.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    height = round(rgb.height * NOTEBOOK_WIDTH / rgb.width)
    small = rgb.resize((NOTEBOOK_WIDTH, height), Image.Resampling.LANCZOS)
    return [(f"{rgb.width} px", data), (f"{NOTEBOOK_WIDTH} px", to_jpeg(small, quality=90))]


def job_names(api: Facetrail, collection: str, data: bytes) -> frozenset[str]:
    """The people facetrail's identify job names in the whole photo."""
    report = api.identify(collection, [data])
    (image,) = report["images"]
    if image["status"] != "succeeded":
        raise RuntimeError(f"identify failed: {image['error_code']}: {image['error']}")
    return frozenset(face["person"] for face in image["faces"] if face["person"])


def crop_flow(client: Any, collection: str, data: bytes) -> tuple[int, list[int], set[str], int]:
    """The notebook's flow: DetectFaces, one tight crop per BoundingBox, SearchFacesByImage
    per crop. (faces, crop widths, names found, crops the service found no face in)."""
    faces = client.detect_faces(Image={"Bytes": data})["FaceDetails"]
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    widths, names, without_face = [], set(), 0
    for face in faces:
        box = face["BoundingBox"]
        left, top = max(0, round(box["Left"] * rgb.width)), max(0, round(box["Top"] * rgb.height))
        right = min(rgb.width, round((box["Left"] + box["Width"]) * rgb.width))
        bottom = min(rgb.height, round((box["Top"] + box["Height"]) * rgb.height))
        crop = rgb.crop((left, top, right, bottom))
        widths.append(crop.width)
        try:
            found = client.search_faces_by_image(
                CollectionId=collection, Image={"Bytes": to_jpeg(crop, quality=90)}, MaxFaces=1
            )
        except client.exceptions.InvalidParameterException:  # no face in the crop
            without_face += 1
            continue
        for match in found["FaceMatches"]:
            names.add(match["Face"]["ExternalImageId"])
    return len(faces), widths, names, without_face


def run(root: Path) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-crops-") as home:
        settings = bench_settings(Path(home))
        install_models(settings, log=lambda line: print(line, file=sys.stderr))
        api = Facetrail(settings)
        sets = group_sets(root)
        for group in sets:
            report = api.enroll(group.collection, list(group.enroll))
            failed = [i for i in report["images"] if i["status"] != "succeeded"]
            print(f"[bench] {group.collection}: enrolled, {len(failed)} failed", file=sys.stderr)
        with serving(settings) as url:
            client = rekognition_client(url)
            for group in sets:
                for photo in group.photos:
                    for variant, data in variants(photo):
                        named = job_names(api, group.collection, data)
                        faces, widths, found, missed = crop_flow(client, group.collection, data)
                        rows.append(
                            Row(
                                photo=photo.name,
                                variant=variant,
                                faces=faces,
                                crop_widths=tuple(sorted(widths)),
                                job_names=named,
                                crop_names=frozenset(found),
                                crops_without_face=missed,
                            )
                        )
                        print(f"[bench] {photo.name} {variant}: done", file=sys.stderr)
    return rows


def render(rows: Sequence[Row]) -> str:
    def names(values: frozenset[str]) -> str:
        return ", ".join(sorted(values)) or "-"

    lines = [
        "| photo | as sent | faces | crop widths (px) | identify job names | tight crops name "
        "| crops with no face | crops name all the job names |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        widths = f"{row.crop_widths[0]}-{row.crop_widths[-1]}" if row.crop_widths else "-"
        lines.append(
            f"| {row.photo} | {row.variant} | {row.faces} | {widths} | {names(row.job_names)} "
            f"| {names(row.crop_names)} | {row.crops_without_face} "
            f"| {'yes' if row.covered else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tight_crops", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT, help="shared data root")
    args = parser.parse_args(argv)
    rows = run(args.data)
    print(render(rows))
    return 0 if all(row.covered for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
