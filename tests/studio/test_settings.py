"""Settings come from the environment; bad values stop start-up with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from studio.env import database_config, env_bool, env_int, env_list, env_str, env_url

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DATABASE_URL": "postgres://studio:pw@db.internal:5432/studio",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECRET_KEY": "k" * 10 + "Zy8#x2!qLm9@pW4$vT7^bN1&cR5*eH3(jK6)" + "s" * 10,
    "STUDIO_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DEBUG": "0",
    "ALLOWED_HOSTS": "studio.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
    "HTTPS": "1",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_bool_accepts_the_usual_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "Off")
    assert env_bool("FLAG", True) is False


def test_env_bool_rejects_anything_else_naming_the_variable(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env_bool("FLAG")


def test_env_int_and_list(monkeypatch):
    monkeypatch.setenv("N", "x12")
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 1)
    monkeypatch.setenv("HOSTS", " a.example, b.example ,")
    assert env_list("HOSTS") == ["a.example", "b.example"]


def test_a_value_may_come_from_a_file(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("from-a-file\n")
    monkeypatch.delenv("SOME_SECRET", raising=False)
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "key"))
    assert env_str("SOME_SECRET") == "from-a-file"
    monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SOME_SECRET_FILE: cannot read"):
        env_str("SOME_SECRET")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u:p@h/db", "must start with postgres:// or postgresql://"),
        ("postgres://u:secret@host:notaport/db", "is not a valid URL"),
        ("postgres://", "names no host"),
    ],
)
def test_malformed_database_url_is_refused(monkeypatch, value, message):
    monkeypatch.setenv("DATABASE_URL", value)
    with pytest.raises(ImproperlyConfigured, match=message) as excinfo:
        env_url("DATABASE_URL", ("postgres", "postgresql"))
    assert "secret" not in str(excinfo.value)  # passwords never reach messages


def test_database_config_reads_socket_dirs_and_options():
    config = database_config("postgresql://app:p%40ss@/studio?host=/run/pg&sslmode=require")
    assert config["HOST"] == "/run/pg"
    assert config["PASSWORD"] == "p@ss"
    assert config["OPTIONS"]["sslmode"] == "require"


def test_production_values_pass_check_deploy():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"DATABASE_URL": "postgres://u:pw@host:99999999/db"}, "error: DATABASE_URL is not a valid URL"),
        ({"SECRET_KEY": ""}, "error: SECRET_KEY is required when DEBUG is off"),
        ({"STUDIO_ENCRYPTION_KEY": ""}, "error: STUDIO_ENCRYPTION_KEY is required"),
        ({"REDIS_URL": "http://cache:6379"}, "error: REDIS_URL must start with redis://"),
        ({"DEBUG": "perhaps"}, "error: DEBUG must be a boolean"),
        ({"STUDIO_LOG_FORMAT": "xml"}, "error: STUDIO_LOG_FORMAT must be one of plain, json"),
        (
            {"STUDIO_SIGNIN_FAILURES_PER_ADDRESS": "-3"},
            "error: STUDIO_SIGNIN_FAILURES_PER_ADDRESS must be 0 (no limit) or more, got -3",
        ),
        (
            {"CELERY_TASK_LOG_LEVEL": "loud"},
            "error: CELERY_TASK_LOG_LEVEL must be one of debug, info, warning, error",
        ),
    ],
)
def test_bad_configuration_ends_with_one_clear_line(override, expected):
    result = run_manage("check", env={**PRODUCTION, **override})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(expected)


def test_a_wrong_encryption_key_is_a_system_check_error():
    result = run_manage("check", env={**PRODUCTION, "STUDIO_ENCRYPTION_KEY": "not-a-fernet-key"})
    assert result.returncode == 1
    assert "tenants.E001" in result.stderr


def test_celery_logs_a_task_only_when_it_fails_unless_asked():
    from django.conf import settings

    loggers = settings.LOGGING["loggers"]
    assert loggers["celery.app.trace"]["level"] == loggers["celery.worker.strategy"]["level"] == "WARNING"
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.LOGGING['loggers']['celery.app.trace'])",
        env={**PRODUCTION, "CELERY_TASK_LOG_LEVEL": "info"},
    )
    assert result.returncode == 0, result.stderr
    assert "'INFO'" in result.stdout
