"""Open311 GeoReport v2: every resource takes a format suffix (.json or .xml)."""
from django.urls import re_path

from . import open311

urlpatterns = [
    re_path(r"^discovery(?:\.(?P<fmt>\w+))?$", open311.discovery, name="open311-discovery"),
    re_path(r"^services\.(?P<fmt>\w+)$", open311.service_list, name="open311-services"),
    re_path(r"^services/(?P<code>[-\w]+)\.(?P<fmt>\w+)$", open311.service_definition, name="open311-service"),
    re_path(r"^requests\.(?P<fmt>\w+)$", open311.service_requests, name="open311-requests"),
    re_path(r"^requests/(?P<reference>\w+)\.(?P<fmt>\w+)$", open311.service_request, name="open311-request"),
    re_path(r"", open311.not_found),  # anything else under /open311/v2/: a spec-shaped 404
]
