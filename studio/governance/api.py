"""Governance API (mounted at /api/v1/): the tenant's redaction rules, and its audit log's export."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.api import error_response
from studio.governance import redaction
from studio.governance.views import audit_export_response
from studio.tenants.permissions import request_actor


class AuditExportApi(APIView):
    """``GET audit/export/?from=N``: the audit chain from entry N as JSON Lines (what the
    Settings page exports), for a log collector with an admin's API key."""

    required_permission = "audit.view"

    @extend_schema(
        parameters=[OpenApiParameter("from", int, description="the first entry; default 1")],
        responses={(200, "application/jsonl"): OpenApiTypes.STR},
    )
    def get(self, request):
        actor = request_actor(request)
        try:
            return audit_export_response(tenant=actor.tenant, actor=actor.label,
                                         from_param=request.query_params.get("from", "1"))  # fmt: skip
        except ValueError as exc:
            return error_response(400, str(exc), details=[{"field": "from", "message": str(exc)}])


class RuleInput(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    pattern = serializers.CharField(max_length=redaction.MAX_PATTERN_CHARS, trim_whitespace=False)
    replacement = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")


def rule_dict(rule: redaction.Rule) -> dict:
    return {"name": rule.name, "pattern": rule.pattern.pattern, "replacement": rule.replacement,
            "built_in": not rule.custom}  # fmt: skip


class RedactionRuleListApi(APIView):
    """The redaction rules: the built-in ones and the tenant's own (Settings → Redaction)."""

    required_permission = "governance.manage"

    @extend_schema(responses=inline_serializer("RedactionRules", {"results": serializers.ListField()}))
    def get(self, request):
        rules = redaction.tenant_rules(request_actor(request).tenant.settings)
        return Response({"results": [rule_dict(rule) for rule in rules.values()]})

    @extend_schema(request=RuleInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        spec = redaction.redaction_rule_add(
            tenant=actor.tenant, fields=dict(data.validated_data), actor=actor.label
        )
        return Response(rule_dict(redaction.custom_rule(spec)), status=status.HTTP_201_CREATED)


class RedactionRuleDetailApi(APIView):
    required_permission = "governance.manage"

    @extend_schema(responses={204: None})
    def delete(self, request, name: str):
        actor = request_actor(request)
        if not redaction.redaction_rule_remove(tenant=actor.tenant, name=name, actor=actor.label):
            return error_response(404, f"there is no rule of your own named {name!r}", code="not_found")
        return Response(status=status.HTTP_204_NO_CONTENT)
