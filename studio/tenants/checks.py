"""System checks for configuration that settings.py cannot judge alone."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def encryption_key_is_usable(app_configs, **kwargs):
    from cryptography.fernet import Fernet

    errors = []
    for index, key in enumerate(k.strip() for k in settings.STUDIO_ENCRYPTION_KEY.split(",")):
        try:
            Fernet(key)
        except ValueError:
            errors.append(
                Error(
                    f"STUDIO_ENCRYPTION_KEY key #{index + 1} is not a Fernet key",
                    hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="tenants.E001",
                )
            )
    return errors
