"""The Celery app. Results live in facetrail's database, so no result backend is configured.

``celery -A facetrail.worker.app worker`` reads settings from the environment at start-up;
``facetrail worker`` does the same through the CLI.
"""

from __future__ import annotations

from celery import Celery

from facetrail.settings import Settings

QUEUE = "facetrail"

# kombu's retry policy for sending a task: waits of 0.2, 0.7, 1.2, 1.7, 2, 2 s (about 8 s).
PUBLISH_RETRY = {"max_retries": 6, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def configure(app: Celery, settings: Settings) -> Celery:
    """Point ``app`` at ``settings``. Without a broker, tasks run in-process (eager); with one,
    a worker runs ``settings.worker_concurrency`` processes (one per core unless set), each with
    its share of the cores as inference threads (``Settings.for_worker``)."""
    eager = not settings.broker_url
    if not eager:
        settings = settings.for_worker()
    previous = getattr(app, "facetrail_settings", None)
    if previous is not None and previous.broker_url != settings.broker_url:
        _drop_connections(app)
    app.conf.update(
        broker_url=settings.broker_url or "memory://",
        task_always_eager=eager,
        task_eager_propagates=True,
        task_ignore_result=True,
        task_acks_late=True,
        # A worker killed mid-task leaves the message unacked, so another worker gets it.
        task_reject_on_worker_lost=True,
        # Each process's running task, and ``read_ahead`` more whose photos are fetched ahead.
        worker_prefetch_multiplier=1 + max(0, settings.read_ahead),
        worker_concurrency=settings.resolved_worker_concurrency,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # Sends ride out a broker restart of several seconds (Celery's default gives up after
        # about one); a send retried after a lost reply is sent twice, which items absorb.
        task_publish_retry_policy=PUBLISH_RETRY,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        worker_hijack_root_logger=False,
    )
    app.facetrail_settings = settings
    return app


def _drop_connections(app: Celery) -> None:
    """Forget the pools of the old broker (Celery keeps them across conf changes). They are
    kombu's, shared by every app in the process with that broker, and handed out again if the
    app switches back: closing them here would break those apps, so they are only let go."""
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def settings_of(app: Celery) -> Settings:
    settings = getattr(app, "facetrail_settings", None)
    if settings is None:
        settings = Settings.from_env()
        configure(app, settings)
    return settings


app = Celery("facetrail", include=["facetrail.worker.tasks", "facetrail.worker.unknowns"])
configure(app, Settings.from_env())
