"""The flows REST API (DESIGN.md, "HTTP contract"): one view per resource, logic in services."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from flows import engine, policies, selectors, services
from flows.graph import MalformedGraph
from flows.models import RUN_FINISHED, SLUG_MAX, Run, RunStatus, StepRun, Totals, run_totals
from flows.nodes import all_types
from studio.api import Conflict, error_response, keyset_page, query_choice, query_int
from studio.governance.redaction import trace_view_redactor
from studio.tenants.crypto import decrypt
from studio.tenants.permissions import request_actor
from studio.tenants.selectors import Actor

READ_EDIT = {"GET": "flows.view", "*": "flows.edit"}
DEFAULT_RUNS_LISTED, MAX_RUNS_LISTED = 50, 200


def _problems(problems) -> list[dict]:
    return [p.as_dict() for p in problems]


def _graph_error(exc: MalformedGraph) -> Response:
    return error_response(
        400, str(exc), code="malformed_graph", details=[{"field": "graph", "message": str(exc)}]
    )


class NodeTypesApi(APIView):
    required_permission = "flows.view"

    @extend_schema(responses=inline_serializer("NodeTypes", {"results": serializers.ListField()}))
    def get(self, request):
        return Response({"results": [t.describe() for t in all_types()]})


class FlowOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    draft_revision = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    latest_version = serializers.SerializerMethodField()
    webhook_path = serializers.SerializerMethodField()
    granted_capabilities = serializers.ListField(child=serializers.CharField())
    has_webhook_secret = serializers.SerializerMethodField()

    def get_has_webhook_secret(self, flow) -> bool:
        return bool(flow.webhook_secret)

    def get_latest_version(self, flow) -> int | None:
        if hasattr(flow, "latest_version_number"):  # annotated by a listing
            return flow.latest_version_number
        latest = selectors.version_latest(flow=flow)
        return latest.number if latest else None

    def get_webhook_path(self, flow) -> str:
        return flow.webhook_path


class FlowListApi(APIView):
    required_permission = READ_EDIT

    class FlowCreate(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        slug = serializers.SlugField(
            max_length=SLUG_MAX, required=False, default="", help_text="Made from the name when left out."
        )
        description = serializers.CharField(required=False, allow_blank=True, default="")
        graph = serializers.JSONField(required=False)

    @extend_schema(parameters=[OpenApiParameter("search", str)], responses=FlowOutput(many=True))
    def get(self, request):
        flows = selectors.flow_list_summaries(
            tenant=request_actor(request).tenant, search=request.query_params.get("search", "")
        )
        return Response({"results": FlowOutput(flows, many=True).data})

    @extend_schema(request=FlowCreate, responses={201: FlowOutput})
    def post(self, request):
        data = self.FlowCreate(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        try:
            flow = services.flow_create(tenant=actor.tenant, user=actor.user, **data.validated_data)
        except MalformedGraph as exc:
            return _graph_error(exc)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED)


class FlowDetailApi(APIView):
    required_permission = READ_EDIT

    class FlowUpdate(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        slug = serializers.SlugField(
            max_length=SLUG_MAX, required=False, help_text="Kept when the flow is renamed."
        )
        description = serializers.CharField(required=False, allow_blank=True)
        granted_capabilities = serializers.ListField(
            child=serializers.RegexField(r"^[a-z][a-z0-9_.:*-]{0,99}$"), required=False, max_length=100
        )
        # Write-only: the HMAC key webhook callers sign with; "" removes it.
        webhook_secret = serializers.CharField(
            required=False, allow_blank=True, write_only=True, max_length=200
        )

    @extend_schema(responses=FlowOutput)
    def get(self, request, pk: int):
        return Response(FlowOutput(selectors.flow_get(tenant=request_actor(request).tenant, pk=pk)).data)

    @extend_schema(request=FlowUpdate, responses=FlowOutput)
    def patch(self, request, pk: int):
        actor = request_actor(request)
        flow = selectors.flow_get(tenant=actor.tenant, pk=pk)
        data = self.FlowUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "granted_capabilities" in data.validated_data and not actor.can("flows.grant"):
            return error_response(
                403, "only owners and admins grant capabilities to a flow", code="forbidden"
            )
        return Response(
            FlowOutput(services.flow_update(flow=flow, actor=actor.label, **data.validated_data)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        actor = request_actor(request)
        services.flow_delete(flow=selectors.flow_get(tenant=actor.tenant, pk=pk), actor=actor.label)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FlowDuplicateApi(APIView):
    required_permission = "flows.edit"

    @extend_schema(request=None, responses={201: FlowOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        flow = services.flow_duplicate(flow=selectors.flow_get(tenant=actor.tenant, pk=pk), user=actor.user)
        return Response(FlowOutput(flow).data, status=status.HTTP_201_CREATED)


DraftOutput = inline_serializer("Draft", {
    "graph": serializers.JSONField(), "revision": serializers.IntegerField(), "problems": serializers.ListField(),
})  # fmt: skip


def _draft_response(flow, problems: list | None = None) -> Response:
    """The draft as the editor reads it, with its problems (validated here unless given)."""
    if problems is None:
        problems = services.graph_problems(flow=flow, tenant=flow.tenant, graph=flow.draft)
    return Response({"graph": flow.draft, "revision": flow.draft_revision, "problems": _problems(problems)})


class DraftApi(APIView):
    required_permission = READ_EDIT

    class DraftSave(serializers.Serializer):
        graph = serializers.JSONField()
        revision = serializers.IntegerField(min_value=1)

    @extend_schema(responses=DraftOutput)
    def get(self, request, pk: int):
        return _draft_response(selectors.flow_get(tenant=request_actor(request).tenant, pk=pk))

    @extend_schema(request=DraftSave, responses=DraftOutput)
    def put(self, request, pk: int):
        actor = request_actor(request)
        flow = selectors.flow_get(tenant=actor.tenant, pk=pk)
        data = self.DraftSave(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            flow, problems = services.draft_save(flow=flow, user=actor.user, **data.validated_data)
        except MalformedGraph as exc:
            return _graph_error(exc)
        except services.Conflict as exc:
            raise Conflict(str(exc)) from None
        return _draft_response(flow, problems)


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    sha256 = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", default=None)


class PublishApi(APIView):
    required_permission = "flows.edit"

    class PublishInput(serializers.Serializer):
        note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(request=PublishInput, responses={201: VersionOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        flow = selectors.flow_get(tenant=actor.tenant, pk=pk)
        data = self.PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = services.flow_publish(
                flow=flow, user=actor.user, note=data.validated_data["note"], actor=actor.label
            )
        except services.PublishRefused as exc:
            return error_response(
                400, f"cannot publish: {exc}", code="graph_problems", details=_problems(exc.problems)
            )
        return Response({"version": version.number, "sha256": version.sha256, **VersionOutput(version).data},
                        status=status.HTTP_201_CREATED)  # fmt: skip


class VersionListApi(APIView):
    required_permission = "flows.view"

    @extend_schema(responses=VersionOutput(many=True))
    def get(self, request, pk: int):
        flow = selectors.flow_get(tenant=request_actor(request).tenant, pk=pk)
        return Response({"results": VersionOutput(selectors.version_list(flow=flow), many=True).data})


class VersionDetailApi(APIView):
    required_permission = "flows.view"

    @extend_schema(responses=VersionOutput)
    def get(self, request, pk: int, number: int):
        flow = selectors.flow_get(tenant=request_actor(request).tenant, pk=pk)
        version = selectors.version_get(flow=flow, number=number)
        return Response({**VersionOutput(version).data, "graph": version.graph})


class VersionRestoreApi(APIView):
    required_permission = "flows.edit"

    @extend_schema(request=None, responses=DraftOutput)
    def post(self, request, pk: int, number: int):
        actor = request_actor(request)
        flow = selectors.flow_get(tenant=actor.tenant, pk=pk)
        flow = services.version_restore(flow=flow, version=selectors.version_get(flow=flow, number=number),
                                        user=actor.user)  # fmt: skip
        return _draft_response(flow)


class ExportApi(APIView):
    required_permission = "flows.view"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        flow = selectors.flow_get(tenant=request_actor(request).tenant, pk=pk)
        return Response(services.flow_export(flow=flow),
                        headers={"Content-Disposition": f'attachment; filename="flow-{flow.pk}.json"'})  # fmt: skip


class ImportApi(APIView):
    required_permission = "flows.edit"

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: FlowOutput})
    def post(self, request):
        actor = request_actor(request)
        try:
            flow, problems = services.flow_import(tenant=actor.tenant, document=request.data, user=actor.user)
        except MalformedGraph as exc:
            return _graph_error(exc)
        return Response(
            {**FlowOutput(flow).data, "problems": _problems(problems)}, status=status.HTTP_201_CREATED
        )


# -- runs ----------------------------------------------------------------------------------------


class StepOutput(serializers.Serializer):
    node_id = serializers.CharField()
    node_type = serializers.CharField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    attempts = serializers.JSONField()
    handles = serializers.JSONField()
    inputs = serializers.JSONField()
    output = serializers.JSONField()
    error = serializers.JSONField()
    confidence = serializers.FloatField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6)
    model = serializers.CharField()


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    flow = serializers.IntegerField(source="flow_id")
    version = serializers.IntegerField(source="version.number", default=None)
    is_test = serializers.BooleanField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    inputs = serializers.JSONField()
    outputs = serializers.JSONField()
    error = serializers.JSONField()
    parent_run = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    tokens_in = serializers.IntegerField(
        help_text="Model tokens of the run's steps: written on the run when it ends; until then, its "
        "steps' so far."
    )
    tokens_out = serializers.IntegerField(help_text="As tokens_in, for the models' output.")
    cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=6, help_text="As tokens_in, in US dollars."
    )

    def get_parent_run(self, run) -> int | None:
        return run.parent_step.run_id if run.parent_step_id else None


# The payloads are built by hand: DRF serializers cost ~1 ms a run (they copy their fields per
# instance and convert field by field), on every ?wait answer and run read. RunOutput and
# StepOutput stay the documented schema; a test holds both to the same output.
_WHEN = serializers.DateTimeField()
_USD = serializers.DecimalField(max_digits=12, decimal_places=6)


def _when(value):
    return None if value is None else _WHEN.to_representation(value)


def step_dict(step, shown: Callable[[Any], Any]) -> dict:
    return {
        "node_id": step.node_id, "node_type": step.node_type, "status": step.status, "attempt": step.attempt,
        "attempts": step.attempts, "handles": step.handles, "inputs": shown(step.inputs), "output": shown(step.output),
        "error": step.error, "confidence": None if step.confidence is None else float(step.confidence),
        "started_at": _when(step.started_at), "finished_at": _when(step.finished_at),
        "latency_ms": None if step.latency_ms is None else float(step.latency_ms),
        "tokens_in": step.tokens_in, "tokens_out": step.tokens_out, "cost_usd": _USD.to_representation(step.cost_usd),
        "model": step.model,
    }  # fmt: skip


def run_dict(run: Run, totals: Totals | None, shown: Callable[[Any], Any]) -> dict:
    """The run; ``totals``: its tokens and cost so far, when it has not ended (``run_totals``);
    ``shown``: what its data looks like to whoever asks (``run_data_shown``)."""
    tokens_in, tokens_out, cost = totals or (run.tokens_in, run.tokens_out, run.cost_usd)
    return {
        "id": run.pk, "flow": run.flow_id, "version": run.version.number if run.version_id else None,
        "is_test": run.is_test, "status": run.status, "trigger": run.trigger, "inputs": shown(run.inputs),
        "outputs": shown(run.outputs), "error": run.error,
        "parent_run": run.parent_step.run_id if run.parent_step_id else None,
        "created_at": _when(run.created_at), "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at), "tokens_in": tokens_in, "tokens_out": tokens_out,
        "cost_usd": _USD.to_representation(cost),
    }  # fmt: skip


def run_payload(run: Run, steps: Iterable[StepRun] | None = None, *, shown: Callable[[Any], Any]) -> dict:
    """The run with its steps (read here unless given): what the run API answers and the run
    socket's snapshot."""
    steps = list(selectors.run_steps(run=run) if steps is None else steps)
    return {
        **run_dict(run, run_totals(run, steps), shown),
        "steps": [step_dict(step, shown) for step in steps],
    }


