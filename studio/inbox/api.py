"""The inbox REST API (DESIGN.md, "HTTP contract"): reviews/, claim/, decide/, bulk, metrics."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.api import error_response, query_choice, query_datetime, query_int
from studio.inbox import selectors, services
from studio.inbox.models import ReviewTask
from studio.tenants.permissions import request_actor

MAX_LIST = 1000  # a catching-up client asks for all it may have missed (?limit=)
DEFAULT_LIST = 200


class ReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    flow = serializers.IntegerField(source="flow_id")
    flow_name = serializers.CharField(source="flow.name")
    run = serializers.IntegerField(source="run_id")
    run_status = serializers.CharField(source="run.status")
    node_id = serializers.CharField()
    title = serializers.CharField()
    instructions = serializers.CharField()
    proposal = serializers.JSONField()
    context = serializers.JSONField()
    editable_schema = serializers.JSONField()
    model = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    reason = serializers.CharField()
    policy = serializers.CharField()
    assigned_role = serializers.CharField()
    assigned_users = serializers.JSONField()
    quorum = serializers.IntegerField()
    approvals = serializers.JSONField()
    claimed_by = serializers.CharField(source="claimed_by.username", default=None)
    claimed_at = serializers.DateTimeField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)
    overdue = serializers.BooleanField(source="is_overdue")
    escalated_at = serializers.DateTimeField(allow_null=True)
    decision = serializers.CharField()
    output = serializers.JSONField()
    edited_output = serializers.JSONField()
    diff = serializers.JSONField()
    comment = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by_label")
    decided_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


def _error(exc: services.ReviewError) -> Response:
    return error_response(exc.status, exc.message, code=exc.code, details=exc.details)


def _payload(review: ReviewTask) -> dict:
    return ReviewOutput(review).data


class ReviewListApi(APIView):
    required_permission = "reviews.view"

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="open (default), unclaimed, decided, closed, all, or a status"),
            OpenApiParameter("flow", int), OpenApiParameter("assigned", str, description="'me'"),
            OpenApiParameter("overdue", bool),
            OpenApiParameter("limit", int, description=f"1 to {MAX_LIST}; default {DEFAULT_LIST}"),
        ],
        responses=ReviewOutput(many=True),
    )  # fmt: skip
    def get(self, request):
        actor = request_actor(request)
        params = request.query_params
        status = query_choice(request, "status", [*selectors.STATUS_FILTERS, "all"], default="open")
        flow_id = query_int(request, "flow", default=0) or None
        assigned = query_choice(request, "assigned", ["me"])
        limit = query_int(request, "limit", default=DEFAULT_LIST, maximum=MAX_LIST)
        reviews = selectors.review_list(
            tenant=actor.tenant, status=None if status == "all" else status, flow_id=flow_id,
            assigned_to=actor.user if assigned == "me" and actor.user else None,
            overdue=params.get("overdue") in ("1", "true", "yes"),
        )  # fmt: skip
        rows = list(reviews[:limit])
        return Response({"results": ReviewOutput(rows, many=True).data, "count": len(rows)})


class ReviewDetailApi(APIView):
    required_permission = "reviews.view"

    @extend_schema(responses=ReviewOutput)
    def get(self, request, pk: int):
        return Response(_payload(selectors.review_get(tenant=request_actor(request).tenant, pk=pk)))


class _ReviewActionApi(APIView):
    """A one-click action on a review (claim, release): the service, then the review as it is."""

    required_permission = "reviews.decide"
    service: Callable[..., ReviewTask]  # set by each action below

    @extend_schema(request=None, responses={200: ReviewOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        review = selectors.review_get(tenant=actor.tenant, pk=pk)
        try:
            review = self.service(review=review, actor=actor)
        except services.ReviewError as exc:
            return _error(exc)
        return Response(_payload(selectors.review_get(tenant=actor.tenant, pk=review.pk)))


class ReviewClaimApi(_ReviewActionApi):
    service = staticmethod(services.review_claim)


class ReviewReleaseApi(_ReviewActionApi):
    service = staticmethod(services.review_release)


class DecideInput(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject", "edit"])
    output = serializers.JSONField(required=False)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ReviewDecideApi(APIView):
    required_permission = "reviews.decide"

    @extend_schema(request=DecideInput, responses={200: ReviewOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        review = selectors.review_get(tenant=actor.tenant, pk=pk)
        data = DecideInput(data=request.data)
        data.is_valid(raise_exception=True)
        extra = {"output": data.validated_data["output"]} if "output" in data.validated_data else {}
        try:
            review = services.review_decide(
                review=review, actor=actor, decision=data.validated_data["decision"],
                comment=data.validated_data["comment"], **extra,
            )  # fmt: skip
        except services.ReviewError as exc:
            return _error(exc)
        return Response(_payload(selectors.review_get(tenant=actor.tenant, pk=review.pk)))


class ReviewBulkDecideApi(APIView):
    required_permission = "reviews.decide"

    class BulkInput(serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=500)
        decision = serializers.ChoiceField(choices=["approve", "reject"])
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    @extend_schema(
        request=BulkInput, responses=inline_serializer("BulkDecided", {"results": serializers.ListField()})
    )
    def post(self, request):
        actor = request_actor(request)
        data = self.BulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        ids = list(dict.fromkeys(data.validated_data["ids"]))
        found = {r.pk: r for r in selectors.review_list(tenant=actor.tenant).filter(pk__in=ids)}
        try:
            decided = services.review_decide_bulk(
                reviews=[found[i] for i in ids if i in found], actor=actor,
                decision=data.validated_data["decision"], comment=data.validated_data["comment"],
            )  # fmt: skip
        except services.ReviewError as exc:
            return _error(exc)
        missing = [
            {"id": i, "ok": False, "status": 404, "message": "not found"} for i in ids if i not in found
        ]
        by_id = {row["id"]: row for row in [*decided, *missing]}
        return Response({"results": [by_id[i] for i in ids]})


class ReviewMetricsApi(APIView):
    required_permission = "reviews.view"

    @extend_schema(
        parameters=[OpenApiParameter("flow", int), OpenApiParameter("since", str, description="ISO 8601")],
        responses=inline_serializer("ReviewMetrics", {"overall": serializers.DictField()}),
    )
    def get(self, request):
        since = query_datetime(request, "since")
        flow_id = query_int(request, "flow", default=0) or None
        return Response(
            selectors.review_metrics(tenant=request_actor(request).tenant, flow_id=flow_id, since=since)
        )
