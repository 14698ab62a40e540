"""``python -m bench.unknowns``: how well unknown faces cluster, on photos of known people.

The labelled photos are treated as unknown: they are identified, in jobs of ``--job-size``
photos in a shuffled order, against an empty collection, and the service clusters each job's
unknown faces as it finishes (``facetrail.services.unknowns``, the code workers run: placing
the pool, then the automatic split of clusters that grew). Each photo's
largest face carries its label; other faces in a photo are clustered but not scored.

- purity: of the labelled faces in clusters, the share that belongs to their cluster's main
  person;
- completeness: of a person's labelled faces (every one detected, clustered or not), the share
  in their main cluster (the cluster holding most of them);
- also how many faces were kept out (too small, blurry, unsure), waited in the pool, the
  clusters per person, and how many automatic splits the clustering made.

Protocol. The settings (link and join similarities, minimum cluster size; the split's gap over
``--gaps``, only off unless asked) are chosen on ``glint_celebrity_chips`` and on half of
``celeba_identities``' people (every other identity, sorted: "celeba-a"): the most complete ones
(mean completeness) whose clusters stay at least ``--purity`` (0.98) pure on both in every one
of ``--orders`` orders in which the jobs arrive (in production the order is whatever it is: a
setting must be pure in any); ties go to the stricter join, then the stricter gap. The reported
sets, the other half of celeba's people ("celeba-b") and deepface's ``identities.csv``, are
clustered with those settings and never used to choose anything. (A first version chose on
glint alone; see docs/unknowns.md for what that gave.) The algorithms that scikit-learn offers
are compared on the tuning sets too, clustering all their faces at once (why average linkage).

``--job-size`` and the orders change only the arrival of faces; the photos and their
embeddings are the same. The clustering's CPU time is reported beside identification's.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from bench.datasets import DEFAULT_ROOT, Labelled, load_celeba_identities, load_identities
from bench.facetrail_side import bench_settings
from facetrail import clustering
from facetrail.api import Facetrail
from facetrail.backends.local.calibration import similarity as calibrated
from facetrail.backends.local.vectors import from_blob
from facetrail.db import session_scope
from facetrail.models import (
    AuditEvent,
    FaceResult,
    JobItem,
    UnknownCluster,
    UnknownFace,
)
from facetrail.services import catalog, records, unknowns
from facetrail.settings import Settings

TUNING = ("glint", "celeba-a")
REPORTED = ("celeba-b", "deepface")
LINKS = (15.0, 20.0, 30.0, 40.0, 50.0)
JOINS = (30.0, 40.0, 50.0, 60.0, 70.0)
MIN_SIZES = (2, 3)
# unknown_split_gap (0: off, the automatic split at the join similarity only). Swept with
# ``--gaps off,20,40,60`` (docs/unknowns.md: off was chosen); by default only off, which keeps
# the sweep at a quarter of the time.
GAPS = "off"


def log(message: str) -> None:
    print(f"[bench.unknowns] {message}", file=sys.stderr, flush=True)


def load_glint(root: Path) -> dict[str, list[Path]]:
    people: dict[str, list[Path]] = defaultdict(list)
    base = root / "glint_celebrity_chips"
    with (base / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            people[row["identity"].strip()].append(base / row["path"].strip())
    return dict(people)


def celeba_half(which: int) -> Callable[[Path], dict[str, list[Path]]]:
    """Every other celeba identity (sorted), starting at ``which``: two disjoint sets of people."""

    def load(root: Path) -> dict[str, list[Path]]:
        people = load_celeba_identities(root)
        return {p: people[p] for p in sorted(people)[which::2]}

    return load


SETS: dict[str, Callable[[Path], dict[str, list[Path]]]] = {
    "glint": load_glint,
    "celeba-a": celeba_half(0),
    "celeba-b": celeba_half(1),
    "deepface": load_identities,
}


@dataclass(frozen=True)
class Score:
    purity: float
    completeness: float
    people: int
    faces: int  # labelled faces detected
    clustered: int
    pooled: int
    kept_out: int
    clusters: int  # clusters holding at least one labelled face
    no_face: int = 0  # photos where no face was found
    splits: int = 0  # automatic splits while the jobs were clustered

    def row(self, name: str, note: str = "") -> str:
        return (
            f"| {name} | {self.people} | {self.faces} | {self.purity:.3f} | "
            f"{self.completeness:.3f} | {self.clusters} | {self.clustered} | {self.pooled} | "
            f"{self.kept_out} | {self.no_face} | {self.splits} | {note} |"
        )


HEADER = (
    "| set | people | faces | purity | completeness | clusters | clustered | pooled | kept out "
    "| no face | automatic splits | |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def score_labels(truth: dict[int, str], placed: dict[int, int | None], kept: set[int]) -> Score:
    """``placed``: labelled face -> its cluster (None: in the pool); ``kept``: faces kept out."""
    by_cluster: dict[int, Counter[str]] = defaultdict(Counter)
    by_person: dict[str, Counter[int]] = defaultdict(Counter)
    totals: Counter[str] = Counter(truth.values())
    for face, person in truth.items():
        cluster = placed.get(face)
        if cluster is not None:
            by_cluster[cluster][person] += 1
            by_person[person][cluster] += 1
    clustered = sum(sum(c.values()) for c in by_cluster.values())
    purity = sum(max(c.values()) for c in by_cluster.values()) / clustered if clustered else 0.0
    best = sum(max(c.values()) for c in by_person.values())
    return Score(
        purity=purity,
        completeness=best / len(truth) if truth else 0.0,
        people=len(totals),
        faces=len(truth),
        clustered=clustered,
        pooled=sum(1 for f in truth if f not in kept and placed.get(f) is None),
        kept_out=sum(1 for f in truth if f in kept),
        clusters=len(by_cluster),
    )


@dataclass
class Run:
    """One set identified against its own empty collection: its jobs, in the order they ran."""

    name: str
    collection: str
    jobs: list[int]
    truth: dict[int, str]  # face result id -> person (each photo's largest face)
    no_face: int
    identify_cpu: float
    photos: int
    # CPU seconds of each timed replay, by (automatic split on, its gap)
    cluster_cpu: dict[tuple[bool, float], list[float]] = field(default_factory=dict)


def identify_set(
    ft: Facetrail, name: str, people: dict[str, list[Path]], job_size: int, seed: int
) -> Run:
    """Identify ``people``'s photos against an empty collection, ``job_size`` photos a job, in a
    shuffled order; the service clusters each job as it finishes."""
    settings = ft.settings
    collection = f"bench-{name}"
    with session_scope(settings) as session:
        catalog.create_collection(session, settings, collection)
    photos = [Labelled(p, person) for person in sorted(people) for p in sorted(people[person])]
    random.Random(seed).shuffle(photos)
    label_of = {str(p.path): p.label for p in photos}
    jobs: list[int] = []
    started = time.process_time()
    for start in range(0, len(photos), job_size):
        chunk = photos[start : start + job_size]
        report = ft.identify(collection, [p.path for p in chunk])
        jobs.append(report["job_id"])
        log(f"{name}: job {len(jobs)}, {start + len(chunk)}/{len(photos)} photos")
    cpu = time.process_time() - started
    truth: dict[int, str] = {}
    no_face = 0
    with session_scope(settings) as session:
        items = session.scalars(select(JobItem).where(JobItem.job_id.in_(jobs))).all()
        for item in items:
            faces = list(item.faces)
            if not faces:
                no_face += 1
                continue
            largest = max(faces, key=lambda f: f.box_width * f.box_height)
            truth[largest.id] = label_of[item.source]
    return Run(name, collection, jobs, truth, no_face, cpu, len(photos))


def placement(settings: Settings, collection: str) -> tuple[dict[int, int | None], set[int]]:
    """face result id -> cluster (None: pool), and the faces kept out."""
    with session_scope(settings) as session:
        cid = records.get_collection(session, collection).id
        rows = session.execute(
            select(UnknownFace.face_result_id, UnknownFace.cluster_id, UnknownFace.reason).where(
                UnknownFace.collection_id == cid
            )
        ).tuples()
        placed: dict[int, int | None] = {}
        kept: set[int] = set()
        for face, cluster, reason in rows:
            placed[face] = cluster
            if reason is not None:
                kept.add(face)
    return placed, kept


def automatic_splits(settings: Settings, collection: str) -> int:
    """The collection's automatic splits (audit events) since its clusters were last forgotten."""
    with session_scope(settings) as session:
        cid = records.get_collection(session, collection).id
        events = session.scalars(
            select(AuditEvent.details).where(
                AuditEvent.collection_id == cid, AuditEvent.action == "unknowns_split"
            )
        )
        return sum(1 for details in events if details.get("automatic"))


