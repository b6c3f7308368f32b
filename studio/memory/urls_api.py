"""Memory API (mounted at /api/v1/): memory/…"""

from __future__ import annotations

from django.urls import path

from studio.memory import api

urlpatterns = [
    path("", api.NamespaceListApi.as_view(), name="memory_namespaces"),
    path("forget/", api.ForgetApi.as_view(), name="memory_forget"),
    path("<str:namespace>/items/", api.ItemsApi.as_view(), name="memory_items"),
    path("<str:namespace>/items/<int:pk>/", api.ItemDetailApi.as_view(), name="memory_item"),
    path("<str:namespace>/search/", api.SearchApi.as_view(), name="memory_search"),
]
