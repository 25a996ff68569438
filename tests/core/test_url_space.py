"""One URL space: the unified tree and every per-source alias resolve hosts the same way,
so an unknown host (or an unknown source) is the same 404 everywhere."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

TREES = [
    "/api/hosts/docker:999",
    "/api/hosts/docker:abc",
    "/api/hosts/ssh:999",
    "/api/hosts/agent:nohost",
    "/api/hosts/nosource:1",
    "/api/hosts/docker:",
    "/api/docker/hosts/999",
    "/api/docker-ssh/hosts/999",
    "/api/docker-ssh/hosts/abc",
    "/api/agents/docker/hosts/nohost",
]


@pytest.mark.parametrize("tree", TREES)
async def test_unknown_host_is_the_same_404_on_every_tree(
    archnest_client: TestClient, admin_headers: dict[str, str], tree: str
) -> None:
    calls = [
        ("GET", "/containers"),
        ("GET", "/containers/web"),
        ("GET", "/containers/web/stats"),
        ("GET", "/containers/web/logs"),
        ("GET", "/containers/web/logs?follow=1"),
        ("POST", "/containers/web/stop"),
    ]
    for method, suffix in calls:
        r = await archnest_client.request(method, tree + suffix, headers=admin_headers)
        body = await r.json()
        assert (r.status, body["error"]["code"]) == (404, "unknown_host"), (suffix, body)


@pytest.mark.parametrize(
    "path",
    ["/api/exec?host=docker:999", "/api/docker/exec?host=999", "/api/docker-ssh/exec?host=999"],
)
async def test_unknown_host_on_exec_is_404_before_the_upgrade(
    archnest_client: TestClient, admin_headers: dict[str, str], path: str
) -> None:
    r = await archnest_client.get(path + "&container=web&cmd=sh", headers=admin_headers)
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "unknown_host"
