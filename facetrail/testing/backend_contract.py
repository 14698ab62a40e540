"""The face contract every backend honours: collections, detection, indexing, search, compare.

Subclass :class:`BackendContract` in a test module (a class named ``Test...``) and give it two
fixtures: ``backend`` (a fresh Backend with no collections; closed afterwards) and ``photos``
(a :class:`ContractPhotos`: face_recognition's test photos of Obama and Biden, its
``two_people.jpg``, and a photo without a face).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from facetrail.backends.base import LANDMARK_TYPES, Backend
from facetrail.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    NoFaceError,
    UserExistsError,
    UserNotFoundError,
)
from facetrail.images import LoadedImage, decode_image

MAX_BYTES = 40 << 20
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class ContractPhotos:
    obama: Path
    obama2: Path  # another photo of the same person
    biden: Path
    two_people: Path  # two faces, one of them Obama's
    no_face: Path

    @classmethod
    def face_recognition(cls, images: Path, examples: Path, no_face: Path) -> ContractPhotos:
        """From face_recognition's ``tests/test_images`` and ``examples`` folders."""
        return cls(
            obama=images / "obama.jpg",
            obama2=images / "obama2.jpg",
            biden=images / "biden.jpg",
            two_people=examples / "two_people.jpg",
            no_face=no_face,
        )


def load(path: Path) -> LoadedImage:
    """A photo decoded as every caller of a backend hands it over."""
    return decode_image(
        path.read_bytes(), source=str(path), max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS
    )


