"""``ws/runs/<id>/``: a run's step events for the editor's run panel, live."""

from __future__ import annotations

from channels.db import database_sync_to_async

from studio.consumers import GroupConsumer
from studio.realtime import group_name

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def run_snapshot_for(user, run_id: int) -> dict | None:
    """The run as it stands, if ``user`` may see it (a member of its tenant whose role reads runs),
    its data as people see it."""
    from flows.api import run_payload
    from flows.models import Run
    from flows.selectors import RUN_DOCUMENTS
    from studio.governance.redaction import trace_view_redactor
    from studio.tenants.models import Membership
    from studio.tenants.roles import role_can

    run = (
        Run.objects.select_related("flow", "version", "tenant")
        .defer(*RUN_DOCUMENTS)
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        return None
    membership = Membership.objects.filter(user=user, tenant_id=run.tenant_id).first()
    if membership is None or not role_can(membership.role, "runs.view"):
        return None  # another tenant's run is "not found", as everywhere else
    return run_payload(run, shown=trace_view_redactor(tenant=run.tenant, person=True))


class RunConsumer(GroupConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.group = group_name("run", self.run_id)
        # Join before reading the snapshot, so no event falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await database_sync_to_async(run_snapshot_for)(user, self.run_id)
        if snapshot is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept()
        await self.send_json({"type": "run.snapshot", "run": snapshot})

    run_update = GroupConsumer.forward
