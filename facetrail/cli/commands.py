"""One function per CLI command: parse-free, taking settings and the parsed arguments."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from facetrail.backends import get_backend
from facetrail.backends.base import DetectedFace
from facetrail.cli.output import describe_job, print_json, table
from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.images import LoadedImage, open_image
from facetrail.settings import Settings
from facetrail.shapes import attributes_json


def _load(settings: Settings, source: str) -> LoadedImage:
    return open_image(settings, source)


STDIN = "-"


def _with_stdin(sources: Sequence[str]) -> list[str | bytes]:
    """``sources`` with ``-`` replaced by the image bytes read from standard input."""
    if STDIN not in sources:
        return list(sources)
    if sources.count(STDIN) > 1:
        raise InvalidParameterError("standard input (-) can be named only once")
    data = sys.stdin.buffer.read()
    return [data if source == STDIN else source for source in sources]


def _progress(label: str, enabled: bool) -> tuple[Any, Any]:
    bar: tqdm[Any] | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if not enabled or total < 2:
            return
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="img", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def face_dict(face: DetectedFace) -> dict[str, Any]:
    return {
        "box": face.box.as_dict(),
        "confidence": round(face.confidence, 3),
        "landmarks": [dataclasses.asdict(lm) for lm in face.landmarks],
        "pose": dataclasses.asdict(face.pose) if face.pose else None,
        "quality": dataclasses.asdict(face.quality) if face.quality else None,
        # Rekognition's names and shapes (AgeRange, Gender, Emotions, Smile...), when measured.
        **({"attributes": attributes_json(face.attributes)} if face.attributes else {}),
    }


def models(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.modelfiles import install_models, verify_models

    if args.action == "install":
        log = lambda m: print(m, file=sys.stderr)  # noqa: E731
        for path in install_models(settings, log=log, demo=args.demo):
            print(path)
        return 0
    rows = verify_models(settings, demo=args.demo)
    table(rows, ["model", "ok", "detail"])
    return 0 if all(ok for _, ok, _ in rows) else 1


def db(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.migrate import is_current, upgrade

    if args.action == "upgrade":
        upgrade(settings)
        print(f"database at head: {settings.resolved_database_url}", file=sys.stderr)
        return 0
    current = is_current(settings)
    print("at head" if current else "needs `facetrail db upgrade`")
    return 0 if current else 1


def enroll(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail
    from facetrail.images.scan import enroll_sources

    entries: list[tuple[str | bytes, str]] = []
    for source in _with_stdin(args.sources):
        if isinstance(source, bytes):
            if args.person is None:
                raise InvalidParameterError("an image read from stdin (-) needs --person")
            entries.append((source, args.person))
        else:
            found = enroll_sources([source], settings=settings, person=args.person)
            entries.extend((e.source, e.external_id) for e in found)
    update, close = _progress("enroll", not args.json)
    try:
        report = Facetrail(settings).enroll(
            args.collection, entries, upload=args.upload, progress=update
        )
    finally:
        close()
    print_json(report) if args.json else describe_job(report)
    return 0 if report["status"] != "failed" else 1


def identify(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.annotate import annotate, output_path
    from facetrail.api import Facetrail
    from facetrail.images import open_image

    update, close = _progress("identify", not args.json)
    try:
        report = Facetrail(settings).identify(
            args.collection,
            _with_stdin(args.images),
            threshold=args.threshold,
            attributes=args.attributes,
            upload=args.upload,
            wait=not args.no_wait,
            progress=update,
        )
    finally:
        close()
    if args.annotate is not None:
        many = len(report["images"]) > 1
        for image in report["images"]:
            if image["status"] != "succeeded":
                continue
            target = output_path(args.annotate, image["image"], many)
            # The job's own source: a path, a URL or an uploaded copy alike.
            photo = open_image(settings, image["image"])
            annotate(photo, image["faces"]).save(target, quality=90)
            if not args.json:
                print(f"annotated: {target}", file=sys.stderr)
    if args.json:
        print_json(report)
    else:
        describe_job(report)
    return 0 if report["status"] != "failed" else 1


def compare(settings: Settings, args: argparse.Namespace) -> int:
    recognizer = get_backend(settings)
    result = recognizer.compare_faces(
        _load(settings, args.source), _load(settings, args.target), threshold=args.threshold
    )
    if args.json:
        print_json(
            {
                "source_face": face_dict(result.source),
                "matches": [
                    {"similarity": round(m.similarity, 2), "face": face_dict(m.face)}
                    for m in result.matches
                ],
                "unmatched": [face_dict(f) for f in result.unmatched],
            }
        )
    else:
        for m in result.matches:
            print(f"match  similarity {m.similarity:6.2f}  box {_box(m.face)}")
        for f in result.unmatched:
            print(f"no match                   box {_box(f)}")
    return 0 if result.matches else 1


def detect(settings: Settings, args: argparse.Namespace) -> int:
    recognizer = get_backend(settings)
    out: list[dict[str, Any]] = []
    status = 0
    for source in args.images:
        try:
            faces = recognizer.detect_faces(_load(settings, source), attributes=args.attributes)
            out.append({"image": source, "faces": [face_dict(f) for f in faces]})
        except FacetrailError as exc:
            status = 1
            out.append({"image": source, "error": exc.message, "faces": []})
    if args.json:
        print_json(out)
        return status
    for entry in out:
        if "error" in entry:
            print(f"{entry['image']}: error: {entry['error']}")
            continue
        print(f"{entry['image']}: {len(entry['faces'])} face(s)")
        for f in entry["faces"]:
            pose, quality = f["pose"] or {}, f["quality"] or {}
            print(
                f"  box {_fmt_box(f['box'])}  confidence {f['confidence']:.1f}  "
                f"yaw {pose.get('yaw', 0):.0f} pitch {pose.get('pitch', 0):.0f} "
                f"roll {pose.get('roll', 0):.0f}  brightness {quality.get('brightness', 0):.0f} "
                f"sharpness {quality.get('sharpness', 0):.0f}"
            )
            if "attributes" in f:
                print(f"  {_fmt_attributes(f['attributes'])}")
    return status


def _fmt_attributes(found: dict[str, Any]) -> str:
    parts = []
    if "AgeRange" in found:
        parts.append("age {Low}-{High}".format(**found["AgeRange"]))
    if "Gender" in found:
        parts.append("{Value} ({Confidence:.0f})".format(**found["Gender"]).lower())
    if found.get("Emotions"):
        parts.append("{Type} ({Confidence:.0f})".format(**found["Emotions"][0]).lower())
    for name, flag in found.items():
        if isinstance(flag, dict) and isinstance(flag.get("Value"), bool):
            parts.append(f"{name.lower()} {'yes' if flag['Value'] else 'no'}")
    return "  ".join(parts)


def _box(face: DetectedFace) -> str:
    return _fmt_box(face.box.as_dict())


def _fmt_box(box: dict[str, float]) -> str:
    return "left {left:.3f} top {top:.3f} width {width:.3f} height {height:.3f}".format(**box)


def collections(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.db import session_scope
    from facetrail.migrate import ensure_schema
    from facetrail.services import catalog

    action = args.action
    if action != "list" and not args.name:
        raise InvalidParameterError(f"`collections {action}` needs a collection name")
    ensure_schema(settings)
    with session_scope(settings) as session:
        if action == "list":
            data: Any = catalog.list_collections(session)
            if not args.json:
                table([list(c.values()) for c in data], list(data[0]) if data else ["name"])
                return 0
        elif action == "create":
            data = catalog.create_collection(session, settings, args.name)
        elif action == "describe":
            data = catalog.describe_collection(session, args.name)
        elif action == "public-figures":
            data = catalog.set_public_figures(session, settings, args.name, not args.off)
        elif action == "people":
            data = catalog.list_people(session, args.name)
            if not args.json:
                table([list(p.values()) for p in data], list(data[0]) if data else ["external_id"])
                return 0
        else:
            catalog.delete_collection(session, settings, args.name)
            data = {"deleted": args.name}
    print_json(data)
    return 0


def jobs(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    api = Facetrail(settings)
    if args.job is not None:
        report = api.resume(args.job) if args.resume else api.job(args.job)
        print_json(report) if args.json else describe_job(report)
        return 0
    listing = api.jobs(args.limit)
    if args.json:
        print_json(listing)
        return 0
    table(
        [
            [
                j["job_id"],
                j["kind"],
                j["status"],
                j["collection"],
                j["collection_version"],
                f"{j['succeeded']}/{j['total']}",
                j["failed"],
                j["created_at"],
            ]
            for j in listing
        ],
        ["job", "kind", "status", "collection", "version", "ok", "failed", "created"],
    )
    for j in listing:
        if j.get("resume"):
            print(f"job {j['job_id']} was interrupted (its process is gone): {j['resume']}")
    return 0


def rerun(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    update, close = _progress("rerun", not args.json)
    try:
        report = Facetrail(settings).rerun(args.job, progress=update)
    finally:
        close()
    if args.json:
        print_json(report)
        return 0
    print(
        f"job {report['job_id']} re-ran job {report['rerun_of']} (collection version "
        f"{report['collection_version_before']} -> {report['collection_version_after']}): "
        f"{len(report['changes'])} change(s)"
    )
    for c in report["changes"]:
        sims = f"{c['similarity_before'] or '-'} -> {c['similarity_after'] or '-'}"
        print(
            f"  {c['image']}: {c['change']}: {c['before'] or 'unknown'} -> "
            f"{c['after'] or 'unknown'} ({sims})"
        )
    return 0


def reindex(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    update, close = _progress("reindex", not args.json)
    try:
        report = Facetrail(settings).reindex(
            args.collection,
            backend=args.target_backend,
            embedder=args.model,
            detector=args.detector,
            progress=update,
        )
    finally:
        close()
    if args.json:
        print_json(report)
    else:
        describe_job(report)
        state = "switched to the new index" if report["switched"] else "NOT switched"
        print(f"{state}: {report['model_version']} on {report['backend']}")
        if report["error"]:
            print(report["error"])
    return 0 if report["switched"] else 1


def people(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail
    from facetrail.db import session_scope
    from facetrail.services import people as people_service

    api = Facetrail(settings)
    other = args.other[0] if args.other else None
    if args.action == "urls":
        with session_scope(settings) as session:
            result = people_service.set_urls(
                session, settings, args.collection, args.person, args.other
            )
    elif args.action == "rename":
        if not (other or args.display_name):
            raise InvalidParameterError("rename needs a new external id or --display-name")
        result = api.rename_person(
            args.collection,
            args.person,
            new_external_id=other,
            display_name=args.display_name,
        )
    elif args.action == "merge":
        if not other:
            raise InvalidParameterError("merge needs the person to merge into")
        result = api.merge_people(args.collection, args.person, other)
    else:
        result = api.delete_person(args.collection, args.person)
    print_json(result)
    return 0


def tag(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    api = Facetrail(settings)
    ops = None if args.ops is None else [op.strip() for op in args.ops.split(",") if op.strip()]
    update, close = _progress("tag", not args.json)
    try:
        report = api.tag(
            _with_stdin(args.sources),
            ops=ops,
            column=args.column,
            upload=args.upload,
            progress=update,
        )
    finally:
        close()
    if args.long or args.wide:
        from facetrail.tagging.tables import write_tables

        written = write_tables(
            api.tag_results(report["job_id"]),
            long=args.long,
            wide=args.wide,
            parquet=True if args.parquet else None,
        )
        for kind, path in written.items():
            print(f"{kind} table: {path}", file=sys.stderr)
    if args.json:
        print_json(report)
    else:
        describe_job(report)
    return 0 if report["status"] != "failed" else 1


def audit(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    events = Facetrail(settings).audit_log(args.collection, args.limit)
    if args.json:
        print_json(events)
        return 0
    table(
        [
            [e["at"], e["actor"], e["action"], e["collection"], e["job_id"], e["details"]]
            for e in events
        ],
        ["at", "actor", "action", "collection", "job", "details"],
    )
    return 0


def worker(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.worker.app import app, configure

    if not settings.broker_url:
        raise InvalidParameterError(
            "a worker needs a broker: set FACETRAIL_BROKER_URL or pass --broker-url"
        )
    if args.concurrency:
        settings = settings.with_(worker_concurrency=args.concurrency)
    configure(app, settings)
    from facetrail.worker import tasks, unknowns  # noqa: F401 - registers the tasks

    app.worker_main(
        [
            "worker",
            f"--loglevel={args.loglevel}",
            f"--concurrency={settings.resolved_worker_concurrency}",
            f"--pool={args.pool}",
            f"--queues={app.conf.task_default_queue}",
        ]
    )
    return 0
