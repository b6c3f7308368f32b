"""JSON text written on the hot paths: a step's jsonb columns and every live event.

orjson (ten times the standard library's speed on a step's small values), formatting dates,
times, decimals and lazy strings as Django's encoder does; an integer beyond 64 bits, which
orjson refuses, falls back to the standard library. NaN and infinities become ``null``
(PostgreSQL's jsonb and browsers' ``JSON.parse`` refuse the standard library's ``NaN``)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
_django_default = DjangoJSONEncoder().default


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_django_default, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits
        return json.dumps(value, cls=DjangoJSONEncoder)
