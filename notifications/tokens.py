"""The one-click unsubscribe link in every message: a signed, expiring token naming the address
and, for per-report mail, the report. Unguessable without SECRET_KEY, so the link alone proves
the recipient asked (RFC 8058 mail clients POST to it without cookies)."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.translation import gettext as _

SALT = "notifications.unsubscribe"


@dataclass(frozen=True)
class UnsubscribeRequest:
    email: str
    reference: str  # "" = every message to this address


class BadUnsubscribeToken(ValueError):
    """Forged, damaged or expired; the message says which, for the page."""


def unsubscribe_token(*, email: str, reference: str = "") -> str:
    return signing.dumps({"e": email.lower(), "r": reference}, salt=SALT, compress=True)


def unsubscribe_read(token: str) -> UnsubscribeRequest:
    """The request `token` carries, or BadUnsubscribeToken when it is not one of ours or is
    older than UNSUBSCRIBE_LINK_MAX_AGE seconds."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.UNSUBSCRIBE_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise BadUnsubscribeToken(_("This unsubscribe link has expired.")) from None
    except signing.BadSignature:
        raise BadUnsubscribeToken(_("This unsubscribe link is not valid: it may have been copied incompletely.")) from None
    if not isinstance(data, dict) or not isinstance(data.get("e"), str) or not isinstance(data.get("r"), str):
        raise BadUnsubscribeToken(_("This unsubscribe link is not valid."))
    return UnsubscribeRequest(email=data["e"], reference=data["r"])
