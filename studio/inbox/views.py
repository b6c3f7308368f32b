"""The inbox page: a server-rendered shell with the queue as it stands; static/js/inbox.js keeps it live."""

from __future__ import annotations

from django.middleware.csrf import get_token
from django.shortcuts import render

from flows.selectors import flow_list
from studio.inbox import selectors
from studio.inbox.api import DEFAULT_LIST, ReviewOutput
from studio.tenants.views import member_required


@member_required("reviews.view")
def inbox(request):
    actor = request.actor
    reviews = list(selectors.review_list(tenant=actor.tenant, status="open")[:DEFAULT_LIST])
    boot = {
        "tenant": actor.tenant.pk,
        "me": actor.user.get_username(),
        "role": actor.role,
        "can_decide": actor.can("reviews.decide"),
        "csrf": get_token(request),
        "reviews": ReviewOutput(reviews, many=True).data,
    }
    flows = flow_list(tenant=actor.tenant).order_by("name").values("id", "name")
    return render(
        request, "studio/inbox.html", {"nav": "inbox", "boot": boot, "flows": flows, "reviews": reviews}
    )
