from __future__ import annotations

from django.urls import path

from flows import settings_views

app_name = "flow_settings"

urlpatterns = [
    path("budget/", settings_views.settings_budget, name="budget"),
    path("runs/", settings_views.settings_runs, name="runs"),
    path("access/", settings_views.settings_access, name="access"),
    path("policies/", settings_views.settings_policies, name="policies"),
]
