"""A django-tasks backend for the demo's "training" queue: run each task in a background thread.

The demo has no worker process (tasks run inline, ImmediateBackend), but a
retrain takes minutes and must not run inside the staff member's request.
This backend returns at once and runs the task in a daemon thread of the
same process. A restart of the process abandons the run; its RetrainRun row
is then reaped (classifier.runs) and the request can be sent again. Use
django_tasks_db.DatabaseBackend with its own `db_worker --backend training`
in production instead.
"""
from __future__ import annotations

import threading
from django.db import connections
from django_tasks.backends.immediate import ImmediateBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.utils import get_random_id


class BackgroundThreadBackend(ImmediateBackend):
    """ImmediateBackend's execution, on a thread of its own; `enqueue` does not wait for it."""

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        self.validate_task(task)
        result: TaskResult = TaskResult(
            task=task, id=get_random_id(), status=TaskResultStatus.READY, enqueued_at=None, started_at=None,
            last_attempted_at=None, finished_at=None, args=args, kwargs=kwargs, backend=self.alias,
            errors=[], worker_ids=[])
        thread = threading.Thread(target=self._run, args=(result,), name=f"task-{result.id}", daemon=True)
        thread.start()
        return result

    def _run(self, result: TaskResult) -> None:
        try:
            self._execute_task(result)  # records a failure on the result itself, as inline would
        finally:
            connections.close_all()  # this thread's connections; the task may hold an advisory lock
