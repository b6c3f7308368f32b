"""Liveness of the parts the studio needs: database, Redis and Celery workers."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection


def check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:  # any driver error means "down", reported, not raised
        return {"ok": False, "error": _one_line(exc)}
    return {"ok": True, "latency_ms": _ms(started), "pgvector": row[0] if row else None}


def check_redis() -> dict:
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        return {"ok": False, "error": _one_line(exc)}
    return {"ok": True, "latency_ms": _ms(started)}


def check_workers(timeout: float = 1.0) -> dict:
    from studio.celery import app

    try:
        replies = app.control.ping(timeout=timeout)
    except Exception as exc:
        return {"ok": False, "count": 0, "names": [], "error": _one_line(exc)}
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "count": len(names), "names": names}


def health_report() -> dict:
    report = {"database": check_database(), "redis": check_redis()}
    # Without Redis the ping cannot be sent; say so rather than wait for it to time out.
    report["workers"] = check_workers() if report["redis"]["ok"] else {"ok": False, "count": 0, "names": []}
    report["status"] = "ok" if all(part["ok"] for part in report.values()) else "down"
    return report


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
