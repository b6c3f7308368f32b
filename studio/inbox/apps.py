from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "studio.inbox"
    label = "inbox"
    verbose_name = "Reviewer inbox"
    default_auto_field = "django.db.models.BigAutoField"
