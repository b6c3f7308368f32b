"""Settings pages of the flow domain: the monthly budget, and what flows may reach (outbound
HTTP hosts, capabilities granted per flow). Each save is checked by what it changes."""

from __future__ import annotations

import pytest
from django.test import Client

from flows.models import Flow
from studio.tenants.models import Tenant
from studio.tenants.roles import Role
from studio.tenants.services import tenant_settings_set
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow

CALLS_OUT = graph(
    [node("trigger", "trigger"),
     node("fetch", "http", url="https://api.example.com/orders/{{ input.id }}", capability="billing.write"),
     node("out", "output")],
    [edge("trigger", "fetch"), edge("fetch", "out")],
)  # fmt: skip


def client_for(tenant, role) -> Client:
    client = Client()
    client.force_login(make_member(tenant, role))
    return client


def messages_of(response) -> str:
    """The last message the page shows (earlier saves' messages wait for a page too)."""
    return [str(m) for m in response.context["messages"]][-1]


@pytest.mark.django_db
class TestBudgetPage:
    def test_an_admin_sets_limits_and_new_runs_are_refused_once_spent(self, api):
        tenant = make_tenant("Acme")
        owner = client_for(tenant, Role.OWNER)
        response = owner.post("/settings/budget/", {"monthly_cost_usd": "$1,250.50", "monthly_tokens": "2_000_000"},
                              follow=True)  # fmt: skip
        assert "Budget saved" in messages_of(response)
        assert Tenant.objects.get(pk=tenant.pk).settings["budget"] == {
            "monthly_cost_usd": "1250.50",
            "monthly_tokens": 2_000_000,
        }
        assert "of $1,250.50" in response.content.decode()

        owner.post("/settings/budget/", {"monthly_cost_usd": "0", "monthly_tokens": ""})
        flow = published_flow(tenant, graph([node("trigger", "trigger")], []))
        refused = api(tenant, Role.BUILDER).post(
            f"/api/v1/flows/{flow.pk}/runs/", {"inputs": {}}, format="json"
        )
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"

        owner.post("/settings/budget/", {"monthly_cost_usd": "", "monthly_tokens": ""})
        assert Tenant.objects.get(pk=tenant.pk).settings["budget"] == {}

    @pytest.mark.parametrize(
        ("form", "field"),
        [({"monthly_cost_usd": "lots"}, "monthly cost usd"), ({"monthly_cost_usd": "-1"}, "monthly cost usd"),
         ({"monthly_cost_usd": "0.0000001"}, "monthly cost usd"), ({"monthly_tokens": "1.5"}, "monthly tokens"),
         ({"monthly_tokens": "-3"}, "monthly tokens")],
    )  # fmt: skip
    def test_a_bad_limit_names_its_field_and_saves_nothing(self, form, field):
        tenant = make_tenant("Acme")
        response = client_for(tenant, Role.ADMIN).post("/settings/budget/", form, follow=True)
        assert messages_of(response).startswith(f"{field}:")
        assert "budget" not in Tenant.objects.get(pk=tenant.pk).settings

    def test_builders_may_not_see_or_change_it(self):
        tenant = make_tenant("Acme")
        builder = client_for(tenant, Role.BUILDER)
        assert builder.get("/settings/budget/").status_code == 403
        assert builder.post("/settings/budget/", {"monthly_tokens": "1"}).status_code == 403
        assert "budget" not in Tenant.objects.get(pk=tenant.pk).settings


