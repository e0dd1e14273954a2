from django.urls import path

from . import alert_views, views

urlpatterns = [
    path("mail/unsubscribe/<str:token>/", views.unsubscribe, name="notifications-unsubscribe"),
    path("alerts/", alert_views.subscribe, name="alerts"),
    path("alerts/sent/", alert_views.sent, name="alerts-sent"),
    path("alerts/confirm/<str:token>/", alert_views.confirm, name="alerts-confirm"),
    path("alerts/manage/<str:token>/", alert_views.manage, name="alerts-manage"),
    path("alerts/stop/<str:token>/", alert_views.stop, name="alerts-stop"),
    path("alerts/feed/", alert_views.feed_near, name="alerts-feed"),
    path("alerts/feed/area/<slug:slug>/", alert_views.feed_area, name="alerts-feed-area"),
]
