"""Per-process access to the active model, with hot swap.

Each web or worker process keeps one loaded classifier. At most every
CLASSIFIER_RELOAD_SECONDS it asks the database which version is active; when
that changed it loads the new one and swaps it in atomically. If the new one
fails to load, the previous one keeps serving and the error is reported in
/healthz. Nothing here is shared between processes except the database.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import model_files
from .models import ModelVersion

logger = logging.getLogger(__name__)


@dataclass
class _State:
    version: str | None = None  # version currently loaded
    classifier: object | None = None
    active_version: str | None = None  # version the database says is active
    error: str | None = None  # why active_version could not be loaded
    checked_at: float = 0.0


_state = _State()
_lock = threading.Lock()


def backend_class():
    path = settings.CLASSIFIER.get("BACKEND", "")
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"CLASSIFIER['BACKEND'] = {path!r} cannot be imported: {exc}") from exc


def backend_options() -> dict:
    return {k: v for k, v in settings.CLASSIFIER.items() if k != "BACKEND"}


def load(version: ModelVersion):
    """Build a classifier for `version` (validates files and sha256); with MODEL_STORAGE=s3 its
    files are fetched and verified first if this machine lacks them (classifier.model_files)."""
    return backend_class()(model_files.local_directory(version), backend_options())


def reset() -> None:
    """Forget the loaded model (tests, and after a fork if ever needed)."""
    global _state
    with _lock:
        _state = _State()


def active_classifier(*, force_check: bool = False):
    """The classifier for the active version, or None when none can serve.

    Returns the previously loaded classifier if the newly activated version
    cannot be loaded.
    """
    now = time.monotonic()
    if not force_check and now - _state.checked_at < settings.CLASSIFIER_RELOAD_SECONDS:
        return _state.classifier
    with _lock:
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        _state.checked_at = now
        _state.active_version = active.version if active else None
        if active is None:  # deactivated: nothing serves, reports wait as pending
            _state.classifier, _state.version, _state.error = None, None, None
            return None
        if active.version == _state.version:
            _state.error = None
            return _state.classifier
        try:
            classifier = load(active)
        except Exception as exc:  # keep serving the previous model
            _state.error = f"{exc.__class__.__name__}: {exc}"
            logger.error("cannot load model %s (%s); still serving %s", active.version, _state.error, _state.version)
            return _state.classifier
        _state.classifier, _state.version, _state.error = classifier, active.version, None
        logger.info("serving model %s", active.version)
        return classifier


def status() -> dict:
    """Snapshot for /healthz and the console."""
    return {
        "loaded_version": _state.version,
        "active_version": _state.active_version,
        "error": _state.error,
    }
