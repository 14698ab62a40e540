from __future__ import annotations

import pytest

from facetrail.backends.base import FaceMatch
from facetrail.identification import assign, person_scores
from facetrail.settings import Settings


def m(person: str, similarity: float) -> FaceMatch:
    return FaceMatch(face_id=f"{person}-{similarity}", external_id=person, similarity=similarity)


def test_person_score_is_mean_over_enrolled_faces() -> None:
    scores = person_scores([m("ann", 90), m("ann", 70), m("bob", 85)])
    assert scores == {"ann": 80.0, "bob": 85.0}


def test_a_person_is_named_at_most_once_per_photo() -> None:
    # Both faces prefer ann; the one-to-one assignment gives ann to the better total.
    faces = [[m("ann", 95), m("bob", 90)], [m("ann", 93), m("bob", 60)]]
    result = assign(faces, threshold=80)
    assert [a.external_id for a in result] == ["bob", "ann"]
    assert result[0].similarity == 90


def test_below_threshold_is_unknown_with_candidates() -> None:
    result = assign([[m("ann", 70), m("bob", 40)]], threshold=80)
    assert result[0].external_id is None
    assert [c.external_id for c in result[0].candidates] == ["ann", "bob"]


def test_runner_up_candidates_exclude_the_chosen_person() -> None:
    result = assign([[m("ann", 95), m("bob", 85), m("cy", 50)]], threshold=80)
    assert result[0].external_id == "ann"
    assert [c.external_id for c in result[0].candidates] == ["bob", "cy"]


def test_no_matches_means_nobody() -> None:
    assert assign([[], []], threshold=80) == assign([[], []], threshold=0)
    assert all(a.external_id is None for a in assign([[], []], threshold=80))


def test_local_templates_are_the_normalised_mean(settings: Settings) -> None:
    import numpy as np

    from facetrail.backends.local.backend import LocalBackend

    rec = LocalBackend(settings)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 192)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query, a, b = vectors
    # Two enrolled photos each half-way to the query.
    e1 = (query + a) / np.linalg.norm(query + a)
    e2 = (query + b) / np.linalg.norm(query + b)
    scores = rec.score_people(query[None, :], {"ann": np.stack([e1, e2]), "solo": e1[None, :]})
    assert scores is not None
    template = (e1 + e2) / np.linalg.norm(e1 + e2)
    assert scores["ann"][0] == pytest.approx(rec.pipeline.similarity(float(query @ template)))
    # The photos reinforce each other: together they score above either one alone.
    assert scores["ann"][0] > scores["solo"][0]


def test_faces_searched_among_users_are_named_by_their_users(settings: Settings) -> None:
    """A backend that searched users (the rekognition backend on a collection with users): each
    user names the person with that external id; users who are no person name nobody."""
    from facetrail.backends.base import BoundingBox, DetectedFace, FaceSearch, UserMatch
    from facetrail.backends.rekognition.backend import RekognitionBackend
    from facetrail.db import session_scope
    from facetrail.migrate import ensure_schema
    from facetrail.models import Collection, Person
    from facetrail.services.naming import name_faces

    ensure_schema(settings)
    face = DetectedFace(BoundingBox(0.1, 0.1, 0.2, 0.2), 99.0)
    searches = [
        FaceSearch(face, [], user_matches=[UserMatch("ghost", 99.0), UserMatch("obama", 95.0)]),
        FaceSearch(face, [], user_matches=[UserMatch("obama", 90.0), UserMatch("biden", 85.0)]),
        FaceSearch(face, [], user_matches=[]),
    ]
    with session_scope(settings) as session:
        collection = Collection(name="c", backend="rekognition", backend_collection_id="c")
        session.add(collection)
        session.flush()
        for person in ("obama", "biden"):
            session.add(
                Person(collection_id=collection.id, external_id=person, display_name=person)
            )
        session.flush()
        named = name_faces(session, collection.id, RekognitionBackend(settings), searches, 80.0)
    assert [(a.external_id, a.similarity) for a in named] == [
        ("obama", 95.0),
        ("biden", 85.0),
        (None, None),
    ]
