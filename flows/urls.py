from __future__ import annotations

from django.urls import path

from flows import views

app_name = "flows"

urlpatterns = [
    path("", views.flow_list, name="list"),
    path("new/", views.flow_create, name="create"),
    path("import/", views.flow_import, name="import"),
    path("<int:pk>/edit/", views.flow_edit, name="edit"),
    path("<int:pk>/duplicate/", views.flow_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.flow_delete, name="delete"),
]
