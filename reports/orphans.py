"""Photo objects that no row refers to, and their deletion (`manage.py sweep_orphan_photos`).

An upload writes its files before the row that names them commits, and deletes them if the
transaction fails; a process killed in between (SIGKILL, a lost machine) runs no clean-up, so
its files stay with nothing pointing at them. Only the folders the app writes photos into are
listed (PHOTO_DIRECTORIES), never a storage's whole root: in object storage the private bucket
also holds the model directories (models/, MODEL_STORAGE=s3). An object is deleted only if it is
older than the cutoff, which protects uploads still in flight, and no FileField of any model
names it. Names are never reused (a taken name gets a new one) nor moved between rows, so an
object old enough and unreferenced stays unreferenced.
"""
from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.core.files.storage import storages
from django.db import models

logger = logging.getLogger(__name__)

# Where the app writes photos, per storage alias: reports.services (originals/, photos/,
# thumbs/), reports.updates (updates/...) and the classifier's training examples (training/).
# A new photo folder must be added here, or its orphans stay.
PHOTO_DIRECTORIES = {"private": ("originals", "updates/originals", "training"),
                     "public": ("photos", "thumbs", "updates/photos", "updates/thumbs")}


@dataclass
class Sweep:
    scanned: int = 0  # objects listed in the photo folders
    young: int = 0  # younger than the cutoff: kept whether referenced or not
    referenced: int = 0  # older, and a row names them: kept
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (alias, name): deleted, or would be
    failed: int = 0  # orphans whose delete raised (logged); the next run tries again

    def describe(self) -> str:
        return (f"{self.scanned} photo objects, {self.referenced} referenced, {self.young} younger than the "
                f"cutoff, {len(self.orphans)} orphans, {self.failed} could not be deleted")


def orphan_photos_sweep(*, cutoff: datetime, dry_run: bool = False) -> Sweep:
    """Delete (dry_run: only count) the photo objects modified before `cutoff` (aware) that no
    FileField names, and log one line with the counts. The folders are listed before the
    references are read, so a row committed meanwhile is seen."""
    sweep, old = Sweep(), []
    for alias, directories in PHOTO_DIRECTORIES.items():
        storage = storages[alias]
        for directory in directories:
            for name, modified in _objects(storage, directory):
                sweep.scanned += 1
                if modified >= cutoff:
                    sweep.young += 1
                else:
                    old.append((alias, storage, name))
    referenced = photo_references()
    for alias, storage, name in old:
        if _object_id(storage, name) in referenced:
            sweep.referenced += 1
            continue
        sweep.orphans.append((alias, name))
        if not dry_run:
            try:
                storage.delete(name)
            except Exception:
                sweep.failed += 1
                logger.exception("could not delete orphan photo %s from %s; the next sweep tries again", name, alias)
    logger.info("orphan photo sweep%s (modified before %s): %s", " (dry run)" if dry_run else "",
                cutoff.isoformat(timespec="seconds"), sweep.describe())
    return sweep


def photo_references() -> set[str]:
    """Every object any FileField (ImageField too) of any installed model names, as
    _object_id gives it: found through the app registry, so a model that gains a photo field
    protects its files without this module knowing it. Rows are read through the base manager,
    which hides none."""
    found = set()
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, models.FileField):
                names = (model._base_manager.exclude(**{f.attname: ""}).exclude(**{f"{f.attname}__isnull": True})
                         .values_list(f.attname, flat=True))
                found.update(_object_id(f.storage, name) for name in names.iterator(chunk_size=5000))
    return found


def _objects(storage, directory: str) -> Iterator[tuple[str, datetime]]:
    """(name, last modified) of each object under `directory`: one bucket listing in object
    storage (which gives the times, where get_modified_time would ask once per object), a
    recursive listdir on disk."""
    if hasattr(storage, "bucket_name"):
        root = f"{storage.location.strip('/')}/" if storage.location else ""
        for obj in storage.bucket.objects.filter(Prefix=f"{root}{directory}/"):
            yield obj.key[len(root):], obj.last_modified
        return
    try:
        folders, files = storage.listdir(directory)
    except FileNotFoundError:  # nothing written there yet
        return
    for file in files:
        name = f"{directory}/{file}"
        try:
            yield name, storage.get_modified_time(name)
        except FileNotFoundError:  # deleted since the listing
            pass
    for folder in folders:
        yield from _objects(storage, f"{directory}/{folder}")


def _object_id(storage, name: str) -> str:
    """Where an object really is, so that two storage instances (or aliases) of one bucket or
    folder agree on it: bucket and key in object storage, the absolute path on disk."""
    if hasattr(storage, "bucket_name"):
        root = f"{storage.location.strip('/')}/" if storage.location else ""
        return f"s3:{storage.endpoint_url or ''}:{storage.bucket_name}:{root}{name}"
    if hasattr(storage, "location"):
        return f"file:{os.path.join(_real_root(storage.location), name)}"
    return f"{type(storage).__qualname__}:{name}"


@functools.lru_cache(maxsize=16)
def _real_root(location: str) -> str:
    """The folder with its links resolved, once per folder rather than once per referenced name."""
    return os.path.realpath(location)