def run_data_shown(actor: Actor) -> Callable[[Any], Any]:
    """Runs' data as ``actor`` sees it: through the tenant's trace rules for a member's session,
    whole for an API key or a webhook (``trace_view_redactor``)."""
    return trace_view_redactor(tenant=actor.tenant, person=actor.user is not None and actor.api_key is None)


class RunStart(serializers.Serializer):
    inputs = serializers.JSONField(required=False, default=dict)
    version = serializers.JSONField(required=False, default=None, help_text='a version number, or "draft"')

    def validate_version(self, value):
        if (
            value is None
            or value == "draft"
            or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
        ):
            return value
        raise serializers.ValidationError('a version number, or "draft"')


class FlowRunsApi(APIView):
    required_permission = {"GET": "runs.view", "*": "flows.run"}

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RunStatus.values),
            OpenApiParameter("limit", int, description=f"1 to {MAX_RUNS_LISTED}; default {DEFAULT_RUNS_LISTED}"),
            OpenApiParameter("before", int, description="a run id: the page of runs older than it (see `next`)"),
        ],
        responses=inline_serializer("RunPage", {"results": RunOutput(many=True), "next": serializers.CharField()}),
    )  # fmt: skip
    def get(self, request, pk: int):
        flow = selectors.flow_get(tenant=request_actor(request).tenant, pk=pk, with_draft=False)
        status_ = query_choice(request, "status", RunStatus.values)
        limit = query_int(request, "limit", default=DEFAULT_RUNS_LISTED, maximum=MAX_RUNS_LISTED)
        before = query_int(request, "before", default=0) or None
        runs, next_url = keyset_page(
            request, list(selectors.run_list(flow=flow, status=status_, before=before)[: limit + 1]), limit
        )
        totals = selectors.totals_so_far(runs)
        shown = run_data_shown(request_actor(request))
        return Response(
            {"results": [run_dict(run, totals.get(run.pk), shown) for run in runs], "next": next_url}
        )

    @extend_schema(
        request=RunStart,
        responses={202: RunOutput, 200: RunOutput},
        parameters=[OpenApiParameter("wait", int, description="seconds to wait for the end (≤ 60)")],
    )
    def post(self, request, pk: int):
        actor = request_actor(request)
        flow, latest = selectors.flow_to_run(tenant=actor.tenant, pk=pk)
        data = RunStart(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            wait = float(request.query_params.get("wait", 0))
        except ValueError:
            return error_response(
                400,
                "wait must be a number of seconds",
                details=[{"field": "wait", "message": "not a number"}],
            )
        if not 0 <= wait <= MAX_WAIT_S:
            return error_response(400, f"wait must be between 0 and {MAX_WAIT_S} seconds",
                                  details=[{"field": "wait", "message": f"0 to {MAX_WAIT_S}"}])  # fmt: skip
        return start_run_response(
            flow=flow,
            latest=latest,
            actor=actor,
            trigger="api" if actor.api_key else "manual",
            wait=wait,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            **data.validated_data,
        )


MAX_WAIT_S = 60


def start_run_response(*, flow, actor, trigger: str, inputs, version, idempotency_key: str,
                       wait: float = 0, latest=services.LATEST_UNREAD) -> Response:  # fmt: skip
    if len(idempotency_key) > 200:
        return error_response(400, "Idempotency-Key is longer than 200 characters")
    listening: list = []  # a ?wait's listener, subscribed as the run commits, ahead of its tasks
    try:
        run, _ = services.run_request(
            flow=flow, version=version, inputs=inputs, trigger=trigger, user=actor.user, api_key=actor.api_key,
            idempotency_key=idempotency_key, latest=latest,
            on_created=selectors.listen_from_start(listening) if wait else None, rate_limited=True,
        )  # fmt: skip
    except services.RunRefused as exc:
        return error_response(exc.status, str(exc), code=exc.code, details=exc.details)
    if wait:
        selectors.run_wait(run=run, timeout_s=wait, listener=listening[0] if listening else None)
    steps = engine.run_now(run)  # as it stands now
    done = run.status in RUN_FINISHED
    payload = run_payload(run, steps, shown=run_data_shown(actor))
    return Response(payload, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    required_permission = "runs.view"

    @extend_schema(responses=RunOutput)
    def get(self, request, pk: int):
        actor = request_actor(request)
        return Response(
            run_payload(selectors.run_get(tenant=actor.tenant, pk=pk), shown=run_data_shown(actor))
        )


class RunCancelApi(APIView):
    required_permission = "flows.run"

    @extend_schema(request=None, responses=RunOutput)
    def post(self, request, pk: int):
        actor = request_actor(request)
        run = selectors.run_get(tenant=actor.tenant, pk=pk)
        if not engine.run_cancel(run.pk):
            raise Conflict(f"the run has already ended ({run.status})")
        return Response(run_payload(run, engine.run_now(run), shown=run_data_shown(actor)))


class RunRetryApi(APIView):
    required_permission = "flows.run"

    @extend_schema(request=None, responses={202: RunOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        run = selectors.run_get(tenant=actor.tenant, pk=pk)
        if not engine.run_retry(run.pk):
            raise Conflict(
                f"only a failed, cancelled or timed-out run can be retried (this one is {run.status})"
            )
        payload = run_payload(run, engine.run_now(run), shown=run_data_shown(actor))
        return Response(payload, status=status.HTTP_202_ACCEPTED)


class RunReplayApi(APIView):
    required_permission = "flows.run"

    class ReplayInput(serializers.Serializer):
        version = serializers.JSONField(
            required=False, default=None, help_text='a version number, or "draft"; the latest when left out'
        )
        validate_version = RunStart.validate_version

    @extend_schema(request=ReplayInput, responses={202: RunOutput})
    def post(self, request, pk: int):
        actor = request_actor(request)
        run = selectors.run_get(tenant=actor.tenant, pk=pk)
        data = self.ReplayInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            new_run = services.run_replay(run=run, version=data.validated_data["version"], user=actor.user,
                                          api_key=actor.api_key)  # fmt: skip
        except services.RunRefused as exc:
            return error_response(exc.status, str(exc), code=exc.code, details=exc.details)
        return Response(run_payload(new_run, shown=run_data_shown(actor)), status=status.HTTP_202_ACCEPTED)


SIGNATURE_HEADER = "X-Studio-Signature"


class WebhookApi(APIView):
    """``POST hooks/{token}/``: the body is the run's inputs. When the flow has a webhook secret,
    ``X-Studio-Signature: sha256=<hex HMAC of the raw body>`` is required."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={202: RunOutput})
    def post(self, request, token: str):
        flow = selectors.flow_by_webhook_token(token=token)
        raw = request.body
        if flow.webhook_secret:
            expected = (
                "sha256=" + hmac.new(decrypt(flow.webhook_secret).encode(), raw, hashlib.sha256).hexdigest()
            )
            if not hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER, "")):
                return error_response(
                    401, f"missing or wrong {SIGNATURE_HEADER} signature", code="bad_signature"
                )
        inputs = request.data if isinstance(request.data, dict) else {"body": request.data}
        actor = Actor(tenant=flow.tenant, role="builder")
        return start_run_response(flow=flow, actor=actor, trigger="webhook", inputs=inputs, version=None,
                                  idempotency_key=request.headers.get("Idempotency-Key", ""))  # fmt: skip


# -- approval policies ------------------------------------------------------------------------------


class PolicyInput(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    capability = serializers.CharField(max_length=100)
    when = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=[str(r) for r in policies.DECIDERS], default="admin")
    sla_s = serializers.IntegerField(required=False, allow_null=True, default=None)


def policy_dict(policy: policies.ApprovalPolicy) -> dict:
    return {"name": policy.name, "capability": policy.capability, "when": policy.when, "role": str(policy.role),
            "sla_s": policy.sla_s, "built_in": policy.built_in}  # fmt: skip


class PolicyListApi(APIView):
    """The approval policies: the built-in ones and the tenant's own (Settings → Policies)."""

    required_permission = "governance.manage"

    @extend_schema(responses=inline_serializer("Policies", {"results": serializers.ListField()}))
    def get(self, request):
        tenant = request_actor(request).tenant
        return Response({"results": [policy_dict(p) for p in policies.tenant_policies(tenant.settings)]})

    @extend_schema(request=PolicyInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        policy = policies.policy_add(tenant=actor.tenant, fields=dict(data.validated_data), actor=actor.label)
        return Response(policy_dict(policy), status=status.HTTP_201_CREATED)


class PolicyDetailApi(APIView):
    required_permission = "governance.manage"

    @extend_schema(responses={204: None})
    def delete(self, request, name: str):
        actor = request_actor(request)
        if not policies.policy_remove(tenant=actor.tenant, name=name, actor=actor.label):
            return error_response(404, f"there is no policy of your own named {name!r}", code="not_found")
        return Response(status=status.HTTP_204_NO_CONTENT)
