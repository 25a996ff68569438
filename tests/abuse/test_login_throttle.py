"""Login throttling that cannot lock out the real user, and the client address behind it.

The app is served on a real TCP port; X-Forwarded-For is what a reverse proxy on
127.0.0.1 would send. Addresses are from the documentation ranges (RFC 5737 / 3849).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import aiohttp
import pytest
from archnest.app import create_app
from archnest.client_address import resolve_client_address
from archnest.keys import PASSWORD_VERIFIER_KEY
from archnest.login_throttle import LoginThrottle, RateLimiter
from archnest.settings import Settings, parse_networks
from archnest.testing import ADMIN_PASSWORD

# Floods and a full queue of password checks happen only while checks take the
# production time.
pytestmark = pytest.mark.production_password_hash

ATTACKER = "198.51.100.66"
ADMIN_HOME = "203.0.113.10"


def _settings(archnest_settings: Settings, **env: str) -> Settings:
    """The test app's settings, read through the environment like ``archnest serve``."""
    return Settings.from_env(
        {
            "ARCHNEST_DATA_DIR": str(archnest_settings.data_dir),
            "ARCHNEST_DATABASE_URL": archnest_settings.database_url,
            "ARCHNEST_SECRET_KEY": archnest_settings.secret_key,
            "ARCHNEST_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ARCHNEST_ADD_LOCAL_DOCKER": "0",
            **env,
        }
    )


@pytest.fixture
def serve(aiohttp_server, archnest_settings):
    """Start the real app on a TCP port of 127.0.0.1 with extra environment settings."""

    async def start(**env: str):
        app = create_app(_settings(archnest_settings, **env))
        return await aiohttp_server(app)

    return start


@pytest.fixture
async def http():
    # No connection cap: every request of a flood is really in flight at once.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def _login(http, server, username, password, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with http.post(
        server.make_url("/api/auth/login"),
        json={"username": username, "password": password},
        headers=headers,
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def _argon2_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("archnest-argon2")]


# --- the client address ---------------------------------------------------------------

