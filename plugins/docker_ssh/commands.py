"""Every command the ``ssh`` source runs on a host is built here, and only here.

Rules (docs/security.md, "No command injection"): verbs come from a fixed set; format
strings are constants; a container ref must pass ``validate_ref`` (the documented
allowlist) and is then single-quoted; numbers are rendered from ints. Every word is
passed through ``shlex.quote``, and ``--`` ends option parsing before the ref, so even
a ref that somehow began with ``-`` could not become an option.
"""

from __future__ import annotations

import re
import shlex

from archnest import validate_action, validate_ref

JSON_FORMAT = "{{json .}}"
ID_FORMAT = "{{.Id}}"
VERSION_FORMAT = "{{.Server.Version}}"
# Relative to the remote CLI's own clock: no clock skew between the app and the host.
EVENTS_SINCE = "5s"
VERBS = frozenset(
    {"ps", "inspect", "stats", "logs", "start", "stop", "restart", "pause", "unpause", "kill"}
    | {"rm", "exec", "version", "system", "events"}
)
ACTION_VERBS = {
    "start": "start",
    "stop": "stop",
    "restart": "restart",
    "pause": "pause",
    "unpause": "unpause",
    "kill": "kill",
    "remove": "rm",
}
SHELLS = frozenset({"/bin/sh", "/bin/bash", "/bin/ash"})
EXEC_TAG_ENV = "ARCHNEST_EXEC_ID"
_TAG = re.compile(r"^[0-9a-f]{32}$")
# Run inside the container when a terminal closes: `docker exec` leaves the process
# running when its client goes away, so every process carrying the session's tag in
# its environment (the shell and whatever it started) is killed. $0 is the tag.
EXEC_KILL_SCRIPT = (
    'for f in $(grep -l "' + EXEC_TAG_ENV + '=$0" /proc/[0-9]*/environ 2>/dev/null); do '
    'p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; done; true'
)


def _line(sudo: bool, verb: str, *args: str) -> str:
    if verb not in VERBS:
        raise ValueError(f"verb {verb!r} is not allowed")
    words = (["sudo", "-n"] if sudo else []) + ["docker", verb, *args]
    return " ".join(shlex.quote(w) for w in words)


def _ref(ref: str) -> str:
    return validate_ref(ref)


def _tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise ValueError("exec tag must be 32 hex digits")
    return tag


def version(sudo: bool) -> str:
    return _line(sudo, "version", "--format", VERSION_FORMAT)


def dial_stdio(sudo: bool) -> str:
    """The docker CLI as a pipe to the host's Engine API (honours the remote DOCKER_HOST)."""
    return _line(sudo, "system", "dial-stdio")


def events(sudo: bool) -> str:
    """Container events as JSON lines (the objects ``GET /events`` gives), replayed from
    a few seconds before the CLI started so an event between opening the channel and
    the CLI's subscription is not lost (events.py)."""
    flags = ["--format", JSON_FORMAT, "--filter", "type=container", "--since", EVENTS_SINCE]
    return _line(sudo, "events", *flags)


def ps(sudo: bool, all: bool = False) -> str:
    return _line(sudo, "ps", *(["--all"] if all else []), "--no-trunc", "--format", JSON_FORMAT)


def inspect(sudo: bool, ref: str) -> str:
    return _line(sudo, "inspect", "--type", "container", "--", _ref(ref))


def container_id(sudo: bool, ref: str) -> str:
    return _line(sudo, "inspect", "--type", "container", "--format", ID_FORMAT, "--", _ref(ref))


def stats(sudo: bool, ref: str) -> str:
    flags = ["--no-stream", "--no-trunc", "--format", JSON_FORMAT]
    return _line(sudo, "stats", *flags, "--", _ref(ref))


def _unix_time(name: str, value: int) -> str:
    # Times reach the shell only as the digits of a non-negative int (unix seconds):
    # never a string from a request, so no date syntax or option can ride along.
    if type(value) is not int or not 0 <= value < 2**40:
        raise ValueError(f"{name} must be unix seconds")
    return str(value)


def logs(
    sudo: bool,
    ref: str,
    *,
    tail: int | None,
    since: int | None,
    until: int | None = None,
    follow: bool = False,
) -> str:
    # Timestamps always: they are what interleaves stdout and stderr, which arrive on
    # separate SSH streams. They are stripped again when the caller did not ask.
    args = ["--timestamps"]
    if tail is not None:
        args += ["--tail", str(int(tail))]
    if since is not None:
        args += ["--since", _unix_time("since", since)]
    if until is not None:
        args += ["--until", _unix_time("until", until)]
    if follow:
        args.append("--follow")
    return _line(sudo, "logs", *args, "--", _ref(ref))


def action(sudo: bool, ref: str, name: str, *, force: bool = False) -> str:
    verb = ACTION_VERBS[validate_action(name)]
    flags = ["--force"] if force and verb == "rm" else []
    return _line(sudo, verb, *flags, "--", _ref(ref))


def exec_tty(sudo: bool, ref: str, shell: str, tag: str) -> str:
    if shell not in SHELLS:
        raise ValueError(f"shell {shell!r} is not allowed")
    env = f"{EXEC_TAG_ENV}={_tag(tag)}"
    return _line(sudo, "exec", "--interactive", "--tty", "--env", env, "--", _ref(ref), shell)


def exec_kill(sudo: bool, ref: str, tag: str) -> str:
    return _line(sudo, "exec", "--", _ref(ref), "/bin/sh", "-c", EXEC_KILL_SCRIPT, _tag(tag))
