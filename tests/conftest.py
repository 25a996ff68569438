"""Session-wide fixtures. The environment itself (real dockerd, sshd, PostgreSQL) is
built by tests/testenv; this file only exposes it to pytest.

- Without CI=true, a missing tool or a failure to start skips the tests that need
  the environment, with the reason. Under CI=true the same failure is an error:
  CI must never go green by skipping.
- ARCHNEST_TESTENV_FILE=path reuses an environment started with
  `python -m tests.testenv up --json path` (fast iteration); it is left running.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.testenv import TestEnv, TestEnvError, down, load, up


def in_ci() -> bool:
    """The one CI switch: CI=true (1, yes). Under it no test may skip (see below)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


_in_ci = in_ci


# Markers follow from what a test really uses, applied here: a test that needs the
# isolated environment (dockerd, sshd, PostgreSQL) uses the ``testenv`` fixture,
# directly or through another fixture; a browser test uses ``browser``; a test that
# runs on a PostgreSQL server of its own choosing (replicas, advisory locks, a restart
# of the server) uses ``testenv_pg_url`` or ``own_postgres``.
_FIXTURE_MARKERS = {
    "testenv": ("testenv",),
    # A browser test checks what the page makes of the API's answers; the storage
    # behind those answers is tested on both databases by the API tests.
    "browser": ("browser", "db_neutral"),
    "testenv_pg_url": ("postgres_only",),
    "own_postgres": ("postgres_only",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, markers in _FIXTURE_MARKERS.items():
            if fixture in used:
                for marker in markers:
                    item.add_marker(marker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI=true a skip is a failure, whatever skipped (a missing service, a missing
    tool, a skipif): CI must never go green by not running something."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run everything: {reason}"


@pytest.fixture(scope="session")
def testenv() -> Iterator[TestEnv]:
    """The isolated dockerd / sshd (target, jump1, jump2) / PostgreSQL of this session."""
    reuse = os.environ.get("ARCHNEST_TESTENV_FILE")
    if reuse:
        try:
            env = load(reuse)
        except (OSError, ValueError, TypeError) as exc:
            if _in_ci():
                raise
            pytest.skip(f"ARCHNEST_TESTENV_FILE={reuse} is unusable: {exc}")
        yield env
        return
    try:
        env = up()
    except (TestEnvError, OSError) as exc:
        if _in_ci():
            raise
        pytest.skip(f"test environment unavailable (scripts/install-test-deps.sh, root?): {exc}")
    try:
        yield env
    finally:
        down(env)


@pytest.fixture
def testenv_docker(testenv: TestEnv) -> Iterator[TestEnv]:
    """The environment, with every container removed after the test."""
    try:
        yield testenv
    finally:
        testenv.remove_all_containers()


@pytest.fixture
async def testenv_pg_url(testenv: TestEnv) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database (postgresql+asyncpg:// URL) for one test."""
    name = f"t_{secrets.token_hex(6)}"
    url = await testenv.acreate_database(name)
    try:
        yield url
    finally:
        await testenv.adrop_database(name)


@pytest.fixture(scope="session", autouse=True)
def _database_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """ARCHNEST_TEST_DB=postgres runs every app test on the environment's PostgreSQL.

    ``archnest.testing`` then creates a fresh database per test from this server URL.
    """
    if os.environ.get("ARCHNEST_TEST_DB", "sqlite") != "postgres":
        yield
        return
    env: TestEnv = request.getfixturevalue("testenv")
    os.environ["ARCHNEST_TEST_DATABASE_URL"] = env.pg_url
    try:
        yield
    finally:
        os.environ.pop("ARCHNEST_TEST_DATABASE_URL", None)
