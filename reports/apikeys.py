"""Open311 API keys: random, shown once, stored as SHA-256 (keys are high-entropy, so no slow KDF is needed)."""
import hashlib
import secrets

from django.utils import timezone

from .models import ApiKey


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    key = secrets.token_urlsafe(32)
    obj = ApiKey.objects.create(name=name, prefix=key[:8], key_hash=_hash(key))
    return obj, key


def api_key_check(key: str | None) -> ApiKey | None:
    """The active ApiKey for `key`, or None."""
    if not key:
        return None
    obj = ApiKey.objects.filter(key_hash=_hash(key), active=True).first()
    if obj is not None:
        ApiKey.objects.filter(pk=obj.pk).update(last_used_at=timezone.now())
    return obj
