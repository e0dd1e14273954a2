"""The object storage for model directories (MODEL_STORAGE=s3, classifier.model_files): the
private bucket's backend (reports.s3), under models/. Only imported then: the local demo never
loads boto3."""
from __future__ import annotations

from reports.s3 import PrivatePhotoStorage


class ModelStorage(PrivatePhotoStorage):
    """models/<version>/<file> in the private bucket: never a public URL, like the originals."""

    location = "models"
    # A version's keys are fixed, and the registry's sha256 says which bytes are good, so a
    # registration retried after a failed one overwrites whatever that left behind.
    file_overwrite = True