class BackendContract:
    """The face operations' contract; see the module docstring for the fixtures to give."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a BackendContract subclass gives a `backend` fixture")

    @pytest.fixture
    def photos(self) -> ContractPhotos:
        raise NotImplementedError("a BackendContract subclass gives a `photos` fixture")

    def test_collection_lifecycle(self, backend: Backend) -> None:
        info = backend.create_collection("people")
        assert info.collection_id == "people" and info.face_count == 0
        assert info.face_model_version
        with pytest.raises(CollectionExistsError):
            backend.create_collection("people")
        assert "people" in backend.list_collections()
        assert backend.ensure_collection("people").collection_id == "people"
        backend.delete_collection("people")
        assert "people" not in backend.list_collections()
        with pytest.raises(CollectionNotFoundError):
            backend.describe_collection("people")
        with pytest.raises(CollectionNotFoundError):
            backend.delete_collection("people")

    def test_detect_faces_shape(self, backend: Backend, photos: ContractPhotos) -> None:
        faces = backend.detect_faces(load(photos.two_people))
        assert len(faces) == 2
        for face in faces:
            box = face.box
            assert 0 <= box.left < 1 and 0 <= box.top < 1
            assert 0 < box.width <= 1 and 0 < box.height <= 1
            assert 0 <= face.confidence <= 100
            assert tuple(lm.type for lm in face.landmarks) == LANDMARK_TYPES
            for lm in face.landmarks:
                # Landmarks sit on the face, give or take a margin.
                assert box.left - 0.2 * box.width <= lm.x <= box.left + 1.2 * box.width
                assert box.top - 0.2 * box.height <= lm.y <= box.top + 1.2 * box.height
            assert face.pose is not None and face.quality is not None
            assert 0 <= face.quality.brightness <= 100 and 0 <= face.quality.sharpness <= 100
        # Largest first.
        assert faces[0].box.area >= faces[1].box.area

    def test_no_face(self, backend: Backend, photos: ContractPhotos) -> None:
        backend.create_collection("empty")
        assert backend.detect_faces(load(photos.no_face)) == []
        with pytest.raises(NoFaceError):
            backend.search_faces_by_image("empty", load(photos.no_face))
        assert backend.identify_faces("empty", load(photos.no_face)) == []

    def test_index_search_delete(self, backend: Backend, photos: ContractPhotos) -> None:
        backend.create_collection("c")
        obama = backend.index_faces("c", load(photos.obama), external_id="obama", max_faces=1)
        biden = backend.index_faces("c", load(photos.biden), external_id="biden")
        assert len(obama.indexed) == 1 and len(biden.indexed) == 1
        assert backend.describe_collection("c").face_count == 2
        listed = {f.face_id: f.external_id for f in backend.list_faces("c")}
        assert listed == {obama.indexed[0].face_id: "obama", biden.indexed[0].face_id: "biden"}

        found = backend.search_faces_by_image("c", load(photos.obama2))
        assert found.matches[0].external_id == "obama"
        assert found.matches[0].similarity >= 80
        assert all(m.similarity < 80 for m in found.matches if m.external_id == "biden")
        assert [m.similarity for m in found.matches] == sorted(
            (m.similarity for m in found.matches), reverse=True
        )
        strict = backend.search_faces_by_image("c", load(photos.obama2), threshold=99.9)
        assert all(m.similarity >= 99.9 for m in strict.matches)

        by_id = backend.search_faces("c", obama.indexed[0].face_id)
        assert obama.indexed[0].face_id not in {m.face_id for m in by_id}

        deleted = backend.delete_faces("c", [obama.indexed[0].face_id, "no-such-face"])
        assert deleted == [obama.indexed[0].face_id]
        assert backend.describe_collection("c").face_count == 1
        after = backend.search_faces_by_image("c", load(photos.obama2))
        assert {m.external_id for m in after.matches} <= {"biden"}

    def test_identify_every_face(self, backend: Backend, photos: ContractPhotos) -> None:
        backend.create_collection("c")
        backend.index_faces("c", load(photos.obama), external_id="obama", max_faces=1)
        results = backend.identify_faces("c", load(photos.two_people))
        assert len(results) == 2
        assert all(r.matches for r in results)

    def test_compare_faces(self, backend: Backend, photos: ContractPhotos) -> None:
        same = backend.compare_faces(load(photos.obama), load(photos.obama2))
        assert same.matches[0].similarity >= 80
        other = backend.compare_faces(load(photos.obama), load(photos.biden))
        assert other.matches == [] and len(other.unmatched) == 1
        loose = backend.compare_faces(load(photos.obama), load(photos.biden), threshold=0)
        assert len(loose.matches) == 1 and loose.matches[0].similarity < 80
        with pytest.raises(NoFaceError):
            backend.compare_faces(load(photos.no_face), load(photos.obama))

    def test_tags(self, backend: Backend) -> None:
        backend.create_collection("tagged", tags={"team": "équipe 1", "project": "album"})
        backend.tag_collection("tagged", {"stage": "test", "team": "core"})
        backend.untag_collection("tagged", ["project", "never-set"])
        assert backend.collection_tags("tagged") == {"team": "core", "stage": "test"}
        with pytest.raises(CollectionNotFoundError):
            backend.collection_tags("missing")

    def test_users(self, backend: Backend, photos: ContractPhotos) -> None:
        backend.create_collection("c")
        faces: dict[str, list[str]] = {}
        for name, photo in [("obama", photos.obama), ("obama", photos.obama2)]:
            indexed = backend.index_faces("c", load(photo), external_id=name, max_faces=1)
            faces.setdefault(name, []).extend(i.face_id for i in indexed.indexed)
        biden = backend.index_faces("c", load(photos.biden), external_id="biden", max_faces=1)
        faces["biden"] = [i.face_id for i in biden.indexed]
        for user in ("obama", "biden"):
            backend.create_user("c", user)
        with pytest.raises(UserExistsError):
            backend.create_user("c", "obama")
        assert backend.list_users("c") == ["biden", "obama"]
        assert backend.associate_faces("c", "obama", faces["obama"]).associated == faces["obama"]
        backend.associate_faces("c", "biden", faces["biden"])
        taken = backend.associate_faces("c", "biden", faces["obama"][:1])
        assert taken.associated == []
        assert taken.refused == {faces["obama"][0]: "ASSOCIATED_TO_A_DIFFERENT_USER"}
        assert backend.describe_collection("c").user_count == 2
        owners = {f.face_id: f.user_id for f in backend.list_faces("c")}
        assert owners == {f: user for user, ids in faces.items() for f in ids}

        found = backend.search_users_by_image("c", load(photos.two_people), threshold=0)
        # The largest face of two_people is Biden's; the other one is not searched.
        assert found.matches[0].user_id == "biden" and found.matches[0].similarity >= 80
        assert [m.user_id for m in found.matches] == ["biden", "obama"]
        assert len(found.unsearched) == 1
        like_obama = backend.search_users("c", user_id="obama", threshold=0)
        assert [m.user_id for m in like_obama] == ["biden"]
        assert like_obama[0].similarity < 80
        like_face = backend.search_users("c", face_id=faces["obama"][0])
        assert [m.user_id for m in like_face] == ["obama"]
        # Identification names the user where the backend searches users, the faces otherwise.
        named = backend.identify_faces("c", load(photos.two_people))
        best = [
            max(r.user_matches, key=lambda m: m.similarity).user_id
            if r.user_matches
            else (r.matches[0].external_id if r.matches else None)
            for r in named
        ]
        assert sorted(b for b in best if b) == ["biden", "obama"]

        released = backend.disassociate_faces("c", "obama", faces["obama"][1:])
        assert released.associated == faces["obama"][1:]
        backend.delete_user("c", "biden")
        with pytest.raises(UserNotFoundError):
            backend.delete_user("c", "biden")
        assert backend.list_users("c") == ["obama"]
        assert {f.face_id for f in backend.list_faces("c") if f.user_id} == {faces["obama"][0]}
