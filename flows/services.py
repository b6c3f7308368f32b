"""Writes on flows: create, save the draft, publish, restore, import; start runs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from flows import engine
from flows.budget import BudgetExceeded, budget_check
from flows.graph import MalformedGraph, Problem, check_well_formed, graph_sha256, validate
from flows.models import SLUG_MAX, Flow, FlowVersion, Run, first_free_slug
from flows.schedules import schedule_refresh
from flows.selectors import version_graph_resolver, version_latest
from flows.starters import Starter, companion_flow_name, filled_graph
from studio.governance.audit import audit_append, user_label
from studio.tenants import ratelimit
from studio.tenants.crypto import encrypt
from studio.tenants.models import Tenant

IDEMPOTENCY_WINDOW = timedelta(hours=24)


class Conflict(Exception):
    pass


class PublishRefused(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"the draft has {len(problems)} problem(s)")
        self.problems = problems


class RunRefused(Exception):
    """A run that cannot start (no version to run, bad inputs): the message says why."""

    def __init__(
        self, message: str, *, details: list | None = None, status: int = 400, code: str = "run_refused"
    ) -> None:
        super().__init__(message)
        self.details = details or []
        self.status = status
        self.code = code


def starter_graph() -> dict:
    return {
        "schema": 1,
        "nodes": [
            {"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0},
             "config": {"kind": "manual", "input_schema": {"type": "object", "properties": {}}}},
        ],
        "edges": [],
    }  # fmt: skip


def graph_problems(*, flow: Flow | None, tenant: Tenant, graph: dict) -> list[Problem]:
    return validate(graph, flow_id=flow.pk if flow else None, resolve=version_graph_resolver(tenant=tenant))


def flow_create(
    *, tenant: Tenant, name: str, user=None, description: str = "", graph: dict | None = None, slug: str = ""
) -> Flow:
    """A new flow; its slug is ``slug`` when given (refused when a live flow of the tenant has
    it), else made from its name, numbered when taken (``support-triage-2``)."""
    graph = check_well_formed(copy.deepcopy(graph)) if graph is not None else starter_graph()
    name = name.strip() or "Untitled flow"
    tries = 0
    while True:  # another flow may take the same free slug between our read and our write
        try:
            with transaction.atomic():
                return Flow.objects.create(
                    tenant=tenant, name=name, slug=slug or free_slug(tenant, name), description=description,
                    draft=graph, created_by=user, draft_updated_by=user,
                )  # fmt: skip
        except IntegrityError as exc:
            tries += 1
            if slug and _slug_taken(exc):
                raise _slug_in_use(slug) from None
            if not _slug_taken(exc) or tries == 10:
                raise


def free_slug(tenant: Tenant, name: str) -> str:
    """``name`` as a slug no live flow of the tenant has (``first_free_slug``)."""
    prefix = slugify(name).strip("-")[: SLUG_MAX - 12]
    taken = Flow.objects.for_tenant(tenant).filter(deleted_at__isnull=True, slug__startswith=prefix)
    return first_free_slug(name, set(taken.values_list("slug", flat=True)))


def _slug_taken(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == "flow_unique_slug"


def _slug_in_use(slug: str) -> ValidationError:
    return ValidationError({"slug": [f"another flow of this tenant is called {slug!r}"]})


@transaction.atomic
def flow_update(*, flow: Flow, actor: str = "system", **fields) -> Flow:
    """Rename, change the slug, describe, grant capabilities, set or clear the webhook secret
    (stored encrypted). Grants and the webhook secret are audited."""
    granted_before = list(flow.granted_capabilities or [])
    for name in ("name", "slug", "description", "granted_capabilities"):
        if fields.get(name) is not None:
            setattr(flow, name, fields[name])
    if "webhook_secret" in fields:
        flow.webhook_secret = encrypt(fields["webhook_secret"]) if fields["webhook_secret"] else ""
    try:
        with transaction.atomic():
            flow.save(update_fields=[
                "name", "slug", "description", "granted_capabilities", "webhook_secret", "updated_at",
            ])  # fmt: skip
    except IntegrityError as exc:
        if _slug_taken(exc):
            raise _slug_in_use(flow.slug) from None
        raise
    if list(flow.granted_capabilities or []) != granted_before:
        audit_append(
            tenant_id=flow.tenant_id,
            actor=actor,
            action="flow.capabilities_changed",
            target=f"flow:{flow.pk}",
            data={"flow": flow.name, "before": granted_before, "after": flow.granted_capabilities},
        )
    if "webhook_secret" in fields:
        audit_append(
            tenant_id=flow.tenant_id,
            actor=actor,
            action="flow.webhook_secret_changed",
            target=f"flow:{flow.pk}",
            data={"flow": flow.name, "set": bool(fields["webhook_secret"])},
        )
    return flow


@transaction.atomic
def flow_delete(*, flow: Flow, actor: str = "system") -> None:
    # Kept, not erased: runs and versions stay as history for the audit trail.
    Flow.objects.filter(pk=flow.pk).update(deleted_at=timezone.now())
    audit_append(tenant_id=flow.tenant_id, actor=actor, action="flow.deleted", target=f"flow:{flow.pk}",
                 data={"flow": flow.name})  # fmt: skip


def flow_duplicate(*, flow: Flow, user=None) -> Flow:
    return flow_create(tenant=flow.tenant, name=f"{flow.name} (copy)", user=user, description=flow.description,
                       graph=flow.draft)  # fmt: skip


def draft_save(*, flow: Flow, graph: object, revision: int, user=None) -> tuple[Flow, list[Problem]]:
    """Store any well-formed draft and return its problems; a stale revision is a Conflict."""
    graph = check_well_formed(graph)
    updated = Flow.objects.filter(pk=flow.pk, draft_revision=revision).update(
        draft=graph, draft_revision=revision + 1, draft_updated_at=timezone.now(), draft_updated_by=user,
        updated_at=timezone.now(),
    )  # fmt: skip
    if not updated:
        flow.refresh_from_db(fields=["draft_revision", "draft_updated_by", "draft_updated_at"])
        who = flow.draft_updated_by.get_username() if flow.draft_updated_by else "someone"
        raise Conflict(
            f"{who} saved this flow since you loaded it (revision {flow.draft_revision}, you have {revision}); "
            "reload to see their changes"
        )
    flow.refresh_from_db()
    return flow, graph_problems(flow=flow, tenant=flow.tenant, graph=graph)


@transaction.atomic
def flow_publish(*, flow: Flow, user=None, note: str = "", actor: str = "") -> FlowVersion:
    flow = Flow.objects.select_for_update().get(pk=flow.pk)
    problems = graph_problems(flow=flow, tenant=flow.tenant, graph=flow.draft)
    if problems:
        raise PublishRefused(problems)
    latest = version_latest(flow=flow)
    version = FlowVersion.objects.create(
        flow=flow, number=(latest.number + 1) if latest else 1, graph=copy.deepcopy(flow.draft),
        sha256=graph_sha256(flow.draft), note=note, created_by=user,
    )  # fmt: skip
    schedule_refresh(flow)
    audit_append(
        tenant_id=flow.tenant_id,
        actor=actor or user_label(user),
        action="flow.published",
        target=f"flow:{flow.pk}",
        data={"flow": flow.name, "version": version.number, "sha256": version.sha256, "note": note},
    )
    return version


@transaction.atomic
def starter_install(
    *,
    tenant: Tenant,
    starter: Starter,
    user=None,
    name: str = "",
    offline: bool = False,
    publish: bool = False,
) -> Flow:
    """A flow from a starter template, with its companions, all or nothing: each companion is
    created and published first (the starter's map and sub-flow nodes run a pinned version of
    it), then the starter's flow, pointing at them; published too with ``publish`` when it has no
    problems. ``offline``: model nodes answer with the scripted provider."""
    name = name.strip() or starter.name
    companion_ids: dict[str, int] = {}
    for companion in starter.companions:
        graph = filled_graph(companion.graph, companion_ids, offline=offline)
        child = flow_create(tenant=tenant, name=companion_flow_name(name, companion),
                            description=companion.description, graph=graph, user=user)  # fmt: skip
        flow_publish(
            flow=child, user=user, note=f"installed with {name}"
        )  # a broken companion: nothing stays
        companion_ids[companion.key] = child.pk
    flow = flow_create(tenant=tenant, name=name, description=starter.description, user=user,
                       graph=filled_graph(starter.graph, companion_ids, offline=offline))  # fmt: skip
    if publish and not graph_problems(flow=flow, tenant=tenant, graph=flow.draft):
        flow_publish(flow=flow, user=user, note="starter template")
    return flow


def version_restore(*, flow: Flow, version: FlowVersion, user=None) -> Flow:
    Flow.objects.filter(pk=flow.pk).update(
        draft=copy.deepcopy(version.graph), draft_revision=flow.draft_revision + 1,
        draft_updated_at=timezone.now(), draft_updated_by=user, updated_at=timezone.now(),
    )  # fmt: skip
    flow.refresh_from_db()
    return flow


def flow_export(*, flow: Flow) -> dict:
    return {
        "format": "agent-flow-studio/flow", "schema": 1, "name": flow.name, "description": flow.description,
        "graph": flow.draft, "exported_at": timezone.now().isoformat(),
    }  # fmt: skip


def flow_import(*, tenant: Tenant, document: object, user=None) -> tuple[Flow, list[Problem]]:
    """A new flow from an exported document (or a bare graph); all or nothing."""
    if not isinstance(document, dict):
        raise MalformedGraph("an import is a JSON object: an exported flow or a graph document")
    graph = document.get("graph", document)
    check_well_formed(graph)
    name = document.get("name") if isinstance(document.get("name"), str) else "Imported flow"
    flow = flow_create(tenant=tenant, name=name, user=user, description=str(document.get("description", "")),
                       graph=graph)  # fmt: skip
    return flow, graph_problems(flow=flow, tenant=tenant, graph=graph)


LATEST_UNREAD = object()


def run_request(
    *, flow: Flow, version: int | str | None, inputs: object, trigger: str, user=None, api_key=None,
    idempotency_key: str = "", latest: FlowVersion | object | None = LATEST_UNREAD,
    on_created: Callable[[Run], None] | None = None, rate_limited: bool = False,
) -> tuple[Run, bool]:  # fmt: skip
    """Start a run of a version (a number, ``"draft"``, or the latest published when None).
    ``latest``: the flow's latest published version (or None) when the caller read it with the
    flow (``selectors.flow_to_run``); ``on_created``: see ``engine.run_start`` (not called for
    a run an idempotency key found).

    With an idempotency key, a repeat within 24 h returns the first run; the bool says
    whether this call created it. ``rate_limited``: a run asked for over HTTP, counted against
    the tenant's runs per minute (``ratelimit.RateLimited``, a 429, when they are spent)."""
    if idempotency_key:
        existing = Run.objects.filter(
            flow=flow, idempotency_key=idempotency_key, created_at__gte=timezone.now() - IDEMPOTENCY_WINDOW
        ).first()
        if existing is not None:
            return existing, False
    if rate_limited:
        ratelimit.run_admit(flow.tenant)
    try:
        budget_check(flow.tenant)
    except BudgetExceeded as exc:
        raise RunRefused(str(exc), status=429, code="budget_exceeded") from None
    if version == "draft":
        chosen = None
    elif version is None:
        chosen = version_latest(flow=flow) if latest is LATEST_UNREAD else latest
        if chosen is None:
            raise RunRefused(
                "the flow has no published version: publish it, or run the draft with version 'draft'"
            )
    else:
        chosen = flow.versions.filter(number=version).first()
        if chosen is None:
            raise RunRefused(f"the flow has no version {version}")
    if chosen is None:
        problems = graph_problems(flow=flow, tenant=flow.tenant, graph=flow.draft)
        if problems:
            raise RunRefused("the draft has problems; fix them before a test run",
                             details=[p.as_dict() for p in problems])  # fmt: skip
    try:
        run = engine.run_start(
            flow=flow, version=chosen, inputs=inputs, trigger=trigger, user=user, api_key=api_key,
            idempotency_key=idempotency_key, on_created=on_created,
        )  # fmt: skip
    except engine.InputError as exc:
        raise RunRefused(str(exc), details=exc.details) from None
    except IntegrityError:
        # The same key raced in from a second request: answer with the run that won.
        if idempotency_key:
            return Run.objects.get(flow=flow, idempotency_key=idempotency_key), False
        raise
    return run, True


def run_replay(*, run: Run, version: int | str | None, user=None, api_key=None) -> Run:
    """A new run of ``run``'s inputs (asked for over HTTP: counted against the runs rate limit)."""
    new_run, _ = run_request(flow=run.flow, version=version, inputs=run.inputs, trigger="replay", user=user,
                             api_key=api_key, rate_limited=True)  # fmt: skip
    return new_run
