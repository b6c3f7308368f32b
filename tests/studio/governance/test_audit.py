"""The hash-chained audit log: appends in order per tenant, refuses changes, and names the first
entry that does not hold; the events the studio records; the page and the verify command."""

from __future__ import annotations

import hashlib
import json
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from flows.models import Flow
from studio.governance.audit import GENESIS, audit_append, audit_verify, digest
from studio.governance.models import AuditEntry
from studio.memory import services as memory
from studio.tenants.models import Tenant
from studio.tenants.roles import Role
from studio.tenants.services import tenants_delete
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node


def chain(tenant) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(tenant=tenant).order_by("seq"))


class tampering:
    """The append-only trigger off, for a test that plays the attacker."""

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks: ALTER needs none
            cursor.execute("ALTER TABLE governance_auditentry DISABLE TRIGGER audit_append_only")

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE governance_auditentry ENABLE TRIGGER audit_append_only")


@pytest.mark.django_db
class TestChain:
    def test_entries_chain_per_tenant_and_verify(self):
        acme, globex = make_tenant("Acme"), make_tenant("Globex")
        for n in range(3):
            audit_append(tenant_id=acme.pk, actor="olga", action="test.event", data={"n": n})
        audit_append(tenant_id=globex.pk, actor="gus", action="test.event")
        entries = chain(acme)
        assert [e.seq for e in entries] == [1, 2, 3]
        assert entries[0].prev_hash == GENESIS
        assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
        assert chain(globex)[0].seq == 1  # each tenant has its own chain
        result = audit_verify(tenant_id=acme.pk)
        assert result.ok and result.entries == 3 and result.last_hash == entries[-1].hash

    def test_details_are_redacted_before_they_are_stored(self):
        tenant = make_tenant("Acme")
        entry = audit_append(tenant_id=tenant.pk, actor="olga", action="test.event",
                             data={"note": "mail ann@example.com", "nested": ["call +1 415 555 0100"]})  # fmt: skip
        assert entry.details == {"note": "mail [email]", "nested": ["call [phone]"]}
        assert "ann@example.com" not in AuditEntry.objects.get(pk=entry.pk).data

    def test_the_database_refuses_changes_and_removals(self):
        tenant = make_tenant("Acme")
        entry = audit_append(tenant_id=tenant.pk, actor="olga", action="test.event")
        for statement in ("UPDATE governance_auditentry SET actor = 'mallory' WHERE id = %s",
                          "DELETE FROM governance_auditentry WHERE id = %s"):  # fmt: skip
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as c,
            ):
                c.execute(statement, [entry.pk])
        assert AuditEntry.objects.get(pk=entry.pk).actor == "olga"

    def test_a_deleted_tenant_takes_its_chain_and_only_its_chain(self):
        gone, kept = make_tenant("Gone"), make_tenant("Kept")
        for tenant in (gone, kept):
            audit_append(tenant_id=tenant.pk, actor="olga", action="test.event")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            Tenant.objects.filter(pk=gone.pk).delete()  # not through tenants_delete: refused
        tenants_delete(tenant_ids=[gone.pk])
        assert not Tenant.objects.filter(pk=gone.pk).exists()
        assert not AuditEntry.objects.filter(tenant_id=gone.pk).exists()
        assert audit_verify(tenant_id=kept.pk).entries == 1

    @pytest.mark.parametrize(
        ("attack", "reason"),
        [("UPDATE governance_auditentry SET data = '{\"n\":99}' WHERE seq = 2 AND tenant_id = %s", "was changed"),
         ("UPDATE governance_auditentry SET actor = 'mallory' WHERE seq = 2 AND tenant_id = %s", "was changed"),
         ("DELETE FROM governance_auditentry WHERE seq = 2 AND tenant_id = %s", "entry #2 is missing")],
    )  # fmt: skip
    def test_verification_names_the_first_entry_that_does_not_hold(self, attack, reason):
        tenant = make_tenant("Acme")
        for n in range(4):
            audit_append(tenant_id=tenant.pk, actor="olga", action="test.event", data={"n": n})
        with tampering(), connection.cursor() as cursor:
            cursor.execute(attack, [tenant.pk])
        result = audit_verify(tenant_id=tenant.pk)
        assert not result.ok and result.broken_seq == 2 and reason in result.reason and result.entries == 1

    def test_a_forged_rehash_still_breaks_at_the_next_entry(self):
        tenant = make_tenant("Acme")
        for n in range(3):
            audit_append(tenant_id=tenant.pk, actor="olga", action="test.event", data={"n": n})
        with tampering(), connection.cursor() as cursor:  # changed, and given a hash of its own
            cursor.execute("UPDATE governance_auditentry SET hash = repeat('a', 64) WHERE seq = 2 AND tenant_id = %s",
                           [tenant.pk])  # fmt: skip
        result = audit_verify(tenant_id=tenant.pk)
        assert result.broken_seq == 2  # its content does not give that hash
        assert not result.ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_line_up_without_gaps():
    tenant = make_tenant("Acme")

    def append_ten(worker: int) -> None:
        try:
            for n in range(10):
                with transaction.atomic():
                    audit_append(tenant_id=tenant.pk, actor=f"w{worker}", action="test.event", data={"n": n})
        finally:
            connection.close()

    threads = [threading.Thread(target=append_ten, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in chain(tenant)] == list(range(1, 81))
    assert audit_verify(tenant_id=tenant.pk).ok


@pytest.mark.django_db
class TestWhatIsRecorded:
    def test_publishing_grants_keys_and_settings(self, api):
        tenant = make_tenant("Acme")
        owner = api(tenant, Role.OWNER)
        doc = graph([node("trigger", "trigger"), node("out", "output")], [edge("trigger", "out")])
        flow = owner.post("/api/v1/flows/", {"name": "Orders", "graph": doc}, format="json").json()
        owner.post(f"/api/v1/flows/{flow['id']}/publish/", {"note": "first"}, format="json")
        owner.patch(
            f"/api/v1/flows/{flow['id']}/", {"granted_capabilities": ["billing.write"]}, format="json"
        )
        key = owner.post("/api/v1/api-keys/", {"name": "ci", "role": "viewer"}, format="json").json()
        owner.delete(f"/api/v1/api-keys/{key['id']}/")
        owner.post("/api/v1/secrets/", {"name": "stripe_key", "value": "sk_live_very_secret"}, format="json")
        recorded = chain(tenant)
        assert recorded[0].action == "api_key.created"  # the key this test's client uses
        assert [e.action for e in recorded[1:]] == [
            "flow.published", "flow.capabilities_changed", "api_key.created", "api_key.revoked", "secret.set"
        ]  # fmt: skip
        entries = {e.action: e for e in recorded[1:]}
        published = entries["flow.published"]
        assert published.actor.startswith("api-key:afs_") and published.target == f"flow:{flow['id']}"
        assert published.details["sha256"] == Flow.objects.get(pk=flow["id"]).versions.get().sha256
        assert entries["flow.capabilities_changed"].details["after"] == ["billing.write"]
        assert "sk_live_very_secret" not in entries["secret.set"].data
        assert audit_verify(tenant_id=tenant.pk).ok

    def test_a_forgotten_subject_is_audited_by_digest_only(self):
        tenant = make_tenant("Acme")
        memory.memory_add(
            tenant=tenant, namespace="notes", items=[memory.ItemIn(content="likes tea", subject="ann")]
        )
        memory.memory_forget_subject(tenant=tenant, subject="ann", actor="olga")
        [purge] = [e for e in chain(tenant) if e.action == "memory.purged"]
        assert purge.details == {
            "count": 1,
            "namespace": "notes",
            "reason": "subject",
            "subject_sha256": digest("ann"),
        }
        assert "ann" not in purge.data.replace(digest("ann"), "")


@pytest.mark.django_db
class TestPageAndCommand:
    def test_admins_read_and_verify_the_log_and_builders_may_not(self):
        tenant = make_tenant("Acme")
        for n in range(3):
            audit_append(tenant_id=tenant.pk, actor="olga", action="flow.published" if n else "secret.set")
        admin = Client()
        admin.force_login(make_member(tenant, Role.ADMIN))
        html = admin.get("/settings/audit/?action=flow.published").content.decode()
        assert 'data-seq="3"' in html and 'data-seq="2"' in html and 'data-seq="1"' not in html
        verified = admin.post("/settings/audit/", follow=True).content.decode()
        assert "The chain holds: 3 entries checked" in verified
        builder = Client()
        builder.force_login(make_member(tenant, Role.BUILDER))
        assert builder.get("/settings/audit/").status_code == 403

    # The test client is WSGI and reads the stream whole (with this warning); the studio serves
    # over ASGI, where the asynchronous chunks stream.
    @pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
    def test_the_export_carries_what_checks_the_chain_outside_the_studio(self, monkeypatch, api):
        tenant, other = make_tenant("Acme"), make_tenant("Globex")
        for n in range(5):
            audit_append(tenant_id=tenant.pk, actor="olga", action="test.event", data={"n": n, "note": "é"})
        audit_append(tenant_id=other.pk, actor="eve", action="test.event")
        monkeypatch.setattr("studio.governance.audit.EXPORT_CHUNK", 2)  # several chunks
        admin, olga = Client(), make_member(tenant, Role.ADMIN)
        admin.force_login(olga)
        response = admin.get("/settings/audit/export/")
        assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
        assert response["Content-Disposition"].startswith('attachment; filename="audit-')
        lines = [json.loads(line) for line in b"".join(response).decode().splitlines()]
        assert [line["seq"] for line in lines] == [
            1,
            2,
            3,
            4,
            5,
            6,
        ]  # this tenant's only, then the export's own
        assert lines[-1]["action"] == "audit.exported" and lines[-1]["actor"] == olga.username
        prev = "0" * 64  # checked here with hashlib and json alone, as anyone could
        for line in lines:
            body = json.dumps(
                [line["seq"], line["created_at"], line["actor"], line["action"], line["target"], line["data"]],
                separators=(",", ":"), ensure_ascii=False,
            )  # fmt: skip
            assert line["prev_hash"] == prev
            assert hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest() == line["hash"]
            prev = line["hash"]
        tail = [
            json.loads(line)
            for line in b"".join(admin.get("/settings/audit/export/?from=6")).decode().splitlines()
        ]
        assert [line["seq"] for line in tail] == [6, 7] and tail[0]["prev_hash"] == lines[4]["hash"]
        assert admin.get("/settings/audit/export/?from=0").status_code == 400
        builder = Client()
        builder.force_login(make_member(tenant, Role.BUILDER))
        assert builder.get("/settings/audit/export/").status_code == 403

        collector = api(tenant, Role.ADMIN)  # a log collector pulls the same over the API
        pulled = [
            json.loads(line) for line in b"".join(collector.get("/api/v1/audit/export/?from=7")).splitlines()
        ]
        assert [line["seq"] for line in pulled] == [7, 8, 9]  # its key's creation, then this export
        assert [line["action"] for line in pulled[1:]] == ["api_key.created", "audit.exported"]
        assert pulled[-1]["actor"].startswith("api-key:")
        refused = collector.get("/api/v1/audit/export/?from=x")
        assert refused.status_code == 400 and refused.json()["error"]["details"][0]["field"] == "from"
        assert api(tenant, Role.BUILDER).get("/api/v1/audit/export/").status_code == 403
        theirs = [
            json.loads(line)
            for line in b"".join(api(other, Role.ADMIN).get("/api/v1/audit/export/")).splitlines()
        ]
        assert [line["seq"] for line in theirs] == [1, 2, 3] and theirs[0]["actor"] == "eve"  # its own only

    def test_the_command_reports_each_tenant_and_fails_on_a_broken_chain(self):
        good, bad = make_tenant("Good"), make_tenant("Bad")
        for tenant in (good, bad):
            for _ in range(2):
                audit_append(tenant_id=tenant.pk, actor="olga", action="test.event")
        out = StringIO()
        call_command("audit_verify", good.slug, stdout=out)
        assert f"{good.slug}: 2 entries, chain intact" in out.getvalue()
        with tampering(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM governance_auditentry WHERE seq = 1 AND tenant_id = %s", [bad.pk])
        out = StringIO()
        with pytest.raises(CommandError, match="1 tenant"):
            call_command("audit_verify", good.slug, bad.slug, stdout=out)
        assert f"{bad.slug}: BROKEN at entry #1: entry #1 is missing" in out.getvalue()
