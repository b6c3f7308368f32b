from __future__ import annotations

from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    label = "studio"
    verbose_name = "Agent Flow Studio"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from studio.pgadapt import cache_parsed_statements, load_timestamps_in_c

        cache_parsed_statements()
        connection_created.connect(load_timestamps_in_c, dispatch_uid="studio.load_timestamps_in_c")
