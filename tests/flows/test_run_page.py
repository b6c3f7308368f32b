"""A run's trace page (/runs/<id>/): what it shows and who may act on it (live: tests/browser)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from flows.models import Run, RunStatus
from studio.tenants.roles import Role
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, start

# A flow of pure steps runs inline, as it starts: no worker needed to look at its trace.
PURE = graph(
    [node("trigger", "trigger"),
     node("shape", "transform", template="{{ input.name | upper }}"),
     node("out", "output", mapping={"shout": "{{ nodes.shape.output }}"})],
    [edge("trigger", "shape"), edge("shape", "out")],
)  # fmt: skip


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
class TestTracePage:
    def test_it_shows_the_run_its_steps_and_their_outputs(self):
        tenant = make_tenant("Acme")
        flow = published_flow(tenant, PURE, name="Shouter")
        run = start(flow, {"name": "ann"})
        assert run.status == RunStatus.SUCCEEDED
        page = client_for(make_member(tenant, Role.VIEWER)).get(f"/runs/{run.pk}/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "Shouter" in html and f"Run #{run.pk}" in html
        assert [m for m in re.findall(r'data-step="([a-z_]+)"', html)] == ["trigger", "shape", "out"]
        assert "&quot;ANN&quot;" in html  # the output, escaped as text
        assert "Cancel run" not in html and "Replay" not in html  # a viewer only reads

    def test_another_tenants_run_is_a_404(self):
        tenant, other = make_tenant("Acme"), make_tenant("Globex")
        run = start(published_flow(tenant, PURE), {"name": "x"})
        outsider = client_for(make_member(other, Role.OWNER))
        assert outsider.get(f"/runs/{run.pk}/").status_code == 404
        assert outsider.post(f"/runs/{run.pk}/cancel/").status_code == 404
        assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED

    def test_replay_starts_a_new_run_and_opens_its_trace(self):
        tenant = make_tenant("Acme")
        run = start(published_flow(tenant, PURE), {"name": "bo"})
        builder = client_for(make_member(tenant, Role.BUILDER))
        response = builder.post(f"/runs/{run.pk}/replay/", follow=True)
        replay = Run.objects.exclude(pk=run.pk).get()
        assert response.redirect_chain[-1][0] == f"/runs/{replay.pk}/"
        assert (replay.inputs, replay.trigger, replay.outputs) == ({"name": "bo"}, "replay", {"shout": "BO"})
        assert "Replay of run" in response.content.decode()

    def test_cancelling_an_ended_run_says_so_and_changes_nothing(self):
        tenant = make_tenant("Acme")
        run = start(published_flow(tenant, PURE), {"name": "x"})
        response = client_for(make_member(tenant, Role.BUILDER)).post(f"/runs/{run.pk}/cancel/", follow=True)
        assert "had already ended" in response.content.decode()
        assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED

    def test_a_viewer_may_not_act(self):
        tenant = make_tenant("Acme")
        run = start(published_flow(tenant, PURE), {"name": "x"})
        assert client_for(make_member(tenant, Role.VIEWER)).post(f"/runs/{run.pk}/replay/").status_code == 403
        assert Run.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_waiting_for_a_reviewer_shows_what_its_steps_spent_so_far(celery_worker, api):
    """Tokens and cost are written on the run when it ends; until then the page, the run API and
    the runs list answer the sum of its steps so far, not zeros."""
    from tests.studio.inbox.helpers import approval_flow, wait_review

    tenant = make_tenant("Acme")
    run = start(approval_flow(tenant), {"amount": 5})
    wait_review(run)
    run.refresh_from_db()
    draft = run.steps.get(node_id="draft")
    assert run.status == RunStatus.WAITING and run.tokens_in == 0  # nothing written on the run yet
    assert draft.tokens_in > 0 and draft.tokens_out > 0 and draft.cost_usd > 0

    html = client_for(make_member(tenant, Role.VIEWER)).get(f"/runs/{run.pk}/").content.decode()
    tokens = re.search(r'<dt>([^<]*)</dt><dd data-fact="tokens">([^<]*)<', html).groups()
    cost = re.search(r'<dt>([^<]*)</dt><dd data-fact="cost">([^<]*)<', html).groups()
    assert tokens == ("Tokens so far", f"{draft.tokens_in} in · {draft.tokens_out} out")
    assert cost == ("Cost so far", f"${draft.cost_usd:.6f}")

    viewer = api(tenant, Role.VIEWER)
    payload = viewer.get(f"/api/v1/runs/{run.pk}/").json()
    listed = viewer.get(f"/api/v1/flows/{run.flow_id}/runs/").json()["results"]
    for shown in (payload, *listed):
        assert (shown["tokens_in"], shown["tokens_out"]) == (draft.tokens_in, draft.tokens_out)
        assert shown["cost_usd"] == f"{draft.cost_usd:.6f}"
    assert [r["id"] for r in listed] == [run.pk]
