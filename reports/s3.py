"""The S3 backends (django-storages) for photos in S3-compatible object storage: selected by
PHOTO_STORAGE=s3 (config/settings/base.py), so that every web node and worker sees the same
photos. Only imported then: the local demo never loads boto3."""
from __future__ import annotations

import threading

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage

# Fail fast instead of botocore's defaults (60 s timeouts, legacy retries): an upload waits on
# these calls, and a storage that is down should be a quick 503, not a hung web worker.
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
# One boto3 session per thread and credentials, shared by the storages: each session parses the
# S3 service model (megabytes of JSON) again, which django-storages would do per storage and
# signed/unsigned connection. Sessions are not thread-safe, hence per thread.
_sessions = threading.local()


class _PhotoS3Storage(S3Storage):
    # PUTs carry no ACL: objects are private unless a bucket policy says otherwise, and buckets
    # with ACLs disabled (the AWS default since 2023) refuse every ACL but the owner's.
    default_acl = None
    # A name already taken gets a new one, as on disk, so a rolled-back upload's cleanup can
    # never delete another upload's object (training examples are named by their SHA-256).
    file_overwrite = False

    def __init__(self, **options):
        super().__init__(**options)
        self.client_config = self.client_config.merge(CLIENT_CONFIG)

    def _create_session(self):
        cache = _sessions.__dict__.setdefault("by_credentials", {})
        key = (self.session_profile, self.access_key, self.secret_key, self.security_token)
        if key not in cache:
            cache[key] = super()._create_session()
        return cache[key]

    def unavailable_reason(self) -> str | None:
        """Why this bucket cannot take an upload now, or None: one HEAD on the bucket (reachable,
        exists, our credentials may use it), cheap enough for every /healthz. A bucket whose
        policy denies writes passes it and shows at upload instead, as a 503."""
        try:
            self.connection.meta.client.head_bucket(Bucket=self.bucket_name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or exc.response["ResponseMetadata"]["HTTPStatusCode"]
            return f"bucket {self.bucket_name}: {code}"
        except BotoCoreError as exc:
            return f"bucket {self.bucket_name}: {exc.__class__.__name__}"
        return None


class PrivatePhotoStorage(_PhotoS3Storage):
    """Originals, which keep their GPS and camera metadata: never a public URL. Every URL is a
    SigV4-signed GET valid for `querystring_expire` seconds (S3_SIGNED_URL_SECONDS), and the
    console hands them to staff only (reports.storage.staff_download_url)."""

    querystring_auth = True
    object_parameters = {"CacheControl": "private, no-store"}

    def download_url(self, name: str, *, filename: str, content_type: str) -> str:
        """A signed URL that has the browser save the object as `filename`."""
        return self.url(name, parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"',
                                          "ResponseContentType": content_type})


class PublicPhotoStorage(_PhotoS3Storage):
    """Metadata-free public copies and thumbnails: plain URLs, no signature, so browsers and
    proxies cache them. The bucket is made readable by its policy (README: Configuration), or
    sits behind the web server: `public_url` (S3_PUBLIC_URL) is then the address in front of
    it, absolute ("https://photos.example.org/") or a path on this site ("/media/")."""

    querystring_auth = False
    # A day: long enough for caches to matter, short enough that an erased photo leaves them soon.
    object_parameters = {"CacheControl": "public, max-age=86400"}

    def get_default_settings(self):
        return {**super().get_default_settings(), "public_url": None}

    def url(self, name, parameters=None, expire=None, http_method=None):
        if self.public_url:
            return f"{self.public_url.rstrip('/')}/{filepath_to_uri(self._normalize_name(name))}"
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)
