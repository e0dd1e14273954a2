"""Which language a request is answered in, beyond Django's LocaleMiddleware.

LocaleMiddleware picks the switcher's cookie, then Accept-Language. On top of it:
`?lang=cy` (the `hreflang` alternate links; `?locale=cy` for Open311) shows one page in that
language without storing anything, and the staff console and the admin stay in English.
"""
from __future__ import annotations

from django.conf import settings
from django.utils import translation

STAFF_PREFIXES = ("/console/", "/admin/")
LANGUAGE_PARAM = "lang"
OPEN311_PREFIX, OPEN311_PARAM = "/open311/", "locale"  # GeoReport v2 clients name the language "locale"


def supported(code: str) -> str | None:
    """`code` as one of settings.LANGUAGES ("cy", "en-gb"), or None."""
    try:
        return translation.get_supported_language_variant(code.strip().lower())
    except (LookupError, AttributeError):
        return None


class LanguageMiddleware:
    """After LocaleMiddleware: `?lang=` for one page, English for staff pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(STAFF_PREFIXES):
            language = settings.LANGUAGE_CODE
        else:
            param = OPEN311_PARAM if request.path.startswith(OPEN311_PREFIX) else LANGUAGE_PARAM
            language = supported(request.GET.get(param, "").replace("_", "-")) if param in request.GET else None
        if language and language != request.LANGUAGE_CODE:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


def path_without_language(request) -> str:
    """Where the switcher returns to: this page, less a `?lang=` that would override the choice."""
    query = request.GET.copy()
    query.pop(LANGUAGE_PARAM, None)
    return f"{request.path}?{query.urlencode()}" if query else request.path


def alternates(request) -> list[dict]:
    """The page in each language, for `<link rel="alternate" hreflang>` (the same path with ?lang=)."""
    query = request.GET.copy()
    links = []
    for code, name in settings.LANGUAGES:
        query[LANGUAGE_PARAM] = code
        links.append({"code": code, "name": name, "url": request.build_absolute_uri(f"{request.path}?{query.urlencode()}")})
    return links
