from __future__ import annotations

from studio.tenants.roles import role_can
from studio.tenants.selectors import invites_for_user, membership_list_for_user


def tenant(request) -> dict:
    """The current tenant, the tenants to switch to, and what the role may see (navigation)."""
    actor = getattr(request, "actor", None)
    if not actor:
        return {}
    user = request.user
    inbox_unread = None
    if role_can(actor.role, "reviews.view"):
        from studio.inbox.selectors import review_unread_count

        inbox_unread = review_unread_count(tenant=actor.tenant)  # one indexed count, for the nav badge
    return {
        "inbox_unread": inbox_unread,
        "current_tenant": actor.tenant,
        "current_role": actor.role,
        "user_memberships": list(membership_list_for_user(user=user)) if user.is_authenticated else [],
        "invites_pending": invites_for_user(user=user).count() if user.is_authenticated else 0,
        "can": {
            p.replace(".", "_"): role_can(actor.role, p)
            for p in ("settings.view", "reviews.view", "flows.edit", "audit.view")
        },
    }
