"""``facetrail``: the command line. Settings come from FACETRAIL_* and these global options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facetrail.cli import commands
from facetrail.cli.past import add_past_parsers
from facetrail.cli.serve import add_serve_parser
from facetrail.cli.unknowns import add_unknowns_parser
from facetrail.errors import FacetrailError
from facetrail.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facetrail",
        description="Enroll people and identify them in photos, as jobs with a full record.",
    )
    parser.add_argument("--home", type=Path, help="data folder (FACETRAIL_HOME)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (FACETRAIL_DATABASE_URL)")
    parser.add_argument("--broker-url", help="Celery broker, e.g. redis://localhost:6379/0")
    parser.add_argument("--backend", help="recognizer backend: local or rekognition")
    parser.add_argument(
        "--embedder", help="local backend embedder: mobilefacenet-flip, mobilefacenet or dlib"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    models = add("models", commands.models, "install or check model files")
    models.add_argument("action", choices=["install", "list"])
    models.add_argument(
        "--demo",
        action="store_true",
        help="also the demo photos (two people, from the face_recognition 1.3.0 sdist) into "
        "FACETRAIL_HOME/demo",
    )

    db = add("db", commands.db, "create or upgrade the database schema")
    db.add_argument("action", choices=["upgrade", "current"])

    enroll = add("enroll", commands.enroll, "enroll people from a folder per person or Name_N.jpg")
    enroll.add_argument(
        "sources",
        nargs="+",
        help="folders, files, URLs, s3:// keys or prefixes; - reads one image from stdin",
    )
    enroll.add_argument("--person", help="the person every image shows (needed for -)")
    enroll.add_argument("--collection", "-c", required=True)
    enroll.add_argument("--json", action="store_true")
    enroll.add_argument(
        "--upload",
        action="store_true",
        help="copy local files into the image store, so workers on other machines can read them",
    )

    identify = add("identify", commands.identify, "name the known people in photos")
    identify.add_argument(
        "images", nargs="+", help="folders, files, .txt lists, URLs, s3://; - reads stdin"
    )
    identify.add_argument("--collection", "-c", required=True)
    identify.add_argument("--threshold", type=float, help="similarity needed to name (0-100)")
    identify.add_argument(
        "--attributes", action="store_true", help="also age range, gender, emotions, smile"
    )
    identify.add_argument("--annotate", type=Path, metavar="OUT", help="file or folder")
    identify.add_argument("--json", action="store_true")
    identify.add_argument("--no-wait", action="store_true", help="enqueue and print the job id")
    identify.add_argument(
        "--upload",
        action="store_true",
        help="copy local files into the image store, so workers on other machines can read them",
    )

    compare = add("compare", commands.compare, "largest face of SOURCE against faces of TARGET")
    compare.add_argument("source")
    compare.add_argument("target")
    compare.add_argument("--threshold", type=float)
    compare.add_argument("--json", action="store_true")

    detect = add("detect", commands.detect, "find faces: box, landmarks, pose, quality")
    detect.add_argument("images", nargs="+")
    detect.add_argument("--json", action="store_true")
    detect.add_argument(
        "--attributes", action="store_true", help="also age range, gender, emotions, smile"
    )

    coll = add("collections", commands.collections, "list, create, describe or delete collections")
    coll.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=["list", "create", "describe", "delete", "people", "public-figures"],
    )
    coll.add_argument("name", nargs="?")
    coll.add_argument("--off", action="store_true", help="public-figures: unmark the collection")
    coll.add_argument("--json", action="store_true")

    jobs = add("jobs", commands.jobs, "list recent jobs, or show one")
    jobs.add_argument("job", nargs="?", type=int)
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true")
    jobs.add_argument(
        "--resume", action="store_true", help="send the job's unfinished items to workers again"
    )

    rerun = add("rerun", commands.rerun, "identify a job's images again and report what changed")
    rerun.add_argument("job", type=int)
    rerun.add_argument("--json", action="store_true")

    reindex = add("reindex", commands.reindex, "re-embed a collection into a new model or backend")
    reindex.add_argument("collection")
    reindex.add_argument("--backend", dest="target_backend", help="move to this backend")
    reindex.add_argument("--model", help="local embedder to re-embed with, e.g. mobilefacenet-flip")
    reindex.add_argument("--detector", help="local face detector to re-detect with, e.g. mtcnn")
    reindex.add_argument("--json", action="store_true")

    people = add("people", commands.people, "rename, merge or delete a person")
    people.add_argument("action", choices=["rename", "merge", "delete", "urls"])
    people.add_argument("person", help="external id (for merge: the one merged away)")
    people.add_argument(
        "other", nargs="*", help="rename: new external id; merge: merge into; urls: the links"
    )
    people.add_argument("--collection", "-c", required=True)
    people.add_argument("--display-name")

    tag = add("tag", commands.tag, "labels, text, known people and moderation for many images")
    tag.add_argument(
        "sources", nargs="+", help="folders, files, .txt of URLs, .csv, s3://; - reads stdin"
    )
    tag.add_argument("--ops", help="comma-separated tagging operations (default: all)")
    tag.add_argument("--column", help="the CSV column that holds image paths or URLs")
    tag.add_argument("--long", type=Path, help="write the long table (one row per finding)")
    tag.add_argument("--wide", type=Path, help="write the wide table (one row per image)")
    tag.add_argument("--parquet", action="store_true", help="write Parquet instead of CSV")
    tag.add_argument("--json", action="store_true")
    tag.add_argument(
        "--upload",
        action="store_true",
        help="copy local files into the image store, so workers on other machines can read them",
    )

    audit = add("audit", commands.audit, "who did what to which collection, and when")
    audit.add_argument("--collection", "-c")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true")

    worker = add("worker", commands.worker, "run a Celery worker on the configured broker")
    worker.add_argument(
        "--concurrency",
        type=int,
        help="worker processes (FACETRAIL_WORKER_CONCURRENCY; default: one per core)",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--pool", default="prefork")
    add_serve_parser(sub)
    add_past_parsers(sub)
    add_unknowns_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {
        "home": args.home,
        "database_url": args.database_url,
        "broker_url": args.broker_url,
        "backend": args.backend,
        "embedder": args.embedder,
    }
    try:
        settings = Settings.from_env(**overrides)
        handler: Handler = args.handler
        return handler(settings, args)
    except FacetrailError as exc:
        print(f"facetrail: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
