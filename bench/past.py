"""Search of the past, measured: ``python -m bench.past``.

On ``celeba_identities`` (66 people, 6 to 8 uncropped photos each), through the real job
service in a private home (SQLite, no broker):

1. the first ``--enroll`` photos of each person by file name are enrolled into one collection;
2. every other photo is identified into it, once: that is the past (each face kept with its
   embedding, box and job);
3. for each person, the past is searched (a) with their first photo (its largest face) and
   (b) by person (the template of their enrolled faces), at the default threshold
   (``FACETRAIL_MATCH_THRESHOLD``, 80, calibrated on johns and ORL: never on these photos).

A photo's labelled face is its largest face (CelebA photos are centred on their person); other
faces count as someone else's. Recall: the share of a person's labelled faces in the past that a
search returns. Precision: the share of returned faces that are that person's labelled faces.
Both summed over people (micro) and averaged per person (macro). For the search by person,
identify's own names on the same faces are shown beside it: the faces that the identify job
named as that person at the same threshold.

Also: the same searches through the approximate path (a usearch graph over float16 vectors,
forced by a tiny ``vector_exact_limit``), compared with the exact answers; and the CPU time of a
search by person from the cached index against a baseline without it (every past embedding read
from the database and scored in one product), alternated A/B per query.

Prints a markdown report on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from bench.datasets import DEFAULT_ROOT, load_celeba_identities
from bench.facetrail_side import bench_settings, largest_face
from facetrail.api import Facetrail
from facetrail.backends.local.vectors import from_blob
from facetrail.db import session_scope
from facetrail.errors import FacetrailError
from facetrail.modelfiles import install_models
from facetrail.models import FaceResult, Job, JobItem
from facetrail.services import past
from facetrail.services.records import get_collection
from facetrail.settings import Settings
from facetrail.vectors import normalise, template

COLLECTION = "celebs"


def log(message: str) -> None:
    print(f"[past] {message}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """Found and missed labelled faces, and wrong ones returned, over people."""

    relevant: int = 0
    found: int = 0
    returned: int = 0
    per_person: list[tuple[float, float]] = field(default_factory=list)  # (recall, precision)

    def add(self, relevant: set[int], returned: set[int]) -> None:
        hits = len(relevant & returned)
        self.relevant += len(relevant)
        self.found += hits
        self.returned += len(returned)
        recall = hits / len(relevant) if relevant else 1.0
        precision = hits / len(returned) if returned else 1.0
        self.per_person.append((recall, precision))

    def row(self, name: str) -> str:
        recall = self.found / self.relevant if self.relevant else 0.0
        precision = self.found / self.returned if self.returned else 1.0
        macro_r = float(np.mean([r for r, _ in self.per_person]))
        macro_p = float(np.mean([p for _, p in self.per_person]))
        return (
            f"| {name} | {len(self.per_person)} | {self.relevant} | {self.found} | "
            f"{self.returned - self.found} | {recall:.3f} | {precision:.3f} | "
            f"{macro_r:.3f} | {macro_p:.3f} |"
        )


HEADER = (
    "| query | people | their faces in the past | found | others returned | recall | "
    "precision | recall (per person) | precision (per person) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def cpu() -> float:
    return time.process_time()


def labelled_faces(report: dict[str, Any], owner: dict[str, str]) -> dict[str, set[int]]:
    """Person -> face result ids of the largest face of each of their identified photos."""
    out: dict[str, set[int]] = {}
    for image in report["images"]:
        face = largest_face(image.get("faces") or [])
        if image["status"] == "succeeded" and face is not None:
            out.setdefault(owner[image["image"]], set()).add(face["face_result_id"])
    return out


def named_by_identify(report: dict[str, Any]) -> dict[str, set[int]]:
    """Person -> face results the identify job named as them."""
    out: dict[str, set[int]] = {}
    for image in report["images"]:
        for face in image.get("faces") or []:
            if face["person"]:
                out.setdefault(face["person"], set()).add(face["face_result_id"])
    return out


def indexed_search(settings: Settings, queries: np.ndarray, threshold: float) -> set[int]:
    """The past-faces index of this process, brought up to date, searched."""
    with session_scope(settings) as session:
        collection = get_collection(session, COLLECTION)
        backend = past.recognizer(settings, collection)
        vectors = past.past_faces(session, settings, collection, backend.model_version)
        return set(past._within(vectors, backend, normalise(template(queries)[None, :]), threshold))


def baseline_search(settings: Settings, queries: np.ndarray, threshold: float) -> set[int]:
    """No index: every past embedding of the collection read from the database, one product."""
    with session_scope(settings) as session:
        collection = get_collection(session, COLLECTION)
        backend = past.recognizer(settings, collection)
        rows = session.execute(
            select(FaceResult.id, FaceResult.embedding)
            .join(JobItem, FaceResult.job_item_id == JobItem.id)
            .join(Job, JobItem.job_id == Job.id)
            .where(
                Job.collection_id == collection.id,
                FaceResult.model_version == backend.model_version,
                FaceResult.embedding.is_not(None),
            )
        ).all()
    ids = np.array([r[0] for r in rows])
    matrix = normalise(np.stack([from_blob(r[1]) for r in rows]))
    sims = np.asarray(backend.template_similarity(matrix @ template(queries)))
    return {int(i) for i in ids[sims >= threshold]}


def run(args: argparse.Namespace) -> str:
    identities = load_celeba_identities(args.data)
    people = sorted(identities)[: args.limit] if args.limit else sorted(identities)
    home = Path(tempfile.mkdtemp(prefix="bench-past-"))
    settings = bench_settings(home)
    install_models(settings, log=log)
    ft = Facetrail(settings)
    threshold = settings.match_threshold
    enroll = [(p, sorted(identities[p])[: args.enroll]) for p in people]
    held = {str(photo): p for p in people for photo in sorted(identities[p])[args.enroll :]}
    log(f"{len(people)} people: enrolling {sum(len(e) for _, e in enroll)} photos")
    started = cpu()
    enrolled = ft.enroll(COLLECTION, [(str(photo), p) for p, photos in enroll for photo in photos])
    log(f"enrolled: {enrolled['succeeded']}/{enrolled['total']} ({cpu() - started:.0f}s CPU)")
    log(f"identifying {len(held)} photos into the past")
    started = cpu()
    history = ft.identify(COLLECTION, list(held))
    log(
        f"identified: {history['succeeded']}/{history['total']} ({cpu() - started:.0f}s CPU, "
        f"{sum(len(i.get('faces') or []) for i in history['images'])} faces)"
    )
    truth = labelled_faces(history, held)
    named = named_by_identify(history)

    by_photo, by_person, by_identify = Tally(), Tally(), Tally()
    approx_settings = settings.with_(vector_exact_limit=args.approximate_limit)
    approx = Facetrail(approx_settings)
    agree = total = 0
    timings: dict[str, list[float]] = {"index": [], "baseline": []}
    no_face: list[str] = []
    for person, photos in enroll:
        relevant = truth.get(person, set())
        query = photos[0]
        try:
            found = ft.search_past(COLLECTION, query)
        except FacetrailError as exc:  # a query photo without a face is reported, not fatal
            no_face.append(f"{person} ({query.name}: {exc.message})")
            found = None
        if found is not None:
            by_photo.add(relevant, {m["face_result_id"] for m in found["matches"]})
            other = approx.search_past(COLLECTION, query)
            total += 1
            agree += {m["face_result_id"] for m in other["matches"]} == {
                m["face_result_id"] for m in found["matches"]
            }
        result = ft.search_past(COLLECTION, person=person)
        returned = {m["face_result_id"] for m in result["matches"]}
        by_person.add(relevant, returned)
        by_identify.add(relevant, named.get(person, set()))
        other = approx.search_past(COLLECTION, person=person)
        total += 1
        agree += {m["face_result_id"] for m in other["matches"]} == returned

        # Speed: the cached index against no index, alternated.
        with session_scope(settings) as session:
            collection = get_collection(session, COLLECTION)
            vectors = past.person_query(
                session, collection, past.recognizer(settings, collection), person
            )
        for _ in range(args.repeat):
            t = cpu()
            indexed = indexed_search(settings, vectors, threshold)
            timings["index"].append(cpu() - t)
            t = cpu()
            plain = baseline_search(settings, vectors, threshold)
            timings["baseline"].append(cpu() - t)
            assert indexed == plain, (person, indexed ^ plain)

    faces_in_past = sum(len(i.get("faces") or []) for i in history["images"])
    lines = [
        "## Search of the past (`python -m bench.past`)",
        "",
        f"`celeba_identities`: {len(people)} people; the first {args.enroll} photos of each "
        f"(by file name) enrolled, the other {len(held)} identified once into the past "
        f"({history['succeeded']} succeeded, {faces_in_past} faces, "
        f"{sum(len(v) for v in truth.values())} of them labelled: a photo's largest face). "
        f"Threshold {threshold:g}, the default (calibrated on johns and ORL, never on these "
        "photos).",
        "",
        HEADER,
        by_photo.row("a photo (their first enrolled photo's largest face)"),
        by_person.row("a person (the template of their enrolled faces)"),
        by_identify.row("identify's own names (same faces, same threshold)"),
        "",
        f"Approximate path (usearch graph over float16 vectors, `vector_exact_limit="
        f"{args.approximate_limit}`): {agree}/{total} searches returned exactly the exact "
        "path's faces.",
        "",
        f"CPU time per search by person, without describing the matches "
        f"({len(timings['index'])} each, alternated, same answers): cached index "
        f"{1000 * np.mean(timings['index']):.2f} ms (median "
        f"{1000 * np.median(timings['index']):.2f}), no index (read every past embedding, "
        f"one product) {1000 * np.mean(timings['baseline']):.2f} ms (median "
        f"{1000 * np.median(timings['baseline']):.2f}), over {faces_in_past} past faces.",
    ]
    if no_face:
        lines += ["", f"Query photos without a face ({len(no_face)}): " + "; ".join(no_face)]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.past", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT, help="shared data root")
    parser.add_argument("--enroll", type=int, default=2, help="photos enrolled per person")
    parser.add_argument("--limit", type=int, help="the first N people only (smoke runs)")
    parser.add_argument(
        "--approximate-limit",
        type=int,
        default=16,
        help="vector_exact_limit for the approximate comparison (forces the graph path)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed A/B pairs per person")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    print(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
