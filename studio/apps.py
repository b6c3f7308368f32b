from __future__ import annotations

from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    label = "studio"
    verbose_name = "Agent Flow Studio"
