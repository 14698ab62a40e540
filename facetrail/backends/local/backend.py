"""The local backend: every operation on CPU with facetrail's own models (``facetrail.inference``).

Faces are detected and embedded by the face pipeline, their vectors kept in facetrail's own
database; labels, text and moderation come from the tagging models, shaped into Rekognition's
results by ``facetrail.tagging.labels``, ``.text`` and ``.moderation``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facetrail.backends.base import (
    Backend,
    BoundingBox,
    CollectionInfo,
    CompareMatch,
    CompareResult,
    DetectedFace,
    Embedding,
    FaceMatch,
    FaceRecord,
    FaceSearch,
    IndexedFace,
    IndexResult,
    check_confidence,
)
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.backends.local.vectors import VectorCache, from_blob, log_changes, to_blob
from facetrail.db import session_factory
from facetrail.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    InvalidParameterError,
    NoFaceError,
    NotFoundError,
)
from facetrail.images import LoadedImage, to_jpeg
from facetrail.modelfiles import model_path
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
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

    # Faces in one image -------------------------------------------------------------------
    def _analyse(self, image: LoadedImage, *, embed: bool) -> Analysis:
        # The same bytes decode to the same pixels; the size guards against other load limits.
        key = (image.sha256, image.width, image.height)
        with self._last_lock:
            last = self._last
        if last is not None and last[0] == key:
            faces, embeddings, crops = last[1]
            if not embed or not faces or len(embeddings):
                return list(faces), embeddings, list(crops)
        analysis = self._analyse_pixels(image, embed=embed)
        analysis[1].setflags(write=False)  # shared with the next caller of the same photo
        with self._last_lock:
            self._last = (key, analysis)
        return list(analysis[0]), analysis[1], list(analysis[2])

    def _analyse_pixels(self, image: LoadedImage, *, embed: bool) -> Analysis:
        rgb = np.asarray(image.pixels)
        detections = self.pipeline.detect(rgb)
        faces = [self.pipeline.describe(rgb, d) for d in detections]
        if embed and detections:
            embeddings, crops = self.pipeline.embed(rgb, detections)
        else:
            embeddings, crops = np.zeros((0, 0), dtype=np.float32), []
        return faces, embeddings, crops

    def detect_faces(self, image: LoadedImage) -> list[DetectedFace]:
        return self._analyse(image, embed=False)[0]

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
        return CollectionInfo(row.name, int(count or 0), row.model_version, row.created_at)

    def create_collection(self, collection_id: str) -> CollectionInfo:
        with self._sessions.begin() as session:
            if session.get(LocalCollection, collection_id) is not None:
                raise CollectionExistsError(f"collection {collection_id!r} already exists")
            row = LocalCollection(name=collection_id, model_version=self.model_version)
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
            session.execute(
                delete(LocalFaceChange).where(LocalFaceChange.collection_name == collection_id)
            )
            session.delete(row)

    # Faces in collections ------------------------------------------------------------------
    def index_faces(
        self,
        collection_id: str,
        image: LoadedImage,
        *,
        external_id: str | None = None,
        max_faces: int | None = None,
    ) -> IndexResult:
        faces, embeddings, crops = self._analyse(image, embed=True)
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
        if collection.model_version != self.model_version:
            raise InvalidParameterError(
                f"collection {collection.name!r} holds {collection.model_version} embeddings but "
                f"this backend computes {self.model_version}; re-index the collection or "
                "choose the matching embedder"
            )

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
            vectors = self._vectors.get(session, collection, self.model_version)
            if len(queries) == 0:
                return []
            # Only the top ``max_faces`` (one more for the excluded face) become Python objects.
            with vectors.lock:
                labels, cosines = vectors.index.search(queries, max_faces + (exclude is not None))
                owners = [[vectors.external_ids[f] for f in row] for row in labels]
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
                )
                for r in rows
            ]

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        with self._sessions.begin() as session:
            self._collection(session, collection_id)
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
        return deleted

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
    pixels = image.pixels
    return pixels if pixels.mode == "RGB" else pixels.convert("RGB")


def _pil(crop: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.ascontiguousarray(crop))
