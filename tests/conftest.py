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


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


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
