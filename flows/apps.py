from __future__ import annotations

from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from flows.nodes import register_builtin_types

        register_builtin_types()
