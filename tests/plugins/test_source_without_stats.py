"""A source without stats (the test plugin's in-memory source) still shows its detail:
the stats route answers 501 not_supported on every tree, and the page's Stats tab says
so instead of asking for a sample."""

from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_stats_route_is_501_for_a_source_without_stats(
    archnest_client: TestClient, viewer_headers: dict[str, str]
) -> None:
    resp = await archnest_client.get(
        "/api/hosts/hooktest:one/containers/web", headers=viewer_headers
    )
    assert resp.status == 200 and (await resp.json())["stats"] is None
    resp = await archnest_client.get(
        "/api/hosts/hooktest:one/containers/web/stats", headers=viewer_headers
    )
    assert resp.status == 501
    assert (await resp.json())["error"]["code"] == "not_supported"
    # Bad refs are refused before any source is asked; unknown hosts are the usual 404.
    resp = await archnest_client.get(
        "/api/hosts/hooktest:one/containers/bad%20ref/stats", headers=viewer_headers
    )
    assert resp.status == 400
    resp = await archnest_client.get(
        "/api/hosts/hooktest:two/containers/web/stats", headers=viewer_headers
    )
    assert resp.status == 404

    html = await (
        await archnest_client.get("/ui/hosts/hooktest:one/containers/web", headers=viewer_headers)
    ).text()
    assert "Stats are not available from this source." in html
    assert "stats-box" not in html  # nothing for stats.js to fetch
