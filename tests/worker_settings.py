"""Settings for `run_worker` subprocesses started by tests/classifier/test_worker.py: the test
settings with the production task queue (django-tasks-db). Paths and timings come from the
environment the test passes (MEDIA_ROOT, PRIVATE_MEDIA_ROOT, MODEL_ROOT, WORKER_*)."""
from config.settings.test import *  # noqa: F401,F403
from config.settings.test import TASK_QUEUES

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": TASK_QUEUES},
         "training": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
CLASSIFY_INLINE = False  # as in production: the submitting process queues, the classifier worker classifies
