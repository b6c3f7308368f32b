from __future__ import annotations

from django.urls import path

from studio.tenants import views

app_name = "settings"

urlpatterns = [
    path("", views.settings_members, name="index"),
    path("members/", views.settings_members, name="members"),
    path("api-keys/", views.settings_api_keys, name="api_keys"),
    path("secrets/", views.settings_secrets, name="secrets"),
]