TRUSTED = parse_networks("127.0.0.1, 10.0.0.0/8, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # An untrusted peer: whatever it claims is ignored.
        ("192.0.2.5", ["203.0.113.10"], "192.0.2.5"),
        # A trusted proxy: the address it appended is the client.
        ("127.0.0.1", ["203.0.113.10"], "203.0.113.10"),
        # Walked right to left past trusted proxies; what the client wrote is ignored.
        ("127.0.0.1", ["6.6.6.6, 203.0.113.10, 10.1.1.1"], "203.0.113.10"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.10", "10.1.1.1"], "203.0.113.10"),
        # Only trusted hops: the furthest one is the best we know.
        ("127.0.0.1", ["10.2.2.2, 10.1.1.1"], "10.2.2.2"),
        # Garbage from a trusted hop: stop at the last address we could believe.
        ("127.0.0.1", ["203.0.113.10, unknown"], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.10, not-an-ip, 10.1.1.1"], "10.1.1.1"),
        # No header, or an empty one: the peer.
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", [""], "127.0.0.1"),
        # Ports and brackets as some proxies write them; IPv4-mapped peers are IPv4.
        ("127.0.0.1", ["203.0.113.10:51234"], "203.0.113.10"),
        ("127.0.0.1", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("::ffff:127.0.0.1", ["2001:db8::7"], "2001:db8::7"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        # An IPv4 address is never "in" an IPv6 network (raw integer compare).
        ("0.0.0.1", ["203.0.113.10"], "0.0.0.1"),
    ],
)
def test_client_address_believes_only_trusted_hops(peer, xff, expected):
    assert resolve_client_address(peer, xff, TRUSTED) == expected


def test_no_trusted_proxies_means_the_peer():
    assert resolve_client_address("127.0.0.1", ["203.0.113.10"], ()) == "127.0.0.1"


def test_trusted_proxies_setting_is_parsed_and_checked():
    settings = Settings.from_env({"ARCHNEST_TRUSTED_PROXIES": " 127.0.0.1 ,10.0.0.0/8,fd00::/8,"})
    assert [str(n) for n in settings.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    assert Settings.from_env({}).trusted_proxies == ()
    for bad in ("proxy.example", "10.0.0.0/33", "127.0.0.1;10.0.0.1"):
        with pytest.raises(SystemExit, match="ARCHNEST_TRUSTED_PROXIES"):
            Settings.from_env({"ARCHNEST_TRUSTED_PROXIES": bad})
    for name in ("ARCHNEST_LOGIN_ATTEMPTS", "ARCHNEST_PASSWORD_HASH_WORKERS"):
        with pytest.raises(SystemExit, match=name):
            Settings.from_env({name: "0"})


# --- the throttle's own bounds --------------------------------------------------------


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(burst=1, interval=60, max_keys=100)
    now = time.monotonic()
    for i in range(1000):
        limiter.charge(f"k{i}", now)
    assert len(limiter) == 100
    # The most recently charged keys are remembered, the oldest forgotten.
    assert limiter.wait("k999", now) == pytest.approx(60)
    assert limiter.wait("k0", now) == 0
    # A success's reset and a refund forget a key too.
    limiter.reset("k999")
    limiter.refund("k998", now)
    assert len(limiter) == 98
    # A key whose budget is full again fades out with the next charges.
    assert limiter.wait("k900", now) == pytest.approx(60)
    limiter.charge("later", now + 3600)
    assert len(limiter) == 98 and limiter.wait("k900", now) == 0


def test_ipv6_clients_are_keyed_by_their_64():
    key = LoginThrottle.address_key
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("203.0.113.10") == "203.0.113.10"
    # A username cannot make a key of unbounded size.
    assert len(LoginThrottle.user_key("x" * 16000, "203.0.113.10")) < 100


# --- over HTTP, on a real port --------------------------------------------------------


async def test_flood_for_admin_from_one_address_does_not_delay_admin_elsewhere(serve, http):
    """Done when: with many bad attempts in flight for admin from one client, the admin
    from another client address (through a trusted proxy) signs in within 1 s."""
    server = await serve(ARCHNEST_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1")
    verifier = server.app[PASSWORD_VERIFIER_KEY]
    # Warm up (first argon2 call, session table) so the timing below is the steady state.
    assert (await _login(http, server, "admin", ADMIN_PASSWORD, "192.0.2.200"))[0] == 200

    flood_started = time.monotonic()
    flood = [
        asyncio.create_task(_login(http, server, "admin", f"wrong-{i}", ATTACKER))
        for i in range(60)
    ]
    most_pending = 0

    async def watch_pending() -> None:
        nonlocal most_pending
        while True:
            most_pending = max(most_pending, verifier.pending)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch_pending())
    # Wait until the flood really holds password-hash work.
    deadline = time.monotonic() + 5
    while verifier.pending == 0:
        assert time.monotonic() < deadline, "the flood never reached the password check"
        await asyncio.sleep(0.002)
    start = time.monotonic()
    status, _, body = await _login(http, server, "admin", ADMIN_PASSWORD, ADMIN_HOME)
    elapsed = time.monotonic() - start
    assert status == 200, body
    assert elapsed < 1.0, f"admin sign-in took {elapsed:.2f} s during the flood"

    results = await asyncio.gather(*flood)
    flood_seconds = time.monotonic() - flood_started
    watcher.cancel()
    # One address never holds more than its share of the password-hash work (one
    # check), plus the admin's own check.
    assert 1 <= most_pending <= 2, most_pending
    statuses = [r[0] for r in results]
    assert set(statuses) <= {401, 429}, statuses
    # The throttle charged attempts as they arrived: only the burst was ever checked.
    assert statuses.count(401) <= 5 and statuses.count(429) >= 55
    for status, headers, body in results:
        if status == 429:
            assert body["error"]["code"] == "too_many_attempts"
            assert int(headers["Retry-After"]) >= 1
    # Refused, not queued: the whole flood is answered in a few seconds.
    assert flood_seconds < 5.0, flood_seconds
    # The password checks ran on the dedicated, bounded executor.
    assert 1 <= len(_argon2_threads()) <= 2


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(serve, http, trusted):
    server = await serve(ARCHNEST_TRUSTED_PROXIES=trusted)
    # Five failures, each claiming another address: all are 127.0.0.1's failures.
    for i in range(5):
        status, _, _ = await _login(http, server, "admin", "wrong", f"203.0.113.{i + 1}")
        assert status == 401
    status, headers, body = await _login(http, server, "admin", "wrong", "203.0.113.99")
    assert status == 429, body
    assert body["error"]["code"] == "too_many_attempts" and "Retry-After" in headers
    # Even the right password waits: this client is over its budget for admin.
    status, _, _ = await _login(http, server, "admin", ADMIN_PASSWORD, "203.0.113.100")
    assert status == 429


async def test_repeated_failures_get_429_with_retry_after(serve, http):
    server = await serve(ARCHNEST_TRUSTED_PROXIES="127.0.0.1")
    for _ in range(5):
        assert (await _login(http, server, "admin", "wrong", ATTACKER))[0] == 401
    start = time.monotonic()
    status, headers, body = await _login(http, server, "admin", "wrong", ATTACKER)
    assert time.monotonic() - start < 0.5  # refused before any password work
    assert status == 429
    assert body == {
        "error": {
            "code": "too_many_attempts",
            "message": "too many failed sign-in attempts; try again later",
        }
    }
    assert 1 <= int(headers["Retry-After"]) <= 30
    # The browser form says so on the login page, with the same status and header.
    async with http.post(
        server.make_url("/login"),
        data={"username": "admin", "password": "wrong"},
        headers={"X-Forwarded-For": ATTACKER, "Origin": str(server.make_url("")).rstrip("/")},
    ) as resp:
        assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 30
        assert "too many failed sign-in attempts" in await resp.text()
    # Another address, or another username from this one, is not affected.
    assert (await _login(http, server, "admin", ADMIN_PASSWORD, ADMIN_HOME))[0] == 200
    assert (await _login(http, server, "bob", "wrong", ATTACKER))[0] == 401


async def test_spraying_usernames_from_one_address_is_limited(serve, http):
    # No refill during the test: on a busy machine nine password checks can take longer
    # than the default 5 s in which the address earns one more attempt.
    server = await serve(
        ARCHNEST_TRUSTED_PROXIES="127.0.0.1",
        ARCHNEST_LOGIN_ADDRESS_ATTEMPTS="8",
        ARCHNEST_LOGIN_ADDRESS_ATTEMPT_SECONDS="600",
    )
    statuses = [(await _login(http, server, f"user{i}", "wrong", ATTACKER))[0] for i in range(9)]
    assert statuses == [401] * 8 + [429]
    assert (await _login(http, server, "admin", ADMIN_PASSWORD, ADMIN_HOME))[0] == 200


async def test_success_resets_the_username_and_address_budget(serve, http):
    server = await serve(
        ARCHNEST_TRUSTED_PROXIES="127.0.0.1",
        ARCHNEST_LOGIN_ADDRESS_ATTEMPTS="10",
        ARCHNEST_LOGIN_ADDRESS_ATTEMPT_SECONDS="600",
    )
    for _ in range(4):
        assert (await _login(http, server, "admin", "wrong", ADMIN_HOME))[0] == 401
    assert (await _login(http, server, "admin", ADMIN_PASSWORD, ADMIN_HOME))[0] == 200
    # Without the reset the second of these would already be the sixth failure.
    for _ in range(5):
        assert (await _login(http, server, "admin", "wrong", ADMIN_HOME))[0] == 401
    assert (await _login(http, server, "admin", "wrong", ADMIN_HOME))[0] == 429
    # The success gave its address charge back (9 of 10 used, the refused one is not
    # charged): one more failure fits, then the address is over its budget.
    assert (await _login(http, server, "bob", "wrong", ADMIN_HOME))[0] == 401
    assert (await _login(http, server, "carol", "wrong", ADMIN_HOME))[0] == 429


async def test_full_password_hash_queue_is_refused_fast(serve, http):
    server = await serve(
        ARCHNEST_TRUSTED_PROXIES="127.0.0.1",
        ARCHNEST_PASSWORD_HASH_WORKERS="1",
        ARCHNEST_PASSWORD_HASH_QUEUE="2",
        ARCHNEST_LOGIN_ATTEMPTS="1",
    )
    clients = [f"198.51.100.{i + 1}" for i in range(20)]
    # Twenty clients at once, each within its own budget: three checks fit (one running,
    # two waiting), the rest are told to come back instead of waiting for a worker.
    results = await asyncio.gather(*(_login(http, server, "admin", "wrong", c) for c in clients))
    statuses = [r[0] for r in results]
    assert 3 <= statuses.count(401) < 20 and set(statuses) == {401, 429}, statuses
    busy = [c for c, r in zip(clients, results, strict=True) if r[0] == 429]
    checked = [c for c, r in zip(clients, results, strict=True) if r[0] == 401]
    for _, headers, body in (r for r in results if r[0] == 429):
        assert body["error"]["code"] == "login_busy" and headers["Retry-After"] == "1"
    assert server.app[PASSWORD_VERIFIER_KEY].pending == 0
    # A refused check was never a guess: that client's one attempt was given back,
    # while a client whose password was checked has used its one attempt.
    assert (await _login(http, server, "admin", "wrong", busy[0]))[0] == 401
    assert (await _login(http, server, "admin", "wrong", checked[0]))[0] == 429


async def test_password_executor_ends_with_the_app(serve, http):
    server = await serve()
    assert (await _login(http, server, "admin", ADMIN_PASSWORD))[0] == 200
    assert _argon2_threads()
    await server.close()
    assert not _argon2_threads()


# --- the access log of `archnest serve` -----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_access_log_names_the_client_address(tmp_path, archnest_database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHNEST_")}
    env.update(
        ARCHNEST_DATA_DIR=str(tmp_path / "data"),
        ARCHNEST_DATABASE_URL=archnest_database_url,
        ARCHNEST_ADD_LOCAL_DOCKER="0",
        ARCHNEST_ADMIN_PASSWORD=ADMIN_PASSWORD,
        ARCHNEST_TRUSTED_PROXIES="127.0.0.1",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archnest", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/healthz",
                    headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.10"},
                )
                with urllib.request.urlopen(req, timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("archnest serve did not come up")
                time.sleep(0.3)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if "logger=archnest.access" in line]
    assert any("remote=203.0.113.10" in line and "GET /healthz" in line for line in lines), err
    assert not any("remote=127.0.0.1" in line or "6.6.6.6" in line for line in lines), lines
