from __future__ import annotations

from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "studio.telemetry"
    label = "telemetry"
    verbose_name = "Telemetry"

    def ready(self) -> None:
        # Counted as steps end, without the engine importing telemetry.
        from flows.engine import on_steps_recorded
        from studio.telemetry.counters import steps_recorded

        on_steps_recorded(steps_recorded)
