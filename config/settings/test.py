"""pytest: a real PostGIS (the throwaway test cluster; DATABASE_URL overrides)."""
from .base import *  # noqa: F401,F403
from .base import BASE_DIR, TASK_QUEUES, env_path

SECRET_KEY = "test-only-key"
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
MEDIA_ROOT = env_path("MEDIA_ROOT", BASE_DIR / ".local" / "test-media")
PRIVATE_MEDIA_ROOT = env_path("PRIVATE_MEDIA_ROOT", BASE_DIR / ".local" / "test-private")
MODEL_ROOT = env_path("MODEL_ROOT", BASE_DIR / ".local" / "test-models")
TRAINING_FEATURE_CACHE = env_path("TRAINING_FEATURE_CACHE", BASE_DIR / ".local" / "test-feature-cache")
STORAGES = {
    **STORAGES,  # noqa: F405
    "public": {"BACKEND": "django.core.files.storage.FileSystemStorage",
               "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": "/media/"}},
    "private": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None}},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MAP_TILE_URL = ""  # no network in tests
# Retrains are only recorded as enqueued (tests/classifier/test_triggers.py); tests that
# train call classifier.retrain.retrain themselves.
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": TASK_QUEUES},
         "training": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
# No spot checks unless a test asks (tests/classifier/test_quality.py): which reports are drawn
# depends on their ids, so other tests' auto-triage would otherwise vary with test order.
SPOT_CHECK_SHARE = 0.0
# Tests add reports and read the map back at once; tests/reports/test_clusters.py turns the cache on.
MAP_CACHE_SECONDS = 0
