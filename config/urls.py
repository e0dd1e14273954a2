from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from . import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the citizen pages' language switcher
    path("", include("reports.urls")),
    path("console/", include("console.urls")),
    path("", include("notifications.urls")),
    path("admin/", admin.site.urls),
]
if settings.DEBUG:  # production: the web server serves MEDIA_ROOT (public derivatives only)
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
