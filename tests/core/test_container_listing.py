"""Server-side filter, sort and paging of ``GET /api/containers`` and of the list
partials, against the real dockerd. The daemon is shared with other tests: every
container here carries this run's unique prefix, the assertions look only at those, and
only those are removed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient
from archnest import create_app
from archnest.testing import make_user_headers

PROJECT = "com.docker.compose.project"


@pytest.fixture
def prefix(testenv) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A unique name prefix; its containers are removed afterwards, nobody else's."""
    tag = f"lst{secrets.token_hex(3)}"
    try:
        yield tag
    finally:
        ids = testenv.docker("ps", "-aq", "--filter", f"name=^/{tag}-").split()
        if ids:
            testenv.docker("rm", "-f", *ids, check=False)  # others may have removed some


@pytest.fixture
async def fleet(aiohttp_client, archnest_settings, testenv, prefix):  # type: ignore[no-untyped-def]
    """Four containers of this run on the real engine, added as one docker host."""
    te = testenv
    stop = ["--stop-timeout", "1"]
    te.run_container(f"{prefix}-web-1", labels={PROJECT: f"{prefix}shop"}, extra_args=stop)
    te.run_container(f"{prefix}-Web-2", labels={PROJECT: f"{prefix}shop"}, extra_args=stop)
    te.run_container(f"{prefix}-db", labels={PROJECT: f"{prefix}data"}, extra_args=stop)
    te.run_container(f"{prefix}-job", ["true"])
    te.docker("wait", f"{prefix}-job")
    client: TestClient = await aiohttp_client(create_app(archnest_settings))
    admin = await make_user_headers(client, "alice", "admin")
    r = await client.post(
        "/api/docker/hosts", json={"name": "engine-list", "url": te.docker_unix_url}, headers=admin
    )
    assert r.status == 201, await r.text()
    return client, admin, f"docker:{(await r.json())['id']}"


def _mine(prefix: str) -> Callable[[dict], list[str]]:
    def names(body: dict) -> list[str]:
        return [c["name"].removeprefix(f"{prefix}-") for c in body["containers"]]

    return names


async def test_api_filter_sort_page(fleet, prefix) -> None:  # type: ignore[no-untyped-def]
    client, admin, host_id = fleet
    names = _mine(prefix)

    async def get(query: str) -> dict:
        r = await client.get(f"/api/containers?{query}", headers=admin)
        assert r.status == 200, await r.text()
        return await r.json()

    body = await get(f"all=1&q={prefix}&sort=name")
    # Case-insensitive by name, then the exact name: "web-1" < "Web-2".
    assert names(body) == ["db", "job", "web-1", "Web-2"] and body["total"] == 4
    assert [h["id"] for h in body["hosts"]] == [host_id]
    body = await get(f"all=1&q={prefix}&sort=name&order=desc")
    assert names(body) == ["Web-2", "web-1", "job", "db"]
    # Running only by default; the state of each row is the engine's.
    body = await get(f"q={prefix}&sort=state")
    assert sorted(names(body)) == ["Web-2", "db", "web-1"] and body["total"] == 3

    # Pages of two: every container exactly once, total the same on each page.
    seen = []
    for offset in (0, 2, 4):
        body = await get(f"all=1&q={prefix}&sort=created&limit=2&offset={offset}")
        assert body["total"] == 4 and len(body["containers"]) <= 2
        seen += names(body)
    assert sorted(seen) == ["Web-2", "db", "job", "web-1"]
    # The pages are the unpaged order cut in pieces: created (whole seconds), then name.
    assert seen == names(await get(f"all=1&q={prefix}&sort=created"))
    created = [c["created"] for c in (await get(f"all=1&q={prefix}&sort=created"))["containers"]]
    assert created == sorted(created) and all(created)

    # Structured filters, given apart or typed into q; they combine with words.
    assert names(await get(f"project={prefix}shop&sort=name")) == ["web-1", "Web-2"]
    assert names(await get(f"q=project%3D{prefix}shop+web-2")) == ["Web-2"]
    assert names(await get(f"all=1&state=exited&q={prefix}")) == ["job"]
    assert names(await get(f"all=1&q={prefix}+state%3Dexited,running&sort=name&limit=1")) == ["db"]
    assert names(await get(f"q={prefix}+host%3Dengine-list&sort=name&limit=1")) == ["db"]
    assert (await get(f"q={prefix}+host%3Dother-host"))["containers"] == []
    # Words match the image and the host name too.
    body = await get(f"all=1&q={prefix}+busybox+ENGINE-list")
    assert body["total"] == 4
    job_id = next(c["id"] for c in (await get(f"all=1&q={prefix}-job"))["containers"])
    assert names(await get(f"all=1&q=id%3D{job_id[:12]}")) == ["job"]

    # Without any listing parameter: the answer as before, no total.
    body = await get("all=1")
    assert "total" not in body and set(body) == {"hosts", "containers"}
    assert {f"{prefix}-db", f"{prefix}-job"} <= {c["name"] for c in body["containers"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=size", "sort"),
        ("order=up", "order"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("state=sleepy", "state"),
        ("q=" + "x" * 501, "q"),
    ],
)
async def test_api_bad_parameters_are_400(aiohttp_client, archnest_settings, query, field) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(archnest_settings))
    viewer = await make_user_headers(client, "victor", "viewer")
    r = await client.get(f"/api/containers?{query}", headers=viewer)
    assert r.status == 400
    error = (await r.json())["error"]
    assert error["field"] == field and field in error["message"]


