from django.conf import settings


def site(request):
    return {
        "COUNCIL_NAME": settings.COUNCIL_NAME,
        "MAP_TILE_URL": settings.MAP_TILE_URL,
        "MAP_TILE_ATTRIBUTION": settings.MAP_TILE_ATTRIBUTION,
        "MAP_DEFAULT_CENTER": settings.MAP_DEFAULT_CENTER,
    }
