"""Inbox pages (mounted at /inbox/)."""

from __future__ import annotations

from django.urls import path

from studio.inbox import views

urlpatterns = [
    path("", views.inbox, name="inbox"),
]
