"""`manage.py run_flow`: start a run from the command line and follow it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, child_env
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run_flow(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "run_flow", *args], cwd=ROOT, env=child_env(),
                          input=stdin, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_run_flow_prints_progress_and_outputs(tmp_path):
    tenant = make_tenant("CLI")
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger", input_schema={"type": "object", "required": ["name"]}),
         scripted_llm("greet", "Greet {{ input.name }}", script={"responses": ["Hello Ada"]}),
         node("out", "output", mapping={"greeting": "{{ nodes.greet.output.text }}"})],
        [edge("trigger", "greet"), edge("greet", "out")],
    ), name="Greeter")  # fmt: skip
    (tmp_path / "in.json").write_text(json.dumps({"name": "Ada"}))
    result = run_flow(str(flow.pk), "--input", str(tmp_path / "in.json"), "--wait")
    assert result.returncode == 0, result.stderr
    assert "greet                    succeeded" in result.stdout
    assert '"greeting": "Hello Ada"' in result.stdout

    by_name = run_flow("Greeter", "--tenant", tenant.slug, "--input", "-", "--wait", stdin='{"name": "Bo"}')
    assert by_name.returncode == 0, by_name.stderr
    by_slug = run_flow(flow.slug, "--input", "-", stdin='{"name": "Cy"}')
    assert by_slug.returncode == 0 and "of 'Greeter' started" in by_slug.stdout, by_slug.stderr
    unknown = run_flow("greter", "--tenant", tenant.slug)
    assert unknown.returncode == 1
    assert (
        unknown.stderr.strip()
        == f"CommandError: no flow 'greter' in tenant {tenant.slug}: give its id, slug or name (slugs: greeter)"
    )


def test_run_flow_explains_bad_input(tmp_path):
    tenant = make_tenant("CLI2")
    schema = {"type": "object", "required": ["name"]}
    flow = published_flow(tenant, graph([node("trigger", "trigger", input_schema=schema), node("out", "output")],
                                        [edge("trigger", "out")]))  # fmt: skip
    result = run_flow(str(flow.pk), "--wait")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "CommandError: 'name' is a required property (inputs: 'name' is a required property)"
    )
    (tmp_path / "bad.json").write_text("{nope")
    result = run_flow(str(flow.pk), "--input", str(tmp_path / "bad.json"))
    assert "is not JSON" in result.stderr
    assert "no flow '999999'" in run_flow("999999").stderr
