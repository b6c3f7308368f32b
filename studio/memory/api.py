"""The memory REST API (DESIGN.md, "HTTP contract"): namespaces, items, search, forget."""

from __future__ import annotations

import io

import orjson
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.api import error_response, keyset_page, query_int
from studio.memory import selectors, services
from studio.tenants.permissions import request_actor

READ = "memory.read"
WRITE = "memory.write"


def _invalid(exc: services.MemoryValidationError) -> Response:
    return error_response(
        400, str(exc), code=exc.code, details=[{"field": exc.field, "message": exc.message}]
    )


def _no_namespace(namespace: str) -> Response:
    return error_response(404, f"no memory namespace named {namespace!r}", code="not_found")


def _no_item() -> Response:
    return error_response(404, "no such memory item", code="not_found")


def _unavailable(exc: services.EmbedderUnavailable) -> Response:
    return error_response(503, str(exc), code="embedder_unavailable")


class VectorJSONParser(JSONParser):
    """DRF's JSON parser on orjson: a body with a 384-number vector parsed in 8 µs instead of
    100 µs (the standard library parses each number in Python), and 1,536 numbers in 30 µs
    instead of 400. Like DRF's strict parser it refuses NaN and Infinity. orjson reads an integer
    beyond 64 bits as a float: a body in which it found a float that large (an item's metadata,
    say) is parsed again by DRF's parser, so no number comes back changed."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read()
        data = self._parse(body, parser_context)
        if _has_huge_float(data):
            return super().parse(io.BytesIO(body), media_type, parser_context)
        return data

    def _parse(self, body: bytes, parser_context):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
                body = body.decode(encoding)
            return orjson.loads(body)
        except (ValueError, LookupError) as exc:  # orjson.JSONDecodeError and UnicodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None


_HUGE = 2.0**63  # orjson keeps integers below this exact


def _has_huge_float(value) -> bool:
    """Whether a float of at least 2**63 in magnitude is anywhere in ``value`` (parsed JSON):
    maybe an integer orjson could not keep. A list of numbers (a vector) costs a ``max`` and a ``min``."""
    if type(value) is float:
        return abs(value) >= _HUGE
    if type(value) is dict:
        return any(_has_huge_float(item) for item in value.values())
    if type(value) is list and value:
        try:
            return max(value) >= _HUGE or min(value) <= -_HUGE
        except TypeError:  # not all numbers (nor all strings)
            return any(_has_huge_float(item) for item in value)
    return False


@extend_schema_field({"type": "array", "items": {"type": "number"}, "maxItems": services.MAX_VECTOR_DIMS})
class VectorField(serializers.Field):
    """A precomputed embedding (``services.checked_vector``)."""

    def to_internal_value(self, data):
        try:
            return services.checked_vector(data, self.field_name)
        except services.MemoryValidationError as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value):
        return value


class ItemInput(serializers.Serializer):
    content = serializers.CharField(max_length=services.MAX_CONTENT_CHARS, trim_whitespace=False)
    subject = serializers.CharField(max_length=services.MAX_SUBJECT_CHARS, required=False, allow_blank=True)
    metadata = serializers.DictField(required=False)
    ttl_seconds = serializers.IntegerField(min_value=1, required=False)
    pinned = serializers.BooleanField(required=False, default=False)
    embedding = VectorField(required=False)

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be empty")
        return value


class ItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    namespace = serializers.CharField(source="namespace.name")
    content = serializers.CharField()
    subject = serializers.CharField()
    metadata = serializers.JSONField()
    source = serializers.CharField()
    pinned = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


NamespaceOutput = inline_serializer("MemoryNamespace", many=True, fields={
    "name": serializers.CharField(), "count": serializers.IntegerField(), "size_bytes": serializers.IntegerField(),
    "dims": serializers.IntegerField(), "embedder": serializers.CharField(),
    "ttl_seconds": serializers.IntegerField(allow_null=True), "max_items": serializers.IntegerField(allow_null=True),
    "redaction_rules": serializers.ListField(child=serializers.CharField()),
})  # fmt: skip


class NamespaceListApi(APIView):
    required_permission = READ

    @extend_schema(responses=inline_serializer("MemoryNamespaces", {"results": NamespaceOutput}))
    def get(self, request):
        rows = selectors.namespace_list(tenant=request_actor(request).tenant)
        return Response({"results": [
            {"name": r["name"], "count": r["count"], "size_bytes": r["size_bytes"], "dims": r["dims"],
             "embedder": r["embedder_label"], "ttl_seconds": r["ttl_seconds"], "max_items": r["max_items"],
             "redaction_rules": r["redaction_rules"]}
            for r in rows
        ]})  # fmt: skip


class ItemsApi(APIView):
    """GET: the namespace's items, newest first, in pages. POST: one item (``{"content", …}``,
    201 with the item) or a batch (``{"items": [...]}``, 201 with ``{"items": [...]}``)."""

    required_permission = {"GET": READ, "*": WRITE}
    parser_classes = [VectorJSONParser]

    @extend_schema(
        operation_id="memory_items_list",
        parameters=[
            OpenApiParameter("subject", str, description="only the items about this subject"),
            OpenApiParameter("limit", int, description=f"1 to {selectors.MAX_ITEMS_LISTED}; "
                                                       f"default {selectors.DEFAULT_ITEMS_LISTED}"),
            OpenApiParameter("before", int, description="an item id: the page of items older than it (see `next`)"),
        ],
        responses=inline_serializer("MemoryItemPage", {"results": ItemOutput(many=True),
                                                       "next": serializers.CharField(allow_null=True)}),
    )  # fmt: skip
    def get(self, request, namespace: str):
        ns = selectors.namespace_get(tenant=request_actor(request).tenant, name=namespace)
        if ns is None:
            return _no_namespace(namespace)
        limit = query_int(request, "limit", default=selectors.DEFAULT_ITEMS_LISTED,
                          maximum=selectors.MAX_ITEMS_LISTED)  # fmt: skip
        before = query_int(request, "before", default=0) or None
        rows = selectors.item_list(namespace=ns, subject=request.query_params.get("subject"), before=before)
        items, next_url = keyset_page(request, list(rows[: limit + 1]), limit)
        for item in items:
            item.namespace = ns
        return Response({"results": ItemOutput(items, many=True).data, "next": next_url})

    class Batch(serializers.Serializer):
        items = ItemInput(many=True, allow_empty=False, max_length=services.MAX_BATCH)

    @extend_schema(request=ItemInput, responses={201: ItemOutput})
    def post(self, request, namespace: str):
        batch = isinstance(request.data, dict) and "items" in request.data
        data = self.Batch(data=request.data) if batch else ItemInput(data=request.data)
        data.is_valid(raise_exception=True)
        items = data.validated_data["items"] if batch else [data.validated_data]
        actor = request_actor(request)
        try:
            created = services.memory_add(
                tenant=actor.tenant, namespace=namespace, items=[dict(item) for item in items],
                source=f"api:{actor.label}", field_prefix="items." if batch else "",
            )  # fmt: skip
        except services.MemoryValidationError as exc:
            return _invalid(exc)
        except services.EmbedderUnavailable as exc:
            return _unavailable(exc)
        body = {"items": ItemOutput(created, many=True).data} if batch else ItemOutput(created[0]).data
        return Response(body, status=status.HTTP_201_CREATED)


class ItemDetailApi(APIView):
    """GET: one item. PATCH ``{"pinned": true}``: pin it (retention keeps it) or unpin it.
    DELETE: erase it (recorded as a purge)."""

    required_permission = {"GET": READ, "*": WRITE}

    class ItemPatch(serializers.Serializer):
        pinned = serializers.BooleanField()

    @extend_schema(responses=ItemOutput)
    def get(self, request, namespace: str, pk: int):
        item = selectors.item_get(tenant=request_actor(request).tenant, namespace=namespace, pk=pk)
        if item is None:
            return _no_item()
        return Response(ItemOutput(item).data)

    @extend_schema(request=ItemPatch, responses=ItemOutput)
    def patch(self, request, namespace: str, pk: int):
        data = self.ItemPatch(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        item = services.memory_set_pinned(tenant=actor.tenant, namespace=namespace, item_id=pk,
                                          pinned=data.validated_data["pinned"], actor=actor.label)  # fmt: skip
        if item is None:
            return _no_item()
        return Response(ItemOutput(item).data)

    @extend_schema(responses={204: None})
    def delete(self, request, namespace: str, pk: int):
        actor = request_actor(request)
        if not services.memory_delete(
            tenant=actor.tenant, namespace=namespace, item_id=pk, actor=actor.label
        ):
            return _no_item()
        return Response(status=status.HTTP_204_NO_CONTENT)


class SearchApi(APIView):
    required_permission = READ
    parser_classes = [VectorJSONParser]

    # The body as the OpenAPI schema documents it; ``memory_search`` checks it (one place for its
    # rules; a DRF serializer cost a fifth of a small namespace's search).
    class SearchInput(serializers.Serializer):
        """A text ``query`` (embedded as the namespace's items were) or a precomputed ``vector``;
        the ``k`` nearest items, at least ``min_score`` similar, whose metadata contains ``filter``."""

        query = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                      max_length=selectors.MAX_QUERY_CHARS)  # fmt: skip
        vector = VectorField(required=False)
        k = serializers.IntegerField(min_value=1, max_value=selectors.MAX_K, default=10)
        min_score = serializers.FloatField(min_value=-1, max_value=1, required=False)
        filter = serializers.DictField(required=False)

    FIELDS = ("query", "vector", "k", "min_score", "filter")

    @extend_schema(
        request=SearchInput,
        responses=inline_serializer("MemorySearch", {"results": serializers.ListField()}),
    )
    def post(self, request, namespace: str):
        body = request.data
        if not isinstance(body, dict):
            raise ParseError("expected a JSON object")
        try:
            hits = selectors.memory_search(tenant=request_actor(request).tenant, namespace=namespace,
                                           **{f: body[f] for f in self.FIELDS if f in body})  # fmt: skip
        except services.MemoryValidationError as exc:
            return _invalid(exc)
        except services.EmbedderUnavailable as exc:
            return _unavailable(exc)
        return Response({"results": [hit.as_dict() for hit in hits]})


class ForgetApi(APIView):
    required_permission = WRITE

    class ForgetInput(serializers.Serializer):
        subject = serializers.CharField(max_length=services.MAX_SUBJECT_CHARS)

    @extend_schema(
        request=ForgetInput,
        responses=inline_serializer("MemoryForget", {"deleted": serializers.IntegerField(),
                                                     "namespaces": serializers.DictField()}),
    )  # fmt: skip
    def post(self, request):
        data = self.ForgetInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        counts = services.memory_forget_subject(
            tenant=actor.tenant, subject=data.validated_data["subject"], actor=actor.label
        )
        return Response({"deleted": sum(counts.values()), "namespaces": counts})
