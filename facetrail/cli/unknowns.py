"""``facetrail unknowns``: clusters of the faces identify jobs left unnamed (docs/unknowns.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facetrail.cli.output import print_json, table
from facetrail.settings import Settings

HELP = "clusters of unknown faces: list, show (a contact sheet), name, merge, split, erase"


def add_unknowns_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``unknowns`` and its actions on the CLI's subparsers."""
    parser = subparsers.add_parser("unknowns", help=HELP, description=HELP)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        p.add_argument("--collection", "-c", required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=unknowns)
        return p

    listing = add("list", "the collection's clusters, largest first")
    listing.add_argument(
        "--all", action="store_true", help="also merged, erased and empty clusters"
    )
    show = add("show", "a cluster's faces, and its contact sheet (one image, faces in a grid)")
    show.add_argument("cluster", help="unknown-N")
    show.add_argument(
        "--out", type=Path, help="contact sheet file (default: FACETRAIL_HOME/unknowns/...)"
    )
    show.add_argument("--no-sheet", action="store_true", help="list the faces only")
    name = add("name", "enroll a cluster's faces as a person, re-run their jobs, show changes")
    name.add_argument("cluster")
    name.add_argument("person", help="external id to enroll the faces under")
    name.add_argument("--no-wait", action="store_true", help="start it and print the job ids")
    merge = add("merge", "fold one cluster into another (the second keeps its id)")
    merge.add_argument("cluster", help="the cluster merged away")
    merge.add_argument("into", help="the cluster it goes into")
    split = add("split", "move faces out of a cluster into a new one")
    split.add_argument("cluster")
    split.add_argument(
        "faces",
        nargs="*",
        type=int,
        help="face numbers (from show); none: split where the clustering tells its faces apart",
    )
    add("erase", "erase a cluster: its faces' embeddings, records and contact sheets").add_argument(
        "cluster"
    )
    add("cluster", "cluster the unknown faces of finished identify jobs not yet clustered")


def unknowns(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.api import Facetrail

    api = Facetrail(settings)
    collection = args.collection
    if args.action == "list":
        listing = api.unknowns(collection, everything=args.all)
        print_json(listing) if args.json else _print_list(listing)
        return 0
    if args.action == "show":
        shown = api.unknown(collection, args.cluster)
        if not args.no_sheet:
            shown["sheet"] = str(api.contact_sheet(collection, args.cluster, args.out))
        print_json(shown) if args.json else _print_show(shown)
        return 0
    if args.action == "name":
        named = api.name_unknown(collection, args.cluster, args.person, wait=not args.no_wait)
        print_json(named) if args.json else _print_named(named)
        return 0 if named.get("status", "naming") != "open" else 1
    result: dict[str, Any]
    if args.action == "merge":
        result = api.merge_unknowns(collection, args.cluster, args.into)
    elif args.action == "split":
        result = api.split_unknown(collection, args.cluster, args.faces or None)
    elif args.action == "erase":
        result = api.erase_unknown(collection, args.cluster)
    else:
        result = api.cluster_unknowns(collection)
    print_json(result)
    return 0


def _print_list(listing: dict[str, Any]) -> None:
    table(
        [
            [
                c["cluster"],
                c["status"],
                c["person"] or "",
                c["faces"],
                c["jobs"],
                (c["first_seen"] or "")[:10],
                (c["last_seen"] or "")[:10],
            ]
            for c in listing["clusters"]
        ],
        ["cluster", "status", "person", "faces", "jobs", "first seen", "last seen"],
    )
    kept = ", ".join(f"{n} {reason}" for reason, n in listing["kept_out"].items()) or "none"
    print(f"{listing['pool']} face(s) wait in the pool; kept out: {kept}")


def _print_show(shown: dict[str, Any]) -> None:
    person = f" as {shown['person']}" if shown["person"] else ""
    print(f"{shown['cluster']} ({shown['status']}{person}): {shown['faces']} faces")
    table(
        [
            [m["face"], m["job_id"], (m["identified_at"] or "")[:10], m["image"], m["sharpness"]]
            for m in shown["members"]
        ],
        ["face", "job", "date", "image", "sharpness"],
    )
    if shown.get("sheet"):
        print(f"contact sheet: {shown['sheet']}", file=sys.stderr)


def _print_named(named: dict[str, Any]) -> None:
    if "reruns" not in named:
        print(
            f"{named['cluster']}: enrolling as {named['person']} in job {named['job_id']}; "
            f"its re-runs will have request ids {', '.join(named['rerun_request_ids']) or '-'}"
        )
        return
    print(
        f"{named['cluster']} {named['status']} as {named['person']}: {named['enrolled']} "
        f"face(s) enrolled (job {named['job_id']}), {named['newly_named']} newly named by "
        f"{len(named['reruns'])} re-run(s)"
    )
    for bad in named["left_out"] + named["failed"]:
        print(f"  not enrolled: {bad['image']}: {bad['error']}")
    for report in named["reruns"]:
        print(f"  job {report['rerun_of']} re-ran as job {report['job_id']}:")
        for c in report["changes"]:
            print(f"    {c['image']}: {c['change']}: {c['before'] or 'unknown'} -> {c['after']}")
