"""No option of a log search reaches a remote shell unquoted (property test).

Every command the ssh source runs for a search is captured at the pool (the only way to
a remote shell) and checked: it is the fully quoted form of its words, its verb and
flags are constants, numbers are the digits of the parsed since/until, and the only
other word is a container ref the host's own listing gave. The text, the pattern, the
project, the container and host filters are matched in the app and never appear."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient
from archnest.ssh import SSH_POOL_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ssh.conftest import target_payload
from tests.testenv import TestEnv

# The subject is an SSH transport (the sshd and dockerd behind it), not the database: scripts/test runs it in the
# SQLite pass only.
pytestmark = pytest.mark.db_neutral

CONSTANT_WORDS = {
    "docker", "sudo", "-n", "logs", "inspect", "ps", "version", "system", "dial-stdio",
    "events", "--timestamps", "--since", "--until", "--", "--type", "container",
    "--format", "{{.Id}}", "{{json .}}", "{{.Server.Version}}", "--all", "--no-trunc",
    "--filter", "type=container", "5s",
}  # fmt: skip


@pytest.fixture(scope="module")
def searched(testenv: TestEnv) -> Iterator[dict]:
    tag = secrets.token_hex(4)
    name, project = f"lsi-{tag}", f"lsi-{tag}"
    labels = {"com.docker.compose.project": project}
    testenv.run_container(name, ["sh", "-c", "echo one; echo two"], labels=labels)
    testenv.docker("wait", name)
    try:
        yield {"name": name, "project": project}
    finally:
        testenv.docker("rm", "-f", name, check=False)


@pytest.fixture
async def ssh_host(archnest_client: TestClient, admin_headers: dict, testenv: TestEnv) -> str:
    body = target_payload(testenv, testenv.ssh_target, "key", name="lsi", docker=True)
    r = await archnest_client.post("/api/ssh/targets", json=body, headers=admin_headers)
    assert r.status == 201, await r.text()
    return f"ssh:{(await r.json())['id']}"


def check_command(cmd: str, refs: set[str], numbers: set[str]) -> None:
    words = shlex.split(cmd)
    # The line is exactly its words, each quoted: nothing the shell would interpret.
    assert cmd == " ".join(shlex.quote(w) for w in words), cmd
    if words[:2] == ["sudo", "-n"]:
        words = words[2:]
    assert words[0] == "docker", cmd
    for i, word in enumerate(words):
        if word in CONSTANT_WORDS:
            continue
        if words[i - 1] in ("--since", "--until"):
            assert word in numbers, cmd
            continue
        # Only after "--": a ref from the host's own listing.
        assert words[i - 1] == "--" and i == len(words) - 1 and word in refs, cmd


text = st.text(max_size=24)
times = st.one_of(st.none(), st.integers(0, 2**41), text)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    q=st.text(min_size=1, max_size=40),
    regex=st.booleans(),
    containers=st.lists(st.one_of(text, st.just("CONTAINER")), max_size=2),
    project=st.one_of(st.none(), text, st.just("PROJECT")),
    since=times,
    until=times,
    hosts=st.lists(st.one_of(text, st.just("HOST")), max_size=2),
)
async def test_no_search_option_reaches_a_remote_shell_unquoted(
    archnest_client, viewer_headers, ssh_host, searched, q, regex, containers, project,
    since, until, hosts,
):  # fmt: skip
    real = {"CONTAINER": searched["name"], "PROJECT": searched["project"], "HOST": ssh_host}
    containers = [real.get(c, c) for c in containers]
    project = real.get(project, project) if project is not None else None
    if project is None and not containers:
        project = searched["project"]  # stay off the other containers of the shared dockerd
    hosts = [real.get(h, h) for h in hosts] or [ssh_host]
    params = [("q", q), ("host", hosts[0])] + [("host", h) for h in hosts[1:]]
    params += [("container", c) for c in containers]
    if regex:
        params.append(("regex", "1"))
    if project is not None:
        params.append(("project", project))
    for key, value in (("since", since), ("until", until)):
        if value is not None:
            params.append((key, str(value)))

    pool = archnest_client.app[SSH_POOL_KEY]
    seen: list[str] = []
    run, open_process = pool.run, pool.open_process

    async def spy_run(target, command, **kw):  # type: ignore[no-untyped-def]
        seen.append(command)
        return await run(target, command, **kw)

    async def spy_open(target, command, **kw):  # type: ignore[no-untyped-def]
        seen.append(command)
        return await open_process(target, command, **kw)

    pool.run, pool.open_process = spy_run, spy_open
    try:
        r = await archnest_client.get("/api/logs/search", params=params, headers=viewer_headers)
        body = await r.text()
    finally:
        pool.run, pool.open_process = run, open_process
    if r.status == 400:
        assert seen == [], seen  # refused before any host was contacted
        return
    assert r.status == 200, body
    numbers = {str(v) for v in (since, until) if isinstance(v, int)}
    for cmd in seen:
        check_command(cmd, {searched["name"]}, numbers)
    logs = [c for c in seen if shlex.split(c)[1:2] == ["logs"] or " logs " in c]
    if searched["name"] in containers or project == searched["project"]:
        if ssh_host in hosts and (not containers or searched["name"] in containers):
            if project in (None, searched["project"]):
                assert logs, (params, seen, body)
