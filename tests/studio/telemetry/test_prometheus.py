"""``/metrics``: Prometheus counters of steps and runs, counted as the real workers end them."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.test import Client

from flows.models import RunStatus, StepRun
from studio.inbox import services as inbox
from studio.telemetry.counters import BUCKETS_S
from studio.tenants.roles import Role
from tests.conftest import wait_for
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run
from tests.studio.inbox.helpers import actor, approval_flow, wait_review

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(\{(?P<labels>[^}]*)\})? (?P<value>[0-9.e+-]+|\+Inf)$")


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, frozenset], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.content.decode().splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def flow_of(tenant, *, fail: bool):
    answer = {"fail": "bad_request"} if fail else {"text": "ok", "tokens_in": 12, "tokens_out": 5}
    nodes = [node("trigger", "trigger"), scripted_llm("ask", "hello", script={"default": answer}),
             node("out", "output", mapping={"a": "{{ nodes.ask.output.text }}"})]  # fmt: skip
    return published_flow(tenant, graph(nodes, [edge("trigger", "ask"), edge("ask", "out")]))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_steps_and_runs_are_counted_as_the_workers_end_them():
    tenant = make_tenant("Metrics")
    before = scrape()
    llm_count = ("studio_step_duration_seconds_count", frozenset({("node_type", "llm")}))
    good = wait_run(start(flow_of(tenant, fail=False)))
    bad = wait_run(start(flow_of(tenant, fail=True)))
    assert (good.status, bad.status) == (RunStatus.SUCCEEDED, RunStatus.FAILED)

    def counted(name: str, **labels) -> float:
        return scrape().get((name, frozenset({("tenant", tenant.slug), *labels.items()})), 0)

    # The counters are sent after the commits, without a reply: the scrape may come a moment later.
    wait_for(
        lambda: counted("studio_runs_total", status="failed") == 1, timeout=5, what="the failed run counted"
    )
    assert counted("studio_runs_total", status="succeeded") == 1
    assert counted("studio_steps_total", node_type="llm", status="succeeded") == 1
    assert counted("studio_steps_total", node_type="llm", status="failed") == 1
    # Every step of the tenant's runs, as PostgreSQL has them, is counted once under its status.
    in_db = Counter(StepRun.objects.filter(run__tenant=tenant).values_list("node_type", "status"))
    assert in_db[("output", "cancelled")] == 1  # the failed run's output never ran
    for (node_type, status), count in in_db.items():
        assert counted("studio_steps_total", node_type=node_type, status=status) == count, (node_type, status)
    assert counted("studio_model_tokens_total", direction="in") == 12
    assert counted("studio_model_tokens_total", direction="out") == 5
    assert counted("studio_model_cost_usd_total") > 0

    after = scrape()
    assert after[llm_count] - before.get(llm_count, 0) >= 2  # other tests' steps count too
    buckets = [after[("studio_step_duration_seconds_bucket", frozenset({("node_type", "llm"), ("le", le)}))]
               for le in [repr(b) for b in BUCKETS_S] + ["+Inf"]]  # fmt: skip
    assert buckets == sorted(buckets) and buckets[-1] == after[llm_count]  # cumulative, ending at the count


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_the_review_backlog_is_a_gauge_per_tenant():
    tenant, idle = make_tenant("Backlog"), make_tenant("Idle")
    waiting = ("studio_reviews_waiting", frozenset({("tenant", tenant.slug)}))
    run = start(approval_flow(tenant), {"amount": 5})
    review = wait_review(run)
    samples = scrape()
    assert samples[waiting] == 1
    assert samples[("studio_reviews_waiting", frozenset({("tenant", idle.slug)}))] == 0
    reviewer = actor(tenant, make_member(tenant, Role.REVIEWER, username="rae"), Role.REVIEWER)
    inbox.review_decide(review=review, actor=reviewer, decision="approve")
    assert scrape()[waiting] == 0


@pytest.mark.django_db
def test_only_loopback_without_a_token_and_only_the_token_with_one(settings):
    assert Client(REMOTE_ADDR="10.0.0.7").get("/metrics").status_code == 403
    assert (
        Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    )  # via a local proxy
    settings.METRICS_TOKEN = "s3cret-token"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    remote = Client(REMOTE_ADDR="10.0.0.7")
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
