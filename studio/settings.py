"""Settings, all from the environment (see the configuration table in README.md).

Entry points (``manage.py``, ``studio``, the test plugin) fill in ``DATABASE_URL``
and ``REDIS_URL`` from the embedded default before this module is read; here
every value is only parsed and checked, and a bad one stops start-up with one
line naming the variable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from studio.embedded import default_data_dir
from studio.env import database_config, env_bool, env_choice, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (set SECRET_KEY or SECRET_KEY_FILE)"
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

_database_url = env_url("DATABASE_URL", ("postgres", "postgresql"))
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set and no embedded database is running: start the studio with "
        "`studio up` (or `python manage.py up`), or set DATABASE_URL=postgres://user:pass@host/db"
    )
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set and no embedded Redis is running: start the studio with `studio up`, "
        "or set REDIS_URL=redis://host:6379/0"
    )

STUDIO_DATA_DIR = default_data_dir()
STUDIO_ENCRYPTION_KEY = env_str("STUDIO_ENCRYPTION_KEY") or ""
if not STUDIO_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "STUDIO_ENCRYPTION_KEY is required with an external DATABASE_URL (a Fernet key: "
        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    )
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY") or ""
# /metrics: with a token, only to "Authorization: Bearer <token>"; without one, only to loopback.
METRICS_TOKEN = env_str("METRICS_TOKEN") or ""

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "studio",
    "studio.tenants",
    "flows",
    "studio.inbox",
    "studio.memory",
    "studio.governance",
    "studio.telemetry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "studio.middleware.RequestBodyLimitMiddleware",
    "studio.middleware.ApiTrailingSlashMiddleware",
    "studio.tenants.ratelimit.RateLimitHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "studio.tenants.middleware.CurrentTenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "studio.tenants.middleware.PasswordChangeRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "studio.urls"
ASGI_APPLICATION = "studio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "studio.tenants.context_processors.tenant",
            ],
        },
    },
]

DATABASES = {"default": database_config(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "studio",
        "TIMEOUT": 300,
    }
}

# The PubSub layer: the default RedisChannelLayer ran out of connections at ~100 consumers
# per process on these machines (see DESIGN.md, "Channel layer connections").
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "flows:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
# Without STATIC_ROOT, WhiteNoise serves straight from static/ (finders), so `up` needs no
# collectstatic; production sets STATIC_ROOT and runs collectstatic for compressed copies.
STATIC_ROOT = env_str("STATIC_ROOT") or None
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
# WhiteNoise streams files with a sync iterator; under ASGI Django warns on every file.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Request bodies over 10 MB are refused with 413 before they are parsed (DESIGN.md).
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024


def _limits(**variables: tuple[str, int]) -> dict[str, int]:
    """Limits from the environment, name → (variable, default): 0 turns one off, below 0 is refused."""
    limits = {}
    for name, (variable, default) in variables.items():
        limits[name] = env_int(variable, default)
        if limits[name] < 0:
            raise ImproperlyConfigured(f"{variable} must be 0 (no limit) or more, got {limits[name]}")
    return limits


# Request-rate limits (studio/tenants/ratelimit.py), per minute, where a tenant sets none of its
# own. API calls are counted per key (or person), runs per tenant.
STUDIO_RATE_LIMITS = _limits(
    api_requests_per_minute=("STUDIO_API_REQUESTS_PER_MINUTE", 6000),
    runs_per_minute=("STUDIO_RUNS_PER_MINUTE", 6000),
)
# Failed sign-ins allowed per 15 minutes (studio/tenants/ratelimit.py), per account and per
# client address, before /login/ answers 429 until one is refilled.
STUDIO_SIGNIN_FAILURES = _limits(
    per_account=("STUDIO_SIGNIN_FAILURES_PER_ACCOUNT", 5),
    per_address=("STUDIO_SIGNIN_FAILURES_PER_ADDRESS", 50),
)
# Days a one-time password (an account made on the members page) signs in before it expires.
ONE_TIME_PASSWORD_DAYS = env_int("STUDIO_ONE_TIME_PASSWORD_DAYS", 7)
if ONE_TIME_PASSWORD_DAYS < 1:
    raise ImproperlyConfigured(
        f"STUDIO_ONE_TIME_PASSWORD_DAYS must be 1 or more, got {ONE_TIME_PASSWORD_DAYS}"
    )
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# Security. HTTPS=1 when the studio is served over TLS (production): it turns on the
# redirect, secure cookies and HSTS. The embedded default serves plain HTTP on loopback.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "studio.tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["studio.tenants.permissions.IsTenantMember"],
    "DEFAULT_RENDERER_CLASSES": ["studio.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "studio.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["studio.tenants.ratelimit.ApiRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Flow Studio API",
    "VERSION": "1",
    "DESCRIPTION": (
        'Errors are `{"error": {"code", "message", "details"}}`. Calls are rate limited per '
        "API key (and runs per tenant): over a limit, a 429 with code `rate_limited` and `Retry-After`; "
        "answers carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds)."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from the sidecar package: the docs page works offline, without a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: one app, Redis broker and results. Tasks are acknowledged late and given back
# when a worker dies, so delivery is at least once; tasks themselves are idempotent.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_RESULT_EXPIRES = 3600
# One result backend per process, not per thread: under ASGI each request runs its sync code on a
# thread of its own, so a per-thread backend was built again (reading package metadata from
# disk) by every request that starts a run. Nothing in the studio waits on a task's result
# (its tasks ignore results); the Redis backend's connection pool is thread-safe.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = "studio"
# Workers keep their database connections across tasks (studio/celery.py says why).
CELERY_DB_REUSE_MAX = 1_000_000_000
# Outside calls (models, HTTP) go to their own queue, served by a thread pool (I/O bound).
CELERY_IO_QUEUE = "studio.io"
CELERY_BEAT_SCHEDULE: dict = {
    "steps-recover": {"task": "flows.steps_recover", "schedule": env_int("STEPS_RECOVER_EVERY_S", 10)},
    "schedules-fire": {"task": "flows.schedules_fire", "schedule": 15},
    "reviews-expire": {"task": "inbox.reviews_expire", "schedule": env_int("REVIEWS_EXPIRE_EVERY_S", 15)},
    "memory-retention": {"task": "memory.retention_enforce", "schedule": env_int("MEMORY_RETENTION_S", 60)},
    "runs-retention": {"task": "flows.runs_retention", "schedule": env_int("RUNS_RETENTION_S", 300)},
    "audit-chain": {"task": "governance.audit_chain", "schedule": env_int("AUDIT_CHAIN_S", 5)},
}
# Days a tenant's runs are kept after they started, where it sets none itself (flows/retention.py);
# 0: kept until deleted.
STUDIO_RUNS_KEEP_DAYS = env_int("STUDIO_RUNS_KEEP_DAYS", 0)
if not 0 <= STUDIO_RUNS_KEEP_DAYS <= 3650:
    raise ImproperlyConfigured(
        f"STUDIO_RUNS_KEEP_DAYS must be from 0 (keep) to 3650 days, got {STUDIO_RUNS_KEEP_DAYS}"
    )
# A running step's lease is its node timeout plus this margin; a worker lost mid-step is noticed
# by the sweeper once the lease has run out (not after the broker's visibility timeout).
STEP_LEASE_MARGIN_S = env_int("STEP_LEASE_MARGIN_S", 30)
STEP_STALE_QUEUED_S = env_int("STEP_STALE_QUEUED_S", 300)
CELERY_BEAT_SCHEDULE_FILENAME = str(STUDIO_DATA_DIR / "celerybeat-schedule")

_LOG_LEVELS = ("debug", "info", "warning", "error")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Both redact what they write (studio/logs.py).
    "formatters": {
        "plain": {
            "()": "studio.logs.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"()": "studio.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_choice("STUDIO_LOG_FORMAT", ("plain", "json"), "plain"),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Celery's two lines per task ("received", "succeeded in"): a step is its own task, its
        # trace is in the database, and at hundreds of steps a second they were 4% of a worker's
        # CPU. Failures are still logged (ERROR).
        **{
            name: {"level": env_choice("CELERY_TASK_LOG_LEVEL", _LOG_LEVELS, "warning").upper()}
            for name in ("celery.app.trace", "celery.worker.strategy")
        },
    },
}
