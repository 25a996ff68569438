async def test_healthz_and_login(archnest_client):
    r = await archnest_client.get("/healthz")
    assert r.status == 200 and await r.json() == {"status": "ok"}
    r = await archnest_client.post(
        "/api/auth/login", json={"username": "admin", "password": "admin-password-1"}
    )
    assert r.status == 200, await r.text()
    r = await archnest_client.get("/api/auth/me")
    assert (await r.json())["role"] == "admin"
