from django.contrib.auth import views as auth_views
from django.urls import path

from . import performance, routing_urls, update_views, views

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("", views.queue, name="queue"),
    path("counts/", views.counts, name="counts"),
    path("bulk/", views.bulk, name="bulk"),
    path("map/", views.map_view, name="map"),
    path("map/reports.geojson", views.map_geojson, name="map-geojson"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("export.geojson", views.export_geojson, name="export-geojson"),
    path("model/", views.model_panel, name="model"),
    path("performance/", performance.performance_view, name="performance"),
    path("performance.csv", performance.performance_view, {"fmt": "csv"}, name="performance-csv"),
    path("model/thresholds/", views.set_threshold, name="threshold"),
    path("model/retrain/", views.retrain, name="retrain"),
    path("model/rollback/", views.rollback, name="rollback"),
    path("reports/<str:reference>/", views.report_detail, name="report"),
    path("reports/<str:reference>/original", views.photo_original, name="original"),
    path("reports/<str:reference>/photo", views.photo_public, name="photo"),
    path("reports/<str:reference>/updates/<int:pk>/original", update_views.update_photo_original,
         name="update-original"),
    path("reports/<str:reference>/duplicates/", views.duplicates, name="duplicates"),
    path("reports/<str:reference>/verify", views.verify, name="verify"),
    path("reports/<str:reference>/status", views.set_status, name="status"),
    path("reports/<str:reference>/note", views.add_note, name="note"),
    path("reports/<str:reference>/assign", views.assign, name="assign"),
    path("reports/<str:reference>/duplicate", views.mark_duplicate, name="duplicate"),
]

urlpatterns += routing_urls.urlpatterns
