from __future__ import annotations

from django.urls import path

from studio.memory import views

app_name = "memory"

urlpatterns = [
    path("", views.settings_memory, name="settings"),
    path("<str:name>/", views.namespace_items, name="namespace"),
]
