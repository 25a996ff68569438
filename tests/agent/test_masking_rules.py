"""The agent script's masking rules equal the server's: the same secret-name list, and
the same URL-credentials rule (the script's jq regex against the core's Python one)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from archnest import MASK, mask_env
from archnest.secrets import SECRET_NAME_PARTS, is_secret_value

from .conftest import AGENT

SCRIPT = AGENT.read_text()


def _script_constant(name: str) -> str:
    return re.search(rf"^readonly {name}='(.*?)'$", SCRIPT, re.M).group(1)


def _jq() -> str:
    found = shutil.which("jq")
    if found is None:
        pytest.skip("jq not installed")
    return found


def test_secret_name_lists_are_equal() -> None:
    assert json.loads(_script_constant("SECRET_NAME_PARTS")) == list(SECRET_NAME_PARTS)
    assert _script_constant("MASK") == MASK


VALUES = [
    "postgres://app:pw@db:5432/app",
    "see https://user:pw@host/x",  # anywhere in the value
    "redis://:pw@cache",  # no user
    "ftp://user:@host",  # empty password
    "amqp://user@host",  # no password: no credentials
    "https://example.org/a@b",
    "https://example.org/?next=a:b@c",
    "mailto:ops@example.org",
    "git@github.com:org/repo.git",
    "x://u:p @host",
    "1http://u:p@h",
    "plain",
    "",
]


def test_url_rule_matches_the_servers() -> None:
    program = "map(test($re))"
    proc = subprocess.run(
        [_jq(), "-c", "--arg", "re", _script_constant("URL_CREDENTIALS_RE"), program],
        input=json.dumps(VALUES),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout) == [is_secret_value(v) for v in VALUES]
    assert sum(is_secret_value(v) for v in VALUES) == 5  # the first four, and "1http"


def test_script_masks_exactly_what_the_server_masks() -> None:
    program = re.search(r"<<'JQ' \|\| true\n(.*?)\nJQ\n", SCRIPT, re.S).group(1)
    defs = program[: program.index("($inspect[0]")]
    entries = [
        *(f"{p}=v" for p in SECRET_NAME_PARTS),
        *(f"my_{p.lower()}_x=v" for p in SECRET_NAME_PARTS),
        *(f"LINK_{i}={v}" for i, v in enumerate(VALUES)),
        "EDITOR=vim",
        "A=b=c",
    ]
    proc = subprocess.run(
        [
            _jq(),
            "-c",
            "--argjson",
            "secret_parts",
            _script_constant("SECRET_NAME_PARTS"),
            "--arg",
            "url_re",
            _script_constant("URL_CREDENTIALS_RE"),
            "--arg",
            "mask",
            _script_constant("MASK"),
            defs + "map(mask_entry)",
        ],
        input=json.dumps(entries),
        capture_output=True,
        text=True,
        check=True,
    )
    by_agent = [e.endswith("=" + MASK) for e in json.loads(proc.stdout)]
    by_server = [e["masked"] for e in mask_env(entries)]
    assert by_agent == by_server
    # And what the agent masked stays masked on the server (it arrives as ****).
    assert all(e["masked"] for e in mask_env(json.loads(proc.stdout)) if e["value"] == MASK)
