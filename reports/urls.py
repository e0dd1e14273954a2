from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import accessibility, api, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="report-new", permanent=False)),
    path("report/", views.report_new, name="report-new"),
    path("accessibility/", accessibility.accessibility_statement, name="accessibility"),
    path("report/places/", views.report_places, name="report-places"),  # before the references
    path("report/find/", views.report_find, name="report-find"),
    path("report/<str:reference>/", views.report_status, name="report-status"),
    path("report/<str:reference>/thanks/", views.report_thanks, name="report-thanks"),
    path("report/<str:reference>/suggestion/", views.report_suggestion, name="report-suggestion"),
    path("report/<str:reference>/label/", views.report_citizen_label, name="report-citizen-label"),
    path("report/<str:reference>/manage/<str:token>/", views.report_manage, name="report-manage"),
    path("api/v1/reports/", api.ReportCreateView.as_view(), name="api-report-create"),
    path("api/v1/reports/geojson/", api.ReportGeoListView.as_view(), name="api-report-geojson"),
    path("api/v1/reports/<str:reference>/", api.ReportDetailView.as_view(), name="api-report-detail"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
         name="api-docs"),  # the split view serves its init script as a file: no inline script under the CSP
    path("open311/v2/", include("reports.open311_urls")),
]
