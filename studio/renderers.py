"""The API's JSON renderer (``REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"]``), in a module of its own:
DRF reads that setting while ``rest_framework.views`` is being imported."""

from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer


class FastJSONRenderer(JSONRenderer):
    """Every API answer: DRF's compact JSON, written by orjson (a run with its steps, a graph of a
    thousand nodes, ten search hits with their 384-number vectors: several times faster than the
    standard library). What orjson does not know (lazy strings, Decimal) goes to DRF's encoder; what
    it refuses (an integer beyond 64 bits) goes to DRF whole; an ``Accept: application/json;
    indent=4`` too. U+2028 and U+2029 are escaped as DRF does, so the output stays a strict
    JavaScript subset. (Bodies are still parsed by the standard library, except vectors: orjson
    reads an integer beyond 64 bits as a float, which would change a saved graph.)"""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None or self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            body = orjson.dumps(data, default=_drf_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, say
            return super().render(data, accepted_media_type, renderer_context)
        return body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")


_drf_default = JSONRenderer.encoder_class().default
