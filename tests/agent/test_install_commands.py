"""Property tests: nothing from a request reaches a shell. The SSH install's command text
is a function of the server's settings only; request values are refused unless they
match strict patterns, and what passes cannot break out of the env file or the shown
install command."""

from __future__ import annotations

import re
import shlex

import pytest
from archnest_docker_agent.enroll_routes import BASE_URL_RE, SshInstall, install_command
from archnest_docker_agent.enrollments import new_token
from archnest_docker_agent.payload import HOST_RE
from archnest_docker_agent.ssh_install import (
    MARKER,
    env_file,
    host_from_target_name,
    remote_command,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

SAFE = re.compile(r"^[A-Za-z0-9._:/\[\]-]*$")


@settings(max_examples=300)
@given(root=st.text(max_size=80), sudo=st.booleans())
def test_remote_command_depends_only_on_a_strict_install_root(root: str, sudo: bool) -> None:
    try:
        command = remote_command(root, sudo)
    except ValueError:
        assert not re.fullmatch(r"/[A-Za-z0-9._/-]*", root)
        return
    words = shlex.split(command)
    assert words[:2] == ["sh", "-c"] and len(words) == 3
    body = words[2]
    assert f"ARCHNEST_INSTALL_ROOT={shlex.quote(root)} bash" in body
    assert body.count("sudo -n") == (1 if sudo else 0)
    # The same text for every request: nothing else varies.
    assert remote_command(root, sudo) == command


@settings(max_examples=300)
@given(
    host=st.one_of(st.none(), st.text(max_size=60)),
    docker_host=st.one_of(st.none(), st.text(max_size=60), st.just("unix:///run/docker.sock")),
    interval=st.one_of(st.none(), st.integers(-5, 100_000)),
)
def test_ssh_install_body_is_strict(host, docker_host, interval) -> None:  # type: ignore[no-untyped-def]
    body = {"target_id": 1, "host": host, "docker_host": docker_host, "interval": interval}
    try:
        model = SshInstall.model_validate(body, strict=True)
    except ValidationError:
        return
    if model.host is not None:
        assert HOST_RE.fullmatch(model.host)
    if model.docker_host is not None:
        assert SAFE.fullmatch(model.docker_host), model.docker_host
    # What passed cannot add a line (a setting of its own) to the env file.
    text = env_file("http://127.0.0.1:8080", new_token(), model.host or "h", 30, model.docker_host)
    assert text.count("\n") == (5 if model.docker_host else 4)
    assert MARKER not in text


@given(name=st.text(max_size=80))
def test_host_from_target_name_is_a_valid_host_or_none(name: str) -> None:
    host = host_from_target_name(name)
    assert host is None or HOST_RE.fullmatch(host)


@pytest.mark.parametrize("host", ["vm-07", "a.b_c-d", "x" * 253])
def test_install_command_quotes_every_value(host: str) -> None:
    token = new_token()
    base = "https://archnest.example.org:8443/sub"
    assert BASE_URL_RE.fullmatch(base)
    command = install_command(base, token, host)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    assert f"ARCHNEST_AGENT_TOKEN={token}" in words and f"ARCHNEST_AGENT_HOSTNAME={host}" in words
    assert f"{base}/agent/archnest-docker-agent.sh" in words
