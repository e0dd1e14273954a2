from django.urls import path

urlpatterns = []  # Open311 GeoReport v2: filled in by reports/open311.py
