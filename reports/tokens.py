"""The citizen's proof that a report is theirs: a signed, expiring token made at submission.

The web form puts it in the submitter's session (never in a URL, which gets
shared); the thank-you page echoes it in its confirm/correct form. Only the
reference is signed, so the token carries nothing private and works on any
replica that shares SECRET_KEY.
"""
from __future__ import annotations

from django.conf import settings
from django.core import signing

SALT = "reports.citizen-label"
SESSION_KEY = "citizen_label_tokens"  # {reference: token}
SESSION_LIMIT = 20  # tokens kept per session (most recent reports)


def citizen_token_create(*, reference: str) -> str:
    return signing.TimestampSigner(salt=SALT).sign(reference)


def citizen_token_valid(*, reference: str, token: str) -> bool:
    """True when `token` was made for `reference` less than CITIZEN_LABEL_MAX_AGE seconds ago."""
    if not token:
        return False
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(token, max_age=settings.CITIZEN_LABEL_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return False
    return value == reference


def session_token_store(session, *, reference: str) -> None:
    tokens = dict(session.get(SESSION_KEY, {}))
    tokens[reference] = citizen_token_create(reference=reference)
    session[SESSION_KEY] = dict(list(tokens.items())[-SESSION_LIMIT:])


def session_token(session, *, reference: str) -> str:
    """The session's still-valid token for `reference`, else ""."""
    token = session.get(SESSION_KEY, {}).get(reference, "")
    return token if citizen_token_valid(reference=reference, token=token) else ""


# The reporter's private link, sent only to the reporter's e-mail address (notifications): it
# opens their report's manage page (add an update, "still not fixed") without an account.
# Signs the reference only; it is unguessable without SECRET_KEY and expires after
# REPORTER_LINK_MAX_AGE seconds. URL: reverse("report-manage", args=[reference, token]).
REPORTER_LINK_SALT = "reports.reporter-link"


def reporter_link_token(*, reference: str) -> str:
    return signing.TimestampSigner(salt=REPORTER_LINK_SALT).sign(reference).split(":", 1)[1]


def reporter_link_valid(*, reference: str, token: str) -> bool:
    """True when `token` is this reference's reporter link and younger than REPORTER_LINK_MAX_AGE."""
    if not token:
        return False
    try:
        signing.TimestampSigner(salt=REPORTER_LINK_SALT).unsign(f"{reference}:{token}",
                                                                max_age=settings.REPORTER_LINK_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return False
    return True
