"""``facetrail search-past`` and ``facetrail correct``: the past, and corrections of names.

See docs/past.md. Both go through the Python API (``facetrail.api``).
"""

from __future__ import annotations

import argparse
from typing import Any

from facetrail.cli.output import print_json, table
from facetrail.errors import InvalidParameterError
from facetrail.settings import Settings

SEARCH_HELP = "find a face (a photo's largest, or a person's) among every face identified before"
CORRECT_HELP = "correct a name: a face is not X, or is Y; withdraw or list corrections"


def add_past_parsers(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``search-past`` and ``correct`` on the CLI's subparsers."""
    search = subparsers.add_parser("search-past", help=SEARCH_HELP, description=SEARCH_HELP)
    search.add_argument("photo", nargs="?", help="a photo (its largest face); - reads stdin")
    search.add_argument("--person", help="search with this person's enrolled faces instead")
    search.add_argument("--collection", "-c", required=True)
    search.add_argument(
        "--threshold", type=float, help="similarity needed, 0-100 (identify's; default 80)"
    )
    search.add_argument("--limit", type=int, help="at most this many matches, best first")
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=search_past)

    correct = subparsers.add_parser("correct", help=CORRECT_HELP, description=CORRECT_HELP)
    actions = correct.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        p.add_argument("--collection", "-c", required=True)
        p.add_argument("--json", action="store_true")
        return p

    not_ = action("not", "FACE is not PERSON: never named so again (until withdrawn)")
    not_.add_argument("face", type=int, help="face result id (jobs JOB, search-past)")
    not_.add_argument("person")
    is_ = action("is", "FACE is PERSON: its results move to them, and it is enrolled as them")
    is_.add_argument("face", type=int, help="face result id (jobs JOB, search-past)")
    is_.add_argument("person", help="an external id (a new person is created)")
    is_.add_argument(
        "--no-enroll", action="store_true", help="record and rename only; do not enroll the face"
    )
    withdraw = action("withdraw", "withdraw a correction (a face it enrolled leaves the person)")
    withdraw.add_argument("correction", type=int)
    listing = action("list", "the collection's corrections")
    listing.add_argument("--all", action="store_true", help="withdrawn ones too")
    correct.set_defaults(handler=correct_command)


def search_past(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail
    from facetrail.cli.commands import _with_stdin

    if (args.photo is None) == (args.person is None):
        raise InvalidParameterError("give a photo or --person, not both")
    image = None if args.photo is None else _with_stdin([args.photo])[0]
    result = Facetrail(settings).search_past(
        args.collection,
        image,
        person=args.person,
        threshold=args.threshold,
        limit=args.limit,
    )
    if args.json:
        print_json(result)
        return 0
    matches = result["matches"]
    print(
        f"{len(matches)} past face(s) at similarity >= {result['threshold']:g} "
        f"among {result['faces_searched']} in {result['collection']!r}"
    )
    if matches:
        table(
            [
                [
                    f"{m['similarity']:.1f}",
                    m["face_result_id"],
                    m["job_id"],
                    m["person"] or "unknown",
                    m["image"],
                    "left {left:.3f} top {top:.3f} width {width:.3f} height {height:.3f}".format(
                        **m["box"]
                    ),
                ]
                for m in matches
            ],
            ["similarity", "face", "job", "named", "image", "box"],
        )
    return 0


def correct_command(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    api = Facetrail(settings)
    data: Any
    if args.action == "not":
        data = api.correct_not(args.collection, args.face, args.person)
    elif args.action == "is":
        data = api.correct_is(args.collection, args.face, args.person, enroll=not args.no_enroll)
    elif args.action == "withdraw":
        data = api.withdraw_correction(args.collection, args.correction)
    else:
        data = api.list_corrections(args.collection, withdrawn=args.all)
        if not args.json:
            table(
                [
                    [
                        c["correction_id"],
                        c["kind"],
                        c["person"],
                        c["face_result_id"],
                        c["actor"],
                        c["created_at"],
                        c["withdrawn_at"] or "",
                    ]
                    for c in data
                ],
                ["id", "kind", "person", "face", "by", "at", "withdrawn"],
            )
            return 0
    if args.json:
        print_json(data)
        return 0
    _describe(args.action, data)
    return 0


def _describe(action: str, data: dict[str, Any]) -> None:
    if action == "withdraw":
        print(
            f"correction {data['correction_id']} ({data['kind']} {data['person']}) withdrawn; "
            f"{data['faces_removed']} enrolled face(s) removed"
        )
        return
    what = "is not" if action == "not" else "is"
    if data.get("already"):
        print(
            f"correction {data['correction_id']}: face {data['face_result_id']} {what} "
            f"{data['person']} already"
        )
        return
    print(
        f"correction {data['correction_id']}: face {data['face_result_id']} {what} "
        f"{data['person']}; {data['results_changed']} result(s) changed"
    )
    if action == "is" and "enrolled" in data:
        if data["enrolled"]:
            print(f"  enrolled as {data['person']} (job {data['enroll_job_id']})")
        else:
            print(f"  not enrolled: {data.get('enroll_error')}")
