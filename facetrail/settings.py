"""One settings object, read from ``FACETRAIL_*`` environment variables at the edges."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "FACETRAIL_"


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "facetrail"


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Built by :meth:`from_env` at the edges, then passed down."""

    home: Path = field(default_factory=_default_home)
    # SQLite in ``home`` when unset; PostgreSQL in production.
    database_url: str = ""
    # No broker: jobs run in-process with the same task code.
    broker_url: str = ""
    backend: str = "local"
    # Local backend: which face detector ("mtcnn", "retinaface" or "retinaface-onet") and
    # embedder, and where model files live.
    detector: str = "retinaface-onet"
    embedder: str = "mobilefacenet-flip"
    models_dir: Path | None = None
    min_face_size: int = 20
    detection_threshold: float = 0.9
    # Inference threads per process (onnxruntime's intra-op threads, TFLite's); 0: this
    # process's share of the cores: all of them for one process (in-process runs, serve), one
    # worker process's share in a worker (``for_worker``). Measured in docs/tagging.md#workers.
    threads: int = 0
    # Decisions, on the 0-100 similarity scale.
    match_threshold: float = 80.0
    compare_threshold: float = 80.0
    # Collections (and past faces) with at least this many vectors are searched through an
    # approximate graph index (float16 vectors); smaller ones exactly.
    vector_exact_limit: int = 50_000
    # The same for person templates. Scoring every template reads the whole matrix for each
    # photo (77 MB at 100,000 people, 12% more CPU per identified photo at a million faces on
    # 2 cores); the graph finds the best people with the same recall as face search
    # (docs/benchmarks.md, "Collections of many faces").
    template_exact_limit: int = 50_000
    # Where large vector indexes are saved so that new workers load them instead of building
    # them (facetrail.vectors.snapshots): ``home/vectors`` when unset. Workers that share the
    # folder share the snapshots.
    vector_snapshots: str = ""
    # Unknown faces (docs/unknowns.md): faces identify jobs leave unnamed are clustered when
    # the detector is sure of them (confidence 0-100), the box's shorter side has this many
    # pixels, and they are this sharp (0-100, where the backend measures it).
    unknown_min_confidence: float = 95.0
    unknown_min_face_size: int = 40
    unknown_min_sharpness: float = 10.0
    # Clustering them, on the similarity scale: pooled faces are one person when their mean
    # similarity reaches unknown_link; a face or a group joins an existing cluster, and two
    # clusters merge, at unknown_join; a new cluster needs unknown_min_cluster_size faces.
    # After each pass, an existing cluster that grew is split where average linkage of all its
    # faces at unknown_join tells people apart (as `facetrail unknowns split` without faces),
    # unless a user merged, split or named it (unknown_auto_split). Chosen, with the split on,
    # on glint_celebrity_chips and half of celeba_identities' people by
    # `python -m bench.unknowns` on the default detector's faces (docs/unknowns.md).
    unknown_link: float = 15.0
    unknown_join: float = 30.0
    unknown_min_cluster_size: int = 3
    unknown_auto_split: bool = True
    # Also split (and never merge) two groups of faces whose mean similarity between them is
    # this many points below the less alike group's own (each at least unknown_min_cluster_size
    # faces): look-alikes more alike than unknown_join, far less than their own faces. 0: off.
    unknown_split_gap: float = 40.0
    # Input guards.
    max_image_bytes: int = 40 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    # Folders (colon- or comma-separated) under which jobs from other apps (``facetrail.submit``
    # payloads) may name local files, checked after resolving symlinks; empty: none. Jobs a
    # local user creates through the CLI or Python API may name any file (docs/security.md).
    image_roots: str = ""
    # Where uploaded image bytes are kept, content-addressed (facetrail.images.store): a folder
    # (``home/images`` when unset) or ``s3://bucket/prefix``; every worker must be able to read it.
    image_store: str = ""
    # An S3-compatible endpoint (MinIO, Ceph...) for ``s3://`` sources and an S3 image store;
    # unset: AWS S3.
    s3_endpoint_url: str = ""
    # Rekognition backend.
    aws_region: str = ""
    aws_endpoint_url: str = ""
    rekognition_concurrency: int = 4
    # Worker behaviour. Processes one `facetrail worker` runs (Celery's prefork concurrency);
    # 0: one per core, each with one inference thread, the best layout measured.
    worker_concurrency: int = 0
    # Tasks each worker process holds in reserve beyond the one it runs; the worker's main
    # process fetches their remote photos meanwhile (``jobs/readahead.py``). Two hide a 150 ms
    # fetch behind identification's compute (docs/tagging.md#workers); 0: none.
    read_ahead: int = 2
    task_max_retries: int = 5
    # Most images one job may have; a larger request is refused (split it into several jobs).
    max_job_images: int = 100_000
    # Items one ``facetrail.fan_out`` task queues before it queues its own continuation.
    fan_out_chunk: int = 500
    # Seconds before Redis hands an unacknowledged task to another worker.
    visibility_timeout: int = 3600
    # Seconds after which workers send again an item whose task was sent but never started (a
    # message the broker lost), and continue a job whose fan-out stopped; 0: never. Set it
    # above the longest time a task waits in the queue: an item sent again early is delivered
    # twice, which its idempotency absorbs (docs/tasks.md#delivery-guarantees).
    requeue_after: int = 1800
    # How long a finished job's report waits in Redis for the app that submitted it.
    notify_ttl: int = 86400
    actor: str = ""
    # `facetrail serve`: the X-Api-Key clients must send; the rekognition backend sends it too
    # when it talks to an aws_endpoint_url.
    serve_api_key: str = ""
    # `facetrail serve` limits (docs/security.md). Largest request body; larger pictures than
    # serve_max_image_pixels are refused before decoding (jobs keep max_image_pixels).
    serve_max_body_bytes: int = 16 * 1024 * 1024
    serve_max_image_pixels: int = 25_000_000
    # Requests with an image decoded and analysed at once; one more waits for a slot at most
    # serve_queue_timeout seconds, then gets ThrottlingException (clients retry it).
    serve_max_inference: int = 2
    serve_queue_timeout: float = 1.0
    # Requests in progress at once, of any operation; beyond it: ThrottlingException.
    serve_max_requests: int = 32
    # Seconds a connection may take to send its request headers (also the keep-alive idle
    # time), and its body.
    serve_header_timeout: float = 10.0
    serve_body_timeout: float = 30.0
    # Rekognition backend: botocore's retry mode ("adaptive" also rate-limits on throttling,
    # "standard", "legacy") and total attempts per call.
    aws_retry_mode: str = "adaptive"
    aws_max_attempts: int = 5
    # Image tagging (facetrail.tagging). Fetching image URLs: networks (comma-separated CIDRs)
    # that may be fetched although they are not public (loopback, private, link-local...);
    # empty: public addresses only. Cloud metadata addresses are refused whatever this says.
    fetch_allow_networks: str = ""
    fetch_connect_timeout: float = 5.0
    # Longest wait for any single read, and for the whole response.
    fetch_read_timeout: float = 15.0
    fetch_total_timeout: float = 60.0
    fetch_max_redirects: int = 5
    # Seconds of failed fetching one item may spend over all its attempts; when a timed-out
    # fetch has used it up, the item fails with fetch_timeout instead of being retried.
    fetch_item_budget: float = 120.0
    # Labels and moderation labels below these confidences (0-100) are not reported; the
    # defaults are the model packages' own (docs/tagging.md).
    label_min_confidence: float = 20.0
    moderation_min_confidence: float = 50.0
    text_min_confidence: float = 50.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def resolved_worker_concurrency(self) -> int:
        return self.worker_concurrency or cpu_cores()

    def for_worker(self) -> Settings:
        """These settings as each process of a worker uses them: with ``threads`` 0, the cores
        divided among the worker's processes, so that together they fill the cores once."""
        if self.threads:
            return self
        return replace(self, threads=max(1, cpu_cores() // self.resolved_worker_concurrency))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'facetrail.db'}"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def resolved_vector_snapshots(self) -> Path:
        return Path(self.vector_snapshots) if self.vector_snapshots else self.home / "vectors"

    @property
    def resolved_image_store(self) -> str:
        return self.image_store or str(self.home / "images")

    @property
    def image_root_list(self) -> tuple[str, ...]:
        """``image_roots`` as a tuple of folders, in the order given."""
        parts = self.image_roots.replace(",", os.pathsep).split(os.pathsep)
        return tuple(os.path.expanduser(p.strip()) for p in parts if p.strip())


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset``
    narrow), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _coerce(type_name: object, raw: str) -> Any:
    name = str(type_name)
    if name.startswith("Path"):
        return Path(raw).expanduser()
    if name == "int":
        return int(raw)
    if name == "float":
        return float(raw)
    if name == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw
