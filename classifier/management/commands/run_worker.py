"""`db_worker` that survives a database restart, with a heartbeat, a task lease and a catch-up.

Same options as django-tasks-db's `db_worker` (which deploy/systemd runs through this). The roles
(deploy/systemd): the task worker runs `--queue-name default` (mail, everything but classification),
the classifier worker `--queue-name classify` (and so the catch-up), the training worker
`--backend training`.
"""
from __future__ import annotations

import contextlib
import logging
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django_tasks_db.management.commands import db_worker

from classifier.worker import Heartbeat, heartbeat_write, requeue_own_tasks, served_queues

logger = logging.getLogger("classifier.worker")


class Worker(db_worker.Worker):
    """Run the queue; when the database goes away, wait (exponential backoff up to
    WORKER_RECONNECT_MAX_SECONDS) and carry on where it stopped instead of exiting."""

    def __init__(self, *, heartbeat: Heartbeat, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heartbeat = heartbeat

    def run(self) -> None:
        delay = 1.0
        while self.running:
            try:
                heartbeat_write(worker_id=self.worker_id, backend=self.backend_name,
                                started_at=self.heartbeat.started_at, queues=self.heartbeat.queues)
                if requeued := requeue_own_tasks(worker_id=self.worker_id):
                    logger.warning("re-queued %d task(s) this worker lost with the database", requeued)
                delay = 1.0  # connected again
                if not self.heartbeat.is_alive():
                    self.heartbeat.start()
                super().run()
                return  # --batch or --max-tasks: done
            except (OperationalError, InterfaceError) as exc:
                logger.warning("database unavailable (%s); reconnecting in %.0f s", exc, delay)
                with contextlib.suppress(Exception):
                    connection.close()
                time.sleep(delay)
                delay = min(delay * 2, settings.WORKER_RECONNECT_MAX_SECONDS)


class Command(db_worker.Command):
    help = ("Run a database task worker that reconnects after a database outage, writes a heartbeat, "
            "re-queues tasks of dead workers and catches up on reports that waited.")

    def handle(self, *, verbosity, queue_name, interval, batch, backend_name, startup_delay, reload, max_tasks,
               worker_id, exclude_queues, **options):
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        heartbeat = Heartbeat(worker_id=worker_id, backend=backend_name,
                              queues=served_queues(backend=backend_name, queue_names=queue_names, excluded=excluded))
        worker = Worker(heartbeat=heartbeat, queue_names=queue_names, interval=interval, batch=batch,
                        backend_name=backend_name, startup_delay=startup_delay, max_tasks=max_tasks,
                        worker_id=worker_id, excluded_queue_names=excluded)
        worker.configure_signals()
        try:
            worker.run()
        finally:
            heartbeat.stop()
