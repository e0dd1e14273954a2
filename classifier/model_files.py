"""Model directories across machines: where a registered version's files come from.

MODEL_STORAGE=local (the default): MODEL_ROOT is the registry's own folder, and every process
that loads a model (classifier workers, a web node that activates one, the training box) must
see the same one, a shared folder or one machine. Nothing here changes that.

MODEL_STORAGE=s3: `model_register` also uploads the whole directory to STORAGES["models"] (the
private bucket, keys models/<version>/<file>, classifier.s3) before its row commits, and
MODEL_ROOT becomes each machine's cache. `local_directory(version)`, called before anything
opens a version's files (registry.load, the heartbeat's and /healthz's file check, a retrain's
evaluation of the active model), downloads a version this machine lacks, or whose cached copy
is not the registered bytes, and checks every file against the sha256 the registry stored
(ModelVersion.files; model.onnx also against ModelVersion.sha256). It downloads into a
temporary folder beside the cache and renames it into place only when every file matched, so
ONNX Runtime never opens a half-written or corrupt file, and two processes fetching the same
version at once both end up with one complete copy.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from inference.modelformat import MODEL_FILE
from reports.storage import delete_files

logger = logging.getLogger(__name__)
STORAGE_ALIAS = "models"  # the STORAGES entry MODEL_STORAGE=s3 adds (config/settings/base.py)
_digests: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256: rehash only files that changed


class ModelFilesError(Exception):
    """A version's files cannot be had on this machine: missing or corrupt in object storage,
    or the storage cannot be reached."""


def in_object_storage() -> bool:
    return settings.MODEL_STORAGE == "s3"


def file_digests(directory: Path) -> dict[str, str]:
    """Every file of a model directory (sub-folders included), relative POSIX path -> sha256:
    what ModelVersion.files records at registration."""
    return {path.relative_to(directory).as_posix(): file_sha256(path)
            for path in sorted(directory.rglob("*")) if path.is_file()}


def upload(*, directory: Path, path: str, files: dict[str, str]) -> None:
    """Put a registered directory's files in object storage under `path`/ (no-op on local).
    All or nothing: a failed upload deletes what it had put, then raises."""
    if not in_object_storage():
        return
    storage, done = storages[STORAGE_ALIAS], []
    try:
        for relative in files:
            name = f"{path}/{relative}"
            with (directory / relative).open("rb") as f:
                saved = storage.save(name, File(f, name=relative))
            done.append(saved)
            if saved != name:  # the storage renamed it: a download would fetch another object
                raise ModelFilesError(f"object storage stored {name} as {saved}; it must overwrite")
    except Exception:
        delete_files((storage, name) for name in done)
        raise


def remove(*, path: str, files: dict[str, str]) -> None:
    """Delete a version's objects (a registration that failed after its upload)."""
    if in_object_storage():
        delete_files((storages[STORAGE_ALIAS], f"{path}/{relative}") for relative in files)


def expected_files(version) -> dict[str, str]:
    """The files a version's directory must hold, with their registered sha256."""
    files = dict(version.files)
    if version.sha256:
        files[MODEL_FILE] = version.sha256  # the registry's own record of the model wins
    return files


def local_directory(version) -> Path:
    """The version's directory on this machine, ready to open: on local model storage simply
    MODEL_ROOT/<path>; on object storage downloaded and verified first when this machine's
    copy is missing or differs from the registered files. Raises ModelFilesError."""
    directory = version.directory
    if not in_object_storage() or not version.files:  # registered before MODEL_STORAGE=s3: local only
        return directory
    expected = expected_files(version)
    if _holds(directory, expected):
        return directory
    _download(version, expected, directory)
    return directory


def _holds(directory: Path, expected: dict[str, str]) -> bool:
    try:
        return all(file_sha256(directory / relative) == digest for relative, digest in expected.items())
    except OSError:  # a file is missing
        return False


def _download(version, expected: dict[str, str], directory: Path) -> None:
    storage = storages[STORAGE_ALIAS]
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".download", dir=directory.parent))
    try:
        for relative, digest in sorted(expected.items()):
            name = f"{version.path}/{relative}"
            where = f"{getattr(storage, 'bucket_name', 'object storage')}:{_key(storage, name)}"
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            hasher = hashlib.sha256()
            try:
                with storage.open(name, "rb") as source, target.open("wb") as out:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        hasher.update(block)
                        out.write(block)
            except FileNotFoundError:
                raise ModelFilesError(f"model {version.version}: {where} is missing from object storage") from None
            except Exception as exc:
                raise ModelFilesError(f"model {version.version}: cannot download {where}: "
                                      f"{exc.__class__.__name__}: {exc}") from exc
            if hasher.hexdigest() != digest:
                raise ModelFilesError(
                    f"model {version.version}: {where} has sha256 {hasher.hexdigest()} but the registry says "
                    f"{digest}: the object is corrupt or not this version's; refused")
        _move_into_place(staging, directory, expected)
        logger.info("model %s downloaded from object storage into %s", version.version, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, directory: Path, expected: dict[str, str]) -> None:
    """rename() is atomic: the directory appears complete or not at all. A copy already there
    is either another process's finished download (kept) or a stale one (set aside, replaced)."""
    try:
        os.rename(staging, directory)
        return
    except OSError:
        if _holds(directory, expected):
            return
    stale = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.stale")
    with contextlib.suppress(FileNotFoundError):
        os.rename(directory, stale)
    try:
        os.rename(staging, directory)
    except OSError:
        if not _holds(directory, expected):  # someone else's copy got there meanwhile: it must be good
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _key(storage, name: str) -> str:
    location = getattr(storage, "location", "")
    return f"{location.rstrip('/')}/{name}" if location else name


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime) so an unchanged file is not hashed again
    (the heartbeat and /healthz check the active model's files every few seconds)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        if len(_digests) > 256:
            _digests.clear()
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]
