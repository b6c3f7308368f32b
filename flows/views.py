from __future__ import annotations

from django.shortcuts import render

from studio.tenants.views import member_required


@member_required("flows.view")
def flow_list(request):
    return render(request, "flows/list.html", {"nav": "flows", "flows": []})
