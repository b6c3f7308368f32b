from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "studio.governance"
    label = "governance"
    default_auto_field = "django.db.models.BigAutoField"
