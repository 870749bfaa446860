"""Hostile paths on the gateway: dot segments and look-alikes of the Admin API must never reach
the upstream, where URL normalization would let them leave the provider's base path, or reach
its own organization endpoints, with the organization's credential."""

from __future__ import annotations

import pytest

from kputil import assert_error, uniq


@pytest.mark.parametrize(
    "path",
    [
        "/v1/../v1/organization/projects",
        "/v1/models/../../admin",
        "/v1/%2e%2e/organization/projects",
        "/v1/files/%2E%2E%2Fsecrets",
        "/v1/./chat/completions",
        "/v1//organization/projects",
        "/v1/%6Frganization/projects",
        "/v1/ORGANIZATION/admin_api_keys",
    ],
)
def test_dot_segments_are_refused_and_never_forwarded(server, path):
    project = server.create_project()
    key = server.create_project_key(project["id"])["value"]
    marker = uniq("dots")
    resp = server.http("GET", path, key=key, headers={"x-kp-test": marker})
    assert resp.status in (400, 404), resp
    if resp.status == 404:
        assert_error(resp, 404)
    assert server.mock.requests_with(marker) == [], f"{path} reached the upstream"


def test_ordinary_paths_still_forward(server):
    project = server.create_project()
    key = server.create_project_key(project["id"])["value"]
    marker = uniq("plain")
    resp = server.http("GET", "/v1/files/file-a..b/content", key=key, headers={"x-kp-test": marker})
    assert resp.status == 200, resp
    assert len(server.mock.requests_with(marker)) == 1