def score_run(settings: Settings, run: Run) -> Score:
    placed, kept = placement(settings, run.collection)
    score = score_labels(run.truth, placed, kept)
    splits = automatic_splits(settings, run.collection)
    return Score(**{**score.__dict__, "no_face": run.no_face, "splits": splits})


def replay(settings: Settings, run: Run, order: Sequence[int], *, timed: bool = False) -> Score:
    """Forget the collection's clusters and cluster its jobs again, one by one in ``order``,
    with ``settings``: the service's own code, as if the jobs had finished in that order."""
    with session_scope(settings) as session:
        cid = records.get_collection(session, run.collection).id
        session.execute(delete(UnknownFace).where(UnknownFace.collection_id == cid))
        session.execute(delete(UnknownCluster).where(UnknownCluster.collection_id == cid))
        session.execute(delete(AuditEvent).where(AuditEvent.collection_id == cid))
    started = time.process_time()
    for k in range(len(order)):
        with session_scope(settings) as session:
            unknowns.cluster_collection(
                session, settings, run.collection, jobs=[run.jobs[i] for i in order[: k + 1]]
            )
    if timed:
        spent = time.process_time() - started
        mode = (settings.unknown_auto_split, settings.unknown_split_gap)
        run.cluster_cpu.setdefault(mode, []).append(spent)
    return score_run(settings, run)


