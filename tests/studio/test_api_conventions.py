"""Conventions every API path keeps: the JSON error envelope even where no view answers, paths
without their trailing slash, and query parameters checked with a 400 that names them."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from studio import views
from studio.tenants.roles import Role


@pytest.fixture
def builder(trio, api):
    return api(trio.tenant, Role.BUILDER)


def create_published_flow(client) -> int:
    flow = client.post("/api/v1/flows/", {"name": "Listed"}, format="json").json()
    assert client.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json").status_code == 201
    return flow["id"]


@pytest.mark.django_db
class TestNotFound:
    @pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/nope/", "/api/v1/flows/abc/", "/api/v2/flows/"])
    def test_an_unknown_api_path_is_a_json_404(self, builder, path):
        response = builder.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "not_found" and path in error["message"]

    def test_an_unknown_page_is_the_studio_page(self, trio):
        client = Client()
        client.force_login(trio.owner)
        response = client.get("/no-such-page/")
        assert response.status_code == 404
        assert b"Nothing here" in response.content and b"Agent Flow Studio" in response.content

    def test_a_server_error_under_the_api_is_json_and_a_page_elsewhere(self):
        api = views.server_error(RequestFactory().get("/api/v1/flows/"))
        assert api.status_code == 500 and api["Content-Type"] == "application/json"
        assert b'"code": "server_error"' in api.content
        page = views.server_error(RequestFactory().get("/flows/"))
        assert page.status_code == 500 and b"Something went wrong" in page.content


@pytest.mark.django_db
class TestTrailingSlash:
    def test_a_post_without_the_slash_is_served_with_its_body(self, builder):
        response = builder.post("/api/v1/flows", {"name": "No slash"}, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["name"] == "No slash"

    def test_a_get_without_the_slash_is_served(self, builder):
        flow_id = create_published_flow(builder)
        response = builder.get(f"/api/v1/flows/{flow_id}")
        assert response.status_code == 200 and response.json()["id"] == flow_id

    def test_pages_still_redirect_to_the_slash(self, trio):
        client = Client()
        client.force_login(trio.owner)
        response = client.get("/flows")
        assert response.status_code == 301 and response["Location"] == "/flows/"


@pytest.mark.django_db
class TestQueryParameters:
    def test_the_runs_of_a_flow_come_in_pages(self, builder):
        flow_id = create_published_flow(builder)
        started = [
            builder.post(f"/api/v1/flows/{flow_id}/runs/", {"inputs": {}}, format="json").json()["id"]
            for _ in range(5)
        ]
        # A flow of a trigger alone finishes inline, as it starts.
        seen, url = [], f"/api/v1/flows/{flow_id}/runs/?limit=2&status=succeeded"
        while url:
            page = builder.get(url).json()
            assert len(page["results"]) <= 2
            seen += [run["id"] for run in page["results"]]
            url = page["next"]
        assert seen == started[::-1]  # newest first, each once

    @pytest.mark.parametrize(
        ("query", "field"),
        [("status=bogus", "status"), ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"),
         ("before=abc", "before")],
    )  # fmt: skip
    def test_a_bad_runs_query_is_a_400_naming_the_parameter(self, builder, query, field):
        flow_id = create_published_flow(builder)
        response = builder.get(f"/api/v1/flows/{flow_id}/runs/?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["details"][0]["field"] == field

    @pytest.mark.parametrize(
        ("url", "field"),
        [("/api/v1/reviews/?status=bogus", "status"), ("/api/v1/reviews/?limit=-1", "limit"),
         ("/api/v1/reviews/?flow=x", "flow"), ("/api/v1/reviews/metrics/?since=2026-13-45T00:00", "since"),
         ("/api/v1/reviews/metrics/?since=yesterday", "since")],
    )  # fmt: skip
    def test_a_bad_review_query_is_a_400_naming_the_parameter(self, trio, api, url, field):
        response = api(trio.tenant, Role.REVIEWER).get(url)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["details"][0]["field"] == field
