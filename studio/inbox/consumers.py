"""``ws/inbox/``: a reviewer's live tenant queue (created, claimed, decided, escalated… events).

One socket follows one tenant: ``?tenant=<id>``, or the tenant chosen in the session's switcher.
The user must be a member there whose role may view reviews; anyone else is refused before
joining any group. Events come from services after commit; the client catches up from the API
on every (re)connect, so a dropped message loses nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from studio.consumers import GroupConsumer
from studio.realtime import group_name

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def inbox_tenant_for(user, requested: int | None, session_tenant: int | None) -> int | None:
    """The tenant whose inbox ``user`` may follow, or None."""
    from studio.tenants.models import Membership
    from studio.tenants.roles import role_can
    from studio.tenants.selectors import membership_for

    if requested is not None:
        membership = Membership.objects.filter(user=user, tenant_id=requested).first()
    else:
        membership = membership_for(user=user, tenant_id=session_tenant)
    if membership is None or not role_can(membership.role, "reviews.view"):
        return None
    return membership.tenant_id


class InboxConsumer(GroupConsumer):
    async def connect(self) -> None:
        from studio.tenants.middleware import SESSION_TENANT_KEY

        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        raw = (query.get("tenant") or [""])[0]
        requested = int(raw) if raw.isdigit() else None
        session = self.scope.get("session")
        session_tenant = session.get(SESSION_TENANT_KEY) if session is not None else None
        tenant_id = await database_sync_to_async(inbox_tenant_for)(user, requested, session_tenant)
        if tenant_id is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = group_name("inbox", tenant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Joined first, then told to catch up: nothing falls between the API read and the events.
        await self.send_json({"type": "inbox.ready", "tenant": tenant_id})

    review_event = GroupConsumer.forward