def orders(run: Run, count: int) -> list[list[int]]:
    """The order the jobs ran in, then ``count - 1`` shuffles of it."""
    out = [list(range(len(run.jobs)))]
    for seed in range(1, count):
        shuffled = list(range(len(run.jobs)))
        random.Random(seed).shuffle(shuffled)
        out.append(shuffled)
    return out


Chosen = tuple[float, float, int, float]  # link, join, min size, gap


def with_params(settings: Settings, chosen: Chosen) -> Settings:
    link, join, min_size, gap = chosen
    return settings.with_(
        unknown_link=link,
        unknown_join=join,
        unknown_min_cluster_size=min_size,
        unknown_split_gap=gap,
    )


def current(settings: Settings) -> Chosen:
    return (
        settings.unknown_link,
        settings.unknown_join,
        settings.unknown_min_cluster_size,
        settings.unknown_split_gap,
    )


def gap_text(gap: float) -> str:
    return f"{gap:g}" if gap > 0 else "off"


def mean_score(scores: Sequence[Score]) -> Score:
    def mean(name: str) -> float:
        return float(np.mean([getattr(s, name) for s in scores]))

    counts = {
        name: round(mean(name))
        for name in Score.__dataclass_fields__
        if name not in ("purity", "completeness")
    }
    return Score(purity=mean("purity"), completeness=mean("completeness"), **counts)


def choose(
    settings: Settings,
    runs: Sequence[Run],
    n_orders: int,
    target: float,
    gaps: Sequence[float] = (0.0,),
) -> tuple[Chosen, list[str]]:
    """The most complete settings (mean completeness over ``runs``) whose purity reaches
    ``target`` on every one of ``runs`` in every job order; ties: the stricter join, then the
    stricter gap (the smaller; off the least strict). And the sweep's table rows."""
    rows: list[str] = []
    best: tuple[float, float, float, float, int] | None = None
    chosen = current(settings)
    for min_size, link, join, gap in itertools.product(MIN_SIZES, LINKS, JOINS, gaps):
        if join < link:
            continue
        tuned = with_params(settings, (link, join, min_size, gap))
        cells: list[str] = []
        purities: list[float] = []
        completeness: list[float] = []
        for run in runs:
            scores = [replay(tuned, run, o) for o in orders(run, n_orders)]
            mean = mean_score(scores)
            low = min(s.purity for s in scores)
            purities.append(low)
            completeness.append(mean.completeness)
            cells.append(f"{mean.purity:.3f} (min {low:.3f}) | {mean.completeness:.3f}")
        head = f"{link:g} | {join:g} | {min_size} | {gap_text(gap)}"
        rows.append(f"| {head} | {' | '.join(cells)} |")
        log(f"sweep: link/join/min/gap {head}: {' / '.join(cells)}")
        if min(purities) >= target:
            stricter = -gap if gap > 0 else -np.inf
            key = (float(np.mean(completeness)), join, stricter, -link, -min_size)
            if best is None or key > best:
                best = key
                chosen = (link, join, min_size, gap)
    return chosen, rows


