"""``GET metrics/summary/?flow=&since=``: the dashboard's figures for API clients."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from flows import selectors as flow_selectors
from studio.api import query_datetime, query_int
from studio.telemetry.selectors import metrics_summary
from studio.tenants.permissions import request_actor


class MetricsSummaryApi(APIView):
    required_permission = "dashboard.view"

    @extend_schema(
        parameters=[
            OpenApiParameter("flow", int, description="one flow's figures only"),
            OpenApiParameter("since", str, description="ISO 8601; default: 7 days ago"),
        ],
        responses=inline_serializer("MetricsSummary", {
            "since": serializers.DateTimeField(), "flow": serializers.IntegerField(allow_null=True),
            "overall": serializers.DictField(), "per_flow": serializers.ListField(child=serializers.DictField()),
            "per_node_type": serializers.ListField(child=serializers.DictField()),
            "bucket_seconds": serializers.IntegerField(help_text="the length of each bucket of the series"),
            "series": serializers.ListField(
                child=serializers.DictField(),
                help_text="every bucket of the period, oldest first: its start and the same figures as overall",
            ),
        }),
    )  # fmt: skip
    def get(self, request):
        tenant = request_actor(request).tenant
        flow_id = query_int(request, "flow", default=0)
        flow = flow_selectors.flow_get(tenant=tenant, pk=flow_id, with_draft=False) if flow_id else None
        summary = metrics_summary(tenant=tenant, since=query_datetime(request, "since"), flow=flow)
        return Response(summary.as_dict())
