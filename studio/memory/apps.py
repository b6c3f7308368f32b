from __future__ import annotations

from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "studio.memory"
    label = "memory"
    verbose_name = "Long-term memory"
    default_auto_field = "django.db.models.BigAutoField"
