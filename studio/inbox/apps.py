from __future__ import annotations

from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "studio.inbox"
    label = "inbox"
    verbose_name = "Reviewer inbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The approval node lives here, not in flows: the engine never imports the inbox.
        from flows.engine import on_waits_cancelled
        from flows.nodes import register
        from flows.policies import set_review_opener
        from flows.retention import on_runs_purged
        from studio.inbox.nodes import NODE
        from studio.inbox.services import review_create, reviews_cancel_for_steps, reviews_delete_for_runs

        register(NODE)
        on_waits_cancelled(reviews_cancel_for_steps)
        on_runs_purged(reviews_delete_for_runs)  # a run's reviews go with it when its history is removed
        set_review_opener(review_create)  # approval policies ask people through the inbox
