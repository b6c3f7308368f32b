"""studio.jsontext: the hot paths' JSON, read back as the standard library's would be."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext_lazy

from studio.jsontext import dumps


def test_values_read_back_as_djangos_encoder_writes_them():
    value = {
        "text": "héllo \u2028 ✓",
        "n": [1, 2.5, True, None],
        "at": datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC),
        "day": date(2026, 12, 6),
        "took": timedelta(seconds=90),
        "cost": Decimal("0.000125"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "label": gettext_lazy("Name"),
        7: "an integer key",
    }
    assert json.loads(dumps(value)) == json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def test_what_orjson_refuses_or_json_cannot_say():
    huge = {"n": 2**70, "m": -(2**64)}
    assert json.loads(dumps(huge)) == huge  # beyond 64 bits: the standard library writes it
    assert json.loads(dumps({"x": math.nan, "y": math.inf})) == {"x": None, "y": None}
