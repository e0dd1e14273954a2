"""Health of what reports/ needs to accept a report, for /healthz to compose."""
from __future__ import annotations

import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import storages

PHOTO_STORAGES = ("public", "private")  # derivatives and originals: an upload writes to both


def storage_health() -> dict:
    """{"storage": "ok"}, or "error: not writable: <alias> (<reason>)" when a photo storage cannot
    take an upload.

    A local folder: writes and deletes an empty probe file, as an upload would, so a read-only
    mount, a permission change or a full disk shows here before a citizen's upload meets it.
    Object storage (reports.s3): one HEAD on the bucket, which fails while the service is down,
    the bucket is missing or our credentials may not use it."""
    failed = []
    for alias in PHOTO_STORAGES:
        storage = storages[alias]
        if hasattr(storage, "unavailable_reason"):
            if (reason := storage.unavailable_reason()) is not None:
                failed.append(f"{alias} ({reason})")
            continue
        try:
            name = storage.save(f".healthz-{uuid.uuid4().hex}", ContentFile(b""))
            storage.delete(name)
        except OSError as exc:
            failed.append(f"{alias} ({exc.strerror or exc.__class__.__name__})")
    return {"storage": f"error: not writable: {', '.join(failed)}" if failed else "ok"}
