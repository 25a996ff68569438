"""Install the agent on an SSH target through the core's pinned, pooled connection.

Nothing from the request reaches the remote shell. The command text is fixed here; its
only variable parts come from the server's own settings (the install root, shell-quoted,
and whether to use ``sudo -n``). The agent script and its settings (the env file: URL,
token, host name, interval, DOCKER_HOST) travel over stdin as data: the env file first,
then a marker line, then the script. The script's ``--install`` parses the env file
(never sources it) and checks every value again before writing anything.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from typing import Any

from aiohttp import web
from archnest import DB_KEY, BadRequest, HostError, NotFound, plugin_settings
from archnest.ssh import SSH_POOL_KEY, list_targets

from .enrollments import ENROLLMENTS_KEY
from .payload import HOST_RE
from .settings import AgentSettings

# What an installed agent may be told to read: a local socket or plain TCP.
DOCKER_HOST_PATTERN = r"^(unix:///[A-Za-z0-9._/-]+|tcp://[A-Za-z0-9.-]+:[0-9]{1,5})$"
INSTALL_ROOT_RE = re.compile(r"^/[A-Za-z0-9._/-]*$")
MARKER = "__ARCHNEST_AGENT_SCRIPT__"
DEFAULT_INTERVAL = 30
INSTALL_SECONDS = 120.0
MAX_OUTPUT = 4000

# POSIX sh, run through `sh -c` whatever the login shell is. Reads the env file up to
# the marker line (`read` never consumes past a newline), then the script, into a
# private temp dir that is removed on exit; then runs the script's own installer.
_REMOTE = """set -eu
umask 077
t=$(mktemp -d "${{TMPDIR:-/tmp}}/archnest-agent-install.XXXXXX")
trap 'rm -rf "$t"' EXIT
while IFS= read -r line; do
  if [ "$line" = "{marker}" ]; then break; fi
  printf '%s\\n' "$line"
done > "$t/agent.env"
cat > "$t/agent.sh"
{sudo}env ARCHNEST_INSTALL_ROOT={root} bash "$t/agent.sh" --install --env-file "$t/agent.env"
"""


def remote_command(install_root: str, sudo: bool) -> str:
    """The whole command text sent to the target (a function of the settings only)."""
    if not INSTALL_ROOT_RE.fullmatch(install_root):
        raise ValueError("ARCHNEST_AGENT_SSH_INSTALL_ROOT must be an absolute path")
    body = _REMOTE.format(
        marker=MARKER, sudo="sudo -n " if sudo else "", root=shlex.quote(install_root)
    )
    return "sh -c " + shlex.quote(body)


def host_from_target_name(name: str) -> str | None:
    """A host name from an SSH target's name ("web 01" -> "web-01"), or None."""
    candidate = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:253]
    return candidate if candidate and HOST_RE.fullmatch(candidate) else None


def env_file(base_url: str, token: str, host: str, interval: int, docker_host: str | None) -> str:
    lines = [
        f"ARCHNEST_URL={base_url}",
        f"ARCHNEST_AGENT_TOKEN={token}",
        f"ARCHNEST_AGENT_HOSTNAME={host}",
        f"ARCHNEST_AGENT_INTERVAL={interval}",
    ]
    if docker_host:
        lines.append(f"DOCKER_HOST={docker_host}")
    return "".join(line + "\n" for line in lines)


async def install_over_ssh(
    app: web.Application,
    *,
    target_id: int,
    host: str | None,
    docker_host: str | None,
    interval: int | None,
    base_url: str,
    script: bytes,
) -> dict[str, Any]:
    """Enroll (or re-issue) and install; the installer's output, or a worded 502."""
    settings = plugin_settings(app, AgentSettings)
    target = next((t for t in await list_targets(app[DB_KEY]) if t.id == target_id), None)
    if target is None:
        raise NotFound(f"no SSH target {target_id}", code="unknown_target", field="target_id")
    if host is None:
        host = host_from_target_name(target.name)
        if host is None:
            raise BadRequest(
                f"cannot make a host name from the target name {target.name!r}: give one",
                code="invalid_host",
                field="host",
            )
    command = remote_command(settings.ssh_install_root, settings.ssh_sudo)
    store = app[ENROLLMENTS_KEY]
    # A host enrolled before gets a new token (its old agent is replaced by this one).
    enrolled = {e.host for e in await store.list()}
    token = await (store.reissue(host) if host in enrolled else store.create(host))
    data = env_file(base_url, token, host, interval or DEFAULT_INTERVAL, docker_host)
    stdin = data.encode() + MARKER.encode() + b"\n" + script
    pool = app[SSH_POOL_KEY]
    async with pool.process(target_id, command) as proc:
        try:
            out, err = await asyncio.wait_for(proc.proc.communicate(stdin), INSTALL_SECONDS)
        except TimeoutError:
            raise HostError(
                f"installing the agent on {target.name!r} did not finish within "
                f"{INSTALL_SECONDS:g}s",
                code="agent_install_timeout",
                status=504,
            ) from None
        status = proc.proc.exit_status
    output = _tail((out or b"") + (err or b""))
    if status != 0:
        raise HostError(
            f"installing the agent on {target.name!r} failed (exit status {status}): {output}",
            code="agent_install_failed",
        )
    return {"host": host, "installed": True, "output": output}


def _tail(raw: bytes) -> str:
    text = raw.decode(errors="replace").strip()
    return text if len(text) <= MAX_OUTPUT else "…" + text[-MAX_OUTPUT:]
