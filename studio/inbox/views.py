from __future__ import annotations

from django.shortcuts import render

from studio.tenants.views import member_required


@member_required("reviews.view")
def inbox(request):
    return render(request, "studio/inbox.html", {"nav": "inbox"})
