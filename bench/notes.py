"""The notes printed under the table."""

from __future__ import annotations

from bench.plan import Plan
from bench.report import Results


def notes(plan: Plan, ours: Results, theirs: Results, sections: list[str]) -> list[str]:
    """The lines printed under the table: how each figure was measured, and what went wrong."""
    out: list[str] = []
    if any(section != "throughput" for section in sections):
        out.append(
            f"Decision rules: {ours.label} `{ours.rule or 'n/a'}` (0-100 similarity), "
            f"{theirs.label} `{theirs.rule or 'n/a'}` (Euclidean distance)."
        )
    out += [f"{r.label}: {r.version}." for r in (ours, theirs) if r.version]
    if "verification" in sections:
        out.append(
            f"Verification: {plan.pair_rows} rows of master.csv + face-recognition-pivot.csv, "
            f"{len(plan.pairs)} unique pairs used; largest face of the first photo against every "
            "face of the second, best match counts. No face = wrong; for AUC it scores lowest."
        )
    if "identification" in sections:
        out.append(
            f"Identification: enrolled the first {plan.enroll_per_identity} photo(s) of each "
            "identities.csv cluster "
            "(sorted file names); the largest face of each other photo must be named with its "
            "cluster; unknown or no face = wrong. Rank-1 ignores the threshold: the person the "
            "system ranks first (facetrail: the named person, else its top candidate; baseline: "
            "the nearest enrolled encoding)."
        )
    if "detection" in sections:
        out.append(
            "Detection: one-to-one greedy matching at IoU >= 0.5. Some background faces in these "
            "photos are not boxed, so a few 'false' detections may be real faces: precision is a "
            "lower bound. The boxes follow dlib's (square) convention."
        )
    if "throughput" in sections:
        out.append(
            "Throughput: each system in its own subprocess, one after the other; gallery = the "
            "identification enrollment photos; untimed warm-up on the first photos, then the "
            f"fastest of the timed passes; {ours.label} through its identify job (in-process, "
            "SQLite), the baseline doing locations + encodings + nearest match per face. "
            "Peak memory is the subprocess's VmHWM."
        )
        for r in (ours, theirs):
            if r.throughput is not None:
                t = r.throughput
                out.append(
                    f"{r.label} throughput run: {t.warmup_images} warm-up photos, fastest of "
                    f"{t.repeat} passes ({t.seconds:.1f}s wall, {t.cpu_seconds:.1f}s CPU), "
                    f"other processes used {t.other_cpu_seconds:.1f} CPU-s during its "
                    f"{t.run_seconds:.0f}s run (enrollment and warm-up included)."
                )
    for results in (ours, theirs):
        if results.verification:
            v = results.verification
            out.append(
                f"{results.label} verification errors: {v.false_accepts} false accepts, "
                f"{v.false_rejects} false rejects, {v.no_face} pairs without a face."
            )
        ident = results.identification
        if ident and (ident.enroll_failures or ident.failed):
            out.append(
                f"{results.label} identification: {ident.enroll_failures} enrollment photos "
                f"not enrolled, {ident.failed} held-out photos failed (counted wrong); "
                f"first: {ident.first_error}"
            )
        if results.throughput and results.throughput.failed_images:
            out.append(
                f"{results.label}: {results.throughput.failed_images} throughput photos failed "
                f"(not counted as identified; first: {results.throughput.first_error})."
            )
        out += [f"{results.label} {s} error: {e}" for s, e in results.errors.items()]
    return out
