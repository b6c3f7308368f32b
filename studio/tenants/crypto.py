"""Encryption at rest for tenant secrets (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet() -> MultiFernet:
    # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
    keys = [key.strip() for key in settings.STUDIO_ENCRYPTION_KEY.split(",") if key.strip()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "STUDIO_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
        ) from exc


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "a secret cannot be decrypted with STUDIO_ENCRYPTION_KEY (was the key changed?)"
        ) from None
