import itertools
import runpy
from pathlib import Path

import pytest

from tests import images

_colors = itertools.count(1)
BASE_SETTINGS = Path(__file__).resolve().parents[1] / "config" / "settings" / "base.py"
STORAGE_VARIABLES = ("PHOTO_STORAGE", "MODEL_STORAGE", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID",
                     "S3_SECRET_ACCESS_KEY", "S3_PRIVATE_BUCKET", "S3_PUBLIC_BUCKET", "S3_PUBLIC_URL",
                     "S3_SIGNED_URL_SECONDS")


def storage_settings(monkeypatch, **env) -> dict:
    """config/settings/base.py run afresh with these variables and no other storage ones: the
    settings a deployment with that environment gets."""
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_SETTINGS))


@pytest.fixture(scope="session")
def s3_server():
    """The S3 test server (tests/s3server.py) on loopback, one for the session; tests make their
    own buckets."""
    from tests.s3server import S3Server  # moto loads only for the tests that use it

    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def media_dirs(settings, tmp_path, monkeypatch):
    """Each test stores photos in its own folders, so 'nothing left behind' is checkable.

    A FileField resolves its storage callable once, at import, so the photo
    fields are re-pointed at the new storages as well as STORAGES changed."""
    public, private = tmp_path / "media", tmp_path / "private"
    settings.MEDIA_ROOT = public
    settings.STORAGES = {
        **settings.STORAGES,
        "public": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                   "OPTIONS": {"location": str(public), "base_url": "/media/"}},
        "private": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(private), "base_url": None}},
    }
    point_photo_fields(monkeypatch)
    return public, private


def point_photo_fields(monkeypatch) -> None:
    """Re-point every photo field at the storages settings.STORAGES names now."""
    from classifier.models import TrainingExample
    from reports.models import Report, ReportUpdate

    for model, name in ((Report, "photo_original"), (Report, "photo_public"), (Report, "photo_thumbnail"),
                        (ReportUpdate, "photo_original"), (ReportUpdate, "photo_public"),
                        (ReportUpdate, "photo_thumbnail"), (TrainingExample, "photo")):
        field = model._meta.get_field(name)
        monkeypatch.setattr(field, "storage", field._storage_callable())


def stored_files(media_dirs) -> list:
    return [p for d in media_dirs if d.exists() for p in d.rglob("*") if p.is_file()]


@pytest.fixture(autouse=True)
def categories_after_flush(request):
    """Transactional tests (live server, threads) end with a flush that also empties the
    categories the data migration seeded; put them back so test order never matters."""
    marker = request.node.get_closest_marker("django_db")
    if {"transactional_db", "live_server"} & set(request.fixturenames) or (marker and marker.kwargs.get("transaction")):
        from reports.categories import seed_categories
        from reports.models import Category

        request.getfixturevalue("transactional_db")
        seed_categories(Category)


@pytest.fixture(autouse=True)
def default_language():
    """LocaleMiddleware activates each request's language in the thread and never switches back;
    the test client runs requests in the test's thread, so a Welsh request would otherwise make
    every later test (and the reports it creates, Report.language) Welsh."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def fresh_rate_limit():
    """The per-IP submission counter lives in the cache; every test starts at zero."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def unique_jpeg():
    """A factory of distinct JPEGs (distinct bytes => distinct SHA-256)."""
    def make(**kwargs):
        n = next(_colors)
        kwargs.setdefault("color", ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256))
        return images.jpeg(**kwargs)
    return make


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """A real ONNX model: Lite0 backbone with a freshly initialised 4-class head (labels meaningless)."""
    from tests.fixtures_models import export_test_model

    return export_test_model(tmp_path_factory.mktemp("model") / "v1", version="test-v1")


@pytest.fixture
def model_dir(exported_model, tmp_path):
    """A private copy of the exported model, with a settable version (same weights)."""
    import json
    import shutil

    def make(version="test-v1"):
        target = tmp_path / f"src-{version}"
        shutil.copytree(exported_model, target)
        meta = json.loads((target / "metadata.json").read_text())
        meta["version"] = version
        (target / "metadata.json").write_text(json.dumps(meta))
        return target
    return make


@pytest.fixture(autouse=True)
def model_root(settings, tmp_path):
    """Registered models live in a per-test MODEL_ROOT; the per-process registry starts empty."""
    from classifier import registry

    settings.MODEL_ROOT = tmp_path / "models"
    settings.CLASSIFIER_RELOAD_SECONDS = 0
    registry.reset()
    yield settings.MODEL_ROOT
    registry.reset()


@pytest.fixture
def training_queue():
    """The "training" task backend (DummyBackend in the test settings): what was enqueued on it."""
    from django_tasks import task_backends

    backend = task_backends["training"]
    backend.clear()
    yield backend
    backend.clear()
