"""Typed readers for settings that come from the environment.

Each helper fails loudly with one line naming the variable, so a bad value stops
the process at start-up instead of surfacing later as a confusing error.
A variable may also be given as ``<NAME>_FILE`` (a path whose contents are the value),
the usual way secrets reach containers.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """The raw value of ``name`` (or the contents of ``<name>_FILE``), else ``default``."""
    value = os.environ.get(name)
    if value is not None:
        return value
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_path}: {exc.strerror}") from exc
    return default


def env_bool(name: str, default: bool = False) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices`` (case-insensitive), else a configuration error naming them."""
    value = (env_str(name) or "").strip().lower()
    if not value:
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    """A URL whose scheme is one of ``schemes`` and that names a host or a socket path."""
    value = env_str(name)
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    check_url(name, value, schemes)
    return value


def check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc}): {redact_url(value)}") from None
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} must start with {' or '.join(s + '://' for s in schemes)}, got {redact_url(value)!r}"
        )
    if not parts.hostname and "host=" not in parts.query and not parts.path.strip("/"):
        raise ImproperlyConfigured(f"{name} names no host: {redact_url(value)!r}")


def redact_url(value: str) -> str:
    """The URL with its password replaced, for error messages and logs."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "<unparseable URL>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return value


def database_config(url: str) -> dict:
    """Django's DATABASES entry for a ``postgres://`` URL (host may be a socket dir via ?host=)."""
    from urllib.parse import parse_qs, unquote

    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured(f"DATABASE_URL names no database: {redact_url(url)!r}")
    host = query.pop("host", None) or parts.hostname or ""
    options = {
        key: value for key, value in query.items() if key in {"sslmode", "sslrootcert", "application_name"}
    }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        # A connection pool per process instead of persistent connections: under ASGI each request's
        # sync code may run on a fresh thread, and a new PostgreSQL connection (SCRAM auth) per
        # request costs several milliseconds.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            **options,
            "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 5),
            "pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_SIZE", 20), "timeout": 10},
        },
    }
