import itertools

import pytest

from tests import images

_colors = itertools.count(1)


@pytest.fixture(autouse=True)
def media_dirs(settings, tmp_path):
    """Each test stores photos in its own folders, so 'nothing left behind' is checkable."""
    public, private = tmp_path / "media", tmp_path / "private"
    settings.MEDIA_ROOT = public
    settings.STORAGES = {
        **settings.STORAGES,
        "public": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                   "OPTIONS": {"location": str(public), "base_url": "/media/"}},
        "private": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(private), "base_url": None}},
    }
    return public, private


def stored_files(media_dirs) -> list:
    return [p for d in media_dirs if d.exists() for p in d.rglob("*") if p.is_file()]


@pytest.fixture
def unique_jpeg():
    """A factory of distinct JPEGs (distinct bytes => distinct SHA-256)."""
    def make(**kwargs):
        n = next(_colors)
        kwargs.setdefault("color", ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256))
        return images.jpeg(**kwargs)
    return make