def embeddings(settings: Settings, run: Run) -> tuple[np.ndarray, list[str]]:
    with session_scope(settings) as session:
        rows = session.execute(
            select(FaceResult.id, FaceResult.embedding).where(FaceResult.id.in_(list(run.truth)))
        ).tuples()
        found = {i: from_blob(b) for i, b in rows if b is not None}
    ids = sorted(found)
    return np.stack([found[i] for i in ids]), [run.truth[i] for i in ids]


def compare_algorithms(settings: Settings, runs: Sequence[Run], target: float) -> list[str]:
    """scikit-learn's clusterings of all of each set's faces at once, on calibrated distance
    (1 - similarity/100), each at its most complete setting that is ``target`` pure on every
    one of ``runs`` (mean completeness)."""
    from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering

    data = []
    for run in runs:
        vectors, labels = embeddings(settings, run)
        distance = 1.0 - calibrated(settings.embedder, vectors @ vectors.T) / 100.0
        np.fill_diagonal(distance, 0.0)
        data.append((distance, dict(enumerate(labels))))
    thresholds = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99]
    families: dict[str, list[tuple[str, Any]]] = {
        f"AgglomerativeClustering({linkage})": [
            (
                f"distance_threshold={t}",
                AgglomerativeClustering(
                    n_clusters=None, metric="precomputed", linkage=linkage, distance_threshold=t
                ),
            )
            for t in thresholds
        ]
        for linkage in ("average", "complete", "single")
    }
    families["DBSCAN(min_samples=2)"] = [
        (f"eps={t}", DBSCAN(eps=t, min_samples=2, metric="precomputed")) for t in thresholds
    ]
    families["HDBSCAN"] = [
        (f"min_cluster_size={m}", HDBSCAN(min_cluster_size=m, metric="precomputed"))
        for m in (2, 3, 4, 5)
    ]
    rows = []
    for family, candidates in families.items():
        best: tuple[list[Score], str] | None = None
        for setting, model in candidates:
            scores = []
            for distance, truth in data:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found = model.fit_predict(distance.astype(np.float64))
                sizes = Counter(found.tolist())
                # Noise (-1) and single faces are not clusters (unknown-N needs two faces).
                placed = {
                    i: (int(c) if c >= 0 and sizes[c] >= 2 else None)
                    for i, c in enumerate(found.tolist())
                }
                scores.append(score_labels(truth, placed, set()))
            if min(s.purity for s in scores) < target:
                continue
            if best is None or np.mean([s.completeness for s in scores]) > np.mean(
                [s.completeness for s in best[0]]
            ):
                best = (scores, setting)
        if best is None:
            rows.append(f"| {family} | none reaches {target} |" + " |" * (2 * len(data)))
            continue
        cells = " | ".join(f"{s.purity:.3f} | {s.completeness:.3f}" for s in best[0])
        rows.append(f"| {family} | {best[1]} | {cells} |")
    return rows


def one_shot(settings: Settings, run: Run) -> Score:
    """The same average linkage over all of a set's faces at once (no arrival order): what
    clustering incrementally costs."""
    vectors, labels = embeddings(settings, run)
    params = unknowns.params_of(settings)
    groups = clustering.pool_groups(lambda c: calibrated(settings.embedder, c), vectors, params)
    placed: dict[int, int | None] = {i: None for i in range(len(labels))}
    for n, group in enumerate(groups):
        placed.update({i: n for i in group})
    return score_labels(dict(enumerate(labels)), placed, set())


