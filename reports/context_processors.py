from django.conf import settings

from .i18n import alternates, path_without_language


def site(request):
    return {
        "LANGUAGE_ALTERNATES": alternates(request),
        "LANGUAGE_NEXT": path_without_language(request),
        "COUNCIL_NAME": settings.COUNCIL_NAME,
        "MAP_TILE_URL": settings.MAP_TILE_URL,
        "MAP_TILE_ATTRIBUTION": settings.MAP_TILE_ATTRIBUTION,
        "MAP_DEFAULT_CENTER": settings.MAP_DEFAULT_CENTER,
    }
