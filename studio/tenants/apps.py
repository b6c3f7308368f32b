from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "studio.tenants"
    label = "tenants"
    verbose_name = "Tenants and people"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from studio.tenants import checks, key_cache, schema  # noqa: F401 - registers checks and the API-key scheme

        key_cache.connect_signals()
