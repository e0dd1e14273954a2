"""The routing pages' URLs (console/routing_views.py), added to the console's namespace."""
from django.urls import path

from . import routing_views as v

urlpatterns = [
    path("routing/", v.routing, name="routing"),
    path("routing/teams/new", v.team_edit, name="team-new"),
    path("routing/teams/<slug:slug>/", v.team_edit, name="team"),
    path("routing/teams/<slug:slug>/delete", v.team_delete, name="team-delete"),
    path("routing/rules/new", v.rule_edit, name="rule-new"),
    path("routing/rules/<int:pk>/", v.rule_edit, name="rule"),
    path("routing/rules/<int:pk>/delete", v.rule_delete, name="rule-delete"),
    path("routing/areas/upload", v.area_upload, name="area-upload"),
    path("routing/areas/<int:pk>/delete", v.area_delete, name="area-delete"),
]
