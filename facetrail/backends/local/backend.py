"""The local backend: every operation on CPU with facetrail's own models (``facetrail.inference``).

Faces are detected and embedded by the face pipeline, their vectors kept in facetrail's own
database; labels, text and moderation come from the tagging models, shaped into Rekognition's
results by ``facetrail.tagging.labels``, ``.text`` and ``.moderation``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.backends.base import (
    Backend,
    BoundingBox,
    CollectionInfo,
    CompareMatch,
    CompareResult,
    DetectedFace,
    Embedding,
    FaceAssociation,
    FaceMatch,
    FaceRecord,
    FaceSearch,
    IndexedFace,
    IndexResult,
    UserMatch,
    UserSearch,
    check_confidence,
)
from facetrail.backends.local.pipeline import FacePipeline, settings_for_model_version
from facetrail.backends.local.vectors import (
    VectorCache,
    from_blob,
    log_changes,
    snapshot_group,
    to_blob,
)
from facetrail.db import session_factory
from facetrail.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
    InvalidParameterError,
    NoFaceError,
    NotFoundError,
    UserExistsError,
    UserNotFoundError,
)
from facetrail.images import LoadedImage, as_rgb, to_jpeg
from facetrail.modelfiles import model_path
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange, LocalUser
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.inference.labels import ObjectDetector
    from facetrail.inference.moderation import NsfwClassifier
    from facetrail.inference.text import TextReader
    from facetrail.tagging.labels import Label
    from facetrail.tagging.moderation import ModerationLabel
    from facetrail.tagging.text import TextDetection

Analysis = tuple[list[DetectedFace], Embedding, list[np.ndarray]]
AnalysisKey = tuple[str, int, int]


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pipeline = FacePipeline(settings)
        self._sessions = session_factory(settings)
        self._vectors = VectorCache(settings)
        # The last analysis only: one photo searched in several collections in a row (known
        # people across every public-figure collection) is detected and embedded once, while a
        # batch of different photos never reuses anything.
        self._last: tuple[AnalysisKey, Analysis] | None = None
        self._last_lock = threading.Lock()

    @property
    def model_version(self) -> str:
        return self.pipeline.model_version

    def for_collection(self, collection_id: str) -> Backend:
        with self._sessions() as session:
            version = self._collection(session, collection_id).model_version
        pinned = None if version == self.model_version else settings_for_model_version(version)
        if pinned is None:  # ours, or a model this version lacks (searching it says so)
            return self
        backend = backend_for(self.settings, self.name, pinned)
        assert isinstance(backend, LocalBackend)
        try:  # this request's input error, not the server's: say which models it lacks
            backend.pipeline.detector.load()
            backend.pipeline.embedder.load()
        except ConfigurationError as exc:
            raise InvalidParameterError(
                f"collection {collection_id!r} holds {version} embeddings, which this server "
                f"cannot compute: {exc}"
            ) from exc
        return backend

    # Faces in one image -------------------------------------------------------------------
    def _analyse(self, image: LoadedImage, *, embed: bool, attributes: bool = False) -> Analysis:
        # The same bytes decode to the same pixels; the size guards against other load limits.
        key = (image.sha256, image.width, image.height)
        with self._last_lock:
            last = self._last
        if last is not None and last[0] == key:
            faces, embeddings, crops = last[1]
            described = not attributes or all(f.attributes is not None for f in faces)
            if (not embed or not faces or len(embeddings)) and described:
                return list(faces), embeddings, list(crops)
        analysis = self._analyse_pixels(image, embed=embed, attributes=attributes)
        analysis[1].setflags(write=False)  # shared with the next caller of the same photo
        with self._last_lock:
            self._last = (key, analysis)
        return list(analysis[0]), analysis[1], list(analysis[2])

    def _analyse_pixels(self, image: LoadedImage, *, embed: bool, attributes: bool) -> Analysis:
        rgb = np.asarray(image.pixels)
        detections = self.pipeline.detect(rgb)
        faces = [self.pipeline.describe(rgb, d) for d in detections]
        if attributes:
            found = self.pipeline.attributes(rgb, detections)
            faces = [replace(f, attributes=a) for f, a in zip(faces, found, strict=True)]
        if embed and detections:
            embeddings, crops = self.pipeline.embed(rgb, detections)
        else:
            embeddings, crops = np.zeros((0, 0), dtype=np.float32), []
        return faces, embeddings, crops

    def detect_faces(self, image: LoadedImage, *, attributes: bool = False) -> list[DetectedFace]:
        return self._analyse(image, embed=False, attributes=attributes)[0]

    def compare_faces(
        self, source: LoadedImage, target: LoadedImage, *, threshold: float | None = None
    ) -> CompareResult:
        threshold = self.settings.compare_threshold if threshold is None else threshold
        src_faces, src_emb, _ = self._analyse(source, embed=True)
        if not src_faces:
            raise NoFaceError(f"{source.source}: no face in the source image")
        tgt_faces, tgt_emb, _ = self._analyse(target, embed=True)
        if not tgt_faces:
            return CompareResult(source=src_faces[0], matches=[], unmatched=[])
        sims = np.atleast_1d(self.pipeline.similarity(tgt_emb @ src_emb[0]))
        matches = [
            CompareMatch(face, float(s))
            for face, s in zip(tgt_faces, sims, strict=True)
            if s >= threshold
        ]
        unmatched = [face for face, s in zip(tgt_faces, sims, strict=True) if s < threshold]
        matches.sort(key=lambda m: -m.similarity)
        return CompareResult(source=src_faces[0], matches=matches, unmatched=unmatched)

    # Collections ---------------------------------------------------------------------------
    def _collection(self, session: Session, collection_id: str) -> LocalCollection:
        row = session.get(LocalCollection, collection_id)
        if row is None:
            raise CollectionNotFoundError(f"collection {collection_id!r} does not exist")
        return row

    def _info(self, session: Session, row: LocalCollection) -> CollectionInfo:
        count = session.scalar(
            select(func.count()).select_from(LocalFace).where(LocalFace.collection_name == row.name)
        )
        users = session.scalar(
            select(func.count()).select_from(LocalUser).where(LocalUser.collection_name == row.name)
        )
        return CollectionInfo(
            row.name, int(count or 0), row.model_version, row.created_at, int(users or 0)
        )

    def create_collection(
        self, collection_id: str, *, tags: Mapping[str, str] | None = None
    ) -> CollectionInfo:
        with self._sessions.begin() as session:
            if session.get(LocalCollection, collection_id) is not None:
                raise CollectionExistsError(f"collection {collection_id!r} already exists")
            row = LocalCollection(
                name=collection_id, model_version=self.model_version, tags=dict(tags or {})
            )
            session.add(row)
            session.flush()
            return self._info(session, row)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._sessions() as session:
            return self._info(session, self._collection(session, collection_id))

    def list_collections(self) -> list[str]:
        with self._sessions() as session:
            return list(
                session.scalars(select(LocalCollection.name).order_by(LocalCollection.name))
            )

    def delete_collection(self, collection_id: str) -> None:
        with self._sessions.begin() as session:
            row = self._collection(session, collection_id)
            session.execute(delete(LocalFace).where(LocalFace.collection_name == collection_id))
            session.execute(delete(LocalUser).where(LocalUser.collection_name == collection_id))
            session.execute(
                delete(LocalFaceChange).where(LocalFaceChange.collection_name == collection_id)
            )
            snapshots = snapshot_group(session, row.name, row.created_at)
            session.delete(row)
        self._vectors.forget(collection_id)
        self._vectors.drop_snapshots(snapshots)

    # Faces in collections ------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
        attributes: bool = False,
    ) -> IndexResult:
        faces, embeddings, crops = self._analyse(image, embed=True, attributes=attributes)
        keep = len(faces) if max_faces is None else max(0, max_faces)
        with self._sessions.begin() as session:
            collection = self._collection(session, collection_id)
            self._check_model(collection)
            # Indexing the same photo of the same person again (a retried task) changes nothing.
            existing = session.scalars(
                select(LocalFace).where(
                    LocalFace.collection_name == collection_id,
                    LocalFace.image_sha256 == image.sha256,
                    LocalFace.external_id == external_id,
                    LocalFace.model_version == self.model_version,
                )
            ).all()
            by_box = {(round(f.box_left, 4), round(f.box_top, 4)): f for f in existing}
            indexed: list[IndexedFace] = []
            for face, emb, crop in zip(faces[:keep], embeddings[:keep], crops[:keep], strict=True):
                prior = by_box.get((round(face.box.left, 4), round(face.box.top, 4)))
                face_id = prior.face_id if prior else str(uuid.uuid4())
                if prior is None:
                    session.add(
                        LocalFace(
                            face_id=face_id,
                            collection_name=collection_id,
                            external_id=external_id,
                            model_version=self.model_version,
                            embedding=to_blob(emb),
                            box_left=face.box.left,
                            box_top=face.box.top,
                            box_width=face.box.width,
                            box_height=face.box.height,
                            confidence=face.confidence,
                            image_sha256=image.sha256,
                        )
                    )
                indexed.append(
                    IndexedFace(
                        face_id=face_id,
                        external_id=external_id,
                        face=face,
                        image_sha256=image.sha256,
                        model=self.model_version,
                        embedding=emb,
                        crop_jpeg=to_jpeg(_pil(crop)),
                    )
                )
            known = {f.face_id for f in existing}
            added = [i.face_id for i in indexed if i.face_id not in known]
            if added:
                session.flush()
                log_changes(session, collection_id, added, [])
        return IndexResult(indexed=indexed, unindexed=faces[keep:])

    def _check_model(self, collection: LocalCollection) -> None:
        self.check_model(collection.name, collection.model_version)

    def _search(
        self,
        collection_id: str,
        queries: Embedding,
        *,
        max_faces: int,
        threshold: float,
        exclude: str | None = None,
    ) -> list[list[FaceMatch]]:
        with self._sessions() as session:
            collection = self._collection(session, collection_id)
            self._check_model(collection)
            if max_faces <= 0:
                return [[] for _ in range(len(queries))]
            vectors = self._vectors.get(session, collection, self.model_version)
            if len(queries) == 0:
                return []
            # Only the top ``max_faces`` (one more for the excluded face) become Python objects.
            with vectors.lock:
                labels, cosines = vectors.index.search(queries, max_faces + (exclude is not None))
                owners = vectors.meta_of(labels)
        sims = np.atleast_2d(np.asarray(self.pipeline.similarity(cosines)))
        results: list[list[FaceMatch]] = []
        for faces, people, row in zip(labels, owners, sims.tolist(), strict=True):
            matches = [
                FaceMatch(face, person, sim)
                for face, person, sim in zip(faces, people, row, strict=False)
                if sim >= threshold and face != exclude
            ]
            # Equal similarities (one photo enrolled twice) rank by face id, whatever the order
            # the faces reached the index in.
            matches.sort(key=lambda m: (-m.similarity, m.face_id))
            results.append(matches[:max_faces])
        return results

    def search_embeddings(
        self,
        collection_id: str,
        embeddings: Embedding,
        *,
        max_faces: int = 4096,
        threshold: float = 0.0,
    ) -> list[list[FaceMatch]]:
        return self._search(collection_id, embeddings, max_faces=max_faces, threshold=threshold)

    scores_templates = True

    def template_similarity(self, cosines: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(self.pipeline.similarity(np.asarray(cosines)))

    def search_faces_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_faces: int = 4096,
        threshold: float = 0.0,
    ) -> FaceSearch:
        faces, embeddings, _ = self._analyse(image, embed=True)
        if not faces:
            raise NoFaceError(f"{image.source}: no face in the image")
        matches = self._search(
            collection_id, embeddings[:1], max_faces=max_faces, threshold=threshold
        )[0]
        return FaceSearch(face=faces[0], matches=matches, embedding=embeddings[0])

    def search_faces(
        self, collection_id: str, face_id: str, *, max_faces: int = 4096, threshold: float = 0.0
    ) -> list[FaceMatch]:
        with self._sessions() as session:
            row = session.get(LocalFace, face_id)
            if row is None or row.collection_name != collection_id:
                raise NotFoundError(f"face {face_id!r} is not in collection {collection_id!r}")
            query = from_blob(row.embedding)[None, :]
        return self._search(
            collection_id, query, max_faces=max_faces, threshold=threshold, exclude=face_id
        )[0]

    def identify_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        max_matches: int = 4096,
        threshold: float = 0.0,
    ) -> list[FaceSearch]:
        faces, embeddings, _ = self._analyse(image, embed=True)
        if max_matches <= 0:
            # The caller scores people itself (templates): no search, no collection read.
            return [
                FaceSearch(face=f, matches=[], embedding=e)
                for f, e in zip(faces, embeddings, strict=True)
            ]
        if not faces:
            # Still fail loudly on a missing collection, as a search would.
            self.describe_collection(collection_id)
            return []
        per_face = self._search(
            collection_id, embeddings, max_faces=max_matches, threshold=threshold
        )
        return [
            FaceSearch(face=f, matches=m, embedding=e)
            for f, m, e in zip(faces, per_face, embeddings, strict=True)
        ]

    def list_faces(self, collection_id: str) -> list[FaceRecord]:
        with self._sessions() as session:
            self._collection(session, collection_id)
            rows = session.scalars(
                select(LocalFace)
                .where(LocalFace.collection_name == collection_id)
                .order_by(LocalFace.face_id)
            ).all()
            return [
                FaceRecord(
                    face_id=r.face_id,
                    external_id=r.external_id,
                    box=BoundingBox(r.box_left, r.box_top, r.box_width, r.box_height),
                    confidence=r.confidence,
                    image_sha256=r.image_sha256,
                    model=r.model_version,
                    user_id=r.user_id,
                )
                for r in rows
            ]

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        with self._sessions.begin() as session:
            row = self._collection(session, collection_id)
            snapshots = snapshot_group(session, row.name, row.created_at)
            deleted = list(
                session.scalars(
                    select(LocalFace.face_id).where(
                        LocalFace.collection_name == collection_id,
                        LocalFace.face_id.in_(list(face_ids)),
                    )
                )
            )
            if deleted:
                session.execute(delete(LocalFace).where(LocalFace.face_id.in_(deleted)))
                log_changes(session, collection_id, [], deleted)
        if deleted:
            # Other processes apply the logged removal at their next search; this one drops its
            # copies now: the collection's vectors, its snapshots (which hold the deleted faces)
            # and the last photo's analysis.
            self._vectors.forget(collection_id)
            self._vectors.drop_snapshots(snapshots)
            with self._last_lock:
                self._last = None
        return deleted

    # Resource tags -------------------------------------------------------------------------
    def collection_tags(self, collection_id: str) -> dict[str, str]:
        with self._sessions() as session:
            return dict(self._collection(session, collection_id).tags or {})

    def tag_collection(self, collection_id: str, tags: Mapping[str, str]) -> None:
        with self._sessions.begin() as session:
            row = self._collection(session, collection_id)
            row.tags = {**(row.tags or {}), **tags}  # a new dict: JSON columns track assignment

    def untag_collection(self, collection_id: str, keys: Sequence[str]) -> None:
        with self._sessions.begin() as session:
            row = self._collection(session, collection_id)
            row.tags = {k: v for k, v in (row.tags or {}).items() if k not in set(keys)}

    # Users ---------------------------------------------------------------------------------
    def _user(self, session: Session, collection_id: str, user_id: str) -> LocalUser:
        self._collection(session, collection_id)
        user = session.get(LocalUser, (collection_id, user_id))
        if user is None:
            raise UserNotFoundError(f"user {user_id!r} is not in collection {collection_id!r}")
        return user

    def create_user(self, collection_id: str, user_id: str) -> None:
        with self._sessions.begin() as session:
            self._collection(session, collection_id)
            if session.get(LocalUser, (collection_id, user_id)) is not None:
                raise UserExistsError(f"user {user_id!r} already exists in {collection_id!r}")
            session.add(LocalUser(collection_name=collection_id, user_id=user_id))

    def delete_user(self, collection_id: str, user_id: str) -> None:
        with self._sessions.begin() as session:
            user = self._user(session, collection_id, user_id)
            session.execute(
                update(LocalFace)
                .where(LocalFace.collection_name == collection_id, LocalFace.user_id == user_id)
                .values(user_id=None)
            )
            session.delete(user)

    def list_users(self, collection_id: str) -> list[str]:
        with self._sessions() as session:
            self._collection(session, collection_id)
            return list(
                session.scalars(
                    select(LocalUser.user_id)
                    .where(LocalUser.collection_name == collection_id)
                    .order_by(LocalUser.user_id)
                )
            )

    def _user_embeddings(self, session: Session, collection_id: str) -> dict[str, Embedding]:
        """Each user's face embeddings (k, dim), from this backend's model."""
        rows = session.execute(
            select(LocalFace.user_id, LocalFace.embedding).where(
                LocalFace.collection_name == collection_id,
                LocalFace.user_id.is_not(None),
                LocalFace.model_version == self.model_version,
            )
        ).tuples()
        grouped: dict[str, list[Embedding]] = {}
        for user, blob in rows:
            if user is not None:
                grouped.setdefault(user, []).append(from_blob(blob))
        return {user: np.stack(vectors) for user, vectors in grouped.items()}

    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        threshold: float = 75.0,
    ) -> FaceAssociation:
        with self._sessions.begin() as session:
            self._user(session, collection_id, user_id)
            template = self._user_embeddings(session, collection_id).get(user_id)
            rows = _faces_by_id(session, collection_id, face_ids)
            associated: list[str] = []
            refused: dict[str, str] = {}
            for face_id in dict.fromkeys(face_ids):
                row = rows.get(face_id)
                if row is None:
                    refused[face_id] = "FACE_NOT_FOUND"
                elif row.user_id not in (None, user_id):
                    refused[face_id] = "ASSOCIATED_TO_A_DIFFERENT_USER"
                elif (
                    row.user_id is None
                    and template is not None
                    and (self._template_similarity(from_blob(row.embedding), template) < threshold)
                ):
                    # A face unlike the user's faces is kept out, as the service does.
                    refused[face_id] = "LOW_MATCH_CONFIDENCE"
                else:
                    row.user_id = user_id
                    associated.append(face_id)
            if associated:
                self._bump(session, collection_id)
        return FaceAssociation(associated, refused, "ACTIVE" if associated else "CREATED")

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> FaceAssociation:
        with self._sessions.begin() as session:
            self._user(session, collection_id, user_id)
            rows = _faces_by_id(session, collection_id, face_ids)
            done: list[str] = []
            refused: dict[str, str] = {}
            for face_id in dict.fromkeys(face_ids):
                row = rows.get(face_id)
                if row is None:
                    refused[face_id] = "FACE_NOT_FOUND"
                elif row.user_id != user_id:
                    refused[face_id] = "ASSOCIATED_TO_A_DIFFERENT_USER"
                else:
                    row.user_id = None
                    done.append(face_id)
            if done:
                self._bump(session, collection_id)
        return FaceAssociation(done, refused)

    @staticmethod
    def _bump(session: Session, collection_id: str) -> None:
        session.execute(
            update(LocalCollection)
            .where(LocalCollection.name == collection_id)
            .values(generation=LocalCollection.generation + 1)
        )

    def _template_similarity(self, query: Embedding, enrolled: Embedding) -> float:
        scores = self.score_people(query[None, :], {"": enrolled})
        assert scores is not None  # this backend scores templates
        return float(scores[""][0])

    def _score_users(
        self,
        session: Session,
        collection_id: str,
        query: Embedding,
        *,
        threshold: float,
        max_users: int,
        exclude: str | None = None,
    ) -> list[UserMatch]:
        """Users ranked by their template's similarity to ``query`` (as identify scores
        people: ``score_people``, the normalised mean of each one's faces)."""
        self._check_model(self._collection(session, collection_id))
        users = self._user_embeddings(session, collection_id)
        users.pop(exclude or "", None)
        if not users:
            return []
        scores = self.score_people(query[None, :], users)
        assert scores is not None  # this backend scores templates
        ranked = sorted(
            (UserMatch(user, float(v[0])) for user, v in scores.items()),
            key=lambda m: (-m.similarity, m.user_id),
        )
        return [m for m in ranked if m.similarity >= threshold][:max_users]

    def search_users(
        self,
        collection_id: str,
        *,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> list[UserMatch]:
        with self._sessions() as session:
            if user_id is not None:
                self._user(session, collection_id, user_id)
                enrolled = self._user_embeddings(session, collection_id).get(user_id)
                if enrolled is None:
                    return []  # a user without faces resembles nobody
                template = enrolled.mean(axis=0)
                query = template / max(float(np.linalg.norm(template)), 1e-12)
            else:
                row = session.get(LocalFace, face_id or "")
                if row is None or row.collection_name != collection_id:
                    raise NotFoundError(f"face {face_id!r} is not in collection {collection_id!r}")
                query = from_blob(row.embedding)
            return self._score_users(
                session,
                collection_id,
                query.astype(np.float32),
                threshold=threshold,
                max_users=max_users,
                exclude=user_id,
            )

    def search_users_by_image(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        threshold: float = 80.0,
        max_users: int = 500,
    ) -> UserSearch:
        faces, embeddings, _ = self._analyse(image, embed=True)
        if not faces:
            raise NoFaceError(f"{image.source}: no face in the image")
        with self._sessions() as session:
            matches = self._score_users(
                session, collection_id, embeddings[0], threshold=threshold, max_users=max_users
            )
        return UserSearch(face=faces[0], matches=matches, unsearched=faces[1:])

    # Tagging -------------------------------------------------------------------------------
    # The models are imported on first use: the tagging extra is optional for face work.
    @property
    def object_detector(self) -> ObjectDetector:
        from facetrail.inference.labels import ObjectDetector
        from facetrail.tagging.labels import CLASSIFIER_NAME, MODEL_NAME

        files = [model_path(self.settings, name) for name in (MODEL_NAME, CLASSIFIER_NAME)]
        return ObjectDetector.shared(files, threads=self.settings.threads)

    @property
    def text_reader(self) -> TextReader:
        from facetrail.inference.text import TextReader
        from facetrail.tagging.text import MODEL_NAMES

        files = [model_path(self.settings, name) for name in MODEL_NAMES]
        return TextReader.shared(files, threads=self.settings.threads)

    @property
    def nsfw_classifier(self) -> NsfwClassifier:
        from facetrail.inference.moderation import NsfwClassifier
        from facetrail.tagging.moderation import MODEL_NAME

        files = [model_path(self.settings, MODEL_NAME)]
        return NsfwClassifier.shared(files, threads=self.settings.threads)

    def detect_labels(
        self,
        image: LoadedImage,
        *,
        min_confidence: float | None = None,
        max_labels: int | None = None,
    ) -> list[Label]:
        from facetrail.tagging.labels import to_labels

        floor, max_labels = self._label_arguments(min_confidence, max_labels)
        outputs = self.object_detector.predict(_rgb(image))
        return to_labels(outputs, min_confidence=floor, max_labels=max_labels)

    def detect_text(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[TextDetection]:
        floor = self.settings.text_min_confidence if min_confidence is None else min_confidence
        return self.text_reader.predict(_rgb(image), min_confidence=check_confidence(floor))

    def detect_moderation_labels(
        self, image: LoadedImage, *, min_confidence: float | None = None
    ) -> list[ModerationLabel]:
        from facetrail.tagging.moderation import to_labels

        settings = self.settings
        floor = settings.moderation_min_confidence if min_confidence is None else min_confidence
        check_confidence(floor)
        return to_labels(self.nsfw_classifier.predict(_rgb(image)), min_confidence=floor)


def _rgb(image: LoadedImage) -> PILImage.Image:
    """The RGB pixels of a decoded image (facetrail.images already applied EXIF orientation)."""
    return as_rgb(image.pixels)


def _pil(crop: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(crop))


def _faces_by_id(
    session: Session, collection_id: str, face_ids: Sequence[str]
) -> dict[str, LocalFace]:
    rows = session.scalars(
        select(LocalFace).where(
            LocalFace.collection_name == collection_id, LocalFace.face_id.in_(list(face_ids))
        )
    )
    return {r.face_id: r for r in rows}