@pytest.mark.django_db
class TestAccessPage:
    def test_it_lists_what_each_flow_needs_and_grants_the_missing(self):
        tenant = make_tenant("Acme")
        flow = published_flow(tenant, CALLS_OUT, name="Orders", capabilities=["billing.write"])
        admin = client_for(tenant, Role.ADMIN)
        html = admin.get("/settings/access/").content.decode()
        assert '<code class="missing" title="not granted">http:api.example.com</code>' in html
        assert '<code class="granted" title="granted">billing.write</code> <a class="badge"' in html
        assert "approval: financial-changes" in html  # the built-in policy guards it
        assert "http:api.example.com</code> <a" not in html  # no policy guards the host
        admin.post("/settings/access/", {"action": "grant_needed", "flow": flow.pk})
        assert Flow.objects.get(pk=flow.pk).granted_capabilities == ["billing.write", "http:api.example.com"]

    def test_an_admin_edits_grants_and_bad_ones_save_nothing(self):
        tenant = make_tenant("Acme")
        flow = published_flow(tenant, CALLS_OUT, name="Orders")
        admin = client_for(tenant, Role.OWNER)
        typed = "http:*.example.com, pricing.*  pricing.*"
        admin.post("/settings/access/", {"action": "set", "flow": flow.pk, "granted_capabilities": typed})
        assert Flow.objects.get(pk=flow.pk).granted_capabilities == ["http:*.example.com", "pricing.*"]
        response = admin.post("/settings/access/", {"action": "set", "flow": flow.pk,
                                                    "granted_capabilities": "Billing Write!"}, follow=True)  # fmt: skip
        assert messages_of(response).startswith("granted capabilities:")
        assert Flow.objects.get(pk=flow.pk).granted_capabilities == ["http:*.example.com", "pricing.*"]

    def test_outbound_hosts_are_checked_and_kept_with_other_settings(self):
        tenant = make_tenant("Acme")
        tenant_settings_set(tenant=tenant, path=("memory", "embedder"), value={"kind": "hashing"})
        admin = client_for(tenant, Role.ADMIN)
        admin.post("/settings/access/", {"action": "http", "allowed_hosts": "API.example.com\n\n*.internal.test\n",
                                         "allow_private": "on"})  # fmt: skip
        settings = Tenant.objects.get(pk=tenant.pk).settings
        assert settings["http"] == {
            "allowed_hosts": ["api.example.com", "*.internal.test"],
            "allow_private": True,
        }
        assert settings["memory"] == {"embedder": {"kind": "hashing"}}  # another page's section, untouched
        response = admin.post("/settings/access/", {"action": "http", "allowed_hosts": "https://evil.test/path"},
                              follow=True)  # fmt: skip
        assert "line 1" in messages_of(response)
        assert Tenant.objects.get(pk=tenant.pk).settings["http"]["allowed_hosts"] == [
            "api.example.com",
            "*.internal.test",
        ]

    def test_only_admins_and_only_their_tenants_flows(self):
        tenant, other = make_tenant("Acme"), make_tenant("Globex")
        theirs = published_flow(other, CALLS_OUT)
        assert client_for(tenant, Role.BUILDER).get("/settings/access/").status_code == 403
        admin = client_for(tenant, Role.ADMIN)
        assert (
            admin.post("/settings/access/", {"action": "grant_needed", "flow": theirs.pk}).status_code == 404
        )
        assert Flow.objects.get(pk=theirs.pk).granted_capabilities == []


@pytest.mark.django_db
class TestPoliciesPage:
    URL = "/settings/policies/"

    def test_an_admin_adds_and_removes_a_policy_and_the_built_in_stays(self):
        from studio.governance.models import AuditEntry

        tenant = make_tenant("Acme")
        published_flow(tenant, CALLS_OUT, name="orders")
        admin = client_for(tenant, Role.ADMIN)
        page = admin.get(self.URL).content.decode()
        assert 'data-policy="financial-changes"' in page and "built in" in page
        assert '<option value="billing.write">' in page  # capabilities the flows use, offered

        fields = {"name": "price-moves", "capability": "pricing.publish", "role": "reviewer",
                  "when": "(nodes.propose.output.change_pct | abs) > 10", "sla_s": "3600"}  # fmt: skip
        response = admin.post(self.URL, fields, follow=True)
        assert messages_of(response).startswith("Policy price-moves added")
        tenant.refresh_from_db()
        assert tenant.settings["policies"] == [{**fields, "sla_s": 3600}]
        assert AuditEntry.objects.filter(
            tenant=tenant, action="settings.changed", target="settings:policies"
        ).exists()

        response = admin.post(self.URL, {**fields, "name": "twice", "when": "input.x >"}, follow=True)
        assert messages_of(response).startswith("when: not a valid expression")
        response = admin.post(self.URL, fields, follow=True)
        assert messages_of(response) == "name: a policy named 'price-moves' exists already"

        response = admin.post(self.URL, {"action": "remove", "name": "price-moves"}, follow=True)
        assert messages_of(response) == "Policy price-moves removed."
        response = admin.post(self.URL, {"action": "remove", "name": "financial-changes"}, follow=True)
        assert messages_of(response) == "There is no policy 'financial-changes' to remove."
        tenant.refresh_from_db()
        assert tenant.settings["policies"] == []

    def test_only_owners_and_admins_open_it(self):
        tenant = make_tenant("Acme")
        assert client_for(tenant, Role.BUILDER).get(self.URL).status_code == 403
        assert (
            client_for(tenant, Role.REVIEWER).post(self.URL, {"name": "x", "capability": "a.b"}).status_code
            == 403
        )
        assert "policies" not in (Tenant.objects.get(pk=tenant.pk).settings or {})
