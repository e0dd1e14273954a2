"""What the photo code needs to know about storage, whichever backend STORAGES names: local
folders (the default) or object storage (reports.s3, PHOTO_STORAGE=s3). Everything else only
calls the Storage API (save, open, delete, url), never a filesystem path, so it works on both."""
from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Iterable

logger = logging.getLogger(__name__)

# A local storage that cannot be written to: read-only, permission denied, full.
STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def is_storage_failure(exc: BaseException) -> bool:
    """Whether `exc` means the photo storage cannot be written to or reached for now: an
    unwritable folder, or any error from object storage (refused, missing bucket, denied by
    policy, unreachable, timed out). A missing object is not one: both backends raise
    FileNotFoundError for it."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return True
    boto = sys.modules.get("botocore.exceptions")  # never loaded: no object storage in use
    return boto is not None and isinstance(exc, (boto.BotoCoreError, boto.ClientError))


def delete_files(files: Iterable[tuple]) -> None:
    """Delete (storage, name) pairs, each tried even when another fails (a storage that just
    refused a write may refuse the delete too); a failure is logged with the name left behind."""
    for storage, name in files:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("could not delete %s from %s; it is left behind", name, type(storage).__name__)


def staff_download_url(field, *, filename: str, content_type: str) -> str | None:
    """A short-lived signed URL to a private photo in object storage, for a staff-only view to
    redirect to (the bytes then never pass through the web node), or None for local storage,
    which the web process streams itself."""
    download_url = getattr(field.storage, "download_url", None)
    if download_url is None:
        return None
    return download_url(field.name, filename=filename, content_type=content_type)