def parse_gaps(text: str) -> list[float]:
    return [0.0 if g.strip() == "off" else float(g) for g in text.split(",")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.unknowns", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--job-size", type=int, default=10, help="photos per identify job")
    parser.add_argument("--orders", type=int, default=3, help="job orders per setting")
    parser.add_argument("--purity", type=float, default=0.98, help="purity to reach on glint")
    parser.add_argument(
        "--skip-sweep", action="store_true", help="use the current defaults (FACETRAIL_UNKNOWN_*)"
    )
    parser.add_argument(
        "--gaps",
        type=parse_gaps,
        default=parse_gaps(GAPS),
        help=f"split gaps to sweep, comma-separated, 'off' for 0 (default: {GAPS})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-unknowns-") as home:
        settings = bench_settings(Path(home))
        ft = Facetrail(settings)
        runs = {
            name: identify_set(ft, name, SETS[name](args.data), args.job_size, seed=0)
            for name in (*TUNING, *REPORTED)
        }
        tuning = [runs[name] for name in TUNING]
        out = [f"## Choosing on {' and '.join(TUNING)}", ""]
        if args.skip_sweep:
            chosen = current(settings)
        else:
            log("sweep")
            chosen, rows = choose(settings, tuning, args.orders, args.purity, args.gaps)
            heads = " | ".join(f"{n} purity | {n} completeness" for n in TUNING)
            out += [
                f"Each setting over {args.orders} job orders (jobs of {args.job_size} photos); "
                f"chosen: the most complete (mean) with purity >= {args.purity} on each set in "
                "every order.",
                "",
                f"| link | join | min size | gap | {heads} |",
                "|---|---|---|---|" + "---|" * (2 * len(TUNING)),
                *rows,
                "",
            ]
            algorithms = compare_algorithms(settings, tuning, args.purity)
            out += [
                "scikit-learn's algorithms, all of each set's faces at once, the most complete "
                f"(mean) at purity >= {args.purity} on each:",
                "",
                f"| algorithm | setting | {heads} |",
                "|---|---|" + "---|" * (2 * len(TUNING)),
                *algorithms,
                "",
            ]
        link, join, min_size, gap = chosen
        tuned = with_params(settings, chosen)
        same = chosen == current(Settings())
        out += [
            f"Chosen: link {link:g}, join {join:g}, min cluster size {min_size}, split gap "
            f"{gap_text(gap)} ({'the shipped defaults' if same else 'NOT the shipped defaults'}).",
            "",
            "## Scores",
            "",
            f"Jobs of {args.job_size} photos; each set's mean over {args.orders} job orders "
            "(order 0 is the order the jobs ran in), each order, the same with the split's gap "
            "off (where one was chosen) and without the automatic split, then the same linkage "
            "on all faces at once.",
            "",
            HEADER,
        ]
        for name in (*REPORTED, *TUNING):
            run = runs[name]
            scores = [replay(tuned, run, o, timed=True) for o in orders(run, args.orders)]
            mean = mean_score(scores)
            low = min(s.purity for s in scores)
            note = "settings chosen here" if name in TUNING else "reported"
            out.append(mean.row(name, f"{note}; purity min {low:.3f}"))
            # Every order too: a mean can hide one order's mistake.
            out += [s.row(f"{name}, order {i}", note) for i, s in enumerate(scores)]
            # What the automatic split (and its gap) change: the same settings and orders
            # without them.
            references = {
                "no automatic split": tuned.with_(unknown_auto_split=False, unknown_split_gap=0.0)
            }
            if gap > 0:
                references = {"split gap off": tuned.with_(unknown_split_gap=0.0), **references}
            for what, other in references.items():
                plain = [replay(other, run, o, timed=True) for o in orders(run, args.orders)]
                low = min(s.purity for s in plain)
                out.append(
                    mean_score(plain).row(f"{name}, {what}", f"reference; purity min {low:.3f}")
                )
            out.append(one_shot(tuned, run).row(f"{name}, all at once", "reference"))
        out += [
            "",
            "## CPU time",
            "",
            "Identify jobs (with their clustering as they finished, at the defaults), and the "
            "clustering alone (the replays above: as chosen, with the split's gap off, without "
            "the automatic split), per photo:",
            "",
            "| set | photos | identify jobs, ms/photo | clustering alone, ms/photo "
            "| gap off | without the automatic split |",
            "|---|---|---|---|---|---|",
        ]
        for name, run in runs.items():
            alone = [
                f"{1000 * np.mean(run.cluster_cpu[mode]) / run.photos:.1f}"
                if run.cluster_cpu.get(mode)
                else "-"
                for mode in ((True, gap), (True, 0.0), (False, 0.0))
            ]
            out.append(
                f"| {name} | {run.photos} | {1000 * run.identify_cpu / run.photos:.1f} | "
                f"{' | '.join(alone)} |"
            )
        print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
