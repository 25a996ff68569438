"""Private files on disk (data dir 0700, database and secret key 0600, whatever the
umask) and the security headers every response carries."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from archnest import Settings, create_app
from archnest.testing import ADMIN_PASSWORD

REPO = Path(__file__).resolve().parents[2]
SIDE_FILES = ("-wal", "-shm", "-journal")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: every mode below comes from the creating call, none from the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _file_settings(data_dir: Path) -> Settings:
    # The default database (SQLite in the data dir) and a generated secret key: the
    # two files that must be private. PostgreSQL keeps its own files.
    return Settings(
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        plugin_env={"ARCHNEST_ADD_LOCAL_DOCKER": "0"},
    )


async def _start_and_sign_in(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings
) -> TestClient:
    client = await aiohttp_client(create_app(settings))
    resp = await client.post(
        "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert resp.status == 200, await resp.text()
    return client


def _assert_private(data_dir: Path) -> None:
    db = data_dir / "archnest.db"
    assert _mode(data_dir) == 0o700
    assert _mode(db) == 0o600
    assert _mode(data_dir / "secret.key") == 0o600
    for suffix in SIDE_FILES:
        side = db.with_name(db.name + suffix)
        if side.exists():
            assert _mode(side) == 0o600, side


async def test_fresh_start_creates_private_files(tmp_path, aiohttp_client, open_umask) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "data"
    client = await _start_and_sign_in(aiohttp_client, _file_settings(data_dir))
    # The write-ahead log holds recent writes (the new session): it must be private too.
    assert (data_dir / "archnest.db-wal").exists()
    _assert_private(data_dir)
    await client.close()
    _assert_private(data_dir)


async def test_loose_modes_are_tightened_with_a_warning(
    tmp_path, aiohttp_client, caplog, open_umask
) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "data"
    client = await _start_and_sign_in(aiohttp_client, _file_settings(data_dir))
    await client.close()
    key = (data_dir / "secret.key").read_text().strip()
    db = data_dir / "archnest.db"
    # As an older release (or a restore from backup) left them.
    wal = db.with_name(db.name + "-wal")
    wal.touch()
    loose = {data_dir: 0o755, db: 0o644, data_dir / "secret.key": 0o644, wal: 0o666}
    for path, mode in loose.items():
        os.chmod(path, mode)

    caplog.set_level(logging.WARNING, logger="archnest.files")
    settings = _file_settings(data_dir)
    client = await _start_and_sign_in(aiohttp_client, settings)
    _assert_private(data_dir)
    assert settings.secret_key == key  # the existing key was kept, not replaced
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path, mode in loose.items():
        assert any(str(path) in m and f"{mode:04o}" in m for m in warned), (path, warned)
    await client.close()

    # Once private, a restart has nothing to say.
    caplog.clear()
    client = await _start_and_sign_in(aiohttp_client, _file_settings(data_dir))
    assert [r for r in caplog.records if r.name == "archnest.files"] == []
    await client.close()


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHNEST_")}
    env["ARCHNEST_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "archnest", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0,
        check=False,
    )


def test_cli_creates_private_files_and_fixes_loose_ones(tmp_path: Path) -> None:
    data_dir = tmp_path / "cli-data"
    done = _cli(data_dir, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    db = data_dir / "archnest.db"
    assert _mode(data_dir) == 0o700 and _mode(db) == 0o600

    os.chmod(data_dir, 0o777)
    os.chmod(db, 0o666)
    done = _cli(data_dir, "user", "add", "carol", "--password-stdin", stdin="carol-password-1\n")
    assert done.returncode == 0, done.stderr
    assert _mode(data_dir) == 0o700 and _mode(db) == 0o600
    assert f"{data_dir} had mode 0777" in done.stderr
    assert f"{db} had mode 0666" in done.stderr


def test_shared_sticky_directory_is_left_alone(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    # Pointing the data dir at a /tmp-like directory must not lock everyone else out.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    caplog.set_level(logging.WARNING, logger="archnest.files")
    Settings(data_dir=shared).prepare_data_dir()
    assert _mode(shared) == 0o1777
    assert any("sticky" in r.getMessage() for r in caplog.records)


def _csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def _assert_security_headers(headers, path: str) -> None:  # type: ignore[no-untyped-def]
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("Referrer-Policy") == "same-origin", path
    csp = _csp(headers.get("Content-Security-Policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], path
    # Scripts only from the app itself: no inline script, no eval, no other origin.
    assert csp.get("script-src") == ["'self'"], path
    assert csp.get("default-src") == ["'self'"], path
    assert csp.get("object-src") == ["'none'"] and csp.get("base-uri") == ["'none'"], path
    assert not any("'unsafe-eval'" in s for s in csp.values()), path


async def test_pages_and_other_responses_carry_security_headers(
    archnest_client: TestClient, admin_headers: dict[str, str]
) -> None:
    c = archnest_client
    resp = await c.get("/login")
    assert resp.status == 200 and resp.content_type == "text/html"
    _assert_security_headers(resp.headers, "/login")

    resp = await c.get("/containers", headers=admin_headers)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert 'id="containers-app"' in await resp.text()
    _assert_security_headers(resp.headers, "/containers")

    # Not only pages: JSON, errors, redirects and static files (sent as a file stream).
    for path, headers, status in (
        ("/healthz", {}, 200),
        ("/api/hosts", {}, 401),
        ("/api/hosts", admin_headers, 200),
        ("/containers", {"Accept": "text/html"}, 302),
        ("/static/core/app.js", {}, 200),
        ("/no/such/page", admin_headers, 404),
    ):
        resp = await c.get(path, headers=headers, allow_redirects=False)
        assert resp.status == status, (path, status)
        _assert_security_headers(resp.headers, path)
