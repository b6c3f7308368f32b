from __future__ import annotations

from django.urls import path

from flows import views

app_name = "flows"

urlpatterns = [
    path("", views.flow_list, name="list"),
]
