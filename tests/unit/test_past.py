"""Search of the past: faces identify jobs found, searched by a photo, a person or embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from facetrail.api import Facetrail
from facetrail.cli.main import main
from facetrail.errors import InvalidParameterError
from facetrail.images.scan import enroll_entries
from facetrail.services import past
from facetrail.settings import Settings
from facetrail.vectors import VectorIndex, normalise
from facetrail.vectors.logged import VectorSet
from tests.conftest import KNN

TRAIN = KNN / "train"
TEST = KNN / "test"


def found(result: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(Path(m["image"]).name, m["person"]) for m in result["matches"]}


@pytest.fixture
def history(settings: Settings) -> tuple[Facetrail, dict[str, Any]]:
    """Everyone but biden enrolled; the test photos identified once."""
    ft = Facetrail(settings.with_(actor="tester"))
    ft.enroll("band", [e for e in enroll_entries(TRAIN) if e.external_id != "biden"])
    return ft, ft.identify("band", sorted(TEST.iterdir()))


def test_a_photo_finds_an_unknown_face_in_the_past(
    history: tuple[Facetrail, dict[str, Any]],
) -> None:
    ft, job = history
    result = ft.search_past("band", TRAIN / "biden" / "biden.jpg")
    # Biden was never enrolled: his face in obama_and_biden.jpg was left unnamed.
    assert found(result) == {("obama_and_biden.jpg", None)}
    (match,) = result["matches"]
    assert match["job_id"] == job["job_id"] and match["jobs"] == [job["job_id"]]
    assert 80 <= match["similarity"] <= 100 and result["threshold"] == 80
    image = next(i for i in job["images"] if i["image"] == match["image"])
    face = next(f for f in image["faces"] if f["face_result_id"] == match["face_result_id"])
    assert face["box"] == match["box"] and face["person"] is None
    assert result["faces_searched"] == sum(len(i["faces"]) for i in job["images"])
    event = ft.audit_log("band", limit=1)[0]
    assert event["action"] == "search_past" and event["actor"] == "tester"
    assert event["details"]["matches"] == 1
    # The photo's bytes search the same.
    as_bytes = ft.search_past("band", (TRAIN / "biden" / "biden.jpg").read_bytes())
    assert as_bytes["matches"] == result["matches"]
    with pytest.raises(InvalidParameterError, match="threshold"):
        ft.search_past("band", person="obama", threshold=101)


def test_a_person_finds_their_faces_and_nobody_else(
    history: tuple[Facetrail, dict[str, Any]],
) -> None:
    ft, _ = history
    result = ft.search_past("band", person="obama")
    assert found(result) == {("obama1.jpg", "obama"), ("obama_and_biden.jpg", "obama")}
    assert result["query"] == {"person": "obama", "faces": len(list((TRAIN / "obama").iterdir()))}
    assert all(m["similarity"] >= 80 for m in result["matches"])
    strict = ft.search_past("band", person="kit_harington", threshold=100)
    assert all(m["similarity"] >= 100 for m in strict["matches"])
    assert len(ft.search_past("band", person="obama", limit=1)["matches"]) == 1
    with pytest.raises(InvalidParameterError, match="no person 'biden'"):
        ft.search_past("band", person="biden")


def test_a_face_of_several_jobs_is_one_match_naming_them_all(
    history: tuple[Facetrail, dict[str, Any]],
) -> None:
    ft, job = history
    rerun = ft.rerun(job["job_id"])
    again = ft.identify("band", [TEST / "obama1.jpg"])
    result = ft.search_past("band", person="obama")
    by_image = {Path(m["image"]).name: m for m in result["matches"]}
    assert set(by_image) == {"obama1.jpg", "obama_and_biden.jpg"}
    assert by_image["obama1.jpg"]["jobs"] == [job["job_id"], rerun["job_id"], again["job_id"]]
    # Reported from its latest job.
    assert by_image["obama1.jpg"]["job_id"] == again["job_id"]
    assert by_image["obama_and_biden.jpg"]["jobs"] == [job["job_id"], rerun["job_id"]]


def test_new_results_arrive_as_deltas_and_erasure_removes_faces(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", TRAIN)
    ft.identify("band", [TEST / "obama1.jpg"])
    stats = past.cache(settings).stats
    reloads, deltas = stats.reloads, stats.deltas
    assert ft.search_past("band", person="biden")["matches"] == []
    assert (stats.reloads, stats.deltas) == (reloads + 1, deltas)

    ft.identify("band", [TEST / "obama_and_biden.jpg"])
    assert found(ft.search_past("band", person="biden")) == {("obama_and_biden.jpg", "biden")}
    assert (stats.reloads, stats.deltas) == (reloads + 1, deltas + 1)

    # Erasure takes the faces that named biden (or that he led, unnamed) out of the past.
    ft.delete_person("band", "biden")
    assert ft.search_past("band", TRAIN / "biden" / "biden.jpg")["matches"] == []
    assert found(ft.search_past("band", person="obama")) == {
        ("obama1.jpg", "obama"),
        ("obama_and_biden.jpg", "obama"),
    }


def test_embeddings_search_each_face_or_their_template(
    history: tuple[Facetrail, dict[str, Any]],
) -> None:
    ft, job = history
    from facetrail.db import session_scope
    from facetrail.models import FaceResult

    wanted = {"obama1.jpg", "alex_lacamoire1.jpg"}
    ids = [
        f["face_result_id"]
        for i in job["images"]
        if Path(i["image"]).name in wanted
        for f in i["faces"]
    ]
    with session_scope(ft.settings) as session:
        blobs = [session.get_one(FaceResult, i).embedding for i in ids]
    faces = np.stack([np.frombuffer(b or b"", dtype=np.float32) for b in blobs])
    alone = [ft.search_past_embeddings("band", face[None, :]) for face in faces]
    each = ft.search_past_embeddings("band", faces, combine="any")
    # Each face on its own: the union of their searches, each result at its best similarity.
    best: dict[int, float] = {}
    for result in alone:
        for m in result["matches"]:
            best[m["face_result_id"]] = max(best.get(m["face_result_id"], 0), m["similarity"])
    assert {m["face_result_id"]: m["similarity"] for m in each["matches"]} == best
    assert {Path(m["image"]).name for m in each["matches"]} >= wanted
    # As one template (their normalised mean, as a person's search uses), two different people
    # are each less like it than like themselves.
    mean = ft.search_past_embeddings("band", faces)
    own = {m["face_result_id"]: m["similarity"] for m in mean["matches"]}
    assert set(own) <= set(best)
    for face_id in ids:
        assert own.get(face_id, 0) < best[face_id]


class Linear:
    """A stand-in backend whose similarity is 100 x cosine."""

    def template_similarity(self, cosines: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(cosines, dtype=np.float64) * 100


@pytest.mark.parametrize("exact_limit", [50_000, 100])
def test_every_face_above_the_threshold_comes_back_beyond_the_first_k(exact_limit: int) -> None:
    rng = np.random.default_rng(7)
    centre = normalise(rng.normal(size=(1, 32)))[0]
    near = normalise(centre + 0.1 * rng.normal(size=(600, 32)))  # cosine ~0.85 to the centre
    far = normalise(rng.normal(size=(900, 32)))  # cosine ~0 to the centre
    index: VectorIndex[int] = VectorIndex(32, exact_limit=exact_limit)
    index.add(list(range(1500)), np.vstack([near, far]))
    assert index.approximate == (exact_limit == 100)
    vectors: VectorSet[int, None] = VectorSet(0, index)
    hits = past._within(vectors, Linear(), centre[None, :], 50.0)  # type: ignore[arg-type]
    assert len(hits) > past.FIRST_K
    everyone = np.vstack([near, far])
    expected = {i for i, v in enumerate(everyone) if float(v @ centre) * 100 >= 50}
    assert set(hits) == expected


def test_requests_take_exactly_one_query() -> None:
    with pytest.raises(InvalidParameterError, match="exactly one of image and person"):
        past.parse_request({"collection": "band"})
    with pytest.raises(InvalidParameterError, match="exactly one of image and person"):
        past.parse_request({"collection": "band", "image": "a.jpg", "person": "ann"})
    with pytest.raises(InvalidParameterError, match="threshold"):
        past.parse_request({"collection": "band", "person": "ann", "threshold": 101})
    with pytest.raises(InvalidParameterError, match="JSON object"):
        past.parse_request(["band"])
    request = past.parse_request({"collection": "band", "image": {"data": "aGk="}})
    assert request.image is not None and request.person is None


def test_search_past_on_the_command_line(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enroll", str(TRAIN / "obama"), "--person", "obama", "-c", "band"]) == 0
    assert main(["identify", str(TEST), "-c", "band"]) == 0
    capsys.readouterr()
    assert main(["search-past", "--person", "obama", "-c", "band", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert found(result) == {("obama1.jpg", "obama"), ("obama_and_biden.jpg", "obama")}
    assert main(["search-past", str(TEST / "obama1.jpg"), "-c", "band"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 past face(s) at similarity >= 80 among 8 in 'band'")
    assert "obama1.jpg" in out and "obama_and_biden.jpg" in out
    assert main(["search-past", "-c", "band"]) == 2
    assert "give a photo or --person" in capsys.readouterr().err
