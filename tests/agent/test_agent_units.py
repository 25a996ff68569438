"""The agent's jq helpers, run by the real jq on the script's own program text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from .conftest import AGENT

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed")


def _jq_defs() -> str:
    program = re.search(r"<<'JQ' \|\| true\n(.*?)\nJQ\n", AGENT.read_text(), re.S).group(1)
    # Only the function definitions (everything before the main expression).
    return program[: program.index("($inspect[0]")]


def _jq(expr: str, value: object, json_args: dict | None = None, **args: str) -> object:
    argv = ["jq", "-c"]
    for name, arg in (json_args or {}).items():
        argv += ["--argjson", name, arg]
    for name, arg in args.items():
        argv += ["--arg", name, arg]
    proc = subprocess.run(
        [*argv, _jq_defs() + expr],
        input=json.dumps(value),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0B", 0),
        ("512B", 512),
        ("1.5kB", 1500),
        ("320KiB", 327680),
        ("23.54GiB", int(23.54 * 1024**3)),
        ("1.2MB", 1_200_000),
        ("2GiB", 2 * 1024**3),
        ("3TB", 3 * 10**12),
        ("--", None),
        ("", None),
        ("12 furlongs", None),
    ],
)
def test_to_bytes(text: str, expected: int | None) -> None:
    assert _jq("to_bytes", text) == expected


def test_pairs_and_percentages() -> None:
    assert _jq("pair", "1.5MiB / 2GiB") == [1572864, 2147483648]
    assert _jq("pair", "--") == [None, None]
    assert _jq("pair", None) == [None, None]
    assert _jq("num_or_null", "12.50%") == 12.5
    assert _jq("num_or_null", "--") is None


def test_mask_entry() -> None:
    script = AGENT.read_text()
    parts = re.search(r"SECRET_NAME_PARTS='(\[.*?\])'", script).group(1)
    url_re = re.search(r"URL_CREDENTIALS_RE='(.*?)'", script).group(1)
    entries = [
        "DB_PASSWORD=x",
        "github_token=y",
        "PLAIN=z",
        "NOVALUE",
        "EMPTY_KEY=",
        "LINK=see https://user:pw@host/x",
        "HOMEPAGE=https://example.org/a@b",
        "A=b=c",
    ]
    got = _jq("map(mask_entry)", entries, {"secret_parts": parts}, url_re=url_re, mask="****")
    assert got == [
        "DB_PASSWORD=****",
        "github_token=****",
        "PLAIN=z",
        "NOVALUE",
        "EMPTY_KEY=****",
        "LINK=****",
        "HOMEPAGE=https://example.org/a@b",
        "A=b=c",
    ]