def _rows(html: str, prefix: str) -> list[str]:
    return re.findall(rf'data-name="{prefix}-([^"]+)"\s+title=', html)


async def test_partials_render_one_page(fleet, prefix) -> None:  # type: ignore[no-untyped-def]
    client, admin, host_id = fleet
    for url in ("/ui/containers", f"/ui/hosts/{host_id}/containers"):
        r = await client.get(f"{url}?all=1&q={prefix}&sort=name&size=3", headers=admin)
        html = await r.text()
        assert r.status == 200, html
        assert _rows(html, prefix) == ["db", "job", "web-1"]
        assert re.search(
            'class="shown-count">1\u20133</span> of <span class="total-count">4<', html
        )
        assert 'aria-sort="ascending"' in html.split('data-sort="name"')[0].rsplit("<th", 1)[1]
        assert 'class="btn btn-small pager-next" data-page="2">' in html
        # Each row names its host and the container's full id; the badge is findable.
        job = re.search(
            rf'<tr data-host="{host_id}" data-ref="{prefix}-job" data-id="([0-9a-f]{{64}})"', html
        )
        assert job, html[:2000]
        assert 'class="badge state state-badge state-exited"' in html
        # Nothing for a client-side filter any more: the rows carry no search text.
        assert "data-search" not in html

        r = await client.get(
            f"{url}?all=1&q={prefix}&sort=name&order=desc&size=3&page=2", headers=admin
        )
        html = await r.text()
        assert _rows(html, prefix) == ["db"]
        assert 'aria-sort="descending"' in html and "4\u20134</span> of" in html
        # A page past the end is the last page, not an error (rows may have gone).
        r = await client.get(f"{url}?all=1&q={prefix}&sort=name&size=3&page=40", headers=admin)
        assert _rows(await r.text(), prefix) == ["Web-2"]
        # The id filter is what a row's refresh after a quick action asks for.
        r = await client.get(f"{url}?all=1&q=id%3D{job.group(1)}", headers=admin)
        assert _rows(await r.text(), prefix) == ["job"]
        # A project from a link: shown as an active filter that can be cleared.
        r = await client.get(f"{url}?project={prefix}shop", headers=admin)
        html = await r.text()
        assert sorted(_rows(html, prefix)) == ["Web-2", "web-1"]
        assert "active-filters" in html and f"{prefix}shop" in html
        r = await client.get(f"{url}?q={prefix}-nothing-like-this", headers=admin)
        assert "No container matches the filter" in await r.text()

        for bad, field in (("sort=size", "sort"), ("page=0", "page"), ("size=9999", "size")):
            r = await client.get(f"{url}?{bad}", headers=admin)
            assert r.status == 400, bad
            assert (await r.json())["error"]["field"] == field
