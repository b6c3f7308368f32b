"""Pytest plugin for real PostgreSQL + pgvector and Redis (``-p studio.pytest_plugin``).

It runs before pytest-django reads the settings. With ``DATABASE_URL`` and ``REDIS_URL``
set it uses those servers (pytest-django makes its own ``test_…`` database); otherwise it
starts the embedded services in a temporary data dir, exactly as ``studio up`` would, and
stops them when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_state: dict = {}


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        from cryptography.fernet import Fernet

        os.environ.setdefault("STUDIO_ENCRYPTION_KEY", Fernet.generate_key().decode())
        os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 40)
        return
    data_dir = tempfile.mkdtemp(prefix="afs-test-")
    os.environ["STUDIO_DATA_DIR"] = data_dir
    from studio.embedded import prepare_environment

    _state["stack"] = prepare_environment(exclusive=True)
    _state["data_dir"] = data_dir


def pytest_unconfigure(config) -> None:
    stack = _state.pop("stack", None)
    if stack is not None:
        stack.stop()
    data_dir = _state.pop("data_dir", None)
    if data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
